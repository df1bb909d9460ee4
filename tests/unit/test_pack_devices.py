"""Packs on each device this machine has: the CPU always, CUDA where there is one (scripts/gpu_pack_check.sh runs the
CUDA cases on a GPU machine; elsewhere they are skipped). What only a device can get wrong: generators on the device,
checkpoints loaded on the CPU and moved back, bf16 autocast, channels_last, cuDNN's choice of grouped kernels."""

from __future__ import annotations

import json
import math

import pytest
import torch

from tests.conftest import TINY_DEFAULTS
from tests.helpers import StopInEpoch
from unettui.core.define.config import Config
from unettui.core.learn.pack_train import PackTrainer
from unettui.core.runs.store import RunStore
from unettui.runner import Runner, SilentReporter

CUDA = torch.cuda.is_available()
ON_CUDA = pytest.mark.skipif(not CUDA, reason="needs CUDA")
DEVICES = ["cpu", pytest.param("cuda", marks=ON_CUDA)]
# (device, amp): fp32 everywhere, bf16 autocast on CUDA (what --pack auto trains in on a bf16 card)
PRECISIONS = [("cpu", "off"), pytest.param("cuda", "off", marks=ON_CUDA), pytest.param("cuda", "bf16", marks=ON_CUDA)]
KEYS = ("epoch", "train_loss", "train_dice", "val_loss", "val_dice", "val_iou", "lr")
# three members that differ in what a member may choose: optimizer, loss, dropout, augmentation
SWEEP = ("[[experiment]]\nid = 'sgd'\noptimizer = 'sgd'\nlr = 0.05\nmomentum = 0.9\nloss = 'bce'\n"
         "[[experiment]]\nid = 'adam'\noptimizer = 'adam'\nlr = 2e-3\nloss = 'dice_bce'\ndropout = 0.2\n"
         "augment.rotate = 15\naugment.hflip = 0.5\n"
         "[[experiment]]\nid = 'adamw'\noptimizer = 'adamw'\nlr = 5e-3\nloss = 'switching'\ndropout = 0.5\n"
         "augment.vflip = 0.5\n")
IDS = ("sgd", "adam", "adamw")


pytestmark = pytest.mark.usefixtures("one_thread")


def project(make_project, name: str, device: str, amp: str, epochs: int = 3):
    defaults = (TINY_DEFAULTS.replace('device = "cpu"', f'device = "{device}"')
                .replace("epochs = 2", f"epochs = {epochs}") + f'amp = "{amp}"\n')
    return make_project(SWEEP, defaults=defaults, name=name)


def records(proj, run_id):
    return [{k: m[k] for k in KEYS} for m in RunStore(proj).run(run_id).metrics()]



@pytest.mark.parametrize("device, amp", PRECISIONS)
def test_a_sweep_trains_as_one_pack_through_the_runner(make_project, device, amp):
    proj = project(make_project, "proj", device, amp)
    outcome = Runner(proj, reporter=SilentReporter(), pack=3).run()
    assert sorted(outcome.done) == sorted(IDS) and not outcome.failed, outcome
    store = RunStore(proj)
    for i in IDS:
        run = store.run(i)
        config = json.loads(run.file("config.json").read_text())
        assert config["pack_size"] == 3 and config["resolved_device"].startswith(device)
        assert config["amp_dtype"] == ("bfloat16" if amp == "bf16" else "off")
        recs = records(proj, i)
        assert [r["epoch"] for r in recs] == [1, 2, 3]
        assert all(math.isfinite(r[k]) for r in recs for k in KEYS) and all(0 <= r["val_dice"] <= 1 for r in recs)
        ckpt = torch.load(run.file("checkpoint.pt"), map_location="cpu", weights_only=False)
        assert ckpt["epoch"] == 3 and ckpt["rng"]["dropout_device"] == device
        assert all(torch.isfinite(v.float()).all() for v in ckpt["model"].values())
        for name in ("best.pt", "preview_best.png", "preview_last.png", "summary.json"):
            assert run.file(name).exists(), (i, name)
        assert f"packs: up to 3 on {device}" in run.file("run.log").read_text()


@pytest.mark.parametrize("device, amp", PRECISIONS)
def test_an_interrupted_pack_resumes_in_its_pack_on_the_device(make_project, device, amp):
    ref = project(make_project, "ref", device, amp)
    assert sorted(Runner(ref, reporter=SilentReporter(), pack=3).run().done) == sorted(IDS)
    got = project(make_project, "got", device, amp)
    stopper = StopInEpoch(2)
    runner = Runner(got, reporter=stopper, pack=3)
    stopper.runner = runner
    assert sorted(runner.run().interrupted) == sorted(IDS)
    store = RunStore(got)
    assert all(store.run(i).summary()["epochs_done"] == 1 for i in IDS)
    # the default options (--pack auto): the pack is built again as it was, whatever auto does with new experiments
    assert sorted(Runner(got, reporter=SilentReporter()).run().done) == sorted(IDS)
    for i in IDS:
        log = store.run(i).file("run.log").read_text()
        assert f"packs: resumes in the pack it was interrupted in on {device}" in log
        assert log.count("resumed at epoch 1") == 1
        a = torch.load(store.run(i).file("checkpoint.pt"), map_location="cpu", weights_only=False)
        b = torch.load(RunStore(ref).run(i).file("checkpoint.pt"), map_location="cpu", weights_only=False)
        # every random stream went on exactly: the same draws of batches, augmentations and dropout masks
        for stream in ("shuffle", "augment", "dropout"):
            assert torch.equal(a["rng"][stream], b["rng"][stream]), (i, stream)
        if device == "cpu":  # the numbers too, bit for bit (on a GPU, cuDNN's autotuning is not deterministic)
            assert records(got, i) == records(ref, i)
        else:
            for x, y in zip(records(got, i), records(ref, i)):
                for k in ("train_loss", "val_loss"):
                    assert x[k] == pytest.approx(y[k], rel=0.1, abs=0.05), (i, k, x, y)


@pytest.mark.parametrize("device", DEVICES)
def test_a_diverging_member_fails_alone_on_the_device(tmp_path, device):
    tiny = dict(device=device, dataset="synthetic:nuclei", image_size=32, base_channels=4, depth=2, batch_size=4,
                num_images=24, preview_count=0, epochs=2)
    ok = [Config(seed=1, optimizer="adam", lr=2e-3, **tiny), Config(seed=2, optimizer="sgd", lr=0.05, **tiny)]
    nan = Config(seed=7, optimizer="sgd", lr=1e30, momentum=0.0, loss="bce", **tiny)
    store = RunStore(tmp_path)
    runs = [store.run(i) for i in ("a", "nan", "b")]
    for run in runs:
        run.path.mkdir(parents=True)
    pack = PackTrainer.from_configs([ok[0], nan, ok[1]])
    results = pack.fit(runs)
    assert [r.state for r in results] == ["done", "failed", "done"]
    assert "training diverged" in results[1].error
    for member in (pack.members[0], pack.members[2]):
        assert len(member.history) == 2 and all(math.isfinite(h["train_loss"]) for h in member.history)
