"""Tests for unettui.core.learn.metrics: hard confusion counts, Dice and IoU against hand-counted examples."""

from __future__ import annotations

import pytest
import torch

from unettui.core.learn.metrics import (
    confusion_counts,
    dice_from_counts,
    iou_from_counts,
    per_image_counts,
    per_image_dice,
)

# 4x4 example. Predicted foreground (logit > 0) and truth:
#   pred          truth
#   1 1 0 0       1 1 1 0
#   1 1 0 0       1 0 0 0
#   0 0 0 0       0 0 0 0
#   0 0 0 1       0 0 0 0
# tp = (0,0) (0,1) (1,0) = 3;  fp = (1,1) (3,3) = 2;  fn = (0,2) = 1.
# Dice = 2*3 / (2*3 + 2 + 1) = 6/9;  IoU = 3 / (3 + 2 + 1) = 1/2.
PRED_LOGITS = torch.tensor(
    [
        [2.5, 0.1, -1.0, -3.0],
        [4.0, 1.0, -2.0, -0.5],
        [-1.0, -1.0, -1.0, -1.0],
        [-2.0, -2.0, -2.0, 7.0],
    ]
).view(1, 1, 4, 4)
TRUTH = torch.tensor(
    [
        [1.0, 1.0, 1.0, 0.0],
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0],
    ]
).view(1, 1, 4, 4)


def test_confusion_counts_by_hand() -> None:
    counts = confusion_counts(PRED_LOGITS, TRUTH)
    assert counts.shape == (3,)
    assert counts.dtype == torch.int64
    assert counts.device == PRED_LOGITS.device
    assert counts.tolist() == [3, 2, 1]
    assert dice_from_counts(counts) == pytest.approx(6 / 9, abs=1e-12)
    assert iou_from_counts(counts) == pytest.approx(1 / 2, abs=1e-12)
    assert dice_from_counts(3, 2, 1) == pytest.approx(6 / 9, abs=1e-12)
    assert iou_from_counts(3, 2, 1) == pytest.approx(0.5, abs=1e-12)


def test_counts_accept_numbers_sequences_and_tensors() -> None:
    assert dice_from_counts([3, 2, 1]) == pytest.approx(6 / 9)
    assert dice_from_counts((3.0, 2.0, 1.0)) == pytest.approx(6 / 9)
    assert dice_from_counts(torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)) == pytest.approx(6 / 9)
    assert dice_from_counts(torch.tensor(3), torch.tensor(2), torch.tensor(1)) == pytest.approx(6 / 9)
    assert iou_from_counts([10, 0, 30]) == pytest.approx(0.25)
    assert isinstance(dice_from_counts([3, 2, 1]), float)
    with pytest.raises(ValueError):
        dice_from_counts(3)
    with pytest.raises(ValueError):
        dice_from_counts(3, 2)
    with pytest.raises(ValueError):
        dice_from_counts([1, 2])
    with pytest.raises(ValueError):
        iou_from_counts(1, -1, 0)


def test_logit_exactly_zero_is_negative() -> None:
    # sigmoid(0) = 0.5 is not > 0.5: a zero logit on a foreground pixel is a false negative.
    logits = torch.tensor([0.0, 1e-6, -1e-6, 0.0]).view(1, 1, 2, 2)
    truth = torch.tensor([1.0, 1.0, 1.0, 0.0]).view(1, 1, 2, 2)
    assert confusion_counts(logits, truth).tolist() == [1, 0, 2]
    # The same with half precision logits (e.g. produced under autocast).
    assert confusion_counts(logits.to(torch.bfloat16), truth).tolist() == [1, 0, 2]


def test_pooled_dice_differs_from_mean_per_image_dice() -> None:
    # Image A: one target pixel, found exactly -> tp 1, fp 0, fn 0, Dice 1.
    # Image B: a 5x4 target (20 px), only its left half (10 px) predicted -> tp 10, fp 0, fn 10, Dice 20/30.
    logits = torch.full((2, 1, 8, 8), -5.0)
    truth = torch.zeros(2, 1, 8, 8)
    truth[0, 0, 6, 6] = 1.0
    logits[0, 0, 6, 6] = 5.0
    truth[1, 0, 0:5, 0:4] = 1.0
    logits[1, 0, 0:5, 0:2] = 5.0

    per_image = per_image_counts(logits, truth)
    assert per_image.shape == (2, 3) and per_image.dtype == torch.int64
    assert per_image.tolist() == [[1, 0, 0], [10, 0, 10]]
    per_dice = per_image_dice(per_image)
    assert per_dice.tolist() == pytest.approx([1.0, 2 / 3])
    mean_per_image = per_dice.mean().item()
    assert mean_per_image == pytest.approx((1 + 2 / 3) / 2)  # 0.8333

    pooled_counts = confusion_counts(logits, truth)
    assert pooled_counts.tolist() == [11, 0, 10]
    assert torch.equal(per_image.sum(0), pooled_counts)
    pooled = dice_from_counts(pooled_counts)
    assert pooled == pytest.approx(22 / 32)  # 0.6875, the project's reported Dice
    assert abs(pooled - mean_per_image) > 0.1


def test_empty_prediction_and_empty_truth_is_perfect() -> None:
    logits = torch.full((2, 1, 4, 4), -3.0)
    truth = torch.zeros(2, 1, 4, 4)
    counts = confusion_counts(logits, truth)
    assert counts.tolist() == [0, 0, 0]
    assert dice_from_counts(counts) == 1.0
    assert iou_from_counts(counts) == 1.0
    assert dice_from_counts(0, 0, 0) == 1.0
    assert per_image_dice(per_image_counts(logits, truth)).tolist() == [1.0, 1.0]
    # ... but predicting something on an empty truth scores 0.
    logits[1, 0, 0, 0] = 1.0
    counts = confusion_counts(logits, truth)
    assert counts.tolist() == [0, 1, 0]
    assert dice_from_counts(counts) == 0.0
    assert iou_from_counts(counts) == 0.0
    assert per_image_dice(per_image_counts(logits, truth)).tolist() == [1.0, 0.0]


def test_counts_accumulate_across_batches() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 1, 16, 16, generator=gen)
    truth = (torch.rand(6, 1, 16, 16, generator=gen) > 0.6).float()
    total = torch.zeros(3, dtype=torch.int64)
    for start in range(0, 6, 4):  # batches of 4 and 2
        total += confusion_counts(logits[start : start + 4], truth[start : start + 4])
    assert torch.equal(total, confusion_counts(logits, truth))
    pred, t = logits > 0, truth > 0.5
    assert total.tolist() == [int((pred & t).sum()), int((pred & ~t).sum()), int((~pred & t).sum())]
    assert total.sum().item() < 6 * 16 * 16  # true negatives are not counted


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="same shape"):
        confusion_counts(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError):
        per_image_dice(torch.zeros(3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_counts_stay_on_cuda_without_syncs() -> None:
    logits = PRED_LOGITS.cuda()
    truth = TRUTH.cuda()
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")  # any GPU->CPU synchronisation raises
    try:
        total = confusion_counts(logits, truth) + confusion_counts(logits, truth)
        per_image = per_image_counts(logits, truth)
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    assert total.device.type == "cuda" and per_image.device.type == "cuda"
    assert total.tolist() == [6, 4, 2]
    assert per_image.tolist() == [[3, 2, 1]]
