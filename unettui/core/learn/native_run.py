"""A run at native resolution (``patch_size`` > 0, issue 25): what the trainers do differently from a run on images
resized to ``image_size``. Training draws random P x P patches of the images at their own size (core.learn.patches);
validation, test, the end-of-run metrics and previews predict each whole image by sliding window (core.learn.sliding)
and count on its own pixels. The solo trainer (train.py) and the pack trainer (pack_train.py) call these; nothing
here knows about runs or files.

Choices, in one place:

* **Validation loss** of a set of images: each image's loss on its whole sliding-window logits, averaged over the
  images (a resized run averages over batches of the same size; here the images differ in size, so each counts once).
  Dice and IoU are from counts summed over every pixel of every image, as in a resized run.
* **Where the blended output lives**: on the accelerator when it is one and the image's K x H x W float32 output
  takes at most ``DEVICE_OUTPUT_BYTES`` (256 MiB), else in host memory; the windows themselves always go to the
  model's device, ``batch_size`` at a time, so memory is bounded by the patch and the batch, not by the image.
* **Previews** of large images: a square window of side ``min(PREVIEW_SIDE, shortest side of the shown images)``
  around each image's foreground (the centre of the box that holds its foreground pixels; the image's centre when
  it has none), predicted by sliding window over that window alone. Where a window is not its whole image,
  ``preview_context`` also gives each whole image shrunk to the window's size (its long side S, letterboxed into
  S x S, padding 0) and the window's place in it, so a preview can show where the window lies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import Tensor

from .resize import letterbox_shape, pad_square, resize_image
from .sliding import sliding_window

__all__ = ["DEVICE_OUTPUT_BYTES", "PREVIEW_SIDE", "window_logits", "preview_windows", "foreground_window",
           "orientation", "preview_context"]

DEVICE_OUTPUT_BYTES = 256 * 2**20
PREVIEW_SIDE = 256


def window_logits(forward: Callable[[Tensor], Tensor], image: Tensor, patch: int, overlap: float, batch: int,
                  device: torch.device, autocast: Callable[[], AbstractContextManager[Any]],
                  channels_last: bool = False, out_channels: int | None = None) -> Tensor:
    """The logits [K, H, W] (float32) of ``image`` [C, H, W] by sliding window: windows of ``patch`` with
    ``overlap``, ``batch`` at a time on ``device`` under ``autocast()``, blended with nnU-Net's Gaussian. On the
    accelerator when the output is small enough (see the module's docstring), else on the CPU."""
    k = out_channels or 1
    h, w = int(image.shape[-2]), int(image.shape[-1])
    out_device = device if device.type != "cpu" and k * h * w * 4 <= DEVICE_OUTPUT_BYTES else torch.device("cpu")

    def run(windows: Tensor) -> Tensor:
        if channels_last:
            windows = windows.contiguous(memory_format=torch.channels_last)
        with autocast():
            return forward(windows)

    return sliding_window(run, image, patch, overlap=overlap, batch=batch, out_channels=out_channels,
                          device=device, out_device=out_device)


def foreground_window(mask: Tensor, side: int) -> tuple[int, int]:
    """(top, left) of a ``side`` x ``side`` window inside the image of ``mask`` [1, H, W] (H, W >= side), centred on
    the box holding its foreground pixels (class > 0), the image's centre when it has none."""
    h, w = int(mask.shape[-2]), int(mask.shape[-1])
    fg = mask[0] > 0
    rows, cols = fg.any(dim=1).nonzero().reshape(-1), fg.any(dim=0).nonzero().reshape(-1)
    if rows.numel():
        cy, cx = (int(rows[0]) + int(rows[-1])) // 2, (int(cols[0]) + int(cols[-1])) // 2
    else:
        cy, cx = h // 2, w // 2
    top = min(max(cy - side // 2, 0), h - side)
    left = min(max(cx - side // 2, 0), w - side)
    return top, left


def preview_windows(images: Sequence[Tensor], masks: Sequence[Tensor], names: Sequence[str],
                    side: int = PREVIEW_SIDE) -> tuple[Tensor, Tensor, list[str]]:
    """Stacked square windows ([k, C, S, S], [k, 1, S, S]) of the images and masks, one per image, S = ``side`` or
    the shortest side of the images when that is smaller, each around its image's foreground; and the names, each
    saying where its window is when it is not the whole image ("cells_07 (64x64 at 12,40 of 512x300)")."""
    s = min([side] + [min(int(im.shape[-2]), int(im.shape[-1])) for im in images])
    xs, ys, shown = [], [], []
    for im, m, name in zip(images, masks, names):
        top, left = foreground_window(m, s)
        xs.append(im[:, top:top + s, left:left + s])
        ys.append(m[:, top:top + s, left:left + s])
        h, w = int(im.shape[-2]), int(im.shape[-1])
        shown.append(name if (h, w) == (s, s) else f"{name} ({s}x{s} at {top},{left} of {h}x{w})")
    return torch.stack(xs), torch.stack(ys), shown


def orientation(images: Sequence[Tensor], windows_boxes: Sequence[Sequence[int]], side: int) -> dict[str, Tensor]:
    """Each whole image [C, H, W] shrunk (bilinear, antialiased) so its long side is ``side`` and letterboxed into
    ``side`` x ``side`` (the short side padded with 0, split evenly as ``resize.pad_square`` does), with the place of
    its window: ``windows_boxes`` gives each window's (top, left, height, width) in the image's pixels.

    Returns {"images": float [k, C, S, S], "boxes": int64 [k, 4]}: the boxes (top, left, height, width) in the
    thumbnails' pixels (each edge scaled by the image's own factor on its axis and rounded, at least one pixel,
    inside the thumbnail)."""
    thumbs, boxes = [], []
    for im, (top, left, bh, bw) in zip(images, windows_boxes):
        h, w = int(im.shape[-2]), int(im.shape[-1])
        th, tw = letterbox_shape(h, w, side)
        thumbs.append(pad_square(resize_image(im.float(), (th, tw)), side, 0.0))
        oy, ox = (side - th) // 2, (side - tw) // 2
        y0, ys = _scaled_span(int(top), int(bh), h, th)
        x0, xs = _scaled_span(int(left), int(bw), w, tw)
        boxes.append((oy + y0, ox + x0, ys, xs))
    return {"images": torch.stack(thumbs), "boxes": torch.tensor(boxes, dtype=torch.int64).reshape(-1, 4)}


def _scaled_span(start: int, length: int, size: int, thumb: int) -> tuple[int, int]:
    """(start, length) of pixels start ... start + length of an axis of ``size`` pixels on that axis shrunk to
    ``thumb``: both edges scaled and rounded, at least one pixel long, inside the axis."""
    a0 = min(round(start * thumb / size), thumb - 1)
    a1 = min(max(round((start + length) * thumb / size), a0 + 1), thumb)
    return a0, a1 - a0


def preview_context(images: Sequence[Tensor], masks: Sequence[Tensor], names: Sequence[str],
                    side: int = PREVIEW_SIDE) -> tuple[Tensor, Tensor, list[str], dict[str, Tensor] | None]:
    """``preview_windows``' (x, y, names) and the orientation of its windows: ``orientation`` of the whole images
    at the windows' side S with each window's box, or None when every window is its whole image (nothing to
    orient)."""
    x, y, shown = preview_windows(images, masks, names, side)
    s = int(x.shape[-1])
    if all((int(im.shape[-2]), int(im.shape[-1])) == (s, s) for im in images):
        return x, y, shown, None
    boxes = [(*foreground_window(m, s), s, s) for m in masks]  # the windows preview_windows cut
    return x, y, shown, orientation(images, boxes, s)
