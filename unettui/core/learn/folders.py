"""Folder datasets: images/ and masks/ paired by file stem, read with imageio, normalised, cropped and resized."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .data import DatasetError, SegData
from .dataset_id import IMAGE_EXTENSIONS, LOSSY_EXTENSIONS, image_files

__all__ = ["image_to_float", "load_folder", "read_image_file", "resize_image"]


# ---------------------------------------------------------------------------
# Folder datasets
# ---------------------------------------------------------------------------

_LAYOUT = "expected <folder>/images/ and <folder>/masks/ with one mask per image, matched by file stem"


def _list_images(folder: Path) -> dict[str, Path]:
    """stem -> file for the image files in ``folder`` (hidden and non-image files skipped)."""
    by_stem = image_files(folder)
    for stem, files in sorted(by_stem.items()):
        if len(files) > 1:
            names = ", ".join(f.name for f in files)
            raise DatasetError(
                f"{folder} has several files with the stem '{stem}' ({names}): "
                "keep one of them so images and masks pair up unambiguously"
            )
    return {stem: files[0] for stem, files in by_stem.items()}


def _short_reason(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0].strip() if text else type(exc).__name__
    if "Could not find a backend" in first:
        return "not an image file imageio can decode"
    return first if len(first) <= 160 else first[:157] + "..."


def read_image_file(path: Path) -> np.ndarray:
    import imageio.v3 as iio  # local import: keeps `import unettui.core.learn.folders` light

    try:
        size = path.stat().st_size
    except OSError as e:
        raise DatasetError(f"cannot read {path}: {_short_reason(e)}") from None
    if size == 0:
        raise DatasetError(f"cannot read {path}: the file is empty (0 bytes); replace or remove it")
    try:
        with warnings.catch_warnings():  # imageio's plugin probing warns about its own deprecations
            warnings.simplefilter("ignore", DeprecationWarning)
            arr = np.asarray(iio.imread(path, index=0))
    except Exception as e:  # any reader failure becomes one clear line
        raise DatasetError(f"cannot read {path}: {_short_reason(e)}; replace or remove it") from None
    if arr.size == 0:
        raise DatasetError(f"cannot read {path}: the image has no pixels; replace or remove it")
    return arr


def _to_hwc(arr: np.ndarray, path: Path) -> np.ndarray:
    """[H, W, C] with C in {1, 3} (alpha dropped; grey+alpha -> grey)."""
    if arr.ndim == 2:
        return arr[:, :, None]
    if arr.ndim == 3 and arr.shape[2] in (1, 2, 3, 4):
        if arr.shape[2] == 2:
            return arr[:, :, :1]
        if arr.shape[2] == 4:
            return arr[:, :, :3]
        return arr
    raise DatasetError(
        f"{path} has an unsupported shape {tuple(arr.shape)}: expected a 2-D grey or an RGB/RGBA image"
    )


def image_to_float(arr: np.ndarray, path: Path) -> np.ndarray:
    """float32 [C, H, W] in [0, 1]: 8-bit / 255, bool as 0/1; 16-bit, signed and float images min-max per image.

    16-bit microscopy and MRI rarely use the full 0..65535 range (a 12-bit camera tops out at 4095),
    so dividing by the dtype's maximum would leave the image nearly black.
    """
    hwc = _to_hwc(arr, path)
    if hwc.dtype == np.bool_:
        out = hwc.astype(np.float32)
    elif hwc.dtype == np.uint8:
        out = hwc.astype(np.float32) / 255.0
    elif np.issubdtype(hwc.dtype, np.integer) or np.issubdtype(hwc.dtype, np.floating):
        out = hwc.astype(np.float64)
        out = np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = float(out.min()), float(out.max())
        out = ((out - lo) / (hi - lo) if hi > lo else np.zeros_like(out)).astype(np.float32)
    else:
        raise DatasetError(f"{path} has an unsupported pixel type {hwc.dtype}: save it as an 8/16-bit or float image")
    return np.ascontiguousarray(np.clip(out, 0.0, 1.0).transpose(2, 0, 1))


def _mask_to_bool(arr: np.ndarray, path: Path) -> np.ndarray:
    """bool [H, W]: foreground where any colour channel > 0 (alpha ignored).

    Lossy formats (JPEG, WebP) are the exception: their compression noise puts small non-zero values all over the
    background, so there the threshold is half the range (> 127 for 8-bit, > 0.5 for float)."""
    hwc = _to_hwc(arr, path)
    if not (np.issubdtype(hwc.dtype, np.number) or hwc.dtype == np.bool_):
        raise DatasetError(f"{path} has an unsupported pixel type {hwc.dtype}: save masks as 0/255 PNG")
    level = 0.0
    if path.suffix.lower() in LOSSY_EXTENSIONS and hwc.dtype != np.bool_:
        level = np.iinfo(hwc.dtype).max / 2 if np.issubdtype(hwc.dtype, np.integer) else 0.5
    return (np.nan_to_num(hwc.astype(np.float64)) > level).any(axis=2)


def _center_crop(t: torch.Tensor) -> torch.Tensor:
    h, w = t.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return t[..., top : top + side, left : left + side]


def resize_image(img: torch.Tensor, size: int) -> torch.Tensor:
    """[C, s, s] -> [C, size, size], bilinear (antialiased when downsampling)."""
    s = img.shape[-1]
    if s == size:
        return img
    out = F.interpolate(img[None], size=(size, size), mode="bilinear", align_corners=False, antialias=s > size)[0]
    return out.clamp_(0.0, 1.0)


def _resize_mask(mask: torch.Tensor, size: int) -> torch.Tensor:
    """[s, s] 0/1 -> [size, size] 0/1: area average (down) or bilinear (up), then >= 0.5."""
    s = mask.shape[-1]
    if s == size:
        return mask
    m = mask[None, None]
    if s > size:
        out = F.interpolate(m, size=(size, size), mode="area")
    else:
        out = F.interpolate(m, size=(size, size), mode="bilinear", align_corners=False)
    return (out[0, 0] >= 0.5).to(torch.float32)


def _more(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def load_folder(path: Path, image_size: int) -> SegData:
    """Load ``path/images/`` and ``path/masks/`` (pairs matched by file stem) as a SegData.

    Files: png, tif/tiff, jpg/jpeg, bmp, gif, webp (by extension, case-insensitive),
    read with ``imageio.v3.imread`` (first frame); hidden files and other
    extensions are skipped; pairs are sorted by stem.

    Images: grey, grey+alpha, RGB or RGBA (alpha dropped). If any image is RGB
    all become 3-channel (grey replicated), else 1 channel. 8-bit images are
    divided by 255; 16-bit, float and signed-integer images are min-max
    normalised per image.

    Masks: any dtype, foreground where any colour channel is > 0 (JPEG/WebP masks: above half the range, since
    their compression noise is non-zero everywhere).

    Geometry: image and mask must have the same height and width; non-square
    pairs are centre-cropped to a square, then resized to ``image_size``.
    Images use bilinear interpolation (antialiased when downsampling). Masks
    are resized as 0/1 float with area averaging (downsampling: a majority
    vote per output pixel) or bilinear interpolation (upsampling), then
    thresholded at >= 0.5, so thin structures neither alias away nor grow.

    Raises DatasetError (one line naming the folder or files) for a missing
    folder or subfolder, no images, unpaired files, duplicate stems, an
    unreadable or empty file, or an image/mask size mismatch.
    """
    path = Path(path).expanduser()
    if int(image_size) < 1:
        raise DatasetError(f"image_size must be >= 1, got {image_size}")
    image_size = int(image_size)
    if not path.exists():
        raise DatasetError(f"dataset folder {path} does not exist: {_LAYOUT}")
    if not path.is_dir():
        raise DatasetError(f"dataset path {path} is not a folder: {_LAYOUT}")
    img_dir, mask_dir = path / "images", path / "masks"
    missing = [d.name + "/" for d in (img_dir, mask_dir) if not d.is_dir()]
    if missing:
        raise DatasetError(f"dataset folder {path} has no {' and no '.join(missing)} subfolder: {_LAYOUT}")

    images = _list_images(img_dir)
    masks = _list_images(mask_dir)
    if not images:
        raise DatasetError(
            f"no image files found in {img_dir}: add images ({', '.join(e[1:] for e in IMAGE_EXTENSIONS)}); {_LAYOUT}"
        )
    no_mask = sorted(set(images) - set(masks))
    no_image = sorted(set(masks) - set(images))
    if no_mask or no_image:
        parts = []
        if no_mask:
            parts.append(f"{len(no_mask)} image(s) without a mask ({_more(no_mask)})")
        if no_image:
            parts.append(f"{len(no_image)} mask(s) without an image ({_more(no_image)})")
        raise DatasetError(
            f"dataset folder {path}: {' and '.join(parts)}; "
            "every file in images/ needs a file with the same stem in masks/"
        )

    imgs: list[torch.Tensor] = []
    msks: list[torch.Tensor] = []
    stems = sorted(images)
    for stem in stems:
        ip, mp = images[stem], masks[stem]
        iarr, marr = read_image_file(ip), read_image_file(mp)
        ih, iw = iarr.shape[:2]
        mh, mw = marr.shape[:2]
        if (ih, iw) != (mh, mw):
            raise DatasetError(
                f"size mismatch: image {ip} is {iw}x{ih} (WxH) but mask {mp} is {mw}x{mh}; they must have the same size"
            )
        img = torch.from_numpy(image_to_float(iarr, ip))
        msk = torch.from_numpy(_mask_to_bool(marr, mp).astype(np.float32))
        imgs.append(resize_image(_center_crop(img), image_size))
        msks.append(_resize_mask(_center_crop(msk), image_size))

    if not any(bool(m.any()) for m in msks):
        raise DatasetError(
            f"dataset folder {path}: every mask in masks/ is empty (no pixel > 0), so there is nothing to learn "
            "and Dice would read 1.0 for predicting nothing; masks need their foreground > 0 (e.g. 255 on 0)"
        )
    channels = 3 if any(t.shape[0] == 3 for t in imgs) else 1
    imgs = [t.expand(channels, -1, -1) if t.shape[0] != channels else t for t in imgs]
    return SegData(
        images=torch.stack(imgs).contiguous().to(torch.float32),
        masks=torch.stack(msks)[:, None].contiguous(),
        names=stems,
        source=str(path),
    )
