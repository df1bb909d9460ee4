"""Real (tiny) training: an easy case beats a Dice bar, divergence fails cleanly, the run folder is complete."""

import json

import imageio.v3 as iio
import numpy as np
import pytest

from unettui.core.define.config import Config
from unettui.core.learn.train import Events, Trainer
from unettui.core.runs.store import RunStore

TINY = dict(device="cpu", image_size=32, base_channels=4, depth=2, batch_size=4, num_images=16, preview_count=2)


def easy_folder(root, n=24, size=32, seed=0):
    """Bright disks of varying size/position on a dark, slightly noisy background: an easy task."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        cy, cx = rng.uniform(8, size - 8, 2)
        r = rng.uniform(4, 8)
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        img = 0.2 + 0.6 * mask + rng.normal(0, 0.05, (size, size))
        iio.imwrite(root / "images" / f"case{i:02d}.png", (np.clip(img, 0, 1) * 255).astype(np.uint8))
        iio.imwrite(root / "masks" / f"case{i:02d}.png", (mask * 255).astype(np.uint8))
    return root


def test_easy_folder_dataset_reaches_high_dice(tmp_path):
    folder = easy_folder(tmp_path / "disks")
    cfg = Config(dataset=str(folder), epochs=12, lr=3e-3, train_fraction=0.75, **{k: v for k, v in TINY.items() if k != "num_images"})
    run = RunStore(tmp_path).run("easy")
    run.path.mkdir(parents=True)
    seen = []
    result = Trainer(cfg, tmp_path).fit(run, Events(on_epoch=seen.append))
    assert result.state == "done"
    assert [r["epoch"] for r in seen] == list(range(1, 13))
    assert seen[-1]["train_loss"] < seen[0]["train_loss"]
    assert result.summary["best_val_dice"] > 0.9, result.summary
    # the run folder holds what design.md promises
    for name in ("config.json", "metrics.jsonl", "summary.json", "checkpoint.pt", "preview_best.png",
                 "preview_best.npz", "preview_last.png", "preview_last.npz"):
        assert run.file(name).exists(), name
    config = json.loads(run.file("config.json").read_text())
    assert config["dataset"] == str(folder) and config["resolved_device"] == "cpu" and config["amp_dtype"] == "off"
    assert config["n_train"] == 18 and config["n_val"] == 6 and "torch_version" in config
    assert [m["epoch"] for m in run.metrics()] == list(range(1, 13))
    assert run.summary()["best_epoch"] == max(seen, key=lambda r: r["val_dice"])["epoch"]
    with np.load(run.file("preview_last.npz")) as z:
        assert z["images"].shape == (2, 32, 32) and z["truth"].shape == (2, 32, 32)
        assert z["prob"].dtype == np.uint8 and len(z["names"]) == 2
    png = iio.imread(run.file("preview_best.png"))
    assert png.shape[0] >= 2 * 128 and png.shape[1] >= 3 * 128  # 2 rows, 3 tiles, upscaled


def test_cpu_training_is_deterministic_for_a_seed():
    cfg = Config(epochs=2, dropout=0.2, augment_rotate=15, augment_hflip=0.5, **TINY)
    a = Trainer(cfg).fit()
    b = Trainer(cfg).fit()
    assert a.summary == {**b.summary, "seconds": a.summary["seconds"]}
    c = Trainer(cfg.replace(seed=1)).fit()
    assert c.summary["final_train_loss"] != a.summary["final_train_loss"]


def test_divergence_ends_as_failed_with_epoch_and_reason():
    cfg = Config(optimizer="sgd", lr=1e30, momentum=0.0, epochs=3, **TINY)
    result = Trainer(cfg).fit()
    assert result.state == "failed"
    assert "diverged" in result.error and "epoch 1" in result.error and "lower lr" in result.error


@pytest.mark.parametrize("scheduler", ["step", "cosine", "onecycle"])
def test_schedulers_change_the_learning_rate(scheduler):
    cfg = Config(scheduler=scheduler, epochs=4, lr=1e-2, lr_step_size=1, lr_gamma=0.5, lr_patience=0,
                 lr_factor=0.5, **TINY)
    seen = []
    Trainer(cfg).fit(events=Events(on_epoch=seen.append))
    lrs = [r["lr"] for r in seen]
    assert len(set(lrs)) > 1, lrs
    if scheduler == "step":
        assert lrs == pytest.approx([1e-2, 5e-3, 2.5e-3, 1.25e-3])
    if scheduler == "cosine":
        assert lrs[0] == pytest.approx(1e-2) and lrs == sorted(lrs, reverse=True)


def test_plateau_cuts_the_rate_after_patience_epochs_without_val_loss_improvement():
    import torch

    from unettui.core.learn.optim import Schedule

    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = Schedule(Config(scheduler="plateau", lr_patience=2, lr_factor=0.5), opt, steps_per_epoch=3)
    lrs = []
    for val_loss in [1.0, 0.9, 0.9, 0.9, 0.95, 0.8, 0.8, 0.8]:
        sched.epoch_end(val_loss)
        lrs.append(opt.param_groups[0]["lr"])
    # no improvement after 0.9 for epochs 3, 4, 5: cut after the third; 0.8 improves; then two flat epochs
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05])


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "adagrad", "adamax", "rmsprop", "sgd", "adadelta"])
def test_every_optimizer_trains(optimizer):
    cfg = Config(optimizer=optimizer, epochs=1, weight_decay=1e-4, **TINY)
    trainer = Trainer(cfg)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    result = trainer.fit()
    assert result.state == "done"
    assert any(not (a == b).all() for a, b in zip(before, trainer.model.parameters()))


def test_histeq_and_val_on_train():
    cfg = Config(augment_histeq=True, train_fraction=1.0, epochs=1, **TINY)
    t = Trainer(cfg)
    assert t.val_on_train and t.n_train == t.n_val == 16
    assert t.fit().summary["val_on_train"] is True


def test_autocast_path_trains_in_bf16_on_the_cpu():
    """The CUDA AMP code path (autocast around forward and loss) exercised with bf16 on the CPU."""
    import torch

    t = Trainer(Config(amp="bf16", epochs=2, **TINY))
    assert t.amp_dtype == torch.bfloat16 and not t.scaler.is_enabled()
    result = t.fit()
    assert result.state == "done" and 0 < result.summary["final_train_loss"] < 3
    assert t.describe()["amp_dtype"] == "bfloat16"


def test_amp_auto_is_off_on_the_cpu_and_cuda_is_refused_without_a_gpu():
    import torch

    assert Trainer(Config(epochs=1, **TINY)).amp_dtype is None
    assert Trainer(Config(epochs=1, **{**TINY, "device": "auto"})).amp_dtype is (
        torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else
        torch.float16 if torch.cuda.is_available() else None)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            Trainer(Config(**{**TINY, "device": "cuda"}))


def test_a_changed_definition_starts_from_scratch_not_from_the_old_checkpoint(tmp_path):
    run = RunStore(tmp_path).run("x")
    run.path.mkdir(parents=True)
    Trainer(Config(epochs=2, **TINY)).fit(run)
    first = run.metrics()
    result = Trainer(Config(epochs=3, lr=3e-3, **TINY)).fit(run)
    assert result.summary["epochs_done"] == 3
    again = run.metrics()
    assert [m["epoch"] for m in again] == [1, 2, 3]
    assert again[0]["train_loss"] != first[0]["train_loss"]  # really retrained, with the new lr
    # ... and the earlier attempt is kept, not deleted
    kept = run.path / "attempts" / "1"
    assert [json.loads(x)["epoch"] for x in (kept / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert "definition changed (lr 0.001 -> 0.003, epochs 2 -> 3)" in (kept / "run.log").read_text()
    # the same definition resumes: nothing left to do, metrics unchanged
    Trainer(Config(epochs=3, lr=3e-3, **TINY)).fit(run)
    assert run.metrics() == again


def test_early_stopping_after_patience_epochs_without_a_better_val_dice(tmp_path):
    run = RunStore(tmp_path).run("es")
    run.path.mkdir(parents=True)
    cfg = Config(epochs=30, early_stop_patience=2, lr=1e-12, **TINY)  # nothing is learned: val Dice stalls
    result = Trainer(cfg).fit(run)
    s = result.summary
    assert result.state == "done" and s["stopped_early"] is True
    assert s["epochs_done"] == s["best_epoch"] + 2 < 30
    assert [m["epoch"] for m in run.metrics()] == list(range(1, s["epochs_done"] + 1))
    assert run.file("preview_last.npz").exists()
    # resuming a run that stopped early trains nothing more
    again = Trainer(cfg).fit(run)
    assert again.summary["epochs_done"] == s["epochs_done"]


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("amp", ["auto", "fp16"])
def test_a_cuda_run_resumes_on_cuda_and_on_the_cpu(tmp_path, amp):
    """Resuming loads the checkpoint on the CPU (RNG states must stay CPU tensors) and moves the rest."""
    cfg = Config(epochs=4, **{**TINY, "device": "cuda", "amp": amp})
    run = RunStore(tmp_path).run("g")
    run.path.mkdir(parents=True)
    done = []
    first = Trainer(cfg).fit(run, Events(on_epoch=lambda r: done.append(r["epoch"]), should_stop=lambda: len(done) >= 2))
    assert first.state == "interrupted" and [m["epoch"] for m in run.metrics()] == [1, 2]
    starts = []
    result = Trainer(cfg).fit(run, Events(on_start=starts.append, should_stop=lambda: len(run.metrics()) >= 3))
    assert starts[0]["resumed_epoch"] == 2 and result.state == "interrupted"
    assert [m["epoch"] for m in run.metrics()] == [1, 2, 3]
    if amp == "auto":  # device is not part of the definition: the same run goes on on the CPU
        starts.clear()
        result = Trainer(cfg.replace(device="cpu")).fit(run, Events(on_start=starts.append))
        assert starts[0]["resumed_epoch"] == 3 and result.state == "done"
        assert [m["epoch"] for m in run.metrics()] == [1, 2, 3, 4]
