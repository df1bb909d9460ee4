"""Tests for unettui.core.learn.losses: every loss against a value worked out by hand with plain math."""

from __future__ import annotations

import math

import pytest
import torch

from unettui.core.learn.losses import (
    LOSSES,
    bce_loss,
    dice_bce_loss,
    dice_coef,
    dice_loss,
    inv_dice_bce_loss,
    make_loss,
    soft_dice_loss,
    switching_loss,
)


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# The 1x1x2x2 example:  logits [[0, 2], [-1, 3]],  target [[0, 1], [1, 1]]  (foreground fraction 3/4).
LOGITS = torch.tensor([[[[0.0, 2.0], [-1.0, 3.0]]]])
TARGET = torch.tensor([[[[0.0, 1.0], [1.0, 1.0]]]])
P = [sig(0.0), sig(2.0), sig(-1.0), sig(3.0)]  # 0.5, 0.8808, 0.2689, 0.9526
Y = [0.0, 1.0, 1.0, 1.0]

# BCE per pixel: -log(1 - p) where y = 0, -log(p) where y = 1; then the mean over the 4 pixels.
BCE = (-math.log(1 - P[0]) - math.log(P[1]) - math.log(P[2]) - math.log(P[3])) / 4
# Foreground soft Dice, smooth 1: sum(p*y) = p1+p2+p3, sum(p) = p0+p1+p2+p3, sum(y) = 3.
SUM_P = P[0] + P[1] + P[2] + P[3]
DICE_FG = (2 * (P[1] + P[2] + P[3]) + 1) / (SUM_P + 3 + 1)
# Background Dice: 1-p against 1-y; only pixel 0 is background: sum((1-p)(1-y)) = 1 - p0,
# sum(1-p) = 4 - sum(p), sum(1-y) = 1.
DICE_BG = (2 * (1 - P[0]) + 1) / ((4 - SUM_P) + 1 + 1)


def close(value: torch.Tensor, expected: float, tol: float = 1e-6) -> bool:
    return abs(value.item() - expected) <= tol


def test_hand_values_are_sane() -> None:
    # Guard the formulas above against typos with values worked out on paper:
    # p = 0.5, 0.880797, 0.268941, 0.952574; -log terms 0.693147 + 0.126928 + 1.313262 + 0.048587 = 2.181924.
    assert BCE == pytest.approx(2.181924 / 4, abs=1e-6)
    # sum(p*y) = 2.102312, sum(p) = 2.602312: (2 * 2.102312 + 1) / (2.602312 + 4)
    assert DICE_FG == pytest.approx(5.204624 / 6.602312, abs=1e-6)
    # (2 * 0.5 + 1) / (1.397688 + 2)
    assert DICE_BG == pytest.approx(2 / 3.397688, abs=1e-6)


def test_bce_by_hand() -> None:
    assert close(bce_loss(LOGITS, TARGET), BCE)
    assert close(make_loss("bce")(LOGITS, TARGET), BCE)


def test_bce_is_stable_for_huge_logits() -> None:
    # -log(1 - sigmoid(100)) = 100 + log(1 + e^-100) = 100 (to double precision); naive log(sigmoid) gives inf.
    logits = torch.tensor([[[[100.0, -100.0]]]])
    target = torch.tensor([[[[0.0, 1.0]]]])
    value = bce_loss(logits, target)
    assert math.isfinite(value.item())
    assert value.item() == pytest.approx(100.0, rel=1e-6)


def test_dice_coef_and_dice_loss_by_hand() -> None:
    p = torch.sigmoid(LOGITS)
    assert close(dice_coef(p, TARGET), DICE_FG)
    assert close(dice_loss(p, TARGET), 1 - DICE_FG)
    # smooth is a parameter: with smooth 0 it is 2*sum(p*y) / (sum(p) + sum(y)).
    no_smooth = 2 * (P[1] + P[2] + P[3]) / (SUM_P + 3)
    assert close(dice_coef(p, TARGET, smooth=0.0), no_smooth)


def test_dice_loss_on_logits_by_hand() -> None:
    assert close(soft_dice_loss(LOGITS, TARGET), 1 - DICE_FG)
    assert close(make_loss("dice")(LOGITS, TARGET), 1 - DICE_FG)


def test_dice_bce_by_hand() -> None:
    expected = BCE + (1 - DICE_FG)
    assert close(dice_bce_loss(LOGITS, TARGET), expected)
    assert close(make_loss("dice_bce")(LOGITS, TARGET), expected)


def test_inv_dice_bce_by_hand() -> None:
    expected = BCE + (1 - DICE_FG) + (1 - DICE_BG)
    assert close(inv_dice_bce_loss(LOGITS, TARGET), expected)
    assert close(make_loss("inv_dice_bce")(LOGITS, TARGET), expected)


def test_dice_sums_over_the_whole_batch_not_per_image() -> None:
    # Image A is the example above; image B predicts logit 1 everywhere on an empty target.
    logits = torch.cat([LOGITS, torch.ones(1, 1, 2, 2)])
    target = torch.cat([TARGET, torch.zeros(1, 1, 2, 2)])
    s1 = sig(1.0)
    pooled = (2 * (P[1] + P[2] + P[3]) + 1) / (SUM_P + 4 * s1 + 3 + 1)
    per_image_mean = (DICE_FG + (0 + 1) / (4 * s1 + 0 + 1)) / 2
    assert abs(pooled - per_image_mean) > 0.02  # the two definitions really differ here
    assert close(soft_dice_loss(logits, target), 1 - pooled)
    assert not close(soft_dice_loss(logits, target), 1 - per_image_mean, tol=0.01)


def test_switching_above_tau_weights_foreground_dice_by_lambda() -> None:
    # Foreground fraction 3/4 > tau = 0.05:  bce + 0.75 (1 - dice_fg) + 0.25 (1 - dice_bg).
    expected = BCE + 0.75 * (1 - DICE_FG) + 0.25 * (1 - DICE_BG)
    swapped = BCE + 0.25 * (1 - DICE_FG) + 0.75 * (1 - DICE_BG)
    assert abs(expected - swapped) > 1e-3
    assert close(switching_loss(LOGITS, TARGET), expected)
    assert close(make_loss("switching")(LOGITS, TARGET), expected)
    # Raising tau above 3/4 puts the same batch in the other branch: the weights swap.
    assert close(switching_loss(LOGITS, TARGET, lam=0.75, tau=0.8), swapped)
    assert close(make_loss("switching", switch_lambda=0.75, switch_tau=0.8)(LOGITS, TARGET), swapped)


def test_switching_below_tau_swaps_the_weights() -> None:
    # 5x5 image, one foreground pixel (fraction 1/25 = 0.04 <= tau = 0.05).
    # Logits: 23 background pixels at -2, the foreground pixel at 1, one background pixel at 0.5.
    logits = torch.full((1, 1, 5, 5), -2.0)
    target = torch.zeros(1, 1, 5, 5)
    logits[0, 0, 2, 2] = 1.0
    target[0, 0, 2, 2] = 1.0
    logits[0, 0, 0, 4] = 0.5
    a, b, c = sig(-2.0), sig(1.0), sig(0.5)
    bce = (23 * -math.log(1 - a) - math.log(b) - math.log(1 - c)) / 25
    sum_p = 23 * a + b + c
    dice_fg = (2 * b + 1) / (sum_p + 1 + 1)
    dice_bg = (2 * (23 * (1 - a) + (1 - c)) + 1) / ((25 - sum_p) + 24 + 1)
    expected = bce + 0.25 * (1 - dice_fg) + 0.75 * (1 - dice_bg)
    unswapped = bce + 0.75 * (1 - dice_fg) + 0.25 * (1 - dice_bg)
    assert abs(expected - unswapped) > 1e-3
    assert close(switching_loss(logits, target), expected)
    assert close(make_loss("switching")(logits, target), expected)
    # With tau below 0.04 the batch counts as "enough foreground" again.
    assert close(switching_loss(logits, target, lam=0.75, tau=0.01), unswapped)
    # lambda = 0.5 weights both Dice terms equally, so the branch does not matter.
    assert close(switching_loss(logits, target, lam=0.5), bce + 0.5 * (1 - dice_fg) + 0.5 * (1 - dice_bg))


def test_switching_uses_the_batch_foreground_fraction() -> None:
    # Two 5x5 images: 0.2 and 0.0 foreground -> batch fraction 0.1 > 0.05, so the "above" branch
    # applies to the whole batch even though the second image alone is empty.
    logits = torch.zeros(2, 1, 5, 5)
    target = torch.zeros(2, 1, 5, 5)
    target[0, 0, 0, :] = 1.0
    bce = -math.log(0.5)
    dice_fg = (2 * 5 * 0.5 + 1) / (50 * 0.5 + 5 + 1)
    dice_bg = (2 * 45 * 0.5 + 1) / (50 * 0.5 + 45 + 1)
    assert close(switching_loss(logits, target), bce + 0.75 * (1 - dice_fg) + 0.25 * (1 - dice_bg))


@pytest.mark.parametrize("name", LOSSES)
def test_gradients_flow_and_are_finite(name: str) -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 1, 8, 8, generator=gen).requires_grad_()
    target = (torch.rand(2, 1, 8, 8, generator=gen) > 0.7).float()
    loss = make_loss(name)(logits, target)
    assert loss.dim() == 0 and loss.dtype == torch.float32
    loss.backward()
    assert logits.grad is not None
    assert torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum().item() > 0
    # Gradient descent on the logits lowers the loss.
    with torch.no_grad():
        stepped = logits - 1.0 * logits.grad / logits.grad.abs().max()
    assert make_loss(name)(stepped, target).item() < loss.item()


@pytest.mark.parametrize("name", LOSSES)
def test_perfect_prediction_gives_zero_loss(name: str) -> None:
    target = torch.zeros(2, 1, 8, 8)
    target[0, 0, 2:6, 1:5] = 1.0
    target[1, 0, 0, :] = 1.0
    logits = 20.0 * (2 * target - 1)  # large, with the correct sign everywhere
    assert make_loss(name)(logits, target).item() < 1e-6
    assert make_loss(name)(-logits, target).item() > 0.9  # and the opposite prediction is bad


def test_dice_loss_of_perfect_probabilities_is_zero() -> None:
    y = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]])
    assert dice_loss(y.clone(), y).item() == pytest.approx(0.0, abs=1e-7)
    # ... and of the exact opposite it is 1 - 1/(2 + 2 + 1) = 0.8
    assert dice_loss(1 - y, y).item() == pytest.approx(0.8, abs=1e-7)


@pytest.mark.parametrize("name", LOSSES)
def test_losses_are_float32_under_autocast(name: str) -> None:
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 1, 8, 8, generator=gen).to(torch.bfloat16)
    target = (torch.rand(2, 1, 8, 8, generator=gen) > 0.5).float()
    reference = make_loss(name)(logits.float(), target)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        value = make_loss(name)(logits, target)
    assert value.dtype == torch.float32
    assert close(value, reference.item())


def test_make_loss_rejects_unknown_names_and_bad_parameters() -> None:
    with pytest.raises(ValueError) as info:
        make_loss("dyce")
    message = str(info.value)
    assert "dyce" in message
    assert all(name in message for name in LOSSES)
    with pytest.raises(ValueError, match="lambda"):
        make_loss("switching", switch_lambda=1.5)
    with pytest.raises(ValueError, match="tau"):
        make_loss("switching", switch_tau=-0.1)
    with pytest.raises(ValueError, match="same shape"):
        bce_loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_switching_loss_does_not_synchronise_cuda() -> None:
    logits = torch.randn(2, 1, 16, 16, device="cuda", requires_grad=True)
    target = (torch.rand(2, 1, 16, 16, device="cuda") > 0.9).float()
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")  # any GPU->CPU synchronisation raises
    try:
        for name in LOSSES:
            make_loss(name)(logits, target).backward()
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    assert torch.isfinite(logits.grad).all()
