"""Any dataset by its spec: "synthetic:ventricle", "synthetic:nuclei", "synthetic:heart" (generated) or a folder of
image/mask pairs (binary masks, or label maps of a definition's classes); at the model's image_size (SegData) or at
the images' own size (NativeData, with an optional cache of the decoded files)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from ..define.task import Classes
from .data import DatasetError, SegData
from .dataset_id import SYNTHETIC_KINDS, data_id
from .folders import absent_classes, load_folder
from .native import CACHE_VERSION, NativeData, cached_native, from_segdata
from .synthetic import synthetic_heart, synthetic_nuclei, synthetic_ventricle

__all__ = ["absent_classes", "load_dataset", "native_fingerprint"]

# kind -> generator (n, size, seed) -> (images float32 [N, S, S] in [0, 1], masks [N, S, S] of class indices)
_GENERATORS = {"ventricle": synthetic_ventricle, "nuclei": synthetic_nuclei, "heart": synthetic_heart}


def load_dataset(spec: str, image_size: int, num_images: int, data_seed: int, base_dir: Path | None = None,
                 tiff_pages: str = "error", classes: Classes | None = None, native: bool = False,
                 cache_dir: Path | None = None) -> SegData | NativeData:
    """spec is "synthetic:ventricle", "synthetic:nuclei", "synthetic:heart", or a folder path (relative paths resolved
    against base_dir, the project folder). num_images applies to synthetic data only, tiff_pages to folders only.

    ``classes`` (``define.task.classes_of`` of the definition): None or binary without pixel values reads masks as
    foreground / background (0.0 / 1.0), exactly as ever; with pixel values (``classes.values``) a folder's masks are
    read as label maps and ``SegData.masks`` holds each pixel's class index (see ``folders.load_folder``). Built-in
    data's masks always hold class indices (0/1 for the binary sets; 0 background, 1 cavity, 2 myocardium for
    synthetic:heart). With ``classes`` of K >= 3, ``SegData.notes`` names each class no mask has.

    ``native``: a NativeData instead, every image at its own size (``folders.load_folder(native=True)``); synthetic
    data is generated at ``image_size`` as ever (its native size) and split per image (``native.from_segdata``).
    ``cache_dir`` (native folders only; a project's is ``<project>/runs/.cache/decoded/``): the decoded images are
    kept there (``native.cached_native``) under ``native_fingerprint``'s key, so a later run reads them back
    without decoding a file."""
    text = str(spec).strip()
    if text.lower().startswith("synthetic:"):
        kind = text.split(":", 1)[1].strip().lower()
        if kind not in _GENERATORS:
            choices = " or ".join(f"synthetic:{k}" for k in SYNTHETIC_KINDS)
            raise DatasetError(f"unknown synthetic dataset {spec!r}: use {choices}, or a folder path")
        if int(num_images) < 1:
            raise DatasetError(f"num_images must be >= 1 for {spec!r}, got {num_images}")
        imgs, msks = _GENERATORS[kind](int(num_images), int(image_size), int(data_seed))
        data = SegData(
            images=torch.from_numpy(imgs)[:, None].contiguous(),
            masks=torch.from_numpy(msks.astype(np.float32))[:, None].contiguous(),
            names=[f"{kind}-{i:04d}" for i in range(imgs.shape[0])],
            source=str(spec),
        )
        if classes is not None and classes.per_class:
            data.notes += [f"class {classes.names[c]!r} (value {c}) occurs in no mask of the dataset"
                           for c in absent_classes(data.masks, classes.k)]
        return from_segdata(data) if native else data
    if not text:
        choices = ", ".join(f"synthetic:{k}" for k in SYNTHETIC_KINDS)
        raise DatasetError(f"empty dataset spec: use {choices}, or a folder path")
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = Path(base_dir if base_dir is not None else Path.cwd()) / path

    def load() -> SegData | NativeData:
        return load_folder(path, image_size, tiff_pages, classes=classes, native=native)

    key = native_fingerprint(text, base_dir, tiff_pages, classes) if native and cache_dir is not None else None
    data = cached_native(load, Path(cache_dir), key) if key else load()
    data.source = str(spec)
    return data


def native_fingerprint(spec: str, base_dir: Path | None, tiff_pages: str = "error",
                       classes: Classes | None = None) -> str | None:
    """The decoded-image cache's key for a folder dataset read natively: its content's fingerprint
    (dataset_id.data_id, the one a run records: the files' names, sizes and modification times in whole seconds;
    reused for 5 s while the folders' listings are unchanged) and everything that changes how they are decoded
    (tiff_pages; the classes' pixel values, which make masks label maps; the cache's version). None when the folder
    cannot be listed (it is then read without the cache, and fails with its own message)."""
    ident = data_id(spec, 0, 0, 0, base_dir)
    if ident is None:
        return None
    values = classes.values if classes is not None else None
    k = classes.k if classes is not None else 2
    text = f"{ident.fingerprint}\0{tiff_pages}\0{values}\0{k}\0v{CACHE_VERSION}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]
