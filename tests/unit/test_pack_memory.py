"""The memory estimate a pack's size comes from (issue 27): the activations feasible.memory_estimate charges a member
against what autograd actually keeps for the backward pass (saved-tensor hooks), solo and per member of a pack,
within 25 %."""

from __future__ import annotations

import pytest
import torch

from unettui.core.define.config import Config
from unettui.core.learn.feasible import BACKWARD_FACTOR, memory_estimate
from unettui.core.learn.pack_train import PackTrainer
from unettui.core.learn.train import Trainer


def saved_bytes(work) -> int:
    """The bytes of every distinct storage autograd saves for the backward pass while ``work()`` runs."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        storages[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        work()
    return sum(storages.values())


@pytest.mark.parametrize("size,base,depth,dropout", [(64, 16, 4, 0.0), (64, 16, 4, 0.2), (32, 8, 2, 0.0),
                                                     (128, 4, 3, 0.1)])
def test_the_estimate_is_within_25_percent_of_what_autograd_keeps_solo_and_per_pack_member(size, base, depth,
                                                                                          dropout):
    bs = 4
    cfg = Config(device="cpu", dataset="synthetic:nuclei", num_images=bs, image_size=size, base_channels=base,
                 depth=depth, batch_size=bs, train_fraction=1.0, preview_count=0, dropout=dropout)
    estimate = memory_estimate(cfg, bs)["activations"] / BACKWARD_FACTOR  # what autograd keeps, by the formula
    solo = Trainer(cfg)
    x, y = solo.train_x[:bs], solo.train_y[:bs]

    def step_solo():
        solo.model.train()
        solo.loss_fn(solo.model(x), y)

    kept = {"solo": saved_bytes(step_solo)}
    for n in (1, 4):
        pack = PackTrainer.from_configs([cfg.replace(seed=i) for i in range(n)])

        def step_pack(pack=pack, n=n):
            pack.model.train()
            xs = pack.model.pack_inputs(x.unsqueeze(0).expand(n, *x.shape).contiguous())
            pack.loss(pack.model(xs), y.unsqueeze(0).expand(n, *y.shape))

        kept[f"pack of {n}, per member"] = saved_bytes(step_pack) / n
    for what, got in kept.items():
        assert 0.75 <= estimate / got <= 1.25, (what, estimate, got)
