"""Ignored pixels (mask value -1, data.IGNORE_INDEX: padding that is not part of the image) are left out of the losses
(``ignore=True``), the counts, augmentation (``ignore=True``) and the boundary metrics: with nothing ignored every
number is the usual one; with the right half of every mask ignored every number is the left half's alone, whatever
the logits or predictions on the right half; ignored pixels get no gradient; an all-ignored batch is finite."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from unettui.core.define.config import Config
from unettui.core.learn.augment import AugmentSpec, augment_batch, rotate_batch
from unettui.core.learn.boundary import BoundaryAccumulator
from unettui.core.learn.data import IGNORE_INDEX
from unettui.core.learn.losses import LOSSES, make_loss, multiclass_loss
from unettui.core.learn.metrics import confusion_counts, per_image_counts
from unettui.core.learn.pack import PackLoss
from unettui.core.learn.task import task_of

B, H, W = 3, 10, 12
TASKS = {
    "binary": dict(),
    "binary-weighted": dict(class_weights=(0.5, 2.0)),
    "3-class": dict(num_classes=3),
    "3-class-weighted": dict(num_classes=3, class_weights=(0.2, 1.0, 3.0)),
}
CASES = [(task, name) for task in sorted(TASKS) for name in LOSSES]


def task_for(task: str, name: str):
    return task_of(Config(loss=name, switch_lambda=0.6, switch_tau=0.1, **TASKS[task]))


def batch(k: int, seed: int = 0, b: int = B) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, 1 if k == 2 else k, H, W, generator=g) * 2
    targets = torch.randint(0, k, (b, 1, H, W), generator=g).float()
    return logits, targets


def right_half_ignored(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch with its right half's targets -1 and wild logits there (which must not matter)."""
    logits, targets = logits.clone(), targets.clone()
    targets[..., W // 2:] = IGNORE_INDEX
    logits[..., W // 2:] = torch.linspace(-40.0, 40.0, logits[..., W // 2:].numel()).reshape(logits[..., W // 2:].shape)
    return logits, targets


def test_ignore_index_is_minus_one() -> None:
    assert IGNORE_INDEX == -1


# ---- losses -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("task,name", CASES)
def test_with_nothing_ignored_the_ignore_loss_is_the_loss(task, name) -> None:
    t = task_for(task, name)
    logits, targets = batch(t.k, seed=1)
    targets[0] = 0  # an image of background only (switching's other branch for some batches)
    x1 = logits.clone().requires_grad_()
    x2 = logits.clone().requires_grad_()
    plain, ignoring = t.loss_fn(x1, targets), t.ignore_loss_fn(x2, targets)
    assert_close(ignoring, plain)
    (g1,) = torch.autograd.grad(plain, x1)
    (g2,) = torch.autograd.grad(ignoring, x2)
    assert_close(g2, g1)
    # switching's both branches: a batch of background only too
    zeros = torch.zeros_like(targets)
    assert_close(t.ignore_loss_fn(logits, zeros), t.loss_fn(logits, zeros))


@pytest.mark.parametrize("name", LOSSES)
def test_make_loss_and_multiclass_loss_take_ignore(name) -> None:
    logits, targets = batch(2, seed=2)
    assert make_loss(name, 0.6, 0.1, ignore=False) is make_loss(name, 0.6, 0.1) or name == "switching"
    assert_close(make_loss(name, 0.6, 0.1, ignore=True)(logits, targets), make_loss(name, 0.6, 0.1)(logits, targets))
    assert_close(multiclass_loss(name, 2, 0.6, 0.1, ignore=True)(logits, targets),
                 make_loss(name, 0.6, 0.1)(logits, targets))
    with pytest.raises(ValueError, match="unknown loss"):
        make_loss("nope", ignore=True)
    with pytest.raises(ValueError, match="lambda"):
        make_loss(name, 2.0, 0.1, ignore=True)


@pytest.mark.parametrize("task,name", CASES)
def test_an_ignored_right_half_gives_the_left_halfs_loss_and_no_gradient(task, name) -> None:
    t = task_for(task, name)
    logits, targets = batch(t.k, seed=3)
    padded_logits, padded_targets = right_half_ignored(logits, targets)
    x = padded_logits.clone().requires_grad_()
    loss = t.ignore_loss_fn(x, padded_targets)
    left = logits[..., : W // 2].clone().requires_grad_()
    expected = t.loss_fn(left, targets[..., : W // 2])
    assert_close(loss, expected)
    (g,) = torch.autograd.grad(loss, x)
    (g_left,) = torch.autograd.grad(expected, left)
    assert torch.equal(g[..., W // 2:], torch.zeros_like(g[..., W // 2:]))  # exactly 0, not just small
    assert_close(g[..., : W // 2], g_left)


def test_bce_and_dice_over_the_valid_pixels_by_hand() -> None:
    # logits [[0, 2], [-1, 3]], target [[0, 1], [-1, 1]]: the pixel of logit -1 is ignored
    logits = torch.tensor([[[[0.0, 2.0], [-1.0, 3.0]]]])
    target = torch.tensor([[[[0.0, 1.0], [-1.0, 1.0]]]])
    p = [1 / (1 + math.exp(-v)) for v in (0.0, 2.0, 3.0)]
    bce = (-math.log(1 - p[0]) - math.log(p[1]) - math.log(p[2])) / 3  # the mean over 3 pixels, not 4
    dice = (2 * (p[1] + p[2]) + 1) / (sum(p) + 2 + 1)
    inverted = (2 * (1 - p[0]) + 1) / ((3 - sum(p)) + 1 + 1)
    assert make_loss("bce", ignore=True)(logits, target).item() == pytest.approx(bce, abs=1e-6)
    assert make_loss("dice", ignore=True)(logits, target).item() == pytest.approx(1 - dice, abs=1e-6)
    assert make_loss("inv_dice_bce", ignore=True)(logits, target).item() == pytest.approx(
        bce + (1 - dice) + (1 - inverted), abs=1e-6)
    # foreground fraction 2/3 over the valid pixels (2/4 over all four): tau = 0.6 sits between them
    w = 0.75
    assert make_loss("switching", 0.75, 0.6, ignore=True)(logits, target).item() == pytest.approx(
        bce + w * (1 - dice) + (1 - w) * (1 - inverted), abs=1e-6)


@pytest.mark.parametrize("task,name", CASES)
def test_an_all_ignored_batch_is_zero_and_finite_with_zero_gradient(task, name) -> None:
    t = task_for(task, name)
    logits, _ = batch(t.k, seed=4)
    x = logits.requires_grad_()
    loss = t.ignore_loss_fn(x, torch.full((B, 1, H, W), float(IGNORE_INDEX)))
    assert torch.isfinite(loss) and loss.item() == 0.0
    (g,) = torch.autograd.grad(loss, x)
    assert torch.equal(g, torch.zeros_like(g))


# ---- counts -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1])
def test_binary_counts_skip_ignored_pixels_exactly(seed) -> None:
    logits, targets = batch(2, seed=seed)
    padded_logits, padded_targets = right_half_ignored(logits, targets)
    left_logits, left_targets = logits[..., : W // 2], targets[..., : W // 2]
    assert torch.equal(confusion_counts(padded_logits, padded_targets), confusion_counts(left_logits, left_targets))
    assert torch.equal(per_image_counts(padded_logits, padded_targets), per_image_counts(left_logits, left_targets))
    for sign in (1.0, -1.0):  # every ignored pixel predicted foreground, then background: still nothing counted
        wild = padded_logits.clone()
        wild[..., W // 2:] = sign * 5.0
        assert torch.equal(confusion_counts(wild, padded_targets), confusion_counts(left_logits, left_targets))
    t = task_for("binary", "dice_bce")
    assert torch.equal(t.counts(padded_logits, padded_targets), t.counts(left_logits, left_targets))
    assert torch.equal(t.member_counts(padded_logits[None], padded_targets[None]),
                       t.member_counts(left_logits[None], left_targets[None]))
    # nothing ignored: the counts of old (pred & truth, pred & ~truth, ~pred & truth)
    pred, truth = logits > 0, targets > 0.5
    old = torch.stack([(pred & truth).sum(), (pred & ~truth).sum(), (~pred & truth).sum()])
    assert torch.equal(confusion_counts(logits, targets), old)


@pytest.mark.parametrize("k", [3, 5])
def test_multiclass_counts_skip_ignored_pixels_exactly(k) -> None:
    t = task_of(Config(num_classes=k))
    n = 2
    logits = torch.randn(n, B, k, H, W, generator=torch.Generator().manual_seed(k)) * 3
    targets = torch.randint(0, k, (n, B, 1, H, W), generator=torch.Generator().manual_seed(k + 1)).float()
    padded_targets = targets.clone()
    padded_targets[..., W // 2:] = IGNORE_INDEX
    left_logits, left_targets = logits[..., : W // 2], targets[..., : W // 2]
    member = t.member_counts(logits, padded_targets)
    assert member.shape == (n, k - 1, 3)
    assert torch.equal(member, t.member_counts(left_logits, left_targets))
    for i in range(n):
        assert torch.equal(t.counts(logits[i], padded_targets[i]), t.counts(left_logits[i], left_targets[i]))
    # an independent count on the left half
    pred = logits[..., : W // 2].argmax(2)
    truth = left_targets[:, :, 0].long()
    for c in range(1, k):
        tp = ((pred == c) & (truth == c)).sum((1, 2, 3))
        fp = ((pred == c) & (truth != c)).sum((1, 2, 3))
        fn = ((pred != c) & (truth == c)).sum((1, 2, 3))
        assert torch.equal(member[:, c - 1], torch.stack([tp, fp, fn], dim=-1))


# ---- augmentation -------------------------------------------------------------------------------------------------
def padded_batch(k: int = 2, b: int = 6, size: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and masks of a letterboxed batch: rows 0-3 and 12-15 and columns 13-15 are padding (-1)."""
    g = torch.Generator().manual_seed(seed)
    masks = torch.randint(0, k, (b, 1, size, size), generator=g).float()
    images = torch.rand(b, 2, size, size, generator=g)
    masks[..., :4, :] = IGNORE_INDEX
    masks[..., 12:, :] = IGNORE_INDEX
    masks[..., :, 13:] = IGNORE_INDEX
    images = torch.where(masks >= 0, images, torch.zeros_like(images))
    return images, masks


@pytest.mark.parametrize("k", [2, 3])
def test_augment_without_ignore_is_bit_identical_and_draws_the_same_numbers(k) -> None:
    images, masks = padded_batch(k)
    images = images[:, :1] if k == 2 else images
    spec = AugmentSpec(rotate=30.0, hflip=0.5, vflip=0.5)
    g1, g2, g3 = (torch.Generator().manual_seed(7) for _ in range(3))
    clean = masks.clamp_min(0)
    for m in (clean, masks):
        a = augment_batch(images, m, spec, g1, num_classes=k)
        b = augment_batch(images, m, spec, g2, num_classes=k, ignore=False)
        c = augment_batch(images, m, spec, g3, num_classes=k, ignore=True)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        assert torch.equal(a[0], c[0])  # the images are the same with ignore; only the masks differ
    assert torch.equal(g1.get_state(), g2.get_state()) and torch.equal(g1.get_state(), g3.get_state())
    angles = torch.tensor([0.0, 17.0, -45.0, 90.0, 120.0, 3.0])
    for m in (clean, masks):
        a = rotate_batch(images, m, angles, num_classes=k)
        b = rotate_batch(images, m, angles, num_classes=k, ignore=False)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("k", [2, 3])
def test_flips_keep_minus_one_exactly_on_the_flipped_padding(k) -> None:
    images, masks = padded_batch(k)
    for spec, dims in ((AugmentSpec(hflip=1.0), [-1]), (AugmentSpec(vflip=1.0), [-2]),
                       (AugmentSpec(hflip=1.0, vflip=1.0), [-1, -2])):
        out_images, out_masks = augment_batch(images, masks, spec, torch.Generator().manual_seed(0), k, ignore=True)
        assert torch.equal(out_masks, masks.flip(dims))
        assert torch.equal(out_masks < 0, (masks < 0).flip(dims))
        assert torch.equal(out_images, images.flip(dims))


@pytest.mark.parametrize("k", [2, 3])
def test_rotation_by_90_degrees_puts_minus_one_on_the_rotated_padding(k) -> None:
    images, masks = padded_batch(k)
    for turns in (1, 2, 3, -1):
        angles = torch.full((images.shape[0],), 90.0 * turns)
        out_images, out_masks = rotate_batch(images, masks, angles, num_classes=k, ignore=True)
        expected = torch.rot90(masks, turns, dims=(-2, -1))
        assert torch.equal(out_masks, expected)  # -1 exactly on the rotated padding, every class where it was
        assert_close(out_images, torch.rot90(images, turns, dims=(-2, -1)), atol=1e-5, rtol=0)
    # an angle of 0 changes nothing
    assert torch.equal(rotate_batch(images, masks, torch.zeros(images.shape[0]), num_classes=k, ignore=True)[1],
                       masks)


@pytest.mark.parametrize("k", [2, 3])
def test_any_rotation_keeps_labels_valid_and_marks_what_came_from_outside_as_ignored(k) -> None:
    size = 32
    masks = torch.zeros(2, 1, size, size)
    masks[:, :, 8:24, 8:24] = 1.0
    if k == 3:
        masks[:, :, 12:20, 12:20] = 2.0
    images = masks / k + 0.1
    angles = torch.tensor([45.0, -30.0])
    plain = rotate_batch(images, masks, angles, num_classes=k)[1]
    _, rotated = rotate_batch(images, masks, angles, num_classes=k, ignore=True)
    assert set(rotated.unique().tolist()) <= set(range(-1, k))
    # the corners came from outside the patch: not image, so ignored (0, background, without ignore)
    for r, c in ((0, 0), (0, size - 1), (size - 1, 0), (size - 1, size - 1)):
        assert (rotated[:, 0, r, c] == IGNORE_INDEX).all() and (plain[:, 0, r, c] == 0).all()
    # inside, away from the edges, the classes are the ones rotated without ignore
    centre = slice(8, 24)
    assert torch.equal(rotated[..., centre, centre], plain[..., centre, centre])
    # a padded border is never turned into background or foreground
    images_p, masks_p = padded_batch(k, b=2, size=size)
    _, out = rotate_batch(images_p, masks_p, angles, num_classes=k, ignore=True)
    plain_valid = rotate_batch(images_p, (masks_p >= 0).float(), angles)[1]  # the valid map rotated as a mask
    assert not (out >= 0)[plain_valid == 0].any()  # what was padding stays ignored (the 0.99 rule is stricter)
    assert (out >= 0).sum() < (plain_valid == 1).sum()


# ---- boundary metrics ---------------------------------------------------------------------------------------------
def test_boundary_scores_of_a_padded_image_are_the_cropped_images() -> None:
    rng = np.random.default_rng(0)
    h, w = 20, 30
    truth = np.zeros((h, w), dtype=np.int64)
    truth[4:12, 5:20] = 1
    truth[14:18, 22:28] = 2
    pred = np.zeros((h, w), dtype=np.int64)
    pred[5:13, 6:18] = 1
    pred[13:19, 21:29] = 2
    pred[0:2, 0:3] = 1  # a false structure on the image's corner
    cropped = BoundaryAccumulator(("a", "b"))
    cropped.add(truth, pred)
    padded_truth = np.full((40, 40), IGNORE_INDEX, dtype=np.int64)
    padded_pred = rng.integers(0, 3, (40, 40))  # whatever the model says on the padding
    padded_truth[10:30, 5:35] = truth
    padded_pred[10:30, 5:35] = pred
    padded = BoundaryAccumulator(("a", "b"))
    padded.add(np.stack([padded_truth, np.full((40, 40), IGNORE_INDEX)]), np.stack([padded_pred, padded_pred]))
    assert padded.result() == cropped.result()
    assert padded.images == cropped.images == 1  # the all-ignored image is skipped
    assert cropped.result()["hd95_a"] > 0 and cropped.result()["nsd_a"] < 1


def test_boundary_treats_ignored_pixels_inside_the_box_as_background() -> None:
    truth = np.zeros((12, 12), dtype=np.int64)
    truth[2:8, 2:8] = 1
    pred = truth.copy()
    holed_truth, holed_pred = truth.copy(), pred.copy()
    holed_truth[0:3, 9:12] = IGNORE_INDEX  # a notch of padding in the corner: the box is still the whole image
    holed_pred[0:3, 9:12] = 1  # predicted foreground there, but it is not image
    a, b = BoundaryAccumulator(("fg",)), BoundaryAccumulator(("fg",))
    a.add(truth, pred)
    b.add(holed_truth, holed_pred)
    assert b.result() == a.result()
    assert a.result()["hd95_fg"] == 0.0 and a.result()["nsd_fg"] == 1.0


# ---- pack ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("task", sorted(TASKS))
def test_pack_loss_with_ignore_is_the_members_ignore_losses(task) -> None:
    cfgs = [Config(loss=name, switch_lambda=0.6, switch_tau=0.1, **TASKS[task]) for name in LOSSES]
    tasks = [task_of(c) for c in cfgs]
    k = tasks[0].k
    g = torch.Generator().manual_seed(5)
    logits = (torch.randn(len(cfgs), B, 1 if k == 2 else k, H, W, generator=g) * 2).requires_grad_()
    targets = torch.randint(0, k, (len(cfgs), B, 1, H, W), generator=g).float()
    targets[..., W // 2:] = IGNORE_INDEX
    targets[1, 0, :, :2] = IGNORE_INDEX  # one member with more ignored pixels
    pack_loss = PackLoss.from_members(cfgs, tasks, ignore=True)
    assert not pack_loss.fused
    packed = pack_loss(logits, targets)
    solo = torch.stack([t.ignore_loss_fn(logits[i], targets[i]) for i, t in enumerate(tasks)])
    assert torch.equal(packed, solo) and torch.isfinite(packed).all()
    (g_pack,) = torch.autograd.grad(packed.sum(), logits)
    assert torch.equal(g_pack[..., W // 2:], torch.zeros_like(g_pack[..., W // 2:]))
    # without ignore: the pack's loss as before (fused where it was)
    assert PackLoss.from_members(cfgs, tasks).fused == (task == "binary")
