"""Datasets at their native resolution: every image at its file's own size (NativeData), the memory check made
from the files' headers before anything is decoded, and a cache of decoded images on disk, read back
memory-mapped, so that large images are decoded once and not once per run.

SegData (data.py) stacks a dataset resized to one square size into two tensors; images of different sizes cannot be
stacked, so NativeData holds one tensor per image. Which reader fills it: folders.load_folder(..., native=True)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .data import DatasetError, SegData
from .dataset_id import TIFF_EXTENSIONS
from .feasible import machine_memory, size_text

__all__ = ["CACHE_VERSION", "MEMORY_SHARE", "NativeData", "available_memory", "cached_native", "check_memory",
           "decoded_bytes", "file_shape", "from_segdata", "pillow_unlimited"]


@dataclass
class NativeData:
    """A dataset at its native resolution: one tensor per image, each at its file's own size.

    ``images``: float32 ``[C, H_i, W_i]`` in [0, 1] (C the same for every image; see folders.load_folder).
    ``masks``: float32 ``[1, H_i, W_i]``, each pixel's class index (0.0 / 1.0 binary, 0 ... K-1 for K classes).
    ``names``, ``source``, ``notes``: as SegData's.
    A tensor may be a view (a slice of a stacked SegData, grey expanded to RGB without a copy, a memory-mapped
    cache file): clone it before writing into it."""

    images: list[torch.Tensor]
    masks: list[torch.Tensor]
    names: list[str]
    source: str
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def channels(self) -> int:
        return int(self.images[0].shape[0]) if self.images else 0

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """(height, width) of each image."""
        return [(int(t.shape[-2]), int(t.shape[-1])) for t in self.images]

    @property
    def pixels(self) -> int:
        """The pixels of all images together (per channel)."""
        return sum(h * w for h, w in self.sizes)

    def subset(self, idx) -> NativeData:
        """The images at ``idx`` (a 1-D LongTensor or a list of ints), in that order (the same tensors, not copies)."""
        if isinstance(idx, torch.Tensor):
            idx_list = [int(i) for i in idx.reshape(-1).tolist()]
        else:
            idx_list = [int(i) for i in idx]
        return NativeData([self.images[i] for i in idx_list], [self.masks[i] for i in idx_list],
                          [self.names[i] for i in idx_list], self.source, list(self.notes))


def from_segdata(data: SegData) -> NativeData:
    """``data`` as a NativeData: its stacked tensors split into one view per image (no copy). For built-in synthetic
    data, whose native size is the image_size it was generated at."""
    return NativeData(list(data.images.unbind(0)), list(data.masks.unbind(0)), list(data.names), data.source,
                      list(data.notes))


# ---------------------------------------------------------------------------
# Memory: what decoding a folder needs, from the files' headers, against what the machine has
# ---------------------------------------------------------------------------

MEMORY_SHARE = 0.8  # of the available memory a native dataset may take once decoded
_pillow_lock = threading.Lock()
_pillow_users = [0, None]  # readers inside pillow_unlimited, and Pillow's limit before the first one entered


@contextlib.contextmanager
def pillow_unlimited() -> Iterator[None]:
    """Pillow without its decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``: a warning above 89 Mpx, an error
    above 179 Mpx; a 20000 x 20000 scan is 400 Mpx) while the files of a dataset are read: how much memory they may
    take is decided by ``check_memory``, from their headers. The limit is put back when the last reader leaves
    (threads reading at once share one count)."""
    from PIL import Image

    with _pillow_lock:
        if _pillow_users[0] == 0:
            _pillow_users[1] = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
        _pillow_users[0] += 1
    try:
        yield
    finally:
        with _pillow_lock:
            _pillow_users[0] -= 1
            if _pillow_users[0] == 0:
                Image.MAX_IMAGE_PIXELS = _pillow_users[1]


def file_shape(path: Path, tiff_pages: str = "error") -> tuple[int, int, int, int] | None:
    """(height, width, channels as stored, bytes per sample) of an image file from its header, without decoding its
    pixels; None when the header cannot be read (the reader then names the problem). TIFF: tifffile (the first page,
    or every page's samples with ``tiff_pages = "channels"``); the rest: Pillow (a palette image counts as RGB(A),
    as it is decoded)."""
    path = Path(path)
    try:
        if path.suffix.lower() in TIFF_EXTENSIONS:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                h, w = int(page.imagelength), int(page.imagewidth)
                c = int(page.samplesperpixel)
                if tiff_pages == "channels":
                    c *= len(tif.pages)
                size = page.dtype.itemsize if page.dtype is not None else max(1, int(page.bitspersample) // 8)
                return h, w, c, int(size)
        from PIL import Image

        with pillow_unlimited(), Image.open(path) as im:
            w, h = im.size
            c = len(im.getbands())
            if im.mode in ("P", "PA"):
                c = 4 if im.mode == "PA" or "transparency" in im.info else 3
            size = 2 if im.mode.startswith("I;16") else 4 if im.mode in ("I", "F") else 1
            return int(h), int(w), int(c), size
    except Exception:  # noqa: BLE001 - a header only informs the estimate
        return None


def decoded_bytes(shapes: Sequence[tuple[int, int, int, int]]) -> int:
    """Bytes a native dataset of images of these (height, width, channels, bytes per sample as stored) holds once
    decoded: float32 images and float32 masks (H * W * (C + 1) * 4 each), and on top what decoding the largest image
    takes for a while (its pixels as stored, twice: the decoder's buffer and the array; and for images deeper than 8
    bits a float64 copy, in which they are normalised). Measured: a 20000 x 20000 8-bit grey PNG and its mask,
    estimated 4.0 GB, peaked at 3.84 GB in three runs (the process, Python and torch included)."""
    if not shapes:
        return 0
    held = sum(h * w * (c + 1) * 4 for h, w, c, _ in shapes)
    h, w, c, size = max(shapes, key=lambda s: s[0] * s[1] * s[2] * (2 * s[3] + (8 if s[3] > 1 else 0)))
    return held + h * w * c * (2 * size + (8 if size > 1 else 0))


def available_memory() -> int | None:
    """Bytes this process can still take without being killed: the kernel's MemAvailable, lowered to what is left
    under a cgroup memory limit (a container, a SLURM job); the machine's RAM where neither is known, None where
    nothing is."""
    found: list[int] = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    for limit_file, used_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                  ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                   "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            used = int(Path(used_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 1 << 60:  # "max", or cgroup v1's "no limit" (a huge number)
            found.append(max(0, int(limit) - used))
        break
    if found:
        return min(found)
    return machine_memory()


def check_memory(files: Sequence[Path], tiff_pages: str = "error", memory: int | None = None) -> int:
    """Refuse, before decoding anything, a native dataset that would not fit: a one-line DatasetError naming the
    largest image, its size, the estimate (``decoded_bytes``) and the limit (``MEMORY_SHARE`` of ``memory``, by
    default ``available_memory()``), and what to do. Returns the estimate (0 checked against nothing when the
    memory is unknown)."""
    shapes, largest = [], None
    for p in files:
        s = file_shape(p, tiff_pages)
        if s is None:
            continue
        shapes.append(s)
        if largest is None or s[0] * s[1] > largest[1][0] * largest[1][1]:  # (by pixels)
            largest = (p, s)
    need = decoded_bytes(shapes)
    memory = available_memory() if memory is None else memory
    if memory and largest is not None and need > MEMORY_SHARE * memory:
        p, (h, w, _, _) = largest
        raise DatasetError(
            f"{len(shapes)} image{'s' if len(shapes) != 1 else ''} at their own size would take about "
            f"{size_text(need)} of memory once decoded (the largest, {p}, is {w}x{h} WxH) and "
            f"{int(MEMORY_SHARE * 100)}% of the {size_text(memory)} available is {size_text(MEMORY_SHARE * memory)}: "
            "use fewer or smaller images, tile the large ones into smaller files, or train at an image_size")
    return need


# ---------------------------------------------------------------------------
# The decoded-image cache
# ---------------------------------------------------------------------------

CACHE_VERSION = 1  # bump when what a cache entry holds changes: older entries are then rebuilt, never misread
_INDEX = "index.json"


def cached_native(load: Callable[[], NativeData], cache_dir: Path, fingerprint: str) -> NativeData:
    """``load()``'s dataset, decoded once: stored under ``cache_dir/<fingerprint>/`` as one ``.npy`` per image
    (float32 ``[C, H, W]``) and per mask (uint8, or int16 for class indices outside 0..255) with an ``index.json``,
    and on a later call with the same ``fingerprint`` read back from there without decoding any file.

    ``fingerprint`` must change whenever what ``load`` returns would (the files, and how they are read: tiff_pages,
    the classes' pixel values); datasets.native_fingerprint makes one. The call that writes the entry returns the
    dataset as ``load`` decoded it; later calls read it from the entry: images memory-mapped copy-on-write
    (``np.load(mmap_mode="c")``: no copy, the pages are read as they are used; writing into one changes this
    process's pages, never the file); masks are converted to float32 (a copy, as large as one image channel). An
    entry is written into a temporary folder and moved into place in one rename (``os.replace``), so it is
    complete or absent, and no file is ever written in place: a tensor mapped by one process stays as it was while
    another rebuilds the entry. One whose index, version, files, shapes or file sizes disagree is rebuilt, never
    trusted (the pixel bytes themselves are not checksummed). A disk that cannot take the entry only leaves it
    uncached."""
    folder = Path(cache_dir) / _safe(fingerprint)
    data = _read_entry(folder, fingerprint)
    if data is not None:
        return data
    data = load()
    try:
        _write_entry(folder, fingerprint, data)
    except OSError:  # a full or read-only disk: the dataset is loaded, only not cached
        pass
    return data  # (as decoded: reading the entry back would hold the dataset twice for a while)


def _safe(fingerprint: str) -> str:
    text = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(fingerprint)).strip(".")
    if not text:
        raise ValueError(f"a cache fingerprint needs letters or digits, got {fingerprint!r}")
    return text


def _write_entry(folder: Path, fingerprint: str, data: NativeData) -> None:
    """Write the entry into a temporary folder beside ``folder``, then move it into place in one rename: an entry is
    complete or absent. A damaged or outdated entry in the way is removed first; when another process moved its
    (identical) entry into place meanwhile, that one is kept."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.mkdir()
        entries = []
        for i, (img, msk) in enumerate(zip(data.images, data.masks)):
            image = np.ascontiguousarray(img.detach().cpu().numpy(), dtype=np.float32)
            m = msk.detach().cpu()
            lo, hi = (float(m.min()), float(m.max())) if m.numel() else (0.0, 0.0)
            mask = m.numpy().astype(np.uint8 if lo >= 0 and hi <= 255 else np.int16)
            names = (f"{i:06d}.image.npy", f"{i:06d}.mask.npy")
            for name, arr in zip(names, (image, mask)):
                np.save(tmp / name, arr, allow_pickle=False)
            entries.append({"name": data.names[i], "image": names[0], "mask": names[1], "shape": list(image.shape),
                            "mask_dtype": mask.dtype.name, "bytes": [(tmp / n).stat().st_size for n in names]})
        index = {"version": CACHE_VERSION, "fingerprint": fingerprint, "source": data.source,
                 "notes": list(data.notes), "entries": entries}
        (tmp / _INDEX).write_text(json.dumps(index, indent=1))
        if folder.exists() and _read_entry(folder, fingerprint) is None:
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError:
            if _read_entry(folder, fingerprint) is None:  # not another process's complete entry: an error
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _load_index(folder: Path) -> dict | None:
    try:
        index = json.loads((folder / _INDEX).read_text())
    except (OSError, ValueError):
        return None
    return index if isinstance(index, dict) else None


def _read_entry(folder: Path, fingerprint: str) -> NativeData | None:
    """The cached dataset, or None when there is no entry or any part of it is not what the index says."""
    index = _load_index(folder)
    if index is None or index.get("version") != CACHE_VERSION or index.get("fingerprint") != fingerprint:
        return None
    images, masks, names = [], [], []
    try:
        for e in index["entries"]:
            shape = tuple(int(x) for x in e["shape"])
            ipath, mpath = folder / e["image"], folder / e["mask"]
            if [ipath.stat().st_size, mpath.stat().st_size] != list(e["bytes"]):
                return None
            image = np.load(ipath, mmap_mode="c", allow_pickle=False)
            mask = np.load(mpath, mmap_mode="c", allow_pickle=False)
            if (image.dtype != np.float32 or image.shape != shape or mask.dtype.name != e["mask_dtype"]
                    or mask.shape != (1, *shape[1:])):
                return None
            images.append(torch.from_numpy(image))
            masks.append(torch.from_numpy(np.asarray(mask, dtype=np.float32)))
            names.append(str(e["name"]))
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None
    if not images:
        return None
    return NativeData(images, masks, names, str(index.get("source", "")), [str(n) for n in index.get("notes", [])])
