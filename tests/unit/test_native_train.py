"""Training at native resolution (patch_size > 0, issue 25): patches drawn from the images at their own sizes, whole
images validated by sliding window on their own pixels; a pack of native members equals its solo runs (float64), a
resumed run equals an uninterrupted one, padding of small images is ignored, and multi-class label maps train on
patches too."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unettui.core.define.config import Config, ConfigError, build_config
from unettui.core.learn.pack_train import PackTrainer
from unettui.core.learn.train import Trainer
from unettui.core.runs.store import RunStore

F64 = torch.float64
TINY = dict(device="cpu", dataset="synthetic:nuclei", image_size=32, patch_size=16, base_channels=4, depth=2,
            batch_size=4, num_images=12, test_fraction=0.2, preview_count=2, epochs=2)
KEYS = ("epoch", "train_loss", "train_dice", "val_loss", "val_dice", "val_iou", "lr")

pytestmark = pytest.mark.usefixtures("one_thread")


def records(history):
    return [{k: h[k] for k in KEYS} for h in history]


def worst(a, b) -> float:
    assert [r["epoch"] for r in a] == [r["epoch"] for r in b]
    return max(abs(x[k] - y[k]) for x, y in zip(a, b) for k in KEYS)


def run_of(tmp_path, run_id, folder="runs"):
    run = RunStore(tmp_path / folder).run(run_id)
    run.path.mkdir(parents=True, exist_ok=True)
    return run


def write_folder(root, sizes, seed=0, k=2):
    """A folder dataset of grey images with a bright disc each (binary), at the given (H, W) sizes."""
    import imageio.v3 as iio

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, (h, w) in enumerate(sizes):
        yy, xx = np.mgrid[:h, :w]
        cy, cx, r = rng.integers(0, h), rng.integers(0, w), max(2, min(h, w) // 4)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        img = (rng.random((h, w)) * 60 + disc * 150).astype(np.uint8)
        iio.imwrite(root / "images" / f"im{i:02d}.png", img)
        iio.imwrite(root / "masks" / f"im{i:02d}.png", (disc * 255).astype(np.uint8))
    return root


def test_a_native_run_trains_on_patches_and_validates_whole_images(tmp_path):
    cfg = Config(**TINY)
    trainer = Trainer(cfg)
    assert trainer.native and trainer.n_train == 8 and trainer.n_val == 2
    assert trainer.samples_per_epoch == 8 * 32 * 32 // 16**2  # the training pixels covered once
    assert trainer.steps_per_epoch == 8
    result = trainer.fit(run_of(tmp_path, "a"), run_id="a")
    assert result.state == "done" and 0.0 <= result.summary["best_val_dice"] <= 1.0
    assert trainer.describe()["mode"] == "patches of 16"
    preview = trainer.predict_preview()
    assert preview["images"].shape == (2, 1, 32, 32) and preview["probs"].shape == (2, 1, 32, 32)
    assert result.summary["val_hd95"] is None or result.summary["val_hd95"] >= 0


def test_validation_by_sliding_window_counts_what_a_whole_image_forward_counts():
    """An image that fits in one window: the sliding window is the whole-image forward, so a native run's validation
    Dice and IoU equal a resized run's of the same weights at the same size (no resize at 32 = image_size)."""
    native = Trainer(Config(**{**TINY, "patch_size": 32}), dtype=F64)
    whole = Trainer(Config(**{**TINY, "patch_size": 0}), dtype=F64)
    whole.model.load_state_dict(native.model.state_dict())
    native.train_epoch()
    whole.model.load_state_dict(native.model.state_dict())
    a, b = native.evaluate(), whole.evaluate()
    assert a.dice == pytest.approx(b.dice, abs=1e-12) and a.iou == pytest.approx(b.iou, abs=1e-12)


def test_a_resumed_native_run_equals_an_uninterrupted_one(tmp_path):
    cfg = Config(**{**TINY, "augment_rotate": 20.0, "augment_hflip": 0.5})
    straight = Trainer(cfg, dtype=F64)
    straight.fit(run_of(tmp_path, "s"), run_id="s")
    run = run_of(tmp_path, "r")
    Trainer(cfg, dtype=F64).fit(run, run_id="r", until_epoch=1)
    resumed = Trainer(cfg, dtype=F64)
    resumed.fit(run, run_id="r")
    assert worst(records(resumed.history), records(straight.history)) <= 1e-12


def test_a_pack_of_native_members_equals_its_solo_runs_in_float64(tmp_path):
    members = [Config(seed=1, lr=2e-3, **TINY),
               Config(seed=2, optimizer="sgd", lr=0.05, loss="bce", augment_rotate=15.0, foreground_oversample=0.8,
                      **TINY)]
    pack = PackTrainer.from_configs(members, dtype=F64)
    results = pack.fit([run_of(tmp_path, "p1", "packed"), run_of(tmp_path, "p2", "packed")], run_ids=["p1", "p2"])
    assert [r.state for r in results] == ["done", "done"]
    for cfg, member, rid in zip(members, pack.members, ("p1", "p2")):
        alone = Trainer(cfg, dtype=F64)
        alone.fit(run_of(tmp_path, rid), run_id=rid)
        assert worst(records(member.history), records(alone.history)) <= 1e-12


def test_non_square_images_of_mixed_sizes_train_and_count_every_pixel_once(tmp_path):
    folder = write_folder(tmp_path / "data", [(40, 72), (56, 24), (33, 47), (64, 64), (48, 80)])
    cfg = Config(device="cpu", dataset=str(folder), patch_size=16, base_channels=4, depth=2, batch_size=4, epochs=1,
                 train_fraction=0.6, preview_count=2)
    trainer = Trainer(cfg)
    assert [tuple(im.shape[-2:]) for im in trainer.val_x] == [tuple(m.shape[-2:]) for m in trainer.val_y]
    trainer.fit()
    counts = torch.zeros(1, 3, dtype=torch.float64)
    for image, mask in zip(trainer.val_x, trainer.val_y):
        logits = trainer.window_logits(trainer.model, image)
        assert logits.shape[-2:] == image.shape[-2:]  # the image's own pixels, none cropped
        counts += trainer.task.counts(logits[None], mask[None])
    tp, fp, fn = counts[0].tolist()
    scores = trainer.evaluate()
    assert scores.dice == pytest.approx(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0)


def test_images_smaller_than_the_patch_are_padded_and_the_padding_is_ignored(tmp_path):
    folder = write_folder(tmp_path / "data", [(20, 24), (18, 30), (24, 20), (22, 22)])
    cfg = Config(device="cpu", dataset=str(folder), patch_size=32, base_channels=4, depth=2, batch_size=2, epochs=1,
                 train_fraction=0.5, patches_per_epoch=4)
    trainer = Trainer(cfg)
    assert trainer.padded and any("smaller than the 32x32 patch" in n for n in trainer.data_notes)
    assert trainer.loss_fn is trainer.task.ignore_loss_fn
    x, y = trainer.batch(torch.arange(2))
    assert x.shape == (2, 1, 32, 32) and bool((y < 0).any())
    result = trainer.fit()
    assert result.state == "done" and np.isfinite(result.summary["final_train_loss"])


def test_label_maps_train_on_patches_alone_and_in_a_pack(tmp_path):
    heart = dict(TINY, dataset="synthetic:heart", num_classes=3)
    cfgs = [Config(seed=3, **heart), Config(seed=4, lr=3e-3, **heart)]
    pack = PackTrainer.from_configs(cfgs, dtype=F64)
    results = pack.fit()
    assert [r.state for r in results] == ["done", "done"]
    alone = Trainer(cfgs[0], dtype=F64)
    alone.fit()
    assert worst(records(pack.members[0].history), records(alone.history)) <= 1e-12
    assert set(alone.history[-1]) >= {"val_dice_c1", "val_dice_c2"} or any(
        k.startswith("val_dice_") for k in alone.history[-1])


def test_patch_size_is_checked_against_depth_and_image_size():
    with pytest.raises(ConfigError, match="patch_size: 24 is not divisible by 2\\*\\*4 = 16"):
        build_config({"patch_size": 24}, "experiments.toml")
    with pytest.raises(ConfigError, match="image_size: 128 is set together with patch_size 64"):
        build_config({"dataset": "data", "image_size": 128, "patch_size": 64}, "experiments.toml")
    # built-in data: image_size is the size the images are generated at, patches are cut from them
    assert build_config({"image_size": 128, "patch_size": 64}, "x").patch_size == 64
    for key, bad in (("foreground_oversample", 1.5), ("overlap", 0.95), ("patches_per_epoch", -1)):
        with pytest.raises(ConfigError, match=key):
            build_config({key: bad}, "x")


def test_a_preview_of_a_large_image_is_a_window_around_its_foreground_and_says_where():
    from unettui.core.learn.native_run import preview_windows

    image = torch.zeros(1, 64, 100)
    mask = torch.zeros(1, 64, 100)
    mask[0, 50:54, 80:86] = 1.0  # foreground near the bottom right corner
    x, y, names = preview_windows([image], [mask], ["big"], side=32)
    assert x.shape == (1, 1, 32, 32) and float(y.sum()) == 24.0  # all of the foreground is in the window
    assert names == ["big (32x32 at 32,66 of 64x100)"]
    _, _, same = preview_windows([image[:, :32, :32]], [mask[:, :32, :32]], ["small"], side=32)
    assert same == ["small"]
