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
  it has none), predicted by sliding window over that window alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import Tensor

from .sliding import sliding_window

__all__ = ["DEVICE_OUTPUT_BYTES", "PREVIEW_SIDE", "window_logits", "preview_windows", "foreground_window"]

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
