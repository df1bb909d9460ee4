"""A pack's dropout choice (issue 27): "exact" (each member's solo masks, one draw per member per layer) or "fused"
(one draw per layer for the whole pack): what each guarantees, what it costs in modelled CUDA launches, and the
option's way from `unettui run --pack-dropout` / RunnerOptions to the PackTrainer and the members' config.json."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from unettui.cli.app import app
from unettui.core.define.config import Config
from unettui.core.learn.launches import count_launches
from unettui.core.learn.model import dropout_mask
from unettui.core.learn.pack import DROPOUT_MODES, PackedUNet
from unettui.core.learn.pack_train import PackTrainer
from unettui.core.learn.train import Events
from unettui.core.runs.options import PACK_DROPOUT, OptionsError, RunnerOptions
from unettui.core.runs.store import RunStore

from .test_pack import ARCH, B, S, batches, build, dropout_gens
from .test_pack_train import runs

pytestmark = pytest.mark.usefixtures("one_thread")

C = ARCH["base_channels"]  # the first encoder's width: its dropout layer sees [B, N*C, H, W]


def first_dropout(ps, mode: str, dtype=torch.float64):
    pack = PackedUNet(len(ps), dropouts=ps, **ARCH).to(dtype)
    pack.dropout_mode = mode
    return pack, pack.encoders[0][6]


def gens(*seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


# ---- fused: one draw, each member its own p ---------------------------------------------------------------------
def test_fused_drops_each_members_channels_with_its_own_p_and_scales_the_rest_exactly():
    ps = [0.2, 0.0, 0.5]
    _, drop = first_dropout(ps, "fused")
    drop.generators = gens(1, 2, 3)
    x = torch.rand(8, 3 * C, 64, 64, dtype=torch.float64) + 0.5  # never 0: a 0 out is a dropped element
    out = drop(x)
    per = 8 * C * 64 * 64  # elements per member
    for i, p in enumerate(ps):
        xi, oi = x[:, i * C:(i + 1) * C], out[:, i * C:(i + 1) * C]
        if p == 0:
            assert torch.equal(oi, xi)  # untouched: mask exactly 1
            continue
        dropped = oi == 0
        se = math.sqrt(p * (1 - p) / per)
        assert abs(dropped.double().mean().item() - p) < 5 * se, (i, dropped.double().mean().item())
        assert torch.equal(oi[~dropped], xi[~dropped] * (1.0 / (1.0 - p)))  # kept: exactly x / (1 - p)
    # the channels of a member differ in their masks (one draw over the whole tensor, not one mask repeated)
    assert not torch.equal(out[:, 0] == 0, out[:, 1] == 0)
    # in fp32 the kept values are scaled by the very value a solo mask holds (dropout_mask's division)
    _, drop32 = first_dropout(ps, "fused", torch.float32)
    x32 = x.float()
    out32 = drop32(x32)
    for i, p in enumerate(ps):
        xi, oi = x32[:, i * C:(i + 1) * C], out32[:, i * C:(i + 1) * C]
        solo_value = dropout_mask((64,), p, torch.Generator(), torch.float32, "cpu").max()
        assert torch.equal(oi[oi != 0], xi[oi != 0] * solo_value)


def test_fused_in_eval_is_the_identity_and_works_in_bf16_autocast():
    pack, drop = first_dropout([0.3, 0.6], "fused")
    x = torch.randn(B, 2 * C, S, S, dtype=torch.float64)
    drop.eval()
    assert drop(x) is x
    pack.eval()
    assert torch.equal(pack(batches(2, 1)[0][0]), pack(batches(2, 1)[0][0]))
    _, bf = first_dropout([0.3, 0.6], "fused", torch.bfloat16)
    out = bf.train()(x.bfloat16())
    assert out.dtype == torch.bfloat16 and abs((out[:, :C] == 0).float().mean().item() - 0.3) < 0.03
    packf, _ = first_dropout([0.3, 0.6], "fused", torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = packf.train()(batches(2, 1, torch.float32)[0][0])
    assert logits.dtype == torch.bfloat16
    logits.float().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in packf.parameters())


def test_fused_draws_from_the_first_member_with_dropout_only():
    x = torch.rand(B, 3 * C, S, S, dtype=torch.float64) + 0.5
    _, drop = first_dropout([0.4, 0.1, 0.2], "fused")
    drop.generators = gens(7, 8, 9)
    first = drop(x)
    drop.generators = gens(7, 8, 9)
    assert torch.equal(drop(x), first)  # the same generator state: the same masks
    drop.generators = gens(7, 100, 200)
    assert torch.equal(drop(x), first)  # the other members' generators play no part
    drop.generators = g = gens(70, 8, 9)
    assert not torch.equal(drop(x) == 0, first == 0)  # slot 0's state changed: other masks
    assert torch.equal(g[1].get_state(), gens(8)[0].get_state())  # ... and the others were not drawn from
    # slot 0 without dropout: the next member with dropout draws for the pack (not the global RNG)
    _, drop0 = first_dropout([0.0, 0.3, 0.2], "fused")
    outs = []
    for _ in range(2):
        drop0.generators = gens(1, 2, 3)
        torch.manual_seed(len(outs))  # the global RNG differs between the two draws
        outs.append(drop0(x))
    assert torch.equal(outs[0], outs[1])
    drop0.generators = gens(1, 22, 3)
    assert not torch.equal(drop0(x), outs[0])


def test_a_fused_pack_is_deterministic_given_its_generators_and_trains():
    cfgs = [Config(seed=s, dropout=p) for s, p in ((1, 0.2), (2, 0.0), (3, 0.5))]
    x, y = batches(3, 1)[0]
    outs = []
    for _ in range(2):
        pack = PackedUNet.from_members([build(c) for c in cfgs])
        pack.dropout_mode = "fused"
        pack.set_dropout_generators(dropout_gens(cfgs))
        outs.append(pack.train()(x))
    assert torch.equal(outs[0], outs[1])
    exact = PackedUNet.from_members([build(c) for c in cfgs])
    fused = PackedUNet.from_members([build(c) for c in cfgs])
    fused.dropout_mode = "fused"
    assert torch.equal(exact.eval()(x), fused.eval()(x))  # the same network
    exact.set_dropout_generators(dropout_gens(cfgs))
    assert not torch.equal(exact.train()(x), outs[0])  # another choice of masks
    outs[1].sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in pack.parameters())


# ---- exact: unchanged ---------------------------------------------------------------------------------------------
def test_exact_mode_still_draws_each_members_solo_masks_after_a_switch():
    _, drop = first_dropout([0.3, 0.0, 0.5], "fused")
    drop.generators = gens(4, 5, 6)
    x = torch.randn(B, 3 * C, S, S, dtype=torch.float64)
    drop(x)
    pack = PackedUNet(3, dropouts=[0.3, 0.0, 0.5], **ARCH).double()
    pack.dropout_mode = "fused"
    pack.dropout_mode = "exact"
    assert pack.dropout_mode == "exact" and PackedUNet(1, **ARCH).dropout_mode == "exact"  # the default
    drop = pack.encoders[0][6]
    drop.generators = gens(4, 5, 6)
    out = drop(x)
    solo = gens(4, 5, 6)
    assert torch.equal(out[:, :C], x[:, :C] * dropout_mask((B, C, S, S), 0.3, solo[0], x.dtype, x.device))
    assert torch.equal(out[:, C:2 * C], x[:, C:2 * C])
    assert torch.equal(out[:, 2 * C:], x[:, 2 * C:] * dropout_mask((B, C, S, S), 0.5, solo[2], x.dtype, x.device))


def test_a_bad_mode_is_a_clear_error():
    pack = PackedUNet(2, dropouts=[0.1, 0.2], **ARCH)
    with pytest.raises(ValueError, match="pack dropout mode 'nope': use exact or fused"):
        pack.dropout_mode = "nope"
    assert pack.dropout_mode == "exact"
    assert PACK_DROPOUT == DROPOUT_MODES  # the options' copy (options.py imports no torch)


# ---- what each costs: the modelled CUDA launches -----------------------------------------------------------------
def forward_backward_launches(n: int, mode: str):
    pack = PackedUNet(n, dropouts=[0.1] * n, **ARCH).train()
    pack.dropout_mode = mode
    pack.set_dropout_generators(gens(*range(n)))
    x = torch.randn(2, n, S, S)

    def step():
        pack(x).sum().backward()

    step()  # warm-up (the fused layers' per-channel tensors are made once)
    return count_launches(step)


def test_fused_launches_do_not_grow_with_the_pack_and_exact_ones_do():
    layers = 2 * ARCH["depth"] + 1  # a dropout after every encoder and decoder block
    fused = {n: forward_backward_launches(n, "fused") for n in (2, 8)}
    exact = {n: forward_backward_launches(n, "exact") for n in (2, 8)}
    assert fused[2].launches == fused[8].launches
    assert fused[2].by_op["bernoulli_"] == fused[8].by_op["bernoulli_"] == layers  # one draw per layer
    assert exact[2].by_op["bernoulli_"] == 2 * layers and exact[8].by_op["bernoulli_"] == 8 * layers
    assert exact[8].launches - exact[2].launches == 6 * layers  # a draw per member per layer
    assert fused[8].launches < exact[8].launches
    # one layer's forward: fused draws, scales and multiplies (3); exact fills ones, draws N times, divides, multiplies
    for n in (2, 8):
        for mode, want in (("fused", 3), ("exact", n + 3)):
            _, drop = first_dropout([0.1] * n, mode, torch.float32)
            x = torch.randn(2, n * C, S, S)
            drop(x)
            assert count_launches(lambda drop=drop, x=x: drop(x)).launches == want, (mode, n)
    print(f"forward + backward, depth 2: fused {fused[2].launches} (N=2) {fused[8].launches} (N=8); "
          f"exact {exact[2].launches} (N=2) {exact[8].launches} (N=8)")


# ---- the option's way: RunnerOptions, the CLI, the PackTrainer, config.json ----------------------------------------
def test_runner_options_check_and_carry_pack_dropout():
    assert RunnerOptions().pack_dropout == "exact"
    opts = RunnerOptions(pack_dropout=" Fused ")
    assert opts.pack_dropout == "fused"
    assert RunnerOptions.from_json(opts.to_json()).pack_dropout == "fused"  # to workers, SLURM tasks, the TUI
    assert opts.for_worker("cpu", 1).pack_dropout == opts.with_workers(3).pack_dropout == "fused"
    assert RunnerOptions.from_cli({"pack_dropout": "fused", "plain": True}).pack_dropout == "fused"
    with pytest.raises(OptionsError, match=r"^--pack-dropout nope: use exact or fused$"):
        RunnerOptions(pack_dropout="nope")
    with pytest.raises(OptionsError, match="--pack-dropout"):
        RunnerOptions.from_json('{"pack_dropout": 3}')


def test_run_and_bench_refuse_a_bad_pack_dropout_in_one_line(tmp_path):
    for args in (["run", "--headless", "--pack-dropout", "nope", "-p", str(tmp_path)],
                 ["bench", "--pack", "2", "--launches", "--pack-dropout", "nope"]):
        out = CliRunner().invoke(app, args)
        assert out.exit_code == 2, out.output
        lines = [line for line in out.output.splitlines() if line.strip()]
        assert len(lines) == 1 and "--pack-dropout nope" in lines[0] and "exact or fused" in lines[0], out.output
        assert "Traceback" not in out.output
    helps = [CliRunner().invoke(app, [cmd, "--help"], env={"COLUMNS": "200"}).output for cmd in ("run", "bench")]
    assert all("--pack-dropout" in h for h in helps)


def test_bench_launches_names_the_mode_and_fused_launches_fewer():
    counts = {}
    for mode in ("exact", "fused"):
        out = CliRunner().invoke(app, ["bench", "--pack", "4", "--launches", "--image-size", "16", "--base-channels",
                                       "2", "--batch-size", "2", "--dropout", "0.1", "--pack-dropout", mode])
        assert out.exit_code == 0, out.output
        lines = out.output.strip().splitlines()
        assert f"dropout 0.1 ({mode} masks)" in lines[0]
        counts[mode] = int(lines[2].split(":")[1].split()[0])  # "launches N=4: <count> (...)"
    # depth 4: 9 dropout layers, each launching N + 3 kernels exact and 3 fused: N = 4 fewer per layer
    assert counts["exact"] - counts["fused"] == 9 * 4, counts


TINY = dict(device="cpu", dataset="synthetic:nuclei", image_size=32, base_channels=4, depth=2, batch_size=4,
            num_images=16, test_fraction=0.25, preview_count=0, epochs=2)


def test_a_fused_pack_trains_records_its_mode_and_resumes_exactly(tmp_path):
    # slot 0 without dropout: slot 1's generator draws for the pack
    cfgs = [Config(seed=2, dropout=0.0, lr=2e-3, **TINY), Config(seed=1, dropout=0.3, **TINY),
            Config(seed=3, dropout=0.5, lr=5e-4, **TINY)]
    ids = ["none", "d3", "d5"]
    with pytest.raises(ValueError, match="use exact or fused"):
        PackTrainer.from_configs(cfgs, dtype=torch.float64, dropout_mode="nope")
    straight = PackTrainer.from_configs(cfgs, dtype=torch.float64, dropout_mode="fused")
    assert straight.model.dropout_mode == "fused" and {d.mode for d in straight.model._drops} == {"fused"}
    results = straight.fit(runs(tmp_path, ids, "straight"), run_ids=ids)
    assert [r.state for r in results] == ["done"] * 3
    for m, rid in zip(straight.members, ids):
        losses = [h["train_loss"] for h in m.history] + [h["val_loss"] for h in m.history]
        assert len(m.history) == 2 and all(math.isfinite(v) for v in losses)
        config = json.loads(RunStore(tmp_path / "straight").run(rid).file("config.json").read_text())
        if m.cfg.dropout > 0:
            assert config["pack_dropout"] == m.describe()["pack_dropout"] == "fused"
        else:
            assert "pack_dropout" not in config and "pack_dropout" not in m.describe()
    # interrupted after an epoch and resumed in the same pack: the masks go on from the checkpointed generator
    split = runs(tmp_path, ids, "split")
    PackTrainer.from_configs(cfgs, dtype=torch.float64, dropout_mode="fused").fit(split, run_ids=ids,
                                                                                 until_epochs=[1, 1, 1])
    starts: list[dict] = []
    resumed = PackTrainer.from_configs(cfgs, dtype=torch.float64, dropout_mode="fused")
    resumed.fit(split, [Events(on_start=starts.append) for _ in ids], ids)
    assert [s["resumed_epoch"] for s in starts] == [1, 1, 1]
    for rid, a, b in zip(ids, straight.members, resumed.members):
        keys = ("epoch", "train_loss", "val_loss", "val_dice")
        seen = [[{k: r[k] for k in keys} for r in RunStore(tmp_path / f).run(rid).metrics()] for f in ("straight", "split")]
        assert len(seen[0]) == 2 and seen[0] == seen[1], rid
        assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())


def test_run_pack_dropout_reaches_the_pack_and_config_json(make_project):
    proj = make_project("[[experiment]]\nid = 'a'\ndropout = 0.2\n\n[[experiment]]\nid = 'b'\ndropout = 0.4\n"
                        "seed = 7\n")
    out = CliRunner().invoke(app, ["run", "--headless", "--plain", "--pack", "2", "--pack-dropout", "fused",
                                   "-p", str(proj)])
    assert out.exit_code == 0, out.output
    for rid in ("a", "b"):
        config = json.loads(next((proj / "runs").glob(f"{rid}*/config.json")).read_text())
        assert config["pack_size"] == 2 and config["pack_dropout"] == "fused"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (the packs' GPU check runs it)")
def test_on_cuda_fused_drops_each_members_channels_with_its_own_p_from_one_generator():
    """The fused draw is a Bernoulli with a per-element probability tensor, a different CUDA kernel from exact's: each
    member's drop rate is still its p, kept values are x / (1 - p), p = 0 untouched, and the same generator state
    gives the same masks."""
    ps = [0.2, 0.0, 0.5]
    pack = PackedUNet(len(ps), dropouts=ps, **ARCH).to("cuda", torch.float32)
    pack.dropout_mode = "fused"
    drop = pack.encoders[0][6]
    x = torch.rand(8, 3 * C, 64, 64, device="cuda") + 0.5
    outs = []
    for _ in range(2):
        drop.generators = [torch.Generator(device="cuda").manual_seed(s) for s in (1, 2, 3)]
        outs.append(drop(x))
    assert torch.equal(outs[0], outs[1])
    per = 8 * C * 64 * 64
    for i, p in enumerate(ps):
        xi, oi = x[:, i * C:(i + 1) * C], outs[0][:, i * C:(i + 1) * C]
        if p == 0:
            assert torch.equal(oi, xi)
            continue
        dropped = oi == 0
        assert abs(dropped.double().mean().item() - p) < 5 * math.sqrt(p * (1 - p) / per)
        scale = torch.ones((), device="cuda").div_(1.0 - p)
        assert torch.equal(oi[~dropped], xi[~dropped] * scale)
