"""Any dataset by its spec: "synthetic:ventricle", "synthetic:nuclei" (generated) or a folder of image/mask pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .data import DatasetError, SegData
from .dataset_id import SYNTHETIC_KINDS
from .folders import load_folder
from .synthetic import synthetic_nuclei, synthetic_ventricle

_GENERATORS = {"ventricle": synthetic_ventricle, "nuclei": synthetic_nuclei}


def load_dataset(spec: str, image_size: int, num_images: int, data_seed: int, base_dir: Path | None = None,
                 tiff_pages: str = "error") -> SegData:
    """spec is "synthetic:ventricle", "synthetic:nuclei", or a folder path (relative paths resolved against base_dir, the project folder). num_images applies to synthetic data only, tiff_pages to folders only."""
    text = str(spec).strip()
    if text.lower().startswith("synthetic:"):
        kind = text.split(":", 1)[1].strip().lower()
        if kind not in _GENERATORS:
            choices = " or ".join(f"synthetic:{k}" for k in SYNTHETIC_KINDS)
            raise DatasetError(f"unknown synthetic dataset {spec!r}: use {choices}, or a folder path")
        if int(num_images) < 1:
            raise DatasetError(f"num_images must be >= 1 for {spec!r}, got {num_images}")
        imgs, msks = _GENERATORS[kind](int(num_images), int(image_size), int(data_seed))
        return SegData(
            images=torch.from_numpy(imgs)[:, None].contiguous(),
            masks=torch.from_numpy(msks.astype(np.float32))[:, None].contiguous(),
            names=[f"{kind}-{i:04d}" for i in range(imgs.shape[0])],
            source=str(spec),
        )
    if not text:
        raise DatasetError("empty dataset spec: use synthetic:ventricle, synthetic:nuclei, or a folder path")
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = Path(base_dir if base_dir is not None else Path.cwd()) / path
    data = load_folder(path, image_size, tiff_pages)
    data.source = str(spec)
    return data
