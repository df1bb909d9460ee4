"""One task definition behind the solo trainer and the pack: for EVERY loss in LOSSES and every task (binary, binary
with class weights, 3 classes, 3 classes with class weights) a pack's loss is its members' solo losses in float64,
values and gradients; the fused path equals the generic one; a loss without a fused path falls back to the generic
one; per-class counts agree with an independent computation; a pack of multi-class members equals their solo runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unettui.core.define.config import Config
from unettui.core.learn import pack as pack_module
from unettui.core.learn.losses import LOSSES, make_loss, multiclass_loss
from unettui.core.learn.pack import PackLoss
from unettui.core.learn.task import task_of

B, S = 3, 12
TASKS = {
    "binary": dict(),
    "binary-weighted": dict(class_weights=(0.5, 2.0)),
    "3-class": dict(num_classes=3),
    "3-class-weighted": dict(num_classes=3, class_weights=(0.2, 1.0, 3.0)),
}


def batch(k: int, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    channels = 1 if k == 2 else k
    logits = (torch.randn(n, B, channels, S, S, generator=g, dtype=torch.float64) * 2).requires_grad_()
    targets = torch.randint(0, k, (n, B, 1, S, S), generator=g).to(torch.float64)
    targets[0, 0] = 0  # a member's image with background only (switching's other branch for some members)
    return logits, targets


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_loss_of_a_pack_is_its_members_solo_loss_in_float64(task):
    cfgs = [Config(loss=name, switch_lambda=0.6, switch_tau=0.1, **TASKS[task]) for name in LOSSES]
    tasks = [task_of(c) for c in cfgs]
    k = tasks[0].k
    logits, targets = batch(k, len(cfgs))
    packed = PackLoss.from_members(cfgs, tasks)(logits, targets)
    (g_pack,) = torch.autograd.grad(packed.sum(), logits)
    solo = torch.stack([t.loss_fn(logits[i], targets[i]) for i, t in enumerate(tasks)])
    (g_solo,) = torch.autograd.grad(solo.sum(), logits)
    assert packed.shape == (len(LOSSES),) and torch.isfinite(packed).all()
    assert torch.equal(packed, solo)
    # the fused path (binary, unweighted) sums its backward's float32 terms in another order: 1e-10 of gradients of 1e-3
    assert (g_pack - g_solo).abs().max() <= 1e-7 * g_solo.abs().max()
    if not PackLoss.from_members(cfgs, tasks).fused:
        assert torch.equal(g_pack, g_solo)
    # each loss is a different function of the same logits (no loss silently computed as another)
    assert len({round(float(v), 6) for v in packed.detach()}) == len(LOSSES)


def test_the_fused_path_equals_the_generic_path_for_every_binary_loss():
    specs = [(name, 0.6, 0.1) for name in LOSSES]
    logits, targets = batch(2, len(specs), seed=1)
    fused = PackLoss(specs)
    generic = PackLoss(specs, [make_loss(*s) for s in specs], fused=False)
    assert fused.fused and not generic.fused
    a, b = fused(logits, targets), generic(logits, targets)
    (ga,) = torch.autograd.grad(a.sum(), logits)
    (gb,) = torch.autograd.grad(b.sum(), logits)
    assert torch.equal(a, b)
    assert (ga - gb).abs().max() <= 1e-7 * gb.abs().max()  # float32 backward terms summed in another order


def test_a_loss_without_a_fused_path_falls_back_to_the_generic_one(monkeypatch):
    monkeypatch.setattr(pack_module, "FUSED", {k: v for k, v in pack_module.FUSED.items() if k != "switching"})
    specs = [("switching", 0.6, 0.1), ("dice", 0.75, 0.05)]
    loss = PackLoss(specs)
    assert not loss.fused
    logits, targets = batch(2, 2, seed=2)
    want = torch.stack([make_loss(*specs[0])(logits[0], targets[0]), make_loss(*specs[1])(logits[1], targets[1])])
    assert torch.equal(loss(logits, targets), want)


@pytest.mark.parametrize("name", LOSSES)
def test_each_multiclass_loss_with_two_classes_is_the_binary_loss(name):
    logits, targets = batch(2, 1, seed=3)
    binary = make_loss(name, 0.6, 0.1)(logits[0], targets[0])
    general = multiclass_loss(name, 2, 0.6, 0.1)(logits[0], targets[0])
    assert float(general.detach()) == pytest.approx(float(binary.detach()), rel=1e-6, abs=1e-6)


def test_per_class_counts_agree_with_an_independent_computation():
    task = task_of(Config(num_classes=4))
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(5, 4, 9, 7, generator=g)
    target = torch.randint(0, 4, (5, 1, 9, 7), generator=g).float()
    got = task.counts(logits, target).tolist()
    pred, truth = logits.argmax(1).numpy(), target[:, 0].long().numpy()
    for c in range(1, 4):
        tp = int(np.sum((pred == c) & (truth == c)))
        fp = int(np.sum((pred == c) & (truth != c)))
        fn = int(np.sum((pred != c) & (truth == c)))
        assert got[c - 1] == [tp, fp, fn]
    per_image = task.member_counts(logits[:, None], target[:, None])  # each image as a member of its own
    assert per_image.shape == (5, 3, 3) and per_image.sum(0).tolist() == got
    scores = task.scores(0.5, got)
    dice = {c: 2 * r[0] / (2 * r[0] + r[1] + r[2]) for c, r in zip(("c1", "c2", "c3"), got)}
    assert scores.classes["dice_c2"] == pytest.approx(dice["c2"])
    assert scores.dice == pytest.approx(sum(dice.values()) / 3)
    assert scores.classes["dice_min"] == pytest.approx(min(dice.values()))


def test_a_class_in_no_image_and_never_predicted_has_no_score_and_stays_out_of_the_mean():
    task = task_of(Config(num_classes=3, class_names=("background", "cavity", "ring")))
    scores = task.scores(0.1, [[30, 10, 0], [0, 0, 0]])
    assert scores.classes["dice_ring"] is None and scores.classes["iou_ring"] is None
    assert scores.dice == pytest.approx(60 / 70) and scores.classes["dice_min"] == pytest.approx(60 / 70)
    missed = task.scores(0.1, [[30, 10, 0], [0, 0, 5]])  # in the truth, never predicted: 0, and counted
    assert missed.classes["dice_ring"] == 0.0 and missed.dice == pytest.approx(30 / 70)
    assert task_of(Config()).scores(0.0, [[0, 0, 0]]).dice == 1.0  # binary keeps its rule: both empty is 1.0


HEART = dict(device="cpu", dataset="synthetic:heart", num_classes=3, image_size=32, base_channels=4, depth=2,
             batch_size=4, num_images=20, test_fraction=0.2, preview_count=1, epochs=2)


@pytest.mark.usefixtures("one_thread")
def test_a_pack_of_multiclass_members_with_every_loss_equals_their_solo_runs_in_float64(tmp_path):
    from unettui.core.learn.pack_train import PackTrainer
    from unettui.core.learn.train import Trainer
    from unettui.core.runs.store import RunStore

    cfgs = [Config(seed=10 + i, loss=name, lr=3e-3, augment_rotate=10 * i, augment_hflip=0.5,
                   class_weights=(0.5, 1.0, 2.0) if i % 2 else (), **HEART) for i, name in enumerate(LOSSES)]
    ids = list(LOSSES)
    store = RunStore(tmp_path / "packed")
    runs = [store.run(i) for i in ids]
    for r in runs:
        r.path.mkdir(parents=True)
    pack = PackTrainer.from_configs(cfgs, dtype=torch.float64)
    assert not pack.loss.fused  # multi-class: each member's own loss
    results = pack.fit(runs, run_ids=ids)
    assert [r.state for r in results] == ["done"] * len(LOSSES)
    keys = ("train_loss", "train_dice", "val_loss", "val_dice", "val_dice_cavity", "val_dice_myocardium",
            "val_iou_myocardium", "val_dice_min")
    for cfg, member, result in zip(cfgs, pack.members, results):
        alone = Trainer(cfg, dtype=torch.float64)
        alone_result = alone.fit()
        for mine, theirs in zip(member.history, alone.history, strict=True):
            for k in keys:
                assert mine[k] == pytest.approx(theirs[k], abs=1e-12), (cfg.loss, k)
        for k in ("best_val_dice_myocardium", "test_dice_cavity", "test_iou_min", "best_val_iou"):
            assert result.summary[k] == pytest.approx(alone_result.summary[k], abs=1e-12), (cfg.loss, k)
        assert result.summary["classes"] == {"names": ["background", "cavity", "myocardium"], "values": [0, 1, 2]}
    # the preview of a multi-class member: class indices and the class names
    import numpy as np

    with np.load(runs[0].file("preview_best.npz")) as z:
        assert set(np.unique(z["truth"])) <= {0, 1, 2} and list(z["class_names"]) == ["background", "cavity",
                                                                                       "myocardium"]
