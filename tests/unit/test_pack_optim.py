"""The stacked optimizer step (issue 27): all seven optimizers, members of one kind with their own
hyper-parameters in one range, equal their solo runs bit for bit in float64; the solo state format; layouts."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from unettui.core.learn.pack import PackedUNet, PackLoss
from unettui.core.learn.pack_optim import PackOptimizer

from .test_pack import ARCH, MEMBERS, batches, build, checkpoint, max_diff

# per kind: three members' constructors, differing in every hyper-parameter the kind has
OPT = torch.optim
KINDS = {
    "adam": [lambda p: OPT.Adam(p, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-3),
             lambda p: OPT.AdamW(p, lr=5e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-2),
             lambda p: OPT.Adam(p, lr=1e-3, betas=(0.95, 0.9), eps=1e-7)],
    "sgd": [lambda p: OPT.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-3),
            lambda p: OPT.SGD(p, lr=0.02),
            lambda p: OPT.SGD(p, lr=0.1, momentum=0.5, dampening=0.3)],
    "rmsprop": [lambda p: OPT.RMSprop(p, lr=1e-3, alpha=0.99, eps=1e-8, weight_decay=1e-4),
                lambda p: OPT.RMSprop(p, lr=3e-3, alpha=0.9, eps=1e-6)],
    "adagrad": [lambda p: OPT.Adagrad(p, lr=1e-2, lr_decay=0.0, eps=1e-10, weight_decay=1e-3),
                lambda p: OPT.Adagrad(p, lr=3e-2, lr_decay=0.1, eps=1e-8)],
    "adamax": [lambda p: OPT.Adamax(p, lr=2e-3, betas=(0.9, 0.999), weight_decay=1e-3),
               lambda p: OPT.Adamax(p, lr=1e-3, betas=(0.7, 0.9), eps=1e-6)],
    "adadelta": [lambda p: OPT.Adadelta(p, lr=1.0, rho=0.9, eps=1e-6, weight_decay=1e-3),
                 lambda p: OPT.Adadelta(p, lr=0.5, rho=0.8, eps=1e-5)],
}
CFG = MEMBERS[0]  # the loss and dropout 0 of every member here


def run(makers, steps=4, dtype=torch.float64, channels_last=False, device="cpu"):
    """A pack of len(makers) members (seeds of MEMBERS[0]...), each with its own optimizer, and each member alone."""
    n = len(makers)
    cfgs = [dataclasses.replace(CFG, seed=100 + i) for i in range(n)]
    pack = PackedUNet.from_members([build(c, dtype) for c in cfgs]).to(device)
    if channels_last:
        pack = pack.to(memory_format=torch.channels_last)
    popt = PackOptimizer(pack, lambda i, params: makers[i](params))
    loss = PackLoss.from_configs(cfgs)
    data = [(x.to(device), y.to(device)) for x, y in batches(n, steps, dtype)]
    pack.train()
    varying = set()
    for x, y in data:
        popt.zero_grad()
        xin = pack.pack_inputs(x)
        loss(pack(xin.contiguous(memory_format=torch.channels_last) if channels_last else xin), y).sum().backward()
        popt.step()
        varying |= {name for rg in popt._ranges for name, v in rg.c.items() if isinstance(v, list)}
    solos = []
    for i, c in enumerate(cfgs):
        model = build(c, dtype).to(device).train()
        opt = makers[i](model.parameters())
        for x, y in data:
            opt.zero_grad(set_to_none=True)
            PackLoss.from_configs([c])(model(x[i]).unsqueeze(0), y[i:i + 1]).sum().backward()
            opt.step()
        solos.append((model, opt))
    return pack, popt, solos, varying


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_members_of_one_kind_with_their_own_hyper_parameters_equal_their_solo_runs_bit_for_bit(kind):
    pack, popt, solos, varying = run(KINDS[kind])
    assert len(popt._ranges) == 1  # one range: one sequence of foreach calls over the stacked tensors
    assert "step" in varying  # the per-member values really went through per-element tensors
    for i, (model, opt) in enumerate(solos):
        assert max_diff(pack.member_state_dict(i), model.state_dict()) == 0, (kind, i)
        mine, theirs = popt.optimizers[i].state_dict(), opt.state_dict()
        assert mine["param_groups"] == theirs["param_groups"]
        assert mine["state"].keys() == theirs["state"].keys()
        for k, entry in theirs["state"].items():
            assert list(mine["state"][k]) == list(entry), kind  # the same keys, in torch's order
            for key, v in entry.items():
                assert v.dtype == mine["state"][k][key].dtype and torch.equal(mine["state"][k][key], v), (kind, key)


def test_a_pack_of_every_kind_and_channels_last_parameters():
    makers = [m for kind in sorted(KINDS) for m in KINDS[kind]]
    pack, popt, solos, _ = run(makers, steps=3)
    assert [(rg.kind.name, rg.a, rg.b) for rg in popt._ranges][:2] == [("adadelta", 0, 2), ("adagrad", 2, 4)]
    for i, (model, _) in enumerate(solos):
        assert max_diff(pack.member_state_dict(i), model.state_dict()) == 0, i
    # channels_last (the CUDA layout): the coefficients take the parameters' strides; rounding of NHWC convolutions
    cl, _, _, _ = run(makers, steps=3, channels_last=True)
    assert cl.encoders[0][3].weight.is_contiguous(memory_format=torch.channels_last)
    assert max(max_diff(pack.member_state_dict(i), cl.member_state_dict(i)) for i in range(len(makers))) < 1e-12


def test_state_dicts_hold_copies_of_a_members_rows_and_load_back_into_another_slot():
    makers = KINDS["adam"]
    pack, popt, _, _ = run(makers, steps=2)
    sd = popt.optimizers[1].state_dict()
    t = sd["state"][0]["exp_avg"]
    assert t.untyped_storage().nbytes() == t.numel() * 8  # its rows only: a checkpoint is a solo one's size
    before = t.clone()
    popt.step()  # (the gradients are still there)
    assert torch.equal(t, before)  # a copy: the pack's next steps leave it as it was
    # member 1's state into slot 0 of a new pack: the same numbers as it continues
    other = PackedUNet.from_members([build(MEMBERS[0]) for _ in range(3)])
    popt2 = PackOptimizer(other, lambda i, params: makers[1](params))
    popt2.optimizers[0].load_state_dict(checkpoint(sd))
    back = popt2.optimizers[0].state_dict()
    assert all(torch.equal(back["state"][k][key], sd["state"][k][key]) for k in sd["state"] for key in sd["state"][k])
    assert popt2.optimizers[1].state_dict()["state"] == {}  # the other slots untouched: no state before a step
    # a fresh state loaded over a trained slot clears it
    popt.optimizers[1].load_state_dict(makers[1](popt.views[1]).state_dict())
    assert popt.optimizers[1].state_dict()["state"] == {} and popt.steps[1] == 0


def test_unsupported_options_are_refused_by_name():
    pack = PackedUNet(2, **ARCH).double()
    with pytest.raises(ValueError, match="amsgrad"):
        PackOptimizer(pack, lambda i, params: OPT.Adam(params, amsgrad=True))
    with pytest.raises(ValueError, match="nesterov"):
        PackOptimizer(pack, lambda i, params: OPT.SGD(params, lr=0.1, momentum=0.9, nesterov=True))
    with pytest.raises(ValueError, match="LBFGS"):
        PackOptimizer(pack, lambda i, params: OPT.LBFGS(params))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (the packs' GPU check runs it)")
def test_on_cuda_the_stacked_step_of_every_kind_matches_solo_runs_to_float64_rounding():
    """On CUDA torch's solo optimizers take their multi-tensor path too; the stacked step's per-element coefficients
    may round the last bit differently from a scalar's kernel, no more (float64, channels_last as the trainer)."""
    makers = [m for kind in sorted(KINDS) for m in KINDS[kind]]
    pack, _, solos, varying = run(makers, steps=3, channels_last=True, device="cuda")
    assert "step" in varying
    worst = max(max_diff(pack.member_state_dict(i), model.state_dict()) for i, (model, _) in enumerate(solos))
    print(f"CUDA float64, {len(makers)} members of seven kinds, 3 steps: max |pack - solo| = {worst:.3g}")
    assert worst <= 1e-10
