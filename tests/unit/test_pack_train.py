"""PackTrainer: a pack of experiments trained together equals each trained alone (float64, through the trainer, files
and all), isolates its members, keeps the solo checkpoint format both ways, and lets members end at different epochs."""

from __future__ import annotations

import json

import pytest
import torch

from unettui.core.define.config import Config
from unettui.core.learn.pack_train import PackMember, PackTrainer, pack_key
from unettui.core.learn.train import Events, Trainer
from unettui.core.runs.store import RunStore

TINY = dict(device="cpu", dataset="synthetic:nuclei", image_size=32, base_channels=4, depth=2, batch_size=4,
            num_images=24, test_fraction=0.2, preview_count=2, epochs=3)
F64 = torch.float64
KEYS = ("epoch", "train_loss", "train_dice", "val_loss", "val_dice", "val_iou", "lr")

# three members that differ in everything a member may choose (the data and shapes they share: TINY)
MEMBERS = [
    Config(seed=11, optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=1e-3, loss="bce", scheduler="step",
           lr_step_size=1, lr_gamma=0.5, **TINY),
    Config(seed=22, optimizer="adam", lr=2e-3, weight_decay=1e-4, loss="dice_bce", dropout=0.2, augment_rotate=15,
           augment_hflip=0.5, scheduler="onecycle", **TINY),
    Config(seed=33, optimizer="adamw", lr=5e-3, weight_decay=1e-2, loss="switching", switch_lambda=0.6,
           switch_tau=0.1, dropout=0.5, augment_vflip=0.5, scheduler="cosine", **TINY),
]


pytestmark = pytest.mark.usefixtures("one_thread")


def records(history):
    return [{k: h[k] for k in KEYS} for h in history]


def worst(a: list[dict], b: list[dict]) -> float:
    assert [r["epoch"] for r in a] == [r["epoch"] for r in b]
    return max(abs(x[k] - y[k]) for x, y in zip(a, b) for k in KEYS)


def weights_diff(a: dict, b: dict) -> float:
    assert list(a) == list(b)
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def runs(tmp_path, ids, folder="packed"):
    store = RunStore(tmp_path / folder)
    out = []
    for i in ids:
        run = store.run(i)
        run.path.mkdir(parents=True, exist_ok=True)
        out.append(run)
    return out


def solo(cfg, tmp_path, run_id, until=None, folder="solo"):
    run = runs(tmp_path, [run_id], folder)[0]
    trainer = Trainer(cfg, dtype=F64)
    result = trainer.fit(run, run_id=run_id, until_epoch=until)
    return trainer, result, run


# ---- the contract -----------------------------------------------------------------------------------------------
def test_a_pack_equals_its_members_trained_alone_in_float64(tmp_path):
    ids = ["sgd", "adam", "adamw"]
    pack = PackTrainer.from_configs(MEMBERS, dtype=F64)
    seen = {i: [] for i in ids}
    events = [Events(on_epoch=seen[i].append) for i in ids]
    results = pack.fit(runs(tmp_path, ids), events, ids)
    assert [r.state for r in results] == ["done"] * 3
    largest = 0.0
    for cfg, member, result, rid in zip(MEMBERS, pack.members, results, ids):
        alone, alone_result, alone_run = solo(cfg, tmp_path, rid)
        # the trainer's records, the files' records and the on_epoch events: the solo run's numbers
        packed_run = RunStore(tmp_path / "packed").run(rid)
        largest = max(largest, worst(records(member.history), records(alone.history)),
                      worst(records(packed_run.metrics()), records(alone_run.metrics())),
                      worst(records(seen[rid]), records(alone.history)),
                      weights_diff(member.model.state_dict(), alone.model.state_dict()))
        for k in ("best_epoch", "epochs_done", "stopped_early", "n_test"):
            assert result.summary[k] == alone_result.summary[k], k
        for k in ("best_val_dice", "final_val_loss", "test_dice", "test_loss", "test_iou"):
            assert result.summary[k] == pytest.approx(alone_result.summary[k], abs=1e-12), k
        # every file a solo run writes, in the solo formats
        names = sorted(p.name for p in alone_run.path.iterdir())
        assert sorted(p.name for p in packed_run.path.iterdir()) == names
        ckpt = torch.load(packed_run.file("checkpoint.pt"), weights_only=False)
        ref = torch.load(alone_run.file("checkpoint.pt"), weights_only=False)
        assert ckpt.keys() == ref.keys() and ckpt["model"].keys() == ref["model"].keys()
        assert ckpt["optimizer"]["param_groups"] == ref["optimizer"]["param_groups"]
        assert ckpt["epoch"] == 3 and weights_diff(ckpt["model"], ref["model"]) <= 1e-12
        best = torch.load(packed_run.file("best.pt"), weights_only=False)
        assert best["epoch"] == alone_result.summary["best_epoch"]
        config = json.loads(packed_run.file("config.json").read_text())
        assert config["pack_size"] == 3 and config["pack_members"] == [x for x in ids if x != rid]
    print(f"pack of 3 vs 3 solo trainers, float64, 3 epochs: max |diff| = {largest:.3g}")
    # exact but for the solo trainer's one layout quirk: a rotated one-channel batch comes back channels_last, and
    # the CPU convolution takes another path for it (1e-15)
    assert largest <= 1e-12


def test_pack_key_is_the_data_the_shapes_the_device_and_amp():
    base = Config(**TINY)
    same = [base.replace(seed=5, lr=0.1, optimizer="sgd", loss="bce", dropout=0.3, epochs=9, augment_rotate=10,
                         scheduler="cosine", early_stop_patience=2, preview_count=0)]
    other = [base.replace(**{k: v}) for k, v in (("image_size", 64), ("batch_size", 2), ("base_channels", 8),
                                                 ("depth", 3), ("num_images", 30), ("data_seed", 1),
                                                 ("train_fraction", 0.5), ("test_fraction", 0.0),
                                                 ("augment.histeq", True), ("dataset", "synthetic:ventricle"),
                                                 ("amp", "bf16"))]
    assert all(pack_key(c) == pack_key(base) for c in same)
    assert all(pack_key(c) != pack_key(base) for c in other)
    with pytest.raises(ValueError, match="must share image_size"):
        PackTrainer([PackMember(base, dtype=F64), PackMember(base.replace(image_size=64), dtype=F64)])


# ---- isolation --------------------------------------------------------------------------------------------------
def test_a_diverging_member_fails_with_its_epoch_and_the_others_are_bit_identical(tmp_path):
    ok = [MEMBERS[0], MEMBERS[2]]
    nan = Config(seed=7, optimizer="sgd", lr=1e30, momentum=0.0, loss="bce", **TINY)
    ends = []
    with_it = PackTrainer.from_configs([ok[0], nan, ok[1]])  # float32: bit for bit all the same
    results = with_it.fit(runs(tmp_path, ["a", "nan", "b"]), [Events(on_end=ends.append) for _ in range(3)])
    without = PackTrainer.from_configs(ok)
    without.fit()
    assert [r.state for r in results] == ["done", "failed", "done"]
    assert "training diverged" in results[1].error and "in epoch 1" in results[1].error
    assert "try a lower lr" in results[1].error and ends[0].state == "failed"  # it left first
    nan_run = RunStore(tmp_path / "packed").run("nan")
    assert json.loads(nan_run.file("summary.json").read_text())["epochs_done"] == 0
    for member, alone in zip((with_it.members[0], with_it.members[2]), without.members):
        assert member.history and [{k: h[k] for k in KEYS} for h in member.history] == \
               [{k: h[k] for k in KEYS} for h in alone.history]
        a, b = member.model.state_dict(), alone.model.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_members_with_different_epochs_leave_the_pack_one_by_one(tmp_path):
    cfgs = [MEMBERS[0].replace(epochs=2), MEMBERS[1].replace(epochs=4), MEMBERS[2].replace(epochs=3, early_stop_patience=1)]
    pack = PackTrainer.from_configs(cfgs, dtype=F64)
    left = []
    events = [Events(on_end=lambda r, i=i: left.append((i, pack.members[i].epoch))) for i in range(3)]
    results = pack.fit(runs(tmp_path, ["two", "four", "early"]), events, until_epochs=[None, 3, None])
    assert [r.state for r in results] == ["done"] * 3
    assert [r.summary["epochs_done"] for r in results] == [2, 3, pack.members[2].epoch]  # "four": a rung at 3
    assert left[0] == (0, 2)
    for i, (cfg, until) in enumerate(zip(cfgs, (None, 3, None))):
        alone = Trainer(cfg, dtype=F64)
        alone_result = alone.fit(until_epoch=until)
        assert alone_result.summary["epochs_done"] == results[i].summary["epochs_done"]
        assert alone_result.summary["stopped_early"] == results[i].summary["stopped_early"]
        assert worst(records(pack.members[i].history), records(alone.history)) <= 1e-12
        assert weights_diff(pack.members[i].model.state_dict(), alone.model.state_dict()) <= 1e-12
    run = RunStore(tmp_path / "packed").run("two")
    assert [m["epoch"] for m in run.metrics()] == [1, 2] and (run.path / "preview_last.png").exists()


# ---- formats: pack -> solo -> pack ------------------------------------------------------------------------------
def test_checkpoints_go_from_a_pack_to_a_solo_run_and_back_into_a_pack(tmp_path):
    a, b = MEMBERS[1], MEMBERS[2].replace(epochs=4)
    ra, rb = runs(tmp_path, ["a", "b"])
    # epoch 1 in a pack; epoch 2 of a alone (Trainer resumes the pack's checkpoint); then both in a pack again, a
    # from its solo checkpoint at epoch 2, b from the pack's at epoch 1: members at different epochs
    PackTrainer.from_configs([a, b], dtype=F64).fit([ra, rb], until_epochs=[1, 1])
    resumed = []
    Trainer(a, dtype=F64).fit(ra, Events(on_start=resumed.append), until_epoch=2)
    assert resumed[0]["resumed_epoch"] == 1
    pack = PackTrainer.from_configs([a, b], dtype=F64)
    starts = []
    results = pack.fit([ra, rb], [Events(on_start=starts.append) for _ in range(2)])
    assert [s["resumed_epoch"] for s in starts] == [2, 1] and [r.state for r in results] == ["done", "done"]
    for cfg, run, member in ((a, ra, pack.members[0]), (b, rb, pack.members[1])):
        alone, _, alone_run = solo(cfg, tmp_path, run.id)
        assert worst(records(run.metrics()), records(alone_run.metrics())) <= 1e-12
        assert weights_diff(member.model.state_dict(), alone.model.state_dict()) <= 1e-12


# ---- on a GPU (scripts/gpu_pack_check.sh runs these there) -----------------------------------------------------
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("amp", ["fp64", "off", "bf16"])
def test_on_cuda_a_pack_matches_its_solo_runs_to_kernel_noise(amp, tmp_path):
    """float64 with deterministic cuDNN: equal to rounding; float32 and bf16: the first epoch's numbers within the
    noise a change of convolution kernel brings (grouped kernels are not the solo ones)."""
    cfgs = [c.replace(device="cuda", amp="bf16" if amp == "bf16" else "off", epochs=2) for c in MEMBERS]
    dtype = F64 if amp == "fp64" else None
    deterministic = torch.backends.cudnn.deterministic
    torch.backends.cudnn.deterministic = amp == "fp64"
    try:
        pack = PackTrainer.from_configs(cfgs, dtype=dtype)
        assert pack.amp_dtype == (torch.bfloat16 if amp == "bf16" else None)
        results = pack.fit(runs(tmp_path, ["a", "b", "c"]))
        assert [r.state for r in results] == ["done"] * 3
        for cfg, member in zip(cfgs, pack.members):
            alone = Trainer(cfg, dtype=dtype)
            alone.fit()
            if amp == "fp64":
                assert worst(records(member.history), records(alone.history)) <= 1e-9
                assert weights_diff(member.model.state_dict(), alone.model.state_dict()) <= 1e-9
            else:
                got, want = member.history[0], alone.history[0]
                tol = 2e-2 if amp == "bf16" else 2e-3
                for k in ("train_loss", "val_loss"):
                    assert got[k] == pytest.approx(want[k], rel=tol), (k, got[k], want[k])
    finally:
        torch.backends.cudnn.deterministic = deterministic


def test_amp_auto_on_a_card_without_bf16_packs_in_fp32_and_fp16_asked_for_trains_alone(tmp_path, monkeypatch):
    """A card without bf16 (amp auto resolves to fp16 there: the resolution is injected, the machine has no such
    card): such experiments pack, in fp32, and say so; amp = "fp16" keeps its pack key None (it trains alone)."""
    import unettui.core.learn.pack_train as pack_train
    import unettui.core.learn.train as train

    def fp16_card(amp, device):
        return torch.float16 if amp in ("auto", "fp16") else None

    monkeypatch.setattr(train, "resolve_amp", fp16_card)
    monkeypatch.setattr(pack_train, "resolve_amp", fp16_card)
    auto = [Config(**{**TINY, "epochs": 1}, seed=s, amp="auto") for s in (1, 2)]
    off = Config(**{**TINY, "epochs": 1}, seed=3, amp="off")
    assert pack_key(auto[0]) == pack_key(auto[1]) == pack_key(off) is not None
    assert pack_key(Config(**TINY, amp="fp16")) is None
    pack = PackTrainer.from_configs([*auto, off], dtype=F64)
    assert [m.amp_dtype for m in pack.members] == [None, None, None]
    assert [m.fp32_in_pack for m in pack.members] == [True, True, False]
    assert pack.members[0].describe()["amp_dtype"].startswith("off: fp32 in a pack (amp auto is fp16 on this card")
    ids = ["a1", "a2", "o"]
    results = pack.fit(runs(tmp_path, ids), run_ids=ids)
    assert [r.state for r in results] == ["done"] * 3
    # its checkpoint (a disabled scaler's empty state) resumes in a solo trainer that has a scaler
    alone = Trainer(auto[0].replace(epochs=2), dtype=F64)
    result = alone.fit(RunStore(tmp_path / "packed").run("a1"), run_id="a1")
    assert result.state == "done" and [h["epoch"] for h in alone.history] == [1, 2]
    assert records(alone.history)[0] == records(pack.members[0].history)[0]  # resumed (epoch 1 is the pack's)


def test_a_pack_asks_should_stop_and_reports_progress_per_pack_not_per_step(tmp_path):
    """The host's work per step does not grow with the members: should_stop is asked at most every poll_seconds and
    progress told at most every progress_seconds (and at an epoch's first and last steps), not at every step."""
    cfgs = [MEMBERS[0].replace(epochs=2), MEMBERS[1].replace(epochs=2)]
    pack = PackTrainer.from_configs(cfgs, dtype=F64)
    pack.poll_seconds = pack.progress_seconds = 1e9  # never again within an epoch
    asked, told = [], []
    events = [Events(should_stop=lambda i=i: asked.append(i) or False,
                     on_batch=lambda e, s, n, i=i: told.append((i, e, s, n))) for i in range(2)]
    results = pack.fit(runs(tmp_path, ["a", "b"]), events)
    steps = pack.members[0].steps_per_epoch
    assert steps > 2 and [r.state for r in results] == ["done", "done"]
    assert sorted(asked) == [0, 0, 1, 1]  # once per epoch each: at its first step
    assert sorted(told) == sorted((i, e, s, steps) for i in (0, 1) for e in (1, 2) for s in (1, steps))
    pack = PackTrainer.from_configs(cfgs, dtype=F64)
    pack.poll_seconds = pack.progress_seconds = 0.0  # every step: the old behaviour, still available
    asked.clear(), told.clear()
    pack.fit(runs(tmp_path, ["c", "d"]), events)
    assert len(asked) == len(told) == 2 * 2 * steps
