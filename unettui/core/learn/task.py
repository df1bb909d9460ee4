"""The task, in torch: what the model outputs, how logits become probabilities and a label map, the loss, and the
confusion counts per class that every metric is computed from. One ``Task`` serves the solo trainer, the pack
trainer, lr-find, bench, predict and evaluate; the names, classes and metric registry are ``core.define.task``.

Binary (2 classes): one output channel, sigmoid, a pixel is foreground iff its logit > 0; the losses are
``losses.make_loss``'s and the counts ``metrics.confusion_counts``' (the code paths the binary task always ran, so its
numbers are bit for bit what they were). Multi-class (K >= 3): K output channels, softmax, a pixel's class is the
argmax of its logits (ties to the lower index); targets are class indices; the losses generalise the binary ones
(``losses.multiclass_loss``); counts are (tp, fp, fn) per foreground class from one confusion matrix.

Ignored pixels (target < 0, ``data.IGNORE_INDEX``: padding that is not part of the image) are counted in no class by
``counts`` and ``member_counts``, and left out of ``ignore_loss_fn`` (the task's loss with ``ignore=True``); ``loss_fn``
is the loss as it always was, for batches that have no such pixel.

Scores from counts (``scores``): per class Dice 2tp / (2tp + fp + fn) and IoU tp / (tp + fp + fn); a class with no
pixel in truth or prediction (denominator 0) has no score (None); the task's Dice and IoU are the means over the
foreground classes that have one, ``_min`` the worst of them. Binary keeps its rule: both empty reads 1.0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..define.task import Classes, class_key, classes_of
from .losses import LossFn, make_loss, multiclass_loss
from .metrics import confusion_counts, dice_from_counts, iou_from_counts

__all__ = ["Task", "task_of", "Scores"]


@dataclass(frozen=True)
class Scores:
    """What a set of images scored: the loss, the task's Dice and IoU (binary: the foreground's; multi-class: the
    mean over foreground classes with a score, None when none has one), and the per-class values as record keys
    (``dice_<class>``, ``iou_<class>``, ``dice_min``, ``iou_min``; empty for the binary task)."""

    loss: float
    dice: float | None
    iou: float | None
    classes: dict[str, float | None]
    counts: list | None = None  # the summed (tp, fp, fn) of each foreground class the scores came from

    def record(self, prefix: str) -> dict[str, Any]:
        """The keys of a metrics record or summary: ``val_dice_myocardium`` ... for prefix ``val``."""
        return {f"{prefix}_{k}": v for k, v in self.classes.items()}

    def __iter__(self):  # (loss, dice, iou): what callers unpacked before classes existed
        return iter((self.loss, self.dice, self.iou))


class Task:
    """The task of one definition (``task_of(cfg)``)."""

    def __init__(self, classes: Classes, loss: str = "dice_bce", switch_lambda: float = 0.75,
                 switch_tau: float = 0.05, class_weights: Sequence[float] = ()):
        self.classes = classes
        self.k = classes.k
        self.binary = classes.binary
        self.out_channels = 1 if self.binary else self.k
        self.weights = tuple(float(w) for w in class_weights) or None
        if self.binary and self.weights is None:
            self.loss_fn: LossFn = make_loss(loss, switch_lambda, switch_tau)
            self.ignore_loss_fn: LossFn = make_loss(loss, switch_lambda, switch_tau, ignore=True)
        else:
            self.loss_fn = multiclass_loss(loss, self.k, switch_lambda, switch_tau, self.weights)
            self.ignore_loss_fn = multiclass_loss(loss, self.k, switch_lambda, switch_tau, self.weights, ignore=True)

    # ---- outputs --------------------------------------------------------------------------------------------------
    def probabilities(self, logits: Tensor) -> Tensor:
        """[B, C, H, W] logits -> probabilities (float32): binary [B, 1, H, W] foreground, else [B, K, H, W]."""
        x = logits.float()
        return torch.sigmoid(x) if self.binary else torch.softmax(x, dim=1)

    def decode(self, logits: Tensor) -> Tensor:
        """[..., C, H, W] logits -> [..., 1, H, W] int64 class indices (binary: logit > 0)."""
        if self.binary:
            return (logits > 0).long()
        return _argmax(logits, -3).unsqueeze(-3)

    # ---- counts ---------------------------------------------------------------------------------------------------
    def counts(self, logits: Tensor, target: Tensor) -> Tensor:
        """(tp, fp, fn) per foreground class summed over the batch: int64 [F, 3] on the device (F = K - 1; binary:
        [1, 3], metrics.confusion_counts). ``logits`` [B, C, H, W], ``target`` [B, 1, H, W] class indices; a pixel
        whose target is < 0 (ignored) is counted nowhere."""
        if self.binary:
            return confusion_counts(logits, target)[None]
        return self.member_counts(logits[None], target[None])[0]

    def member_counts(self, logits: Tensor, targets: Tensor) -> Tensor:
        """[N, F, 3] counts of N members' logits [N, B, C, H, W] and targets [N, B, 1, H, W] (a pack's). Pixels whose
        target is < 0 are counted nowhere: binary, their prediction is masked (as metrics.confusion_counts); K classes,
        they go to one extra bin of the confusion matrix per member, which is dropped."""
        if self.binary:
            targets = targets.to(logits.device)
            pred, truth = (logits > 0) & (targets >= 0), targets > 0.5
            dims = tuple(range(1, logits.dim()))
            tp = (pred & truth).sum(dim=dims, dtype=torch.int64)
            fp = (pred & ~truth).sum(dim=dims, dtype=torch.int64)
            fn = (~pred & truth).sum(dim=dims, dtype=torch.int64)
            return torch.stack([tp, fp, fn], dim=-1)[:, None]
        n, k = logits.shape[0], self.k
        pred = _argmax(logits, 2).reshape(n, -1)
        truth = targets.to(logits.device).reshape(n, -1).long()
        cells = k * k + 1  # per member: the k x k matrix, then the bin of ignored pixels
        member = torch.arange(n, device=logits.device)[:, None] * cells
        cell = torch.where(truth >= 0, truth * k + pred, k * k)
        matrix = torch.bincount((member + cell).reshape(-1), minlength=n * cells).reshape(n, cells)[:, :-1]
        matrix = matrix.reshape(n, k, k)
        tp = matrix.diagonal(dim1=1, dim2=2)
        fp = matrix.sum(dim=1) - tp  # predicted c, truly another
        fn = matrix.sum(dim=2) - tp  # truly c, predicted another
        return torch.stack([tp, fp, fn], dim=-1)[:, 1:]

    # ---- scores ---------------------------------------------------------------------------------------------------
    def scores(self, loss: float, counts: Sequence[Sequence[float]] | Tensor) -> Scores:
        """Scores of a set from its loss and its summed [F, 3] counts (see the module's docstring)."""
        rows = counts.tolist() if isinstance(counts, Tensor) else [list(r) for r in counts]
        if self.binary:
            tp, fp, fn = rows[0]
            return Scores(loss, dice_from_counts(tp, fp, fn), iou_from_counts(tp, fp, fn), {}, rows)
        dice: dict[str, float | None] = {}
        iou: dict[str, float | None] = {}
        for name, (tp, fp, fn) in zip(self.classes.foreground, rows):
            scored = tp + fp + fn > 0
            dice[name] = 2.0 * tp / (2.0 * tp + fp + fn) if scored else None
            iou[name] = tp / (tp + fp + fn) if scored else None
        out: dict[str, float | None] = {}
        for metric, values in (("dice", dice), ("iou", iou)):
            for name, v in values.items():
                out[class_key(metric, name)] = v
            have = [v for v in values.values() if v is not None]
            out[f"{metric}_min"] = min(have) if have else None
        have_dice = [v for v in dice.values() if v is not None]
        have_iou = [v for v in iou.values() if v is not None]
        return Scores(loss, sum(have_dice) / len(have_dice) if have_dice else None,
                      sum(have_iou) / len(have_iou) if have_iou else None, out, rows)

    def train_dice(self, counts: Tensor) -> float | None:
        """The training Dice of an epoch's summed counts (binary: as it always was)."""
        return self.scores(0.0, counts).dice

    def class_summary(self, best: dict[str, Any], last: dict[str, Any], n_test: int) -> dict[str, Any]:
        """A summary's per-class keys (K >= 3; none for the binary task) from a trainer's ``best`` epoch (its
        ``val_classes`` and ``test_classes``) and ``last`` record: each foreground class's Dice and IoU at the best
        epoch, at the last and on the test images, the worst class's (``_min``), the classes, and why a key has no
        value (``no_score``)."""
        if not self.classes.per_class:
            return {}
        best_val, best_test = best.get("val_classes") or {}, best.get("test_classes") or {}
        out: dict[str, Any] = {}
        for metric in ("dice", "iou"):
            for name in (*self.classes.foreground, "min"):
                key = f"{metric}_{name}"
                out[f"best_val_{key}"] = best_val.get(key)
                out[f"final_val_{key}"] = last.get(f"val_{key}")
                out[f"test_{key}"] = best_test.get(key) if n_test else None
        why: dict[str, str] = {}
        for name in self.classes.foreground:
            for metric in ("dice", "iou"):
                for prefix, seen, where in (("best_val", best, "validation"), ("final_val", last, "validation"),
                                            ("test", best if n_test else None, "test")):
                    key = f"{prefix}_{metric}_{name}"
                    if out[key] is None and seen:
                        why[key] = f"class '{name}' is in no {where} image and was never predicted there"
        out["classes"] = {"names": list(self.classes.names), "values": list(self.classes.values or ())}
        out["no_score"] = why
        return out


def _argmax(x: Tensor, dim: int) -> Tensor:
    """The index of the largest value along ``dim``, the first one on ties (as argmax). ``max(dim).indices``: on the
    CPU ``argmax`` over the channels of a [B, K, H, W] batch takes 40 times as long (8 ms for a 64-px batch of 8)."""
    return x.max(dim=dim).indices


def task_of(cfg: Any) -> Task:
    """The Task of a Config."""
    return Task(classes_of(cfg), cfg.loss, cfg.switch_lambda, cfg.switch_tau, cfg.class_weights)
