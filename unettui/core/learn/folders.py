"""Folder datasets: images/ and masks/ paired by file stem, read with imageio, normalised, and either letterboxed to
the model's square image_size (scaled on their long side, the short side padded; nothing cropped or stretched) or
kept at their own size (native: core.learn.native.NativeData); masks as binary foreground or, for a definition whose
classes have pixel values, as label maps of class indices.

Over 600 lines: images, binary masks and label maps are read by one set of readers (TIFF pages, animations, 3-D
volumes, palettes, alpha channels) with one set of one-line refusals, which the pairing below shares in both modes.
The resizing itself is core.learn.resize's."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..define.task import Classes
from .data import IGNORE_INDEX, DatasetError, SegData
from .dataset_id import IMAGE_EXTENSIONS, LOSSY_EXTENSIONS, TIFF_EXTENSIONS, image_files, volume_suffix
from .native import NativeData, check_memory, pillow_unlimited
from .resize import letterbox_shape, pad_square, resize_image, resize_labels, resize_mask

__all__ = ["absent_classes", "class_indices", "fit_channels", "image_to_float", "load_folder", "read_image_file",
           "read_label_map", "refuse_volumes", "resize_image", "resize_labels"]


# ---------------------------------------------------------------------------
# Folder datasets
# ---------------------------------------------------------------------------

_LAYOUT = "expected <folder>/images/ and <folder>/masks/ with one mask per image, matched by file stem"


def _list_images(folder: Path) -> dict[str, Path]:
    """stem -> file for the image files in ``folder`` (hidden and non-image files skipped; a 3-D volume refused)."""
    refuse_volumes(folder)
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


_VOLUME_FORMATS = {".nii": "NIfTI", ".nii.gz": "NIfTI", ".nrrd": "NRRD", ".nhdr": "NRRD", ".mha": "MetaImage",
                   ".mhd": "MetaImage"}


def two_d_only(path: Path, what: str) -> DatasetError:
    """The one sentence every 3-D input gets: what it is, that unettui is 2-D only, and how to export slices."""
    return DatasetError(
        f"{path} is {what}: unettui segments 2-D images; export its slices as 2-D files (one PNG or TIFF per slice, "
        "with the same stem in images/ and masks/) and use that folder"
    )


def refuse_volumes(folder: Path) -> None:
    """A DatasetError naming the first 3-D volume file (NIfTI, NRRD, MetaImage) in ``folder``, if it holds one: such
    files are never skipped without a word (the folder would look as if it had fewer images)."""
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return
    for p in entries:
        ext = volume_suffix(p)
        if ext and not p.name.startswith("."):
            raise two_d_only(p, f"a 3-D volume ({_VOLUME_FORMATS[ext]})")


def read_image_file(path: Path, tiff_pages: str = "error", mask: bool = False, pages_hint: str | None = None
                    ) -> np.ndarray:
    """A 2-D image file's pixels as ``[H, W, C]`` (C as stored: 1 grey, 2 grey + alpha or two channels, 3 RGB, 4 RGBA
    or four channels; a TIFF's samples and, with ``tiff_pages = "channels"``, its pages, any number).

    Nothing is dropped or guessed here: a multi-page TIFF is refused naming its page count unless ``tiff_pages`` says
    what its pages are ("first": the first page; "channels": every page a channel — not for a ``mask``); an animation
    (GIF, APNG, WebP with several frames), a 3-D volume file or a 3-D array is refused with the 2-D sentence.
    TIFFs are read with tifffile (page count, planar samples); compressions it decodes only with imagecodecs (LZW,
    JPEG, PackBits) fall back to Pillow. Every failure is one DatasetError line naming the file (``pages_hint``: what
    to do about a refused multi-page TIFF, where setting ``tiff_pages`` is not the remedy: a trained run's inputs)."""
    path = Path(path)
    ext = volume_suffix(path)
    if ext:
        raise two_d_only(path, f"a 3-D volume ({_VOLUME_FORMATS[ext]})")
    try:
        size = path.stat().st_size
    except OSError as e:
        raise DatasetError(f"cannot read {path}: {_short_reason(e)}") from None
    if size == 0:
        raise DatasetError(f"cannot read {path}: the file is empty (0 bytes); replace or remove it")
    with pillow_unlimited():  # how large an image may be is check_memory's to say, not Pillow's bomb limit
        if path.suffix.lower() in TIFF_EXTENSIONS:
            arr = _read_tiff(path, tiff_pages, mask, pages_hint)
        else:
            arr = _read_other(path)
    if arr.size == 0:
        raise DatasetError(f"cannot read {path}: the image has no pixels; replace or remove it")
    if arr.ndim == 2:
        return arr[:, :, None]
    if arr.ndim == 3:
        return arr
    raise two_d_only(path, f"a {arr.ndim}-D array of shape {tuple(arr.shape)}")


def _read_other(path: Path) -> np.ndarray:
    import imageio.v3 as iio  # local import: keeps `import unettui.core.learn.folders` light

    frames = _frame_count(path)
    if frames > 1:
        raise DatasetError(f"{path} has {frames} frames (an animation): unettui reads one 2-D image per file; save "
                           "each frame as a file of its own")
    try:
        with warnings.catch_warnings():  # imageio's plugin probing warns about its own deprecations
            warnings.simplefilter("ignore", DeprecationWarning)
            arr = np.asarray(iio.imread(path, index=0))
    except Exception as e:  # noqa: BLE001 - any reader failure becomes one clear line
        raise DatasetError(f"cannot read {path}: {_short_reason(e)}; replace or remove it") from None
    if arr.ndim == 3 and arr.shape[2] > 4:  # no 2-D format stores more than 4 channels: a stack of images
        raise two_d_only(path, f"a 3-D array of shape {tuple(arr.shape)}")
    return arr


def _frame_count(path: Path) -> int:
    """How many frames Pillow finds in ``path`` (1 where it cannot tell: imageio reads the file then)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return int(getattr(im, "n_frames", 1) or 1)
    except Exception:  # noqa: BLE001 - not Pillow's to read: the reader below decides
        return 1


def _read_tiff(path: Path, tiff_pages: str, mask: bool, pages_hint: str | None) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            n = len(tif.pages)
            if n > 1 and not (tiff_pages == "first" or (tiff_pages == "channels" and not mask)):
                raise DatasetError(_pages_message(path, n, tif, mask, pages_hint))
            wanted = range(n) if n > 1 and tiff_pages == "channels" else range(1)
            pages = [_tiff_page(tif, i, path) for i in wanted]
    except DatasetError:
        raise
    except Exception as e:  # noqa: BLE001 - a torn or foreign file: one line naming it
        raise DatasetError(f"cannot read {path}: {_short_reason(e)}; replace or remove it") from None
    pages = [p[:, :, None] if p.ndim == 2 else p for p in pages]
    if len(pages) == 1:
        return pages[0]
    sizes = sorted({p.shape[:2] for p in pages})
    if len(sizes) > 1:
        raise DatasetError(f"{path}: its {n} pages have different sizes ({', '.join(f'{w}x{h}' for h, w in sizes)}), "
                           "so they cannot be the channels of one image (tiff_pages = \"channels\"); use "
                           "tiff_pages = \"first\" or save one page per file")
    return np.concatenate(pages, axis=2)


_AXES = {"Z": "z-slices", "C": "channels", "T": "time points"}  # what an ImageJ / OME TIFF says its pages are


def _pages_message(path: Path, n: int, tif, mask: bool, hint: str | None) -> str:
    try:
        series = tif.series[0]
        parts = [f"{size} {_AXES[a]}" for a, size in zip(str(series.axes), series.shape) if a in _AXES and size > 1]
    except Exception:  # noqa: BLE001 - what the pages are only makes the message clearer
        parts = []
    what = f" ({' x '.join(parts)})" if parts else ""
    if hint:
        return f"{path} has {n} pages{what}: {hint}"
    if mask:
        return (f"{path} is a mask with {n} pages{what}: a mask is one 2-D label image; save one page per mask "
                "(tiff_pages = \"first\" reads only the first page of every multi-page TIFF)")
    return (f"{path} has {n} pages{what}: unettui reads one 2-D image per file; say what the pages are with "
            "tiff_pages = \"channels\" (the channels of one image) or \"first\" (the first page only), or save "
            "one page per file (a z-stack or a time series: one slice per file)")


def _tiff_page(tif, index: int, path: Path) -> np.ndarray:
    """One page as [H, W] or [H, W, S]."""
    page = tif.pages[index]
    try:
        arr = np.asarray(page.asarray())
    except Exception as exc:  # noqa: BLE001 - a compression tifffile decodes only with imagecodecs
        return _pillow_page(path, index, exc)
    axes = str(getattr(page, "axes", ""))
    if len(axes) != arr.ndim:
        return arr
    if "Z" in axes and arr.shape[axes.index("Z")] > 1:
        raise two_d_only(path, f"a 3-D volume stored in one TIFF page (shape {tuple(arr.shape)}, axes {axes})")
    arr = arr.squeeze(axis=axes.index("Z")) if "Z" in axes else arr
    axes = axes.replace("Z", "")
    if arr.ndim == 3 and axes.startswith("S"):  # planar samples: channels last
        arr = np.moveaxis(arr, 0, -1)
    return arr


def _pillow_page(path: Path, index: int, exc: BaseException) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.seek(index)
            return np.asarray(im)
    except Exception:  # noqa: BLE001
        raise DatasetError(f"cannot read {path}: {_short_reason(exc)} (`pip install imagecodecs` decodes it, or save "
                           "it uncompressed)") from None


def alpha_is_constant(hwc: np.ndarray) -> bool:
    """Whether the last channel of a 2- or 4-channel image is constant (a real alpha channel, not data)."""
    if hwc.shape[2] not in (2, 4):
        return False
    last = hwc[:, :, -1]
    return bool((last == last.flat[0]).all())


def image_to_float(hwc: np.ndarray, path: Path) -> np.ndarray:
    """float32 [C, H, W] in [0, 1] of an ``[H, W, C]`` image (every channel kept): 8-bit / 255, bool as 0/1; 16-bit,
    signed and float images min-max per image.

    16-bit microscopy and MRI rarely use the full 0..65535 range (a 12-bit camera tops out at 4095),
    so dividing by the dtype's maximum would leave the image nearly black.
    """
    if hwc.ndim == 2:
        hwc = hwc[:, :, None]
    if hwc.dtype == np.bool_:
        out = hwc.astype(np.float32)
    elif hwc.dtype == np.uint8:
        out = hwc.astype(np.float32)
        out /= 255.0
    elif np.issubdtype(hwc.dtype, np.integer) or np.issubdtype(hwc.dtype, np.floating):
        wide = np.nan_to_num(hwc.astype(np.float64), copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = float(wide.min()), float(wide.max())
        if hi > lo:
            wide -= lo
            wide /= hi - lo
            out = wide.astype(np.float32)
        else:
            out = np.zeros(wide.shape, np.float32)
        del wide
    else:
        raise DatasetError(f"{path} has an unsupported pixel type {hwc.dtype}: save it as an 8/16-bit or float image")
    np.clip(out, 0.0, 1.0, out=out)  # in place: a native 400-Mpx image is 1.6 GB a copy
    return np.ascontiguousarray(out.transpose(2, 0, 1))


def fit_channels(hwc: np.ndarray, path: Path, channels: int, what: str) -> np.ndarray:
    """``hwc`` with ``channels`` channels for a model trained on that many: a constant alpha (the last of 2 or 4)
    dropped when the model has fewer, grey replicated for an RGB model; anything else is a DatasetError naming the
    file, both counts and ``what`` the model is (e.g. "run a was trained on 3-channel images")."""
    c = hwc.shape[2]
    if c != channels and c in (2, 4) and alpha_is_constant(hwc):
        hwc, c = hwc[:, :, :-1], c - 1
    if c == channels:
        return hwc
    if c == 1 and channels == 3:
        return np.repeat(hwc, 3, axis=2)
    raise DatasetError(f"{path} has {_channels(hwc)} but {what} on {channels}-channel images; convert it first")


def _channels(hwc: np.ndarray) -> str:
    c = hwc.shape[2]
    kind = {1: "grey", 3: "RGB"}.get(c)
    if c in (2, 4):
        kind = "its last one varies, so it is data, not an alpha" if not alpha_is_constant(hwc) else None
    return f"{c} channel{'s' if c != 1 else ''}" + (f" ({kind})" if kind else "")


def _mask_to_bool(hwc: np.ndarray, path: Path) -> np.ndarray:
    """bool [H, W]: foreground where any colour channel > 0 (the alpha of a 2- or 4-channel mask ignored).

    Lossy formats (JPEG, WebP) are the exception: their compression noise puts small non-zero values all over the
    background, so there the threshold is half the range (> 127 for 8-bit, > 0.5 for float). A mask whose colour is
    empty while its alpha varies (foreground drawn as opacity only) is refused: read by its colour it would be empty."""
    if not (np.issubdtype(hwc.dtype, np.number) or hwc.dtype == np.bool_):
        raise DatasetError(f"{path} has an unsupported pixel type {hwc.dtype}: save masks as 0/255 PNG")
    colour = hwc[:, :, :-1] if hwc.shape[2] in (2, 4) else hwc
    level = 0.0
    if path.suffix.lower() in LOSSY_EXTENSIONS and hwc.dtype != np.bool_:
        level = np.iinfo(hwc.dtype).max / 2 if np.issubdtype(hwc.dtype, np.integer) else 0.5
    if np.issubdtype(colour.dtype, np.floating):  # NaN is background; +inf foreground, -inf background
        colour = np.nan_to_num(colour, nan=0.0)
    # compared as stored: no float64 copy of a large mask
    fg = colour[:, :, 0] > level if colour.shape[2] == 1 else (colour > level).any(axis=2)
    if not fg.any() and hwc.shape[2] in (2, 4) and not alpha_is_constant(hwc):
        raise DatasetError(f"{path} is a mask whose foreground is drawn only in its alpha channel (its colour is "
                           "empty); save the mask with its foreground > 0 in the grey or colour channels")
    return fg


# ---------------------------------------------------------------------------
# Label maps (a definition whose classes have pixel values: classes.values)
# ---------------------------------------------------------------------------


def _palette_indices(path: Path) -> np.ndarray | None:
    """A single-frame palette image's palette indices [H, W] (imageio would turn them into RGB), or None when the
    file is not one (or Pillow cannot open it: the ordinary reader then says why)."""
    from PIL import Image

    try:
        with pillow_unlimited(), Image.open(path) as im:
            if im.mode not in ("P", "PA") or int(getattr(im, "n_frames", 1) or 1) > 1:
                return None
            arr = np.asarray(im)
    except Exception:  # noqa: BLE001 - not Pillow's to read: read_image_file decides and names the problem
        return None
    return arr[:, :, 0] if arr.ndim == 3 else arr


def read_label_map(path: Path, tiff_pages: str = "error", pages_hint: str | None = None) -> np.ndarray:
    """A label map's pixel values as an integer array [H, W], as stored (not yet classes: see ``class_indices``).

    8/16-bit (or any integer) grey PNG and TIFF are read as they are; a palette PNG, GIF or BMP as its palette
    indices; a constant alpha (the last of 2 or 4 channels) is ignored, and an RGB image whose three channels are
    equal everywhere is grey. Refused with one DatasetError line naming the file and what to do: JPEG / WebP (lossy
    compression changes the values), an RGB mask with real colours (a colour is not a class value), more than one
    channel otherwise, non-integer float values, and everything ``read_image_file`` refuses for a mask."""
    path = Path(path)
    if path.suffix.lower() in LOSSY_EXTENSIONS:
        kind = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "WebP"
        raise DatasetError(f"{path} is a {kind} label map: lossy compression changes its pixel values, so they no "
                           "longer say the classes; save label maps as PNG or TIFF")
    indices = None if path.suffix.lower() in TIFF_EXTENSIONS else _palette_indices(path)
    hwc = indices[:, :, None] if indices is not None else read_image_file(path, tiff_pages, mask=True,
                                                                          pages_hint=pages_hint)
    if not (np.issubdtype(hwc.dtype, np.number) or hwc.dtype == np.bool_) or np.iscomplexobj(hwc):
        raise DatasetError(f"{path} has an unsupported pixel type {hwc.dtype}: save label maps as 8/16-bit "
                           "single-channel PNG or TIFF")
    colour = hwc
    if hwc.shape[2] in (2, 4):
        colour = hwc[:, :, :-1]
        if not alpha_is_constant(hwc) and not colour.any():
            raise DatasetError(f"{path} is a mask whose classes are drawn only in its alpha channel (its colour is "
                               "empty); save label maps as single-channel (grey or palette) PNG/TIFF whose pixel "
                               "values are the classes")
    if colour.shape[2] == 3:
        if (colour[:, :, 1:] == colour[:, :, :1]).all():
            colour = colour[:, :, :1]
        else:
            raise DatasetError(f"{path} is a colour (RGB) mask: a colour is not a class value; save label maps as "
                               "single-channel (grey or palette) PNG/TIFF whose pixel values are the classes")
    if colour.shape[2] != 1:
        raise DatasetError(f"{path} has {hwc.shape[2]} channels: a label map has one; save it as a single-channel "
                           "(grey or palette) PNG/TIFF whose pixel values are the classes")
    arr = colour[:, :, 0]
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        whole = np.isfinite(arr) & (arr == np.round(arr))
        if not whole.all():
            example = arr[~whole].flat[0]
            raise DatasetError(f"{path} has pixel values that are not whole numbers (e.g. {example:g}): a label "
                               "map's pixel values are its classes; save it as an 8/16-bit integer PNG or TIFF")
        return arr.astype(np.int64)
    return arr


def _pixels(n: int) -> str:
    return f"{n} pixel{'s' if n != 1 else ''}"


def class_indices(values: np.ndarray, path: Path, classes: Classes) -> np.ndarray:
    """uint8 [H, W]: the class index of each pixel of a label map (``read_label_map``), by ``classes.values``.

    A pixel value that is no class's is a DatasetError naming the file, the values (most frequent first, at most
    three) and how many pixels have each, and what to do."""
    if classes.values is None:
        raise ValueError("class_indices needs classes with pixel values (classes.values)")
    known = classes.values
    a = values
    lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
    if lo >= 0 and hi <= 65535:  # every 8/16-bit map: a lookup table, no sort
        lut = np.full(hi + 1, -1, np.int16)
        for i, v in enumerate(known):
            if v <= hi:
                lut[v] = i
        idx = lut[a]
        bad = idx < 0
        if not bad.any():
            return idx.astype(np.uint8)
        vals, counts = np.unique(a[bad], return_counts=True)
    else:
        vals, counts = np.unique(a, return_counts=True)
        keep = ~np.isin(vals, np.asarray(known, dtype=np.int64))
        vals, counts = vals[keep], counts[keep]
    order = sorted(zip((int(c) for c in counts), (int(v) for v in vals)), key=lambda t: (-t[0], t[1]))
    shown = ", ".join(f"{_pixels(c)} of value {v}" for c, v in order[:3])
    if len(order) == 1:
        what = f"has {shown}, which is not a class"
        todo = "fix the mask, or make it a class: add it to mask_values, a name to class_names and 1 to num_classes"
    else:
        more = f" and {len(order) - 3} more value(s)" if len(order) > 3 else ""
        what = f"has {shown}{more}, which are not classes"
        todo = ("fix the mask, or make them classes: add them to mask_values, their names to class_names and "
                f"{len(order)} to num_classes")
    raise DatasetError(f"{path} {what} (mask_values = {list(known)}): {todo}")


def absent_classes(masks: torch.Tensor, k: int) -> list[int]:
    """The class indices (0 ... k-1) that no pixel of ``masks`` (class indices, any shape and device; -1, the padding
    of a letterboxed image, is no class) has: e.g. the training masks', for the trainer's warning. One
    device-to-host copy."""
    counts = torch.bincount(masks.reshape(-1).to(torch.long) + 1, minlength=k + 1)[1 : k + 1].tolist()  # -1: padding
    return [c for c in range(k) if counts[c] == 0]


def _class_notes(classes: Classes, absent: list[int], in_files: np.ndarray) -> list[str]:
    """One note per class that no mask of the dataset has (at image_size), saying whether the files have it."""
    notes = []
    for c in absent:
        name, value = classes.names[c], classes.values[c] if classes.values else c
        if in_files[c]:
            notes.append(f"class {name!r} (value {value}) is in the mask files but in no mask once resized to "
                         "image_size (too small to survive resizing): a larger image_size keeps it")
        else:
            notes.append(f"class {name!r} (value {value}) occurs in no mask of the dataset")
    return notes


def _more(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def load_folder(path: Path, image_size: int, tiff_pages: str = "error", pages_hint: str | None = None,
                classes: Classes | None = None, native: bool = False) -> SegData | NativeData:
    """Load ``path/images/`` and ``path/masks/`` (pairs matched by file stem) as a SegData at ``image_size``, or with
    ``native`` as a NativeData (core.learn.native: every image at its own size; ``image_size`` is then not used).

    Files: png, tif/tiff, jpg/jpeg, bmp, gif, webp (by extension, case-insensitive); hidden files and other
    extensions are skipped, a 3-D volume file (NIfTI, NRRD, MetaImage) is refused; pairs are sorted by stem. TIFFs
    are read with tifffile, the rest with ``imageio.v3.imread``; see ``read_image_file`` for multi-page TIFFs
    (``tiff_pages``; ``pages_hint``: what to do about a refused one instead of setting it), animations and 3-D arrays.
    Pillow's decompression-bomb limit (179 Mpx) does not apply: a 20000 x 20000 scan is read.

    Channels, as they are: every image keeps the channels it has, except a constant last channel of 2- or 4-channel
    images (an alpha: transparency, not data), dropped when it is constant in every image that has as many channels.
    A varying second or fourth channel is data (two stains; RGB + near-infrared). Every image must then have the same
    number of channels, with one exception: in an RGB dataset grey images are replicated to RGB. An odd one out is a
    DatasetError naming it and both counts. What was dropped or replicated is listed in ``SegData.notes`` (the run's
    log). 8-bit images are divided by 255; 16-bit, float and signed-integer images are min-max normalised per image.

    Masks, binary (``classes`` None, or binary without pixel values: the default): any dtype, foreground where any
    colour channel is > 0 (JPEG/WebP masks: above half the range, since their compression noise is non-zero
    everywhere); ``SegData.masks`` holds 0.0 / 1.0 (and -1.0 in a letterbox's padding, below).

    Label maps (``classes.values`` set: K >= 3 classes, or explicit ``mask_values``): each mask is read as an integer
    label map (``read_label_map``: grey 8/16-bit PNG or TIFF, palette images as their indices; JPEG / WebP and colour
    RGB refused) and each pixel value becomes its class index by ``classes.values`` (``class_indices``: a value that
    is no class's is a DatasetError naming the file, the value and its pixel count). ``SegData.masks`` holds the
    class index of each pixel (0.0 background ... K-1) as float32. A class no mask has (once resized) is not an
    error: ``SegData.notes`` says so (and whether the files had it before resizing).

    Geometry: image and mask must have the same height and width. At ``image_size`` (a SegData), nothing is cropped
    or stretched: a square pair is resized to ``image_size``; a non-square pair is letterboxed, scaled so its long
    side is ``image_size`` (the short side ``max(1, round(short * image_size / long))``) and padded on its short
    side, split evenly (``missing // 2`` before): images with 0.0, masks with -1.0 (data.IGNORE_INDEX: not in the image,
    so losses and metrics skip it); ``SegData.notes`` says how many were. Images use bilinear interpolation
    (antialiased when downsampling). Binary masks (and label maps of 2 classes) are resized as 0/1 float with area
    averaging (downsampling: a majority vote per output pixel) or bilinear interpolation (upsampling), then
    thresholded at >= 0.5, so thin structures neither alias away nor grow. Label maps of K >= 3 classes: per-class
    area average then the largest share (ties to the lower class index) when downsampling, nearest neighbour when
    upsampling (``resize.resize_labels``). ``native``: every pair keeps its own size (no resizing, no padding), after
    ``native.check_memory`` has estimated from the files' headers what they take decoded and refused a dataset
    that would not fit in memory.

    Raises DatasetError (one line naming the folder or files) for a missing folder or subfolder, no images, unpaired
    files, duplicate stems, an unreadable or empty file, an image/mask size mismatch, mixed channels, every mask
    empty (all background), a label map pixel value that is no class, or (``native``) a dataset too large for the
    memory available.
    """
    path = Path(path).expanduser()
    if not native and int(image_size) < 1:
        raise DatasetError(f"image_size must be >= 1, got {image_size}")
    images, masks, img_dir = _pairs(path)
    stems = sorted(images)
    if native:
        check_memory([images[s] for s in stems], tiff_pages)
    label_maps = classes is not None and classes.values is not None
    k = classes.k if label_maps else None
    size = None if native else int(image_size)
    in_files = np.zeros(k or 0, bool)  # the classes the label map files have (full size)
    imgs: list[torch.Tensor] = []
    msks: list[torch.Tensor] = []  # [H, W] each
    read_as: list[int] = []  # channels as stored
    varying: set[int] = set()  # channel counts (2, 4) of which some image's last channel varies: data, kept by all
    boxed = 0  # non-square pairs letterboxed
    for stem in stems:
        ip, mp = images[stem], masks[stem]
        iarr = read_image_file(ip, tiff_pages, pages_hint=pages_hint)
        if label_maps:
            marr = read_label_map(mp, tiff_pages, pages_hint=pages_hint)
        else:
            marr = read_image_file(mp, tiff_pages, mask=True, pages_hint=pages_hint)
        ih, iw = iarr.shape[:2]
        mh, mw = marr.shape[:2]
        if (ih, iw) != (mh, mw):
            raise DatasetError(
                f"size mismatch: image {ip} is {iw}x{ih} (WxH) but mask {mp} is {mw}x{mh}; they must have the same size"
            )
        c = iarr.shape[2]
        read_as.append(c)
        if c in (2, 4) and not alpha_is_constant(iarr):
            varying.add(c)
        keep = iarr if c not in (2, 4) or c in varying else iarr[:, :, :-1]  # (re-read below if a later one varies)
        imgs.append(_fit_image(image_to_float(keep, ip), size))
        del iarr, keep  # a native image's pixels as stored are not kept beside its float32 copy
        if label_maps:
            idx = class_indices(marr, mp, classes)
            in_files |= np.bincount(idx.reshape(-1), minlength=k)[:k] > 0
            lab = torch.from_numpy(idx)
        else:
            lab = torch.from_numpy(_mask_to_bool(marr, mp))
        del marr
        msks.append(_fit_mask(lab, size, k))
        boxed += size is not None and ih != iw
    for i, c in enumerate(read_as):  # an alpha dropped before an image of as many channels showed it is data
        if c in varying and imgs[i].shape[0] != c:
            ip = images[stems[i]]
            imgs[i] = _fit_image(image_to_float(read_image_file(ip, tiff_pages), ip), size)

    if not any(float(m.amax()) > 0 for m in msks):  # (> 0: a letterbox's padding, -1, is no foreground)
        if label_maps:
            raise DatasetError(
                f"dataset folder {path}: every mask in masks/ is all background (class {classes.names[0]!r}, value "
                f"{classes.values[0]}), so there is nothing to learn; a label map's pixels hold their class's value "
                f"(mask_values = {list(classes.values)})"
            )
        raise DatasetError(
            f"dataset folder {path}: every mask in masks/ is empty (no pixel > 0), so there is nothing to learn "
            "and Dice would read 1.0 for predicting nothing; masks need their foreground > 0 (e.g. 255 on 0)"
        )
    counts = [int(t.shape[0]) for t in imgs]
    channels, notes = _agree(counts, read_as, [images[s] for s in stems], img_dir)
    imgs = [t.expand(channels, -1, -1) if t.shape[0] != channels else t for t in imgs]
    if boxed:
        notes.append(f"{boxed} non-square image{'s' if boxed != 1 else ''} scaled on {'their' if boxed != 1 else 'its'}"
                     f" long side to {size} and padded (padding is ignored by losses and metrics)")
    if native:
        if label_maps:
            notes += _class_notes(classes, [c for c in range(k) if not in_files[c]], in_files)
        return NativeData([t.to(torch.float32) for t in imgs], [m[None] for m in msks], stems, str(path), notes)
    masks_t = torch.stack(msks)[:, None].contiguous()
    if label_maps:
        notes += _class_notes(classes, absent_classes(masks_t, k), in_files)
    return SegData(
        images=torch.stack(imgs).contiguous().to(torch.float32),
        masks=masks_t,
        names=stems,
        source=str(path),
        notes=notes,
    )


def _pairs(path: Path) -> tuple[dict[str, Path], dict[str, Path], Path]:
    """(stem -> image file, stem -> mask file, the images/ folder) of a dataset folder: one DatasetError line for a
    missing folder or subfolder, no images, duplicate stems or unpaired files."""
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
    return images, masks, img_dir


def _fit_image(chw: np.ndarray, size: int | None) -> torch.Tensor:
    """float32 [C, H, W] as it is (``size`` None: native), or letterboxed to [C, size, size] (padding 0.0)."""
    t = torch.from_numpy(chw)
    if size is None:
        return t
    return pad_square(resize_image(t, letterbox_shape(*t.shape[-2:], size)), size, 0.0)


def _fit_mask(lab: torch.Tensor, size: int | None, k: int | None) -> torch.Tensor:
    """float32 [H, W] of class indices from a bool mask or a uint8 label map ``lab`` (K = ``k``; None: binary): as
    it is (``size`` None: native), or letterboxed to [size, size] (padding -1.0, data.IGNORE_INDEX)."""
    if size is None:
        return lab.to(torch.float32)
    shape = letterbox_shape(*lab.shape[-2:], size)
    if k is None or k == 2:  # binary, and two classes (0/1): resized as binary masks are
        fitted = resize_mask(lab.to(torch.float32), shape)
    else:
        fitted = resize_labels(lab, shape, k)
    return pad_square(fitted, size, IGNORE_INDEX)


def _agree(counts: list[int], read_as: list[int], files: list[Path], img_dir: Path) -> tuple[int, list[str]]:
    """The dataset's channel count, and notes on what was dropped or replicated; a DatasetError naming the odd one
    out when the images disagree."""
    notes = []
    dropped = sum(1 for c, r in zip(counts, read_as) if c != r)
    if dropped:
        notes.append(f"{dropped} image{'s' if dropped != 1 else ''} had a constant alpha channel (transparency, not "
                     "data): dropped")
    kinds = sorted(set(counts))
    if len(kinds) == 1:
        return kinds[0], notes
    if kinds == [1, 3]:
        grey = counts.count(1)
        notes.append(f"{grey} grey image{'s' if grey != 1 else ''} replicated to RGB to match the other "
                     f"{len(counts) - grey}")
        return 3, notes
    common = max(kinds, key=lambda k: (counts.count(k), -k))
    odd = next(i for i, c in enumerate(counts) if c != common)
    first = next(i for i, c in enumerate(counts) if c == common)
    others = counts.count(common)
    varying = " (its last one varies: data, not an alpha)" if counts[odd] in (2, 4) else ""
    raise DatasetError(
        f"{img_dir / files[odd].name} has {counts[odd]} channel{'s' if counts[odd] != 1 else ''}{varying} but "
        f"{files[first].name}{f' and {others - 1} other images' if others > 1 else ''} "
        f"{'have' if others > 1 else 'has'} {common}: every image of a dataset needs the same channels; convert "
        "the odd one out (or move it out of images/)"
    )
