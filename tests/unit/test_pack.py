"""Tests for unettui.core.learn.pack: a pack of N UNets equals N solo runs (fp64, bit for bit), isolates its members, keeps solo checkpoint formats, and dispatches far fewer operators than N runs."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from unettui.core.define.config import Config
from unettui.core.learn.losses import make_loss
from unettui.core.learn.model import UNet, dropout_mask
from unettui.core.learn.optim import Schedule, make_optimizer
from unettui.core.learn.pack import PackedUNet, PackLoss, member_losses
from unettui.core.learn.pack_optim import PackOptimizer

ARCH = dict(in_channels=1, out_channels=1, base_channels=4, depth=2)
B, S = 4, 32
OPTIMIZERS = ("adam", "adamw", "adagrad", "adamax", "rmsprop", "sgd", "adadelta")

# three members that differ in everything a member may choose
MEMBERS = [
    Config(seed=11, optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=1e-3, loss="bce", dropout=0.0),
    Config(seed=22, optimizer="adam", lr=2e-3, weight_decay=1e-4, loss="dice_bce", dropout=0.2),
    Config(seed=33, optimizer="adamw", lr=5e-3, weight_decay=1e-2, loss="switching", switch_lambda=0.6,
           switch_tau=0.1, dropout=0.5),
]


def build(cfg: Config, dtype=torch.float64) -> UNet:
    torch.manual_seed(cfg.seed)  # as Trainer.__init__ does
    return UNet(dropout=cfg.dropout, **ARCH).to(dtype)


def batches(n_members: int, steps: int, dtype=torch.float64, seed: int = 0):
    """[steps] of (x [N, B, 1, S, S], y [N, B, 1, S, S]): every member its own batch."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        x = torch.randn(n_members, B, 1, S, S, generator=g, dtype=dtype)
        blur = torch.nn.functional.avg_pool2d(x.flatten(0, 1), 5, 1, 2).view_as(x)
        out.append((x, (blur > 0.1).to(dtype)))
    return out


def dropout_gens(cfgs):
    return [torch.Generator().manual_seed(1000 + c.seed) for c in cfgs]


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def solo_run(cfg: Config, data, member: int, dtype=torch.float64, sched=False):
    """The trainer's hot loop for one member; returns per-step logits, losses, first grads and the final model/opt."""
    model = build(cfg, dtype)
    model.set_dropout_generator(dropout_gens([cfg])[0])
    opt = make_optimizer(cfg, model.parameters())
    schedule = Schedule(cfg, opt, steps_per_epoch=1) if sched else None
    loss_fn = make_loss(cfg.loss, cfg.switch_lambda, cfg.switch_tau)
    logits_seen, losses, grads = [], [], None
    model.train()
    for x, y in data:
        opt.zero_grad(set_to_none=True)
        logits = model(x[member])
        loss = loss_fn(logits, y[member])
        loss.backward()
        if grads is None:
            grads = [p.grad.clone() for p in model.parameters()]
        opt.step()
        if schedule:
            schedule.epoch_end(loss.item())
        logits_seen.append(logits.detach())
        losses.append(loss.detach())
    return logits_seen, losses, grads, model, opt


def pack_run(cfgs, data, dtype=torch.float64, sched=False, poison=None, vectorized=True, active=None):
    members = [build(c, dtype) for c in cfgs]
    for u, g in zip(members, dropout_gens(cfgs)):
        u.set_dropout_generator(g)
    pack = PackedUNet.from_members(members)
    if poison is not None:
        with torch.no_grad():
            pack.encoders[0][0].weight[poison * 4] = float("nan")  # member `poison`'s first conv
    popt = PackOptimizer.from_configs(pack, cfgs)
    schedules = [Schedule(c, o, steps_per_epoch=1) for c, o in zip(cfgs, popt.optimizers)] if sched else None
    loss_fns = [make_loss(c.loss, c.switch_lambda, c.switch_tau) for c in cfgs]
    pack_loss = PackLoss.from_configs(cfgs) if vectorized else (lambda lo, ta: member_losses(lo, ta, loss_fns))
    logits_seen, losses, grads = [], [], None
    pack.train()
    for step, (x, y) in enumerate(data):
        popt.zero_grad()
        logits = pack(x)
        per_member = pack_loss(logits, y)
        per_member.sum().backward()
        if grads is None:
            grads = [p.grad.clone() for p in pack.parameters()]
        popt.step(active(step) if callable(active) else active)
        if schedules:
            for s, v in zip(schedules, per_member.tolist()):
                s.epoch_end(v)
        logits_seen.append(logits.detach())
        losses.append(per_member.detach())
    return logits_seen, losses, grads, pack, popt


def checkpoint(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    return torch.load(io.BytesIO(buf.getvalue()), weights_only=False)


def member_grads(pack: PackedUNet, grads: list[torch.Tensor], i: int) -> list[torch.Tensor]:
    names = [k for k, _ in pack.named_parameters()]
    return [pack._rows(k, g)(i) for k, g in zip(names, grads)]


# ---- the contract ---------------------------------------------------------------------------------
@pytest.mark.parametrize("vectorized", [True, False], ids=["PackLoss", "make_loss_per_member"])
def test_pack_equals_solo_runs_in_float64(vectorized):
    data = batches(3, steps=4)
    p_logits, p_losses, p_grads, pack, popt = pack_run(MEMBERS, data, vectorized=vectorized)
    worst = 0.0
    for i, cfg in enumerate(MEMBERS):
        s_logits, s_losses, s_grads, model, opt = solo_run(cfg, data, i)
        for step in range(len(data)):
            worst = max(worst, (p_logits[step][i] - s_logits[step]).abs().max().item())
            worst = max(worst, abs(p_losses[step][i].item() - s_losses[step].item()))
        worst = max(worst, max((a - b).abs().max().item() for a, b in zip(member_grads(pack, p_grads, i), s_grads)))
        worst = max(worst, max_diff(pack.member_state_dict(i), model.state_dict()))  # parameters and BN buffers
        assert pack.member_state_dict(i)["encoders.0.1.num_batches_tracked"].item() == len(data)
    print(f"pack vs solo, fp64, 3 members x {len(data)} steps, {'PackLoss' if vectorized else 'make_loss'}: "
          f"max |diff| = {worst:.3g}")
    assert worst <= 1e-12


def test_packed_dropout_draws_each_members_solo_masks():
    gens = [torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)]
    drop = PackedUNet(2, dropouts=[0.0, 0.5], **ARCH).double().encoders[0][6]
    drop.generators = [None, gens[0]]
    x = torch.randn(B, 2 * 4, S, S, dtype=torch.float64)
    out = drop(x)
    assert torch.equal(out[:, :4], x[:, :4])  # p = 0: untouched, no draw
    assert torch.equal(out[:, 4:], x[:, 4:] * dropout_mask((B, 4, S, S), 0.5, gens[1], x.dtype, x.device))
    assert torch.equal(gens[0].get_state(), gens[1].get_state())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pack_loss_equals_make_loss_member_by_member(dtype):
    specs = [("bce", 0.75, 0.05), ("dice", 0.75, 0.05), ("dice_bce", 0.75, 0.05), ("inv_dice_bce", 0.75, 0.05),
             ("switching", 0.6, 0.1), ("switching", 0.9, 0.9), ("switching", 0.3, 0.0)]
    torch.manual_seed(0)
    logits = (torch.randn(len(specs), B, 1, S, S) * 3).to(dtype).requires_grad_()
    targets = (torch.rand(len(specs), B, 1, S, S) > 0.8).to(dtype)
    mine = PackLoss(specs)(logits, targets)
    (g_mine,) = torch.autograd.grad(mine.sum(), logits)
    ref = member_losses(logits, targets, [make_loss(*spec) for spec in specs])
    (g_ref,) = torch.autograd.grad(ref.sum(), logits)
    assert mine.dtype == torch.float32 and mine.shape == (len(specs),)
    assert torch.equal(mine, ref) and torch.equal(g_mine, g_ref)
    for subset in ([0], [1], [2, 3], [4]):  # packs that skip terms no member needs
        sub = PackLoss([specs[i] for i in subset])(logits[subset], targets[subset])
        assert torch.equal(sub, ref[subset])
    with pytest.raises(ValueError):
        PackLoss([("hinge", 0.75, 0.05)])


def test_all_seven_optimizers_stacked_equal_solo_with_a_scheduler():
    cfgs = [Config(seed=i, optimizer=o, lr=[1e-2, 3e-3][i % 2], weight_decay=[0.0, 1e-3][i % 2 == 0],
                   momentum=0.8, loss="bce", scheduler="step", lr_step_size=1, lr_gamma=0.7)
            for i, o in enumerate(OPTIMIZERS + OPTIMIZERS[:3])]  # 10 members: some kinds twice
    data = batches(len(cfgs), steps=3)
    _, _, _, pack, popt = pack_run(cfgs, data, sched=True)
    for i, cfg in enumerate(cfgs):
        _, _, _, model, opt = solo_run(cfg, data, i, sched=True)
        diff = max_diff(pack.member_state_dict(i), model.state_dict())
        assert diff == 0, (cfg.optimizer, diff)
        assert popt.optimizers[i].param_groups[0]["lr"] == opt.param_groups[0]["lr"] != cfg.lr
        a, b = popt.optimizers[i].state_dict(), opt.state_dict()
        assert a["param_groups"] == b["param_groups"]
        for k in b["state"]:
            for key, v in b["state"][k].items():
                assert torch.equal(a["state"][k][key], v), (cfg.optimizer, key)


# ---- isolation ------------------------------------------------------------------------------------
def test_a_nan_member_leaves_the_others_bit_identical():
    data = batches(3, steps=3)
    clean = pack_run(MEMBERS, data)
    dirty = pack_run(MEMBERS, data, poison=1)
    assert torch.isnan(dirty[0][0][1]).all() and torch.isnan(dirty[1][0][1])
    for i in (0, 2):
        for step in range(len(data)):
            assert torch.equal(clean[0][step][i], dirty[0][step][i])
            assert torch.equal(clean[1][step][i], dirty[1][step][i])
        for a, b in zip(member_grads(clean[3], clean[2], i), member_grads(dirty[3], dirty[2], i)):
            assert torch.equal(a, b)
        sd_clean, sd_dirty = clean[3].member_state_dict(i), dirty[3].member_state_dict(i)
        assert all(torch.equal(sd_clean[k], sd_dirty[k]) for k in sd_clean)  # parameters and BN buffers


def test_a_frozen_member_stops_changing_and_the_others_go_on():
    """Member 1 (adam, in one range with member 2's adamw) steps once, then is frozen: its parameters and its
    optimizer state stay as they were, the others train on as in a pack where it steps."""
    data = batches(3, steps=4)
    once = pack_run(MEMBERS, data[:1])
    frozen = pack_run(MEMBERS, data, active=lambda step: [0, 1, 2] if step == 0 else [0, 2])
    params = [k for k, _ in UNet(**ARCH).named_parameters()]
    after, at_freeze = frozen[3].member_state_dict(1), once[3].member_state_dict(1)
    assert all(torch.equal(after[k], at_freeze[k]) for k in params)
    state, state_at_freeze = frozen[4].optimizers[1].state_dict()["state"], once[4].optimizers[1].state_dict()["state"]
    assert state.keys() == state_at_freeze.keys() and len(state) == len(params)
    for k in state:
        assert state[k]["step"].item() == 1
        assert all(torch.equal(state[k][key], state_at_freeze[k][key]) for key in ("exp_avg", "exp_avg_sq"))
    clean = pack_run(MEMBERS, data)
    for i in (0, 2):
        assert max_diff(clean[3].member_state_dict(i), frozen[3].member_state_dict(i)) == 0


def test_a_member_frozen_from_the_start_has_no_state_and_a_nan_one_touches_no_other():
    data = batches(3, steps=3)
    before = PackedUNet.from_members([build(c) for c in MEMBERS]).member_state_dict(1)
    frozen = pack_run(MEMBERS, data, active=[0, 2])
    after = frozen[3].member_state_dict(1)
    assert all(torch.equal(after[k], before[k]) for k, _ in UNet(**ARCH).named_parameters())  # never stepped
    assert frozen[4].optimizers[1].state_dict()["state"] == {}
    # its gradients NaN (a diverged member): its own rows may turn NaN, no other member's changes
    poisoned = pack_run(MEMBERS, data, poison=1, active=[0, 2])
    for i in (0, 2):
        assert max_diff(frozen[3].member_state_dict(i), poisoned[3].member_state_dict(i)) == 0


def test_plain_cat_would_mix_members():
    """The per-member skip concatenation matters: a channel-wise cat gives member 0 member 1's channels."""
    torch.manual_seed(0)
    pack = PackedUNet(2, **ARCH).double().eval()
    x = torch.randn(2, B, 1, S, S, dtype=torch.float64)
    ref = pack(x)
    import unettui.core.learn.pack as pk

    original = pk._member_cat
    try:
        pk._member_cat = lambda skip, up, n: torch.cat([skip, up], dim=1)
        mixed = pack(x)
    finally:
        pk._member_cat = original
    assert (mixed - ref).abs().max().item() > 1e-3
    for i in range(2):
        solo = UNet(**ARCH).double().eval()
        solo.load_state_dict(checkpoint(pack.member_state_dict(i)))
        assert torch.equal(solo(x[i]), ref[i])


# ---- formats ----------------------------------------------------------------------------------------
def test_member_state_dict_round_trip_and_optimizer_state_round_trip():
    cfgs = MEMBERS
    solos = [build(c) for c in cfgs]
    pack = PackedUNet.from_members(solos)
    for i, u in enumerate(solos):
        mine, theirs = pack.member_state_dict(i), u.state_dict()
        assert list(mine) == list(theirs) and mine._metadata == theirs._metadata
        assert all(mine[k].shape == theirs[k].shape and mine[k].dtype == theirs[k].dtype for k in mine)
        assert all(torch.equal(mine[k], theirs[k]) for k in mine)
        assert mine["encoders.0.0.weight"].untyped_storage().nbytes() == theirs["encoders.0.0.weight"].numel() * 8
    # a trained member goes back into a solo UNet, and a solo checkpoint joins another pack's slot
    data = batches(3, steps=2)
    _, _, _, trained, popt = pack_run(cfgs, data)
    solo = build(cfgs[1])
    solo.load_state_dict(trained.member_state_dict(1))
    other = PackedUNet(3, dropouts=[c.dropout for c in cfgs], **ARCH).double()
    other.load_member_state_dict(2, solo.state_dict())
    assert max_diff(other.member_state_dict(2), trained.member_state_dict(1)) == 0
    # optimizer state: member -> solo optimizer -> member, and the runs continue identically
    opt_solo = make_optimizer(cfgs[1], solo.parameters())
    # (through a checkpoint: an in-memory state_dict shares its tensors, even 'step', with the optimizer)
    opt_solo.load_state_dict(checkpoint(popt.optimizers[1].state_dict()))
    popt2 = PackOptimizer.from_configs(other, [cfgs[0], cfgs[2], cfgs[1]])
    popt2.optimizers[2].load_state_dict(checkpoint(opt_solo.state_dict()))
    x, y = batches(3, 1, seed=9)[0]
    loss_fn = make_loss(cfgs[1].loss)
    for model, step in ((solo, opt_solo.step), (other, popt2.step)):
        model.eval()  # no dropout draws: compare the optimizer alone
        out = model(x[1]) if model is solo else model(torch.stack([x[1]] * 3))[2]
        loss_fn(out, y[1]).backward()
        step()
    assert max_diff(other.member_state_dict(2), solo.state_dict()) == 0
    with pytest.raises(KeyError):
        other.load_member_state_dict(0, {"nope": torch.zeros(1)})


# ---- fp32, layouts, autocast ---------------------------------------------------------------------------
def test_float32_first_step_gradients_match_solo():
    data = batches(3, steps=1, dtype=torch.float32)
    _, _, p_grads, pack, _ = pack_run(MEMBERS, data, dtype=torch.float32)
    worst = 0.0
    for i, cfg in enumerate(MEMBERS):
        s_grads = solo_run(cfg, data, i, dtype=torch.float32)[2]
        for a, b in zip(member_grads(pack, p_grads, i), s_grads):
            worst = max(worst, ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item())
    print(f"fp32 first-step gradients, max relative diff: {worst:.3g}")
    assert worst < 1e-4


def test_pack_of_one_is_a_unet():
    solo = build(MEMBERS[1])
    pack = PackedUNet.from_members([build(MEMBERS[1])])
    x = batches(1, 1)[0][0]
    solo.set_dropout_generator(torch.Generator().manual_seed(7))
    pack.set_dropout_generators([torch.Generator().manual_seed(7)])
    assert torch.equal(solo(x[0]), pack(x)[0])  # training mode, dropout 0.2
    solo.eval(), pack.eval()
    assert torch.equal(solo(x[0]), pack(x)[0])


def test_seeded_dropout():
    torch.manual_seed(0)
    model = UNet(dropout=0.4, **ARCH).double()
    x = torch.randn(B, 1, S, S, dtype=torch.float64)
    drops = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(drops) == 2 * ARCH["depth"] + 1 and all(type(m).__name__ == "SeededDropout" for m in drops)
    reference = torch.nn.Dropout(0.4)  # without a generator: nn.Dropout on the global RNG
    torch.manual_seed(1)
    expected = reference(x)
    torch.manual_seed(1)
    assert torch.equal(drops[0](x), expected)
    # with one: reproducible, independent of the global RNG, element-wise, scaled by 1/(1-p), identity in eval
    outs = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        model.set_dropout_generator(torch.Generator().manual_seed(42))
        outs.append(drops[0](x))
    assert torch.equal(outs[0], outs[1])
    kept = outs[0] != 0
    assert torch.allclose(outs[0][kept], x[kept] / 0.6, rtol=0, atol=1e-15)
    assert 0.45 < kept.double().mean().item() < 0.75
    gen = torch.Generator().manual_seed(5)
    model.set_dropout_generator(gen)
    model.train()
    model(x)
    assert not torch.equal(gen.get_state(), torch.Generator().manual_seed(5).get_state())
    model.eval()
    state = gen.get_state()
    assert torch.equal(drops[0](x), x) and torch.equal(gen.get_state(), state)
    assert set(model.state_dict()) == set(UNet(dropout=0.4, **ARCH).state_dict())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cpu_generator_for_cuda_activations_is_a_clear_error():
    model = UNet(dropout=0.3, **ARCH).cuda().train()
    model.set_dropout_generator(torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="torch.Generator"):
        model(torch.randn(B, 1, S, S, device="cuda"))
    model.set_dropout_generator(torch.Generator(device="cuda").manual_seed(0))
    model(torch.randn(B, 1, S, S, device="cuda"))


def test_channels_last_and_autocast():
    cfgs = MEMBERS
    pack = PackedUNet.from_members([build(c) for c in cfgs])
    x = batches(3, 1)[0][0]
    pack.eval()
    ref = pack(x)
    pack_cl = copy.deepcopy(pack).to(memory_format=torch.channels_last)
    assert pack_cl.encoders[0][3].weight.is_contiguous(memory_format=torch.channels_last)
    assert not pack.encoders[0][3].weight.is_contiguous(memory_format=torch.channels_last)
    out = pack_cl(pack.pack_inputs(x).contiguous(memory_format=torch.channels_last))
    assert out.shape == (3, B, 1, S, S) and out.is_contiguous()
    assert (out - ref).abs().max().item() < 1e-12
    pack.train(), pack_cl.train()  # a training forward with dropout: same masks, per-member cat on NHWC memory
    outs = []
    for model, inp in ((pack, x), (pack_cl, pack.pack_inputs(x).contiguous(memory_format=torch.channels_last))):
        model.set_dropout_generators(dropout_gens(cfgs))
        outs.append(model(inp))
    assert (outs[0] - outs[1]).abs().max().item() < 1e-12
    assert max(max_diff(pack.member_state_dict(i), pack_cl.member_state_dict(i)) for i in range(3)) < 1e-12
    packf = PackedUNet.from_members([build(c, torch.float32) for c in cfgs]).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = packf(x.float())
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in packf.parameters())


# ---- proof of fusion ----------------------------------------------------------------------------------
VIEW_OPS = {"aten::view", "aten::reshape", "aten::_reshape_alias", "aten::select", "aten::slice", "aten::narrow",
            "aten::permute", "aten::transpose", "aten::t", "aten::expand", "aten::unsqueeze", "aten::squeeze",
            "aten::as_strided", "aten::alias", "aten::detach", "aten::detach_", "aten::_unsafe_view",
            "aten::unbind", "aten::split", "aten::split_with_sizes", "aten::chunk", "aten::flatten",
            "aten::view_as", "aten::expand_as", "aten::lift_fresh", "aten::is_nonzero", "aten::result_type"}


def count_ops(step, warmup: int = 2) -> tuple[int, int]:
    """(top-level aten ops, of which not view/metadata-only) dispatched by one call of ``step``.

    Top-level: an ``aten::`` event with no ``aten::`` ancestor, i.e. what Python or the autograd
    engine dispatched (a foreach op counts once, as on CUDA it is one multi-tensor launch per chunk).
    """
    for _ in range(warmup):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    top = []
    for ev in prof.events():
        if not ev.name.startswith("aten::"):
            continue
        parent = ev.cpu_parent
        while parent is not None and not parent.name.startswith("aten::"):
            parent = parent.cpu_parent
        if parent is None:
            top.append(ev.name)
    return len(top), sum(name not in VIEW_OPS for name in top)


def _solo_step(cfg):
    model = build(cfg, torch.float32).train()
    opt = make_optimizer(cfg, model.parameters())
    opt.param_groups[0]["foreach"] = True  # the CUDA default (on the CPU torch defaults to a per-tensor loop)
    loss_fn = make_loss(cfg.loss)
    x, y = batches(1, 1, torch.float32)[0]

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x[0]), y[0]).backward()
        opt.step()

    return step


def _pack_step(cfgs):
    pack = PackedUNet.from_members([build(c, torch.float32) for c in cfgs]).train()
    popt = PackOptimizer.from_configs(pack, cfgs)
    pack_loss = PackLoss.from_configs(cfgs)
    x, y = batches(len(cfgs), 1, torch.float32)[0]

    def step():
        popt.zero_grad()
        pack_loss(pack(x), y).sum().backward()
        popt.step()

    return step


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_pack_of_8_dispatches_under_1_5x_the_ops_of_one_run(optimizer):
    cfgs = [Config(seed=i, optimizer=optimizer, lr=1e-3 * (1 + i), loss="dice_bce") for i in range(8)]
    solo_all, solo = count_ops(_solo_step(cfgs[0]))
    pack_all, pack = count_ops(_pack_step(cfgs))
    print(f"{optimizer}: ops per training step (top-level aten, all / without views): "
          f"one UNet {solo_all} / {solo}, pack of 8 {pack_all} / {pack} "
          f"(x{pack_all / solo_all:.2f} / x{pack / solo:.2f}; 8 sequential runs: {8 * solo_all} / {8 * solo})")
    assert pack_all < 1.5 * solo_all and pack < 1.5 * solo
