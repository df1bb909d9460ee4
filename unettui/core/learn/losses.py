"""Segmentation losses on logits (BCE, soft Dice, Dice+BCE, inverted Dice+BCE, switching loss) and the make_loss factory.

Each loss also has an ignore-aware variant (``make_loss(..., ignore=True)``, ``multiclass_loss(..., ignore=True)``)
that leaves out the pixels whose target is negative (``data.IGNORE_INDEX``, -1: padding that is not part of the
image): every mean and every sum runs over the other ("valid") pixels only. The default losses are not touched, so a
run without ignored pixels computes exactly what it always did; on a batch without ignored pixels the variants equal
them to float32 rounding (a mean taken as sum / count instead of torch's mean).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "LOSSES",
    "LossFn",
    "bce_loss",
    "dice_coef",
    "dice_loss",
    "soft_dice_loss",
    "dice_bce_loss",
    "inv_dice_bce_loss",
    "switching_loss",
    "make_loss",
    "multiclass_loss",
]

LOSSES = ("bce", "dice", "dice_bce", "inv_dice_bce", "switching")

LossFn = Callable[[Tensor, Tensor], Tensor]

# Conventions for every loss below (the ignore-aware variants: see _ignoring and multiclass_loss):
#   logits, target: float tensors of the same shape, normally [B, 1, H, W], target in {0, 1};
#   p = sigmoid(logits); every sum runs over the WHOLE batch (all pixels of all images
#   together, as in the Keras Kaggle kernels the study used), not per image;
#   the result is a 0-dim float32 tensor, computed in float32 with autocast disabled,
#   whatever dtype the logits come in (e.g. fp16/bf16 under torch.autocast).


def _as_float32(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    if logits.shape != target.shape:
        raise ValueError(
            f"loss: logits and target must have the same shape, got {list(logits.shape)} and {list(target.shape)}"
        )
    return logits.float(), target.to(device=logits.device, dtype=torch.float32)


def _no_autocast(logits: Tensor) -> torch.autocast:
    return torch.autocast(device_type=logits.device.type, enabled=False)


def dice_coef(p: Tensor, y: Tensor, smooth: float = 1.0) -> Tensor:
    """Soft Dice coefficient over the whole batch: (2·Σ p·y + smooth) / (Σ p + Σ y + smooth).

    ``p`` are probabilities (not logits), ``y`` the 0/1 targets; the sums run over
    every element of the batch. ``smooth = 1`` keeps it defined (= 1) when both
    are empty.
    """
    intersection = (p * y).sum()
    return (2.0 * intersection + smooth) / (p.sum() + y.sum() + smooth)


def dice_loss(p: Tensor, y: Tensor, smooth: float = 1.0) -> Tensor:
    """Soft Dice loss on probabilities: 1 − dice_coef(p, y, smooth)."""
    return 1.0 - dice_coef(p, y, smooth)


def bce_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Mean binary cross entropy on logits: mean(−y·log σ(x) − (1−y)·log(1−σ(x))).

    Uses ``F.binary_cross_entropy_with_logits`` (log-sum-exp form, numerically
    stable for large |x|), reduction 'mean' over all elements of the batch.
    """
    with _no_autocast(logits):
        x, y = _as_float32(logits, target)
        return F.binary_cross_entropy_with_logits(x, y, reduction="mean")


def soft_dice_loss(logits: Tensor, target: Tensor) -> Tensor:
    """The 'dice' loss on logits: 1 − dice_coef(σ(x), y), smooth = 1, summed over the whole batch."""
    with _no_autocast(logits):
        x, y = _as_float32(logits, target)
        return dice_loss(torch.sigmoid(x), y)


def dice_bce_loss(logits: Tensor, target: Tensor) -> Tensor:
    """'dice_bce': bce(x, y) + (1 − dice_coef(p, y)) with p = σ(x)."""
    with _no_autocast(logits):
        x, y = _as_float32(logits, target)
        p = torch.sigmoid(x)
        return F.binary_cross_entropy_with_logits(x, y) + dice_loss(p, y)


def inv_dice_bce_loss(logits: Tensor, target: Tensor) -> Tensor:
    """'inv_dice_bce': bce(x, y) + (1 − dice_coef(p, y)) + (1 − dice_coef(1−p, 1−y)).

    The last term is the Dice of the background ("inverted Dice"), which keeps
    the loss informative when the foreground is tiny or absent.
    """
    with _no_autocast(logits):
        x, y = _as_float32(logits, target)
        p = torch.sigmoid(x)
        return F.binary_cross_entropy_with_logits(x, y) + dice_loss(p, y) + dice_loss(1.0 - p, 1.0 - y)


def _check_switch_params(lam: float, tau: float) -> None:
    if isinstance(lam, bool) or not isinstance(lam, numbers.Real) or not (0.0 <= lam <= 1.0):
        raise ValueError(f"switching loss: lambda must be a number in [0, 1], got {lam!r}")
    if isinstance(tau, bool) or not isinstance(tau, numbers.Real) or not (0.0 <= tau <= 1.0):
        raise ValueError(f"switching loss: tau must be a number in [0, 1], got {tau!r}")


def switching_loss(logits: Tensor, target: Tensor, lam: float = 0.75, tau: float = 0.05) -> Tensor:
    """Switching loss (Dang, Anand, Sethi, TENCON 2019), with f = mean(y) over the whole batch.

    If f > tau:  bce + λ·(1 − dice(p, y)) + (1−λ)·(1 − dice(1−p, 1−y))
    else:        bce + (1−λ)·(1 − dice(p, y)) + λ·(1 − dice(1−p, 1−y))

    i.e. with λ > 0.5 the foreground Dice dominates while the batch has enough
    foreground, and the background ("inverted") Dice dominates when it does not.
    The branch is taken with ``torch.where`` on device tensors, so it never
    forces a GPU→CPU synchronisation. Defaults λ = 0.75, tau = 0.05.
    """
    _check_switch_params(lam, tau)
    lam, tau = float(lam), float(tau)
    with _no_autocast(logits):
        x, y = _as_float32(logits, target)
        p = torch.sigmoid(x)
        foreground_fraction = y.mean()
        w = torch.where(foreground_fraction > tau, lam, 1.0 - lam)
        return (
            F.binary_cross_entropy_with_logits(x, y)
            + w * dice_loss(p, y)
            + (1.0 - w) * dice_loss(1.0 - p, 1.0 - y)
        )


def _valid_terms(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(x, p, y, v) in float32 for an ignore-aware binary loss: v = 1.0 on valid pixels (target >= 0), 0.0 on ignored
    ones; y = the target with ignored pixels set to 0 (max(target, 0): exactly the target where it is 0 or 1);
    p = σ(x)·v, so every sum of p, p·y or y runs over the valid pixels only and an ignored pixel gets no gradient."""
    x, t = _as_float32(logits, target)
    v = (t >= 0).float()
    y = t.clamp_min(0.0)
    return x, torch.sigmoid(x) * v, y, v


def _masked_bce(x: Tensor, y: Tensor, v: Tensor) -> Tensor:
    """BCE on logits, the mean over the valid pixels (v = 1): Σ v·bce / max(Σ v, 1); 0 with zero gradient when no
    pixel is valid (the ignored pixels' terms are weighted by 0, not dropped, so this never syncs with the host)."""
    total = F.binary_cross_entropy_with_logits(x, y, weight=v, reduction="sum")
    return total / v.sum().clamp_min(1.0)


def _ignoring(name: str, lam: float, tau: float) -> LossFn:
    """The ignore-aware loss ``name``: the binary loss's terms, in make_loss's order, on the valid pixels only.

    bce = the mean over valid pixels; dice = dice_coef(σ(x)·v, y) (Σ p·y, Σ p, Σ y over valid pixels); the inverted
    Dice = dice_coef((1−σ(x))·v, (1−y)·v); switching's foreground fraction = Σ y / max(Σ v, 1). A batch with no
    valid pixel gives 0 for the BCE term and 1 − (0 + 1)/(0 + 1) = 0 for each Dice term, all with zero gradient.
    """

    def loss(logits: Tensor, target: Tensor) -> Tensor:
        with _no_autocast(logits):
            x, p, y, v = _valid_terms(logits, target)
            if name == "bce":
                return _masked_bce(x, y, v)
            if name == "dice":
                return dice_loss(p, y)
            bce = _masked_bce(x, y, v)
            if name == "dice_bce":
                return bce + dice_loss(p, y)
            inverted = dice_loss((1.0 - p) * v, (1.0 - y) * v)  # (1 − p)·v: p is already 0 on ignored pixels
            if name == "inv_dice_bce":
                return bce + dice_loss(p, y) + inverted
            foreground_fraction = y.sum() / v.sum().clamp_min(1.0)
            w = torch.where(foreground_fraction > tau, lam, 1.0 - lam)
            return bce + w * dice_loss(p, y) + (1.0 - w) * inverted

    loss.__doc__ = f"{name} over the valid pixels (target >= 0)" + (f", λ = {lam}, tau = {tau}"
                                                                     if name == "switching" else "")
    return loss


def make_loss(name: str, switch_lambda: float = 0.75, switch_tau: float = 0.05, ignore: bool = False) -> LossFn:
    """Return the loss ``name`` (one of LOSSES) as a function ``(logits, target) -> scalar float32 tensor``.

    ``switch_lambda`` and ``switch_tau`` are used by 'switching' only (validated
    here, so a bad value fails before training starts). Raises ValueError naming
    the valid losses for an unknown name.

    ``ignore``: leave out the pixels whose target is < 0 (data.IGNORE_INDEX, padding that is not image): BCE is the
    mean over the other pixels, the (inverted) Dice sums and switching's foreground fraction run over them only (see
    :func:`_ignoring`). False (default) returns the functions above, untouched.
    """
    if ignore:
        if name not in LOSSES:
            raise ValueError(f"unknown loss {name!r}; valid losses: {', '.join(LOSSES)}")
        _check_switch_params(switch_lambda, switch_tau)
        return _ignoring(name, float(switch_lambda), float(switch_tau))
    if name == "bce":
        return bce_loss
    if name == "dice":
        return soft_dice_loss
    if name == "dice_bce":
        return dice_bce_loss
    if name == "inv_dice_bce":
        return inv_dice_bce_loss
    if name == "switching":
        _check_switch_params(switch_lambda, switch_tau)
        lam, tau = float(switch_lambda), float(switch_tau)

        def switching(logits: Tensor, target: Tensor) -> Tensor:
            return switching_loss(logits, target, lam, tau)

        switching.__doc__ = f"switching_loss with λ = {lam}, tau = {tau}."
        return switching
    raise ValueError(f"unknown loss {name!r}; valid losses: {', '.join(LOSSES)}")


def multiclass_loss(name: str, k: int, switch_lambda: float = 0.75, switch_tau: float = 0.05,
                    class_weights: tuple[float, ...] | None = None, ignore: bool = False) -> LossFn:
    """The loss ``name`` (one of LOSSES) for K classes: ``(logits [B, K, H, W], target [B, 1, H, W] class indices)
    -> scalar float32``. Every loss is the binary one generalised; with K = 2 and single-channel logits ``x`` (the
    binary task with class weights) the logits are read as the two classes' (0, x), whose softmax is (1 - σ(x), σ(x)).

    * bce → softmax cross-entropy, the mean over pixels (with ``class_weights``: each pixel weighted by its true
      class's weight, divided by the sum of those weights: torch's weighted mean);
    * dice → 1 − the mean over the foreground classes (1 ... K-1) of the soft Dice of each, each summed over the
      whole batch with smooth = 1 as the binary dice (a class absent from the batch and not predicted scores ≈ 1,
      so it does not pull the mean); with ``class_weights``, the mean weighted by the foreground classes' weights;
    * dice_bce → cross-entropy + that Dice loss;
    * inv_dice_bce → cross-entropy + that Dice loss + (1 − the soft Dice of the background class): the binary
      loss's "inverted Dice" is the Dice of 1 − p on 1 − y, which is exactly the background class's;
    * switching → cross-entropy + w·(1 − foreground Dice) + (1 − w)·(1 − background Dice), w = λ when the batch's
      share of foreground pixels (any class but background) is above τ, else 1 − λ: the binary rule, the foreground
      being every class but the background.

    ``ignore``: leave out the pixels whose target is < 0 (data.IGNORE_INDEX): the cross-entropy is torch's with
    ``ignore_index=-1`` (the weighted mean over the other pixels; 0 with zero gradient when there is none, where torch's
    mean would be 0/0), the probabilities and the one-hot of the Dice terms are multiplied by the valid mask (so every
    Dice sum runs over valid pixels only) and the switching share is over valid pixels. False (default): the maths
    above, untouched.
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid losses: {', '.join(LOSSES)}")
    _check_switch_params(switch_lambda, switch_tau)
    lam, tau = float(switch_lambda), float(switch_tau)
    weights = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
    if weights is not None and weights.numel() != k:
        raise ValueError(f"class_weights has {weights.numel()} values for {k} classes")
    fg_weights = None
    if weights is not None and float(weights[1:].sum()) > 0:
        fg_weights = weights[1:] / weights[1:].sum()

    def loss(logits: Tensor, target: Tensor) -> Tensor:
        with _no_autocast(logits):
            x = logits.float()
            if x.shape[1] == 1 and k == 2:
                x = torch.cat([torch.zeros_like(x), x], dim=1)
            if x.shape[1] != k or target.shape[1:] != (1, *x.shape[2:]) or target.shape[0] != x.shape[0]:
                raise ValueError(f"loss: expected logits [B, {k}, H, W] and class indices [B, 1, H, W], got "
                                 f"{list(logits.shape)} and {list(target.shape)}")
            y = target[:, 0].to(device=x.device).long()
            w = weights.to(x.device) if weights is not None else None
            if ignore:
                valid = y >= 0
                y = y.clamp_min(0)  # a class index for one_hot and the weights; the pixel is masked out below
                ce_sum = F.cross_entropy(x, torch.where(valid, y, -1), weight=w, ignore_index=-1, reduction="sum")
                count = (w[y] * valid).sum() if w is not None else valid.sum().float()
                ce = ce_sum / torch.where(count > 0, count, 1.0)  # 0 / 1 = 0 with no valid pixel, never 0 / 0
            else:
                ce = F.cross_entropy(x, y, weight=w)
            if name == "bce":
                return ce
            p = torch.softmax(x, dim=1)
            onehot = F.one_hot(y, k).permute(0, 3, 1, 2).to(p.dtype)
            if ignore:
                v = valid[:, None].to(p.dtype)
                p, onehot = p * v, onehot * v
            dims = (0, 2, 3)
            dice = (2.0 * (p * onehot).sum(dims) + 1.0) / (p.sum(dims) + onehot.sum(dims) + 1.0)  # [K]
            fg = 1.0 - ((dice[1:] * fg_weights.to(x.device)).sum() if fg_weights is not None else dice[1:].mean())
            if name == "dice":
                return fg
            if name == "dice_bce":
                return ce + fg
            bg = 1.0 - dice[0]
            if name == "inv_dice_bce":
                return ce + fg + bg
            if ignore:
                share = (y > 0).sum() / valid.sum().clamp_min(1)  # y is 0 on ignored pixels
            else:
                share = (y > 0).float().mean()
            sw = torch.where(share > tau, lam, 1.0 - lam)
            return ce + sw * fg + (1.0 - sw) * bg

    loss.__doc__ = (f"{name} for {k} classes" + (f", class weights {list(class_weights)}" if class_weights else "")
                    + (", over the valid pixels (target >= 0)" if ignore else ""))
    return loss
