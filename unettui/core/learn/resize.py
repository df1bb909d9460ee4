"""Resizing and letterboxing of images, binary masks and label maps ([..., H, W] -> [..., h, w]), as the folder
reader (folders.load_folder) and prediction use them.

A non-square image is never cropped or stretched: ``letterbox_shape`` scales its long side to the model's
``image_size`` (the short side keeps the aspect ratio), and ``pad_square`` pads the short side, split evenly,
images with 0.0 and masks with data.IGNORE_INDEX (-1: pixels that are not in the image, which losses and metrics
skip)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["letterbox_shape", "pad_square", "resize_image", "resize_labels", "resize_mask"]


def _shape(size: int | tuple[int, int]) -> tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


def letterbox_shape(h: int, w: int, size: int) -> tuple[int, int]:
    """(height, width) of an ``h`` x ``w`` image scaled so its long side is ``size``: the short side is
    ``max(1, round(short * size / long))`` (Python's rounding), so the aspect ratio is kept to within a pixel."""
    if h == w:
        return size, size
    short = max(1, round(min(h, w) * size / max(h, w)))
    return (size, short) if h > w else (short, size)


def pad_square(t: torch.Tensor, size: int, value: float) -> torch.Tensor:
    """``t`` ([..., h, w], h and w <= ``size``) padded with ``value`` to [..., size, size]: the missing rows (columns)
    split evenly, ``missing // 2`` before and the rest after. Unchanged (the same tensor) when already square."""
    h, w = t.shape[-2:]
    if (h, w) == (size, size):
        return t
    top, left = (size - h) // 2, (size - w) // 2
    return F.pad(t, (left, size - w - left, top, size - h - top), value=float(value))


def resize_image(img: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """[C, H, W] -> [C, h, w] (``size``: h = w, or (h, w)), bilinear, antialiased when downsampling (either side),
    clamped to [0, 1]. The same tensor when the size is unchanged."""
    h, w = _shape(size)
    sh, sw = img.shape[-2:]
    if (sh, sw) == (h, w):
        return img
    out = F.interpolate(img[None], size=(h, w), mode="bilinear", align_corners=False, antialias=sh > h or sw > w)[0]
    return out.clamp_(0.0, 1.0)


def resize_mask(mask: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """[H, W] 0/1 -> [h, w] 0/1: area average (downsampling: a majority vote per output pixel) or bilinear
    (upsampling), then >= 0.5, so thin structures neither alias away nor grow. A side shrunk while the other grows
    (not a letterbox's case) is shrunk first, then grown. The same tensor when the size is unchanged."""
    h, w = _shape(size)
    sh, sw = mask.shape[-2:]
    if (sh, sw) == (h, w):
        return mask
    m = mask.to(torch.float32)[None, None]
    if h <= sh and w <= sw:
        out = F.interpolate(m, size=(h, w), mode="area")
    else:
        if h < sh or w < sw:
            m = F.interpolate(m, size=(min(h, sh), min(w, sw)), mode="area")
        out = F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)
    return (out[0, 0] >= 0.5).to(torch.float32)


def resize_labels(labels: torch.Tensor, size: int | tuple[int, int], k: int) -> torch.Tensor:
    """A label map [H, W] of class indices 0 ... k-1 -> float32 [h, w] of class indices (``size``: h = w, or (h, w)).

    Downsampling: each class's area average (its share of the output pixel, the binary masks' rule per class), the
    class with the largest share wins (a majority vote; ties go to the lower class index). Upsampling: nearest
    neighbour (pixel-centre aligned), so no value between two classes is ever made up. A side shrunk while the other
    grows is voted down first, then grown."""
    h, w = _shape(size)
    sh, sw = labels.shape[-2:]
    if (sh, sw) == (h, w):
        return labels.to(torch.float32)
    if h >= sh and w >= sw:
        up = F.interpolate(labels.to(torch.float32)[None, None], size=(h, w), mode="nearest-exact")
        return up[0, 0]
    dh, dw = min(h, sh), min(w, sw)
    best = torch.full((dh, dw), -1.0)
    arg = torch.zeros((dh, dw))
    present = torch.bincount(labels.reshape(-1).to(torch.long), minlength=k).nonzero().reshape(-1).tolist()
    for c in present:  # ascending: a later class must beat the best share so far strictly, so ties keep the lower
        share = F.interpolate((labels == c).to(torch.float32)[None, None], size=(dh, dw), mode="area")[0, 0]
        better = share > best
        best = torch.where(better, share, best)
        arg = torch.where(better, torch.tensor(float(c)), arg)
    return arg if (dh, dw) == (h, w) else resize_labels(arg, (h, w), k)
