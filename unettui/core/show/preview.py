"""Validation previews: PNG strips (input | truth | prediction), the raw arrays behind them, and text renderings."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..runs.store import atomic_write_bytes

TILE_MIN = 128  # PNG tiles are upscaled (nearest) to at least this many pixels
GAP = 2
PREVIEW_FILES = ("preview_best.png", "preview_best.npz", "preview_last.png", "preview_last.npz")


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


def save_preview(run_dir: Path, tag: str, *, epoch: int, images, masks, probs, names: list[str]) -> None:
    """Write preview_<tag>.png and preview_<tag>.npz for a few validation samples (tensors [K,C,H,W]; the images as
    ``display_images`` draws them)."""
    img = images.numpy() if hasattr(images, "numpy") else np.asarray(images)
    img = display_images(np.transpose(img, (0, 2, 3, 1)))  # K,H,W,C -> grey or RGB
    truth = (np.asarray(masks)[:, 0] > 0.5)
    prob = np.asarray(probs)[:, 0]
    pred = prob > 0.5
    dice = [sample_dice(t, p) for t, p in zip(truth, pred)]
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
    )
    atomic_write_bytes(npz_path, buf.getvalue())
    atomic_write_bytes(png_path, strip_png(_to_uint8(img), truth, pred))


def strip_png(images: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> bytes:
    """One row per sample: input | truth | prediction, white masks on black, grey gaps, as PNG bytes."""
    import imageio.v3 as iio

    k, h, w = truth.shape
    scale = max(1, -(-TILE_MIN // max(h, w)))
    rows = []
    for i in range(k):
        im = images[i]
        if im.ndim == 2:
            im = np.repeat(im[..., None], 3, axis=2)
        t = np.repeat((truth[i] * 255).astype(np.uint8)[..., None], 3, axis=2)
        p = np.repeat((pred[i] * 255).astype(np.uint8)[..., None], 3, axis=2)
        gap = np.full((h, GAP, 3), 128, np.uint8)
        rows.append(np.concatenate([im, gap, t, gap, p], axis=1))
        if i < k - 1:
            rows.append(np.full((GAP, rows[-1].shape[1], 3), 128, np.uint8))
    strip = np.concatenate(rows, axis=0)
    strip = strip.repeat(scale, axis=0).repeat(scale, axis=1)
    return iio.imwrite("<bytes>", strip, extension=".png")


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
    return None
