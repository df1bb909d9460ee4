"""Sliding-window inference at native resolution (issue 25): an image of any size predicted patch by patch, the
overlapping windows blended with a Gaussian (nnU-Net) or uniform importance map, in memory bounded by the patch and
the batch plus one K x H x W output.

The building block for validation, test, ``evaluate``, ``predict`` and previews in patch mode; it knows nothing about
runs, configs or files. How a caller uses it::

    model.eval()
    with torch.no_grad(), trained.autocast():        # the caller owns eval mode and autocast
        logits = sliding_window(model, image, patch=256, overlap=0.5, batch=4)   # image [C, H, W] -> [K, H, W]
    mask = logits > 0 if logits.shape[0] == 1 else logits.argmax(0)          # as for a whole-image forward

Design, in one place:

* **Windows** (:func:`window_starts`, :func:`window_grid`): per axis a regular grid with step
  ``floor(P * (1 - overlap))`` (at least 1), the last window moved back so it is flush with the far edge; so every
  window lies inside the image and every pixel is covered. An axis shorter than the patch is first padded to the
  patch (``pad_value``, split as evenly as possible before and after, as nnU-Net does) and the output cropped back.
* **Weights** (:func:`gaussian_map`, :func:`weight_map`): nnU-Net's Gaussian importance map, sigma =
  ``P * sigma_scale`` (1/8 of the patch by default) centred on the window, scaled to a maximum of 1 and clamped below
  at ``GAUSSIAN_FLOOR`` (1e-3, MONAI's floor) so a window's border pixels still count a little; or all ones with
  ``gaussian=False``. The blended value is ``sum_w(weight * output) / sum_w(weight)``: a constant model gives exactly
  that constant everywhere (no seams), and an image that fits in one window gives the whole-image forward pass.
* **What is blended**: logits, so the result drops in wherever a whole-image forward pass's logits were used
  (threshold at 0, argmax, losses) and equals it where the image fits in one window. (nnU-Net averages softmax
  probabilities instead; the two agree except where windows disagree near the decision boundary, where averaging
  logits lets a confident window outvote an unsure one.)
* **Memory**: windows are cut ``batch`` at a time (a [batch, C, P, P] stack, moved to ``device``), never all at
  once; the accumulators live on ``out_device`` (CPU by default): the output, K x H x W float32, which is also the
  result (normalised in place), and the weights, H x W float32 (shared by the K channels). A 4096 x 4096 single-class
  image needs 64 MiB for each (see scripts/bench_sliding.py for measured peaks and times).
* **Gradients**: the forward passes run under ``torch.no_grad()`` (inference only); eval mode, autocast and the
  patch size's fit to the model (a UNet of depth d needs ``P`` to be a multiple of ``2**d``) are the caller's
  business: the model raises its own error for a patch it cannot take.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..define.names import is_int

__all__ = [
    "GAUSSIAN_FLOOR",
    "sliding_window",
    "window_step",
    "window_starts",
    "window_grid",
    "gaussian_map",
    "weight_map",
]

GAUSSIAN_FLOOR = 1e-3  # the Gaussian map's minimum (relative to its maximum of 1), as MONAI clamps it


def _check_int(name: str, value, minimum: int) -> int:
    if not is_int(value) or value < minimum:
        raise ValueError(f"sliding window: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_overlap(overlap) -> float:
    if isinstance(overlap, bool) or not isinstance(overlap, numbers.Real) or not (0.0 <= float(overlap) < 1.0):
        raise ValueError(f"sliding window: overlap must be a number in [0, 1), got {overlap!r}")
    return float(overlap)


def _check_sigma_scale(sigma_scale) -> float:
    if (isinstance(sigma_scale, bool) or not isinstance(sigma_scale, numbers.Real)
            or not math.isfinite(sigma_scale) or sigma_scale <= 0):
        raise ValueError(f"sliding window: sigma_scale must be a number > 0, got {sigma_scale!r}")
    return float(sigma_scale)


def window_step(patch: int, overlap: float) -> int:
    """The grid's step for ``patch`` and ``overlap``: ``floor(patch * (1 - overlap))``, at least 1 (so neighbouring
    windows overlap by at least ``overlap`` of the patch)."""
    _check_int("patch", patch, 1)
    overlap = _check_overlap(overlap)
    return max(1, math.floor(patch * (1.0 - overlap) + 1e-9))


def window_starts(length: int, patch: int, step: int) -> list[int]:
    """The windows' first indices along an axis of ``length``: 0, step, 2*step, ... and a last one at
    ``length - patch`` (flush with the far edge), increasing, without repeats; ``[0]`` when ``length <= patch``
    (the caller pads such an axis to ``patch``). Consecutive windows of ``patch`` cover ``[0, length)``, which needs
    ``step <= patch``."""
    _check_int("length", length, 1)
    _check_int("patch", patch, 1)
    _check_int("step", step, 1)
    if step > patch:
        raise ValueError(f"sliding window: step {step} is larger than the patch {patch}, which would leave gaps")
    if length <= patch:
        return [0]
    last = length - patch
    starts = list(range(0, last, step))
    starts.append(last)
    return starts


def window_grid(height: int, width: int, patch: int, overlap: float = 0.5) -> list[tuple[int, int]]:
    """Every window's (top, left) corner for an image of ``height`` x ``width`` (each axis padded to ``patch`` first
    when shorter), row by row: the order :func:`sliding_window` predicts them in."""
    step = window_step(patch, overlap)
    return [(top, left) for top in window_starts(height, patch, step) for left in window_starts(width, patch, step)]


def gaussian_map(patch: int, sigma_scale: float = 0.125, floor: float = GAUSSIAN_FLOOR) -> Tensor:
    """nnU-Net's importance map for a ``patch`` x ``patch`` window: a Gaussian of sigma ``patch * sigma_scale``
    centred on the window (at ``(patch - 1) / 2``), float32, maximum 1, clamped below at ``floor`` (> 0) so no pixel
    of a window has weight 0. Separable: the outer product of one 1-D Gaussian with itself."""
    _check_int("patch", patch, 1)
    sigma = patch * _check_sigma_scale(sigma_scale)
    if not (0.0 < floor <= 1.0):
        raise ValueError(f"sliding window: floor must be in (0, 1], got {floor!r}")
    x = torch.arange(patch, dtype=torch.float64) - (patch - 1) / 2.0
    g = torch.exp(-(x**2) / (2.0 * sigma**2))
    g = g / g.max()
    return torch.outer(g, g).clamp_(min=floor).to(torch.float32)


def _pads(length: int, patch: int) -> tuple[int, int]:
    """(before, after) padding that brings an axis of ``length`` up to ``patch`` (none when it is long enough)."""
    missing = max(0, patch - length)
    return missing // 2, missing - missing // 2


def weight_map(height: int, width: int, patch: int, overlap: float = 0.5, gaussian: bool = True,
               sigma_scale: float = 0.125, device="cpu") -> Tensor:
    """The accumulated weight [H', W'] (float32) of every window of :func:`window_grid` over the image as the windows
    see it, i.e. padded to at least ``patch`` on each axis (H' = max(H, patch), W' = max(W, patch)):
    :func:`sliding_window` divides its sum by this. With ``gaussian=False`` it counts the windows covering each
    pixel. Positive everywhere."""
    _check_int("height", height, 1)
    _check_int("width", width, 1)
    step = window_step(patch, overlap)
    h, w = max(height, patch), max(width, patch)
    weights = torch.ones(patch, patch) if not gaussian else gaussian_map(patch, sigma_scale)
    weights = weights.to(device)
    total = torch.zeros(h, w, dtype=torch.float32, device=device)
    for top in window_starts(h, patch, step):
        for left in window_starts(w, patch, step):
            total[top:top + patch, left:left + patch] += weights
    return total


def _model_device(forward: Callable) -> torch.device | None:
    if isinstance(forward, nn.Module):
        for tensor in forward.parameters():
            return tensor.device
        for tensor in forward.buffers():
            return tensor.device
    return None


def sliding_window(
    forward: Callable[[Tensor], Tensor],
    image: Tensor,
    patch: int,
    overlap: float = 0.5,
    batch: int = 4,
    gaussian: bool = True,
    sigma_scale: float = 0.125,
    out_channels: int | None = None,
    pad_value: float = 0.0,
    device=None,
    out_device="cpu",
) -> Tensor:
    """Predict ``image`` [C, H, W] window by window and return the blended output [K, H, W], float32, on ``out_device``.

    ``forward`` maps a batch [B, C, P, P] to logits [B, K, P, P] (a UNet in eval mode; it runs here under
    ``torch.no_grad()``, autocast is the caller's). ``patch`` (P) is the window's side; the model must accept it
    (a UNet of depth d: a multiple of 2**d). Windows form a regular grid, step ``floor(P * (1 - overlap))``, the last
    one flush with the far edge; an axis shorter than P is padded with ``pad_value`` to P (evenly before and after)
    and the output is cropped back, so the result always has the input's H and W. Windows go to ``device`` (default:
    the device of ``forward``'s parameters when it is an nn.Module, else the image's) ``batch`` at a time; each
    output is weighted by the Gaussian map (sigma ``P * sigma_scale``, :func:`gaussian_map`) or uniformly
    (``gaussian=False``) and summed on ``out_device``, then divided by the summed weights.

    ``out_channels`` (K), when given, is checked against the model's output. Bad arguments raise a one-line
    ValueError.
    """
    patch = _check_int("patch", patch, 1)
    batch = _check_int("batch", batch, 1)
    overlap = _check_overlap(overlap)
    sigma_scale = _check_sigma_scale(sigma_scale)
    if out_channels is not None:
        _check_int("out_channels", out_channels, 1)
    if not isinstance(image, Tensor) or image.dim() != 3:
        shape = list(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"sliding window: image must be a tensor [C, H, W], got {shape}")
    channels, height, width = (int(s) for s in image.shape)
    if channels < 1 or height < 1 or width < 1:
        raise ValueError(f"sliding window: image [C, H, W] must not be empty, got {list(image.shape)}")
    if device is None:
        device = _model_device(forward)
        if device is None:
            device = image.device
    device, out_device = torch.device(device), torch.device(out_device)

    (pad_top, pad_bottom), (pad_left, pad_right) = _pads(height, patch), _pads(width, patch)
    if pad_top or pad_bottom or pad_left or pad_right:  # only an image smaller than the patch is copied
        image = F.pad(image, (pad_left, pad_right, pad_top, pad_bottom), mode="constant", value=pad_value)
    padded_h, padded_w = int(image.shape[1]), int(image.shape[2])

    corners = window_grid(padded_h, padded_w, patch, overlap)
    weights = (gaussian_map(patch, sigma_scale) if gaussian else torch.ones(patch, patch)).to(out_device)
    total: Tensor | None = None  # K x H' x W' float32, allocated once K is known

    with torch.no_grad():
        for first in range(0, len(corners), batch):
            chunk = corners[first:first + batch]
            windows = torch.stack([image[:, top:top + patch, left:left + patch] for top, left in chunk])
            out = forward(windows.to(device))
            if not isinstance(out, Tensor) or out.dim() != 4 or out.shape[0] != len(chunk) \
                    or tuple(out.shape[2:]) != (patch, patch):
                shape = list(out.shape) if isinstance(out, Tensor) else type(out).__name__
                raise ValueError(f"sliding window: forward must map [{len(chunk)}, {channels}, {patch}, {patch}] to "
                                 f"[{len(chunk)}, K, {patch}, {patch}], got {shape}")
            out = out.float().to(out_device)
            if total is None:
                k = int(out.shape[1])
                if out_channels is not None and k != out_channels:
                    raise ValueError(f"sliding window: out_channels is {out_channels} but forward gives {k} channels")
                total = torch.zeros(k, padded_h, padded_w, dtype=torch.float32, device=out_device)
            elif out.shape[1] != total.shape[0]:
                raise ValueError(f"sliding window: forward gave {out.shape[1]} channels after {total.shape[0]}")
            for (top, left), window in zip(chunk, out):
                total[:, top:top + patch, left:left + patch].addcmul_(window, weights)
            del windows, out

    assert total is not None  # at least one window
    coverage = weight_map(padded_h, padded_w, patch, overlap, gaussian, sigma_scale, device=out_device)
    total /= coverage
    del coverage
    if padded_h != height or padded_w != width:
        total = total[:, pad_top:pad_top + height, pad_left:pad_left + width].contiguous()
    return total
