"""Hard segmentation metrics at threshold 0.5: confusion counts (tp, fp, fn) on the device, and Dice / IoU from counts.

Conventions (the project's definition of "Dice", see docs/experiments.md, "Metrics"):

* A pixel is predicted foreground iff ``logit > 0`` (⇔ sigmoid(logit) > 0.5);
  a logit of exactly 0 (probability exactly 0.5) counts as background.
* A target pixel is foreground iff ``target > 0.5`` (targets are 0/1).
* A pixel whose target is < 0 (``data.IGNORE_INDEX``, -1: padding that is not part of the image) is counted nowhere:
  neither tp, fp nor fn. Its target is not foreground (-1 > 0.5 is false) and its prediction is masked with
  ``target >= 0``: one comparison and one AND per batch, on the device; with no such pixel the counts are unchanged.
* The reported Dice is 2·TP / (2·TP + FP + FN) with TP, FP, FN summed over the
  whole set (all pixels of all images, accumulated across batches with
  :func:`confusion_counts`), NOT the mean of per-image Dice. The per-image
  variant is available as :func:`per_image_dice` (from :func:`per_image_counts`);
  the two differ when images have different amounts of foreground.
* When the denominator is 0 -- prediction and target both empty -- Dice and IoU
  are defined as 1.0 (perfect agreement).

Counts are int64 tensors on the input's device and are produced without
``.item()``, so a training loop can add them up batch by batch without a
GPU→CPU synchronisation and convert once at the end of the epoch.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "confusion_counts",
    "per_image_counts",
    "dice_from_counts",
    "iou_from_counts",
    "per_image_dice",
]

CountsLike = Tensor | Sequence[numbers.Real] | numbers.Real


def _binarise(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    if logits.shape != target.shape:
        raise ValueError(
            f"metrics: logits and target must have the same shape, got {list(logits.shape)} and {list(target.shape)}"
        )
    if logits.dim() < 1:
        raise ValueError("metrics: expected a batch of predictions, got a 0-dim tensor")
    target = target.to(logits.device)
    return (logits > 0) & (target >= 0), target > 0.5


def _counts(pred: Tensor, truth: Tensor, dims: tuple[int, ...] | None) -> Tensor:
    tp = (pred & truth).sum(dim=dims, dtype=torch.int64)
    fp = (pred & ~truth).sum(dim=dims, dtype=torch.int64)
    fn = (~pred & truth).sum(dim=dims, dtype=torch.int64)
    return torch.stack([tp, fp, fn], dim=-1)


def confusion_counts(logits: Tensor, target: Tensor) -> Tensor:
    """(tp, fp, fn) summed over every element of the batch: int64 tensor of shape [3] on the input's device."""
    pred, truth = _binarise(logits, target)
    return _counts(pred, truth, None)


def per_image_counts(logits: Tensor, target: Tensor) -> Tensor:
    """(tp, fp, fn) for each image of the batch: int64 tensor of shape [B, 3] on the input's device."""
    pred, truth = _binarise(logits, target)
    return _counts(pred, truth, tuple(range(1, pred.dim())))


def _unpack(tp: CountsLike, fp: numbers.Real | None, fn: numbers.Real | None) -> tuple[float, float, float]:
    if fp is None and fn is None:
        if isinstance(tp, Tensor):
            values = tp.reshape(-1).tolist()
        elif isinstance(tp, Sequence):
            values = list(tp)
        else:
            raise ValueError(f"pass either a 3-element counts tensor/sequence, or tp, fp and fn; got {tp!r} alone")
        if len(values) != 3:
            raise ValueError(f"expected counts (tp, fp, fn), got {values!r}")
        tp, fp, fn = values
    elif fp is None or fn is None:
        raise ValueError("pass either a 3-element counts tensor/sequence, or tp, fp and fn")
    out = tuple(float(v.item() if isinstance(v, Tensor) else v) for v in (tp, fp, fn))
    if any(v < 0 for v in out):
        raise ValueError(f"counts must be non-negative, got {out}")
    return out  # type: ignore[return-value]


def dice_from_counts(tp: CountsLike, fp: numbers.Real | None = None, fn: numbers.Real | None = None) -> float:
    """Hard Dice 2·tp / (2·tp + fp + fn); 1.0 when the denominator is 0 (both empty: perfect agreement).

    Accepts ``dice_from_counts(tp, fp, fn)`` with numbers (or 0-dim tensors), or
    ``dice_from_counts(counts)`` with a 3-element tensor / sequence (tp, fp, fn),
    e.g. the accumulated output of :func:`confusion_counts`.
    """
    tp_, fp_, fn_ = _unpack(tp, fp, fn)
    denominator = 2.0 * tp_ + fp_ + fn_
    return 1.0 if denominator == 0 else 2.0 * tp_ / denominator


def iou_from_counts(tp: CountsLike, fp: numbers.Real | None = None, fn: numbers.Real | None = None) -> float:
    """Hard IoU (Jaccard) tp / (tp + fp + fn); 1.0 when the denominator is 0. Same arguments as dice_from_counts."""
    tp_, fp_, fn_ = _unpack(tp, fp, fn)
    denominator = tp_ + fp_ + fn_
    return 1.0 if denominator == 0 else tp_ / denominator


def per_image_dice(counts: Tensor) -> Tensor:
    """Per-image hard Dice from [B, 3] counts (see per_image_counts): float64 tensor [B], 1.0 where an image's prediction and target are both empty.

    Average it for the "mean per-image Dice" variant; the project's reported
    Dice is the pooled one (dice_from_counts of the summed counts).
    """
    if counts.dim() != 2 or counts.shape[-1] != 3:
        raise ValueError(f"per_image_dice expects counts of shape [B, 3], got {list(counts.shape)}")
    c = counts.to(torch.float64)
    tp, fp, fn = c.unbind(-1)
    denominator = 2.0 * tp + fp + fn
    return torch.where(denominator > 0, 2.0 * tp / denominator.clamp_min(1.0), torch.ones_like(denominator))
