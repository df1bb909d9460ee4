"""Validation previews: PNG strips (input | truth | prediction; multi-class: input | truth | prediction | errors), the
raw arrays behind them, what every face reads of them, and the class colours every drawing of a label map uses.

A preview of windows cut from larger images (native resolution, issue 25) may carry a *context*: each whole image
shrunk to the window's size with the window's box in it; the strip then starts with a "whole image" panel, the
window outlined in :data:`WINDOW_COLOUR`."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..runs.store import atomic_write_bytes

TILE_MIN = 128  # PNG tiles are upscaled (nearest) to at least this many pixels
GAP = 2
PREVIEW_FILES = ("preview_best.png", "preview_best.npz", "preview_last.png", "preview_last.npz")
RGB = tuple[int, int, int]

# multi-class: background black, then the Okabe–Ito colours (distinguishable under the common colour-vision
# deficiencies; yellow late, it is the nearest to the error white), then Paul Tol's muted ones; repeated past 12
CLASS_PALETTE: tuple[RGB, ...] = (
    (0, 0, 0),  # background
    (230, 159, 0),  # orange
    (86, 180, 233),  # sky blue
    (0, 158, 115),  # bluish green
    (204, 121, 167),  # reddish purple
    (0, 114, 178),  # blue
    (213, 94, 0),  # vermillion
    (240, 228, 66),  # yellow
    (136, 34, 85),  # wine
    (68, 170, 153),  # teal
    (153, 153, 51),  # olive
    (51, 34, 136),  # indigo
)
ERROR_COLOUR: RGB = (255, 255, 255)  # white: a pixel where the prediction is not the truth
RIGHT_DIM = 0.4  # the errors panel draws the right pixels at this fraction of their class's colour
# the outline of the window on a whole-image thumbnail: Okabe–Ito yellow, bright on dark images and no colour of the
# binary overlay's
WINDOW_COLOUR: RGB = (240, 228, 66)


def preview_paths(run_dir: Path, tag: str) -> tuple[Path, Path]:
    return Path(run_dir) / f"preview_{tag}.png", Path(run_dir) / f"preview_{tag}.npz"


def _to_uint8(a: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)


def sample_dice(truth: np.ndarray, pred: np.ndarray) -> float:
    """Hard Dice of one sample (1.0 when both are empty)."""
    tp = float(np.logical_and(truth, pred).sum())
    denom = float(truth.sum() + pred.sum())
    return 1.0 if denom == 0 else 2 * tp / denom


def display_images(img: np.ndarray) -> np.ndarray:
    """Images ``[K, H, W, C]`` as they are drawn: grey ``[K, H, W]`` (C = 1) or RGB ``[K, H, W, 3]``: C = 3 as it
    is, two channels as a magenta / green composite (the first in red and blue, the second in green), four or more
    as their first three."""
    c = img.shape[-1]
    if c == 1:
        return img[..., 0]
    if c == 2:
        return np.stack([img[..., 0], img[..., 1], img[..., 0]], axis=-1)
    return img[..., :3]


def sample_class_dice(truth: np.ndarray, pred: np.ndarray, k: int) -> float:
    """Hard Dice of one multi-class sample: the mean over the foreground classes present in its truth or prediction
    (1.0 when it has none: all background, predicted so)."""
    scores = [sample_dice(truth == c, pred == c) for c in range(1, k) if (truth == c).any() or (pred == c).any()]
    return float(np.mean(scores)) if scores else 1.0


def default_class_names(k: int) -> tuple[str, ...]:
    """``background, c1, c2, ...`` for ``k`` classes (what ``classes_of`` names a definition's unnamed classes)."""
    return ("background", *(f"c{i}" for i in range(1, k)))


def save_preview(run_dir: Path, tag: str, *, epoch: int, images, masks, probs, names: list[str],
                 class_names: tuple[str, ...] | None = None, context: dict[str, Any] | None = None) -> None:
    """Write preview_<tag>.png and preview_<tag>.npz for a few validation samples (tensors [K,C,H,W]; the images as
    ``display_images`` draws them).

    The npz: ``images`` (uint8), ``truth`` and ``prob`` [K, H, W] uint8, ``names``, ``dice`` (per sample), ``epoch``.
    Binary (``probs`` [K, 1, H, W]): ``truth`` 0/1, ``prob`` the foreground probability × 255. Multi-class (``probs``
    [K, C, H, W], C >= 3 classes): ``truth`` and ``pred`` hold class indices, ``prob`` the probability of the predicted
    class × 255, ``class_names`` the classes (background first).

    ``context`` (``native_run.preview_context``'s: {"images": [K, C, S, S] floats 0..1, "boxes": [K, 4]}, the tiles
    being S x S): each whole image shrunk, with its window's (top, left, height, width) in it. The npz then gains
    ``context_images`` (uint8, as ``images``) and ``context_boxes`` (int64 [K, 4]), and the strip a first panel,
    the whole image with the window outlined. Without one the files are as they were before contexts existed."""
    img = images.numpy() if hasattr(images, "numpy") else np.asarray(images)
    img = display_images(np.transpose(img, (0, 2, 3, 1)))  # K,H,W,C -> grey or RGB
    p_all = np.asarray(probs)
    extra: dict[str, np.ndarray] = {}
    if p_all.shape[1] == 1:
        truth = (np.asarray(masks)[:, 0] > 0.5)
        prob = p_all[:, 0]
        pred = prob > 0.5
        dice = [sample_dice(t, p) for t, p in zip(truth, pred)]
        shown_truth, shown_pred, png_k = truth, pred, None
    else:
        k = p_all.shape[1]
        m = np.asarray(masks)
        # class indices [K, 1, H, W], or one-hot / per-class targets [K, C, H, W]
        truth = (np.rint(m[:, 0]) if m.shape[1] == 1 else m.argmax(axis=1)).astype(np.uint8)
        pred = p_all.argmax(axis=1).astype(np.uint8)
        prob = p_all.max(axis=1)
        dice = [sample_class_dice(t, p, k) for t, p in zip(truth, pred)]
        names_of = tuple(str(c) for c in class_names) if class_names and len(class_names) == k else default_class_names(k)
        extra = {"pred": pred, "class_names": np.array(names_of)}
        shown_truth, shown_pred, png_k = truth, pred, k
    thumbs = boxes = None
    if context is not None:
        thumbs, boxes = _context_arrays(context, img.shape)
        extra.update(context_images=thumbs, context_boxes=boxes)
    png_path, npz_path = preview_paths(run_dir, tag)
    import io

    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        images=_to_uint8(img),
        truth=truth.astype(np.uint8),
        prob=_to_uint8(prob),
        names=np.array(names),
        dice=np.array(dice, dtype=np.float64),
        epoch=np.array(epoch),
        **extra,
    )
    atomic_write_bytes(npz_path, buf.getvalue())
    atomic_write_bytes(png_path, strip_png(_to_uint8(img), shown_truth, shown_pred, png_k, thumbs, boxes))


def _context_arrays(context: dict[str, Any], shown: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 thumbnails as ``display_images`` draws them, int64 boxes [K, 4]) of a context, checked against the
    shape ``shown`` of the preview's display images."""
    c = context["images"]
    c = c.numpy() if hasattr(c, "numpy") else np.asarray(c)
    thumbs = _to_uint8(display_images(np.transpose(np.asarray(c, np.float64), (0, 2, 3, 1))))
    b = context["boxes"]
    boxes = np.asarray(b.numpy() if hasattr(b, "numpy") else b).astype(np.int64).reshape(-1, 4)
    if thumbs.shape != tuple(shown) or len(boxes) != len(thumbs):
        raise ValueError(f"the context's images {thumbs.shape} and boxes {boxes.shape} do not match the preview's "
                         f"images {tuple(shown)} (one S x S thumbnail and one box per sample)")
    return thumbs, boxes


def outline_box(rgb: np.ndarray, box, colour: RGB = WINDOW_COLOUR, thickness: int = 1) -> np.ndarray:
    """``rgb`` [H, W, 3] with the rectangle ``box`` (top, left, height, width; clipped to the image) outlined in
    ``colour``, ``thickness`` pixels inside its edges (a copy)."""
    out = np.array(rgb, copy=True)
    h, w = out.shape[:2]
    top, left, bh, bw = (int(v) for v in box)
    y0, x0 = min(max(top, 0), h - 1), min(max(left, 0), w - 1)
    y1, x1 = min(max(top + bh, y0 + 1), h), min(max(left + bw, x0 + 1), w)
    t = max(1, int(thickness))
    col = np.asarray(colour, out.dtype)
    out[y0 : min(y0 + t, y1), x0:x1] = col
    out[max(y1 - t, y0) : y1, x0:x1] = col
    out[y0:y1, x0 : min(x0 + t, x1)] = col
    out[y0:y1, max(x1 - t, x0) : x1] = col
    return out


def context_rgb(thumb: np.ndarray, box) -> np.ndarray:
    """uint8 [S, S, 3]: a whole-image thumbnail (grey or RGB) with its window outlined in :data:`WINDOW_COLOUR`
    (two pixels thick from 256 pixels on)."""
    t = np.asarray(thumb)
    rgb = np.repeat(t[..., None], 3, axis=2) if t.ndim == 2 else t[..., :3]
    return outline_box(rgb.astype(np.uint8), box, WINDOW_COLOUR, max(1, max(t.shape[:2]) // 128))


def strip_png(images: np.ndarray, truth: np.ndarray, pred: np.ndarray, k: int | None = None,
              context_images: np.ndarray | None = None, context_boxes: np.ndarray | None = None) -> bytes:
    """One row per sample as PNG bytes, grey gaps between tiles and rows.

    Binary (``k`` None): input | truth | prediction, white masks on black. Multi-class (``k`` classes, ``truth`` and
    ``pred`` class indices): input | truth | prediction | errors, each class in its colour of
    :func:`class_colours` (background black); the errors tile draws the pixels the prediction
    got right in their class's colour dimmed, and every pixel where the prediction differs from the truth in white
    (see :func:`errors_rgb` for why). With ``context_images`` and ``context_boxes`` each row starts with the whole
    image, its window outlined (:func:`context_rgb`)."""
    import imageio.v3 as iio

    n, h, w = truth.shape
    scale = max(1, -(-TILE_MIN // max(h, w)))
    rows = []
    for i in range(n):
        im = images[i]
        if im.ndim == 2:
            im = np.repeat(im[..., None], 3, axis=2)
        gap = np.full((h, GAP, 3), 128, np.uint8)
        if k is None:
            t = np.repeat((truth[i] * 255).astype(np.uint8)[..., None], 3, axis=2)
            p = np.repeat((pred[i] * 255).astype(np.uint8)[..., None], 3, axis=2)
            tiles = [im, gap, t, gap, p]
        else:
            t, p = class_rgb(truth[i], k), class_rgb(pred[i], k)
            e = errors_rgb(truth[i], pred[i], k)
            tiles = [im, gap, t.astype(np.uint8), gap, p.astype(np.uint8), gap, e.astype(np.uint8)]
        if context_images is not None and context_boxes is not None:
            tiles = [context_rgb(context_images[i], context_boxes[i]), gap, *tiles]
        rows.append(np.concatenate(tiles, axis=1))
        if i < n - 1:
            rows.append(np.full((GAP, rows[-1].shape[1], 3), 128, np.uint8))
    strip = np.concatenate(rows, axis=0)
    strip = strip.repeat(scale, axis=0).repeat(scale, axis=1)
    return iio.imwrite("<bytes>", strip, extension=".png")


def class_colours(k: int) -> list[RGB]:
    """The colour of each of ``k`` classes: background black, then :data:`CLASS_PALETTE` (repeated past its end)."""
    fg = CLASS_PALETTE[1:]
    return [CLASS_PALETTE[0], *(fg[(c - 1) % len(fg)] for c in range(1, k))]


def class_indices(labels: np.ndarray, k: int) -> np.ndarray:
    """A label map as class indices in 0 ... k-1 (out-of-range values clipped)."""
    a = np.asarray(labels).astype(np.intp)
    return np.clip(a, 0, k - 1)


def class_rgb(labels: np.ndarray, k: int) -> np.ndarray:
    """[H,W,3] float 0..255: a label map (class indices) with each class in its colour."""
    return np.asarray(class_colours(k), np.float64)[class_indices(labels, k)]


def errors_rgb(truth: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """[H,W,3] float 0..255: the right pixels in their class's colour dimmed to :data:`RIGHT_DIM` (background
    black), every pixel where ``pred`` is not ``truth`` in :data:`ERROR_COLOUR`.

    One error colour rather than the predicted class's: a missed pixel is predicted background, which is black and
    would vanish on the dark tile; white is the one colour no class has, and it stands out from every dimmed class by
    brightness alone, which every kind of colour vision sees. Which class the prediction chose there is what the
    prediction tile beside it shows."""
    t, p = class_indices(truth, k), class_indices(pred, k)
    out = np.rint(np.asarray(class_colours(k), np.float64) * RIGHT_DIM)[t]
    out[t != p] = ERROR_COLOUR
    return out


def read_preview(npz: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(the arrays of a preview npz, None), or (None, why it cannot be drawn: missing, torn, foreign, odd arrays).
    Never raises; every face (show, the TUI's preview, report figures) reads previews through it."""
    npz = Path(npz)
    if not npz.exists():
        return None, f"{npz.name} (no validation preview yet)"
    try:
        if not zipfile.is_zipfile(npz):
            return None, f"{npz.name} is unreadable (not an npz archive: torn or foreign file)"
        with np.load(npz, allow_pickle=False) as z:
            pv = {k: z[k] for k in z.files}
    except Exception as exc:  # noqa: BLE001 - a torn or foreign file: say so, draw nothing
        return None, f"{npz.name} is unreadable ({type(exc).__name__}: {' '.join(str(exc).split())[:80]})"
    problem = preview_problem(pv)
    return (None, f"{npz.name} cannot be drawn: {problem}") if problem else (pv, None)


def load_preview(run_dir: Path, tag: str = "best") -> tuple[dict[str, Any] | None, str | None]:
    """``read_preview`` of a run's preview_<tag>.npz (tag: best or last)."""
    return read_preview(preview_paths(run_dir, tag)[1])


ASCII_LEGEND = ". background   # truth only (missed)   + prediction only (false positive)   @ both (hit)"


def ascii_overlay(truth: np.ndarray, pred: np.ndarray, width: int | None = None) -> list[str]:
    """Pure-ASCII overlay of one sample: '.' background, '#' truth only, '+' prediction only, '@' both.

    Each character covers a 2-row x 1-column block of pixels (terminal cells are about twice as tall as
    wide); a cell is marked when any pixel in it is. ``width`` downsamples to at most that many columns.
    """
    t, p = np.asarray(truth, bool), np.asarray(pred, bool)
    h, w = t.shape
    step_x = max(1, -(-w // width)) if width else 1
    step_y = 2 * step_x
    lines = []
    for y in range(0, h, step_y):
        row = []
        for x in range(0, w, step_x):
            tb, pb = t[y : y + step_y, x : x + step_x].any(), p[y : y + step_y, x : x + step_x].any()
            row.append("@" if tb and pb else "#" if tb else "+" if pb else ".")
        lines.append("".join(row))
    return lines


def sample_context(pv: Mapping[str, Any], i: int) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """(the whole-image thumbnail, the window's (top, left, height, width) in it) of sample ``i``, or None: no
    context in the file, arrays that do not fit the preview (ignored: the rest still draws), or a window that is its
    whole image (nothing to orient)."""
    thumbs, boxes = pv.get("context_images"), pv.get("context_boxes")
    if thumbs is None or boxes is None:
        return None
    images = pv["images"]
    if thumbs.shape != images.shape or np.shape(boxes) != (images.shape[0], 4) or i >= images.shape[0]:
        return None
    if not np.issubdtype(np.asarray(boxes).dtype, np.integer):
        return None
    box = tuple(int(v) for v in boxes[i])
    s_h, s_w = thumbs.shape[1:3]
    if box == (0, 0, s_h, s_w) or box[2] < 1 or box[3] < 1:
        return None
    return thumbs[i], box  # type: ignore[return-value]


def preview_problem(pv: dict[str, Any]) -> str | None:
    """Why a loaded preview npz cannot be drawn, or None."""
    for key in ("images", "truth", "prob"):
        if key not in pv:
            return f"it has no '{key}' array"
    truth, prob, images = pv["truth"], pv["prob"], pv["images"]
    if truth.ndim != 3 or prob.shape != truth.shape:
        return f"truth {truth.shape} and prob {prob.shape} should both be [K, H, W]"
    if images.ndim not in (3, 4) or images.shape[:3] != truth.shape:
        return f"images {images.shape} do not match truth {truth.shape}"
    if truth.shape[0] == 0 or 0 in truth.shape[1:]:
        return "it holds no samples"
    if "pred" in pv or "class_names" in pv:  # multi-class: class indices and the names of the classes
        if "pred" not in pv:
            return "it has 'class_names' but no 'pred' array (the predicted classes)"
        pred = pv["pred"]
        if pred.shape != truth.shape:
            return f"pred {pred.shape} and truth {truth.shape} should both be [K, H, W]"
        for key, a in (("truth", truth), ("pred", pred)):
            if not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
                return f"{key} holds {a.dtype} values, not class indices"
        names = pv.get("class_names")
        if names is not None and (np.ndim(names) != 1 or len(names) < 2):
            return f"class_names {np.shape(names)} should name every class, background first"
        top = max(int(truth.max()), int(pred.max()))
        if names is not None and top >= len(names):
            return (f"it holds class {top} but class_names names {len(names)} classes "
                    f"({', '.join(str(n) for n in names)})")
    return None


# ---- what faces draw of a preview: binary or multi-class alike ------------------------------------------------------


def preview_classes(pv: dict[str, Any]) -> tuple[str, ...] | None:
    """The classes of a multi-class preview (background first), or None for a binary one (no ``pred`` array).
    A multi-class file without ``class_names`` gets ``background, c1, ...`` for the classes it holds (at least 3)."""
    if "pred" not in pv:
        return None
    names = pv.get("class_names")
    if names is not None:
        return tuple(str(n) for n in np.atleast_1d(names))
    top = max(int(np.max(pv["truth"])), int(np.max(pv["pred"])))
    return default_class_names(max(3, top + 1))


def preview_masks(pv: dict[str, Any], i: int) -> tuple[np.ndarray, np.ndarray]:
    """(truth, prediction) of sample ``i``: class indices (multi-class), or boolean masks (binary: the prediction is
    the foreground probability > 0.5)."""
    if "pred" in pv:
        return np.asarray(pv["truth"][i]).astype(np.intp), np.asarray(pv["pred"][i]).astype(np.intp)
    prob = np.asarray(pv["prob"][i])
    pred = prob >= 128 if np.issubdtype(prob.dtype, np.integer) else prob > 0.5
    return np.asarray(pv["truth"][i]) > 0, pred


def preview_dice(pv: dict[str, Any], i: int) -> float:
    """Sample ``i``'s Dice as recorded (``dice``), or computed from its masks when the file has none: for multi-class
    the mean over the foreground classes in its truth or prediction."""
    dice = np.atleast_1d(pv.get("dice", []))
    if i < len(dice):
        return float(dice[i])
    truth, pred = preview_masks(pv, i)
    classes = preview_classes(pv)
    return sample_dice(truth, pred) if classes is None else sample_class_dice(truth, pred, len(classes))


def preview_class_dice(pv: dict[str, Any], i: int) -> list[tuple[str, float | None]]:
    """(class, Dice) of each foreground class of sample ``i`` of a multi-class preview; None for a class in neither
    its truth nor its prediction (no score, as in the run files). Empty for a binary preview."""
    classes = preview_classes(pv)
    if classes is None:
        return []
    truth, pred = preview_masks(pv, i)
    out: list[tuple[str, float | None]] = []
    for c, name in enumerate(classes[1:], start=1):
        t, p = truth == c, pred == c
        out.append((name, sample_dice(t, p) if t.any() or p.any() else None))
    return out


def dice_caption(pv: dict[str, Any], i: int) -> str:
    """'dice 0.8123' of sample ``i``; for a multi-class preview the mean over its foreground classes and each class's
    ('mean dice 0.8100 (cavity 0.9500, myocardium —)': — for a class in neither its truth nor its prediction)."""
    d = preview_dice(pv, i)
    per_class = preview_class_dice(pv, i)
    if not per_class:
        return f"dice {d:.4f}"
    each = ", ".join(f"{n} {'—' if v is None else f'{v:.4f}'}" for n, v in per_class)
    return f"mean dice {d:.4f} ({each})"
