"""The launch model (issue 27): CUDA kernel launches of a training step counted on the CPU, against counts made by
hand, and torch's multi_tensor_apply split by tensor count and by blocks."""

from __future__ import annotations

import torch

from unettui.core.learn.launches import CHUNK, count_launches, mta_launches, step_launches


def test_multi_tensor_apply_splits_by_tensor_slots_and_by_blocks():
    assert mta_launches([10] * 110, depth=1) == 1  # 110 tensor slots at depth 1
    assert mta_launches([10] * 111, depth=1) == 2
    assert mta_launches([10] * 64, depth=2) == 1 and mta_launches([10] * 65, depth=2) == 2
    assert mta_launches([10] * 96, depth=1, scalar_list=True) == 1  # a list of scalars takes argument space too
    assert mta_launches([10] * 97, depth=1, scalar_list=True) == 2
    assert mta_launches([320 * CHUNK], depth=1) == 1  # 320 blocks of 65,536 elements fill one launch
    assert mta_launches([320 * CHUNK + 1], depth=1) == 2  # one block more: a second launch, the tensor carried on
    assert mta_launches([CHUNK] * 330, depth=1) == 3  # blocks full at 110 tensors: slots first
    assert mta_launches([0, 0, 5], depth=3) == 1 and mta_launches([], depth=1) == 0  # empty tensors take no slot


def test_a_tiny_step_is_counted_as_by_hand():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 2, 3, padding=1)
    x = torch.rand(2, 1, 4, 4)
    sgd = torch.optim.SGD(conv.parameters(), lr=0.1, foreach=True)

    def sgd_step():
        sgd.zero_grad(set_to_none=True)
        conv(x).relu().sum().backward()
        sgd.step()

    sgd_step()
    c = count_launches(sgd_step)
    # forward: convolution, relu, sum (3); backward: the seed gradient (ones_like), relu's threshold_backward, and
    # convolution_backward's weight and bias gradients (the input needs none) (4); SGD: one multi-tensor add over
    # the two parameters (1)
    assert c.launches == 8 and c.syncs == 0
    assert dict(c.by_op) == {"convolution": 1, "relu": 1, "sum": 1, "ones_like": 1, "threshold_backward": 1,
                             "convolution_backward": 2, "_foreach_add_": 1}
    adam = torch.optim.Adam(conv.parameters(), lr=0.1, foreach=True)

    def adam_step():
        adam.zero_grad(set_to_none=True)
        conv(x).relu().sum().backward()
        adam.step()

    adam_step()
    c = count_launches(adam_step, [s["step"] for s in adam.state.values()])
    # the same 7, then torch's multi-tensor Adam: its step counters live on the host (no kernel), the moments' lerp_,
    # mul_ and addcmul_, sqrt, the bias correction's div_, + eps, and addcdiv_ into the parameters (7)
    assert c.launches == 14
    assert sum(v for k, v in c.by_op.items() if k.startswith("_foreach_")) == 7


def test_a_packs_forward_and_backward_launch_what_one_solo_run_launches():
    from unettui.core.define.config import Config
    from unettui.core.learn.pack_train import PackTrainer
    from unettui.core.learn.train import Trainer

    def cfg(steps: int, seed: int) -> Config:
        return Config(num_images=4 * steps, train_fraction=1.0, image_size=16, batch_size=4, base_channels=2, depth=2,
                      device="cpu", preview_count=0, seed=seed, lr=1e-3 * (1 + seed))

    solo, _ = step_launches(lambda steps: Trainer(cfg(steps, 0)))
    packs = {n: step_launches(lambda steps, n=n: PackTrainer.from_configs([cfg(steps, s) for s in range(n)]))[0]
             for n in (3, 16)}
    pack = packs[3]
    # a UNet of depth 2: 3 levels of 2 convolutions, 2 transposed and 2 x 2 decoder convolutions, the head: 13, one
    # grouped convolution each in the pack; backward a kernel per gradient: every layer's input and weight (the first
    # layer's input needs none) and the biases of the 2 transposed convolutions and the head (the others feed BN)
    assert solo.by_op["convolution"] == pack.by_op["convolution"] == 13
    assert solo.by_op["convolution_backward"] == pack.by_op["convolution_backward"] == 2 * 13 - 1 + 3
    assert solo.syncs == pack.syncs == 0
    # the optimizer: torch's multi-tensor Adam over 26 tensors (7 launches) solo; the pack's stacked step over the
    # same 26 tensors: the same 7, with each member's step size (its own lr) a per-element tensor: the copy of the
    # members' values to the device and the index_select that spreads them (2), and the multiply by it (1); besides,
    # the pack zeroes its persistent gradients (1) and counts its BatchNorms' batches in one add (1)
    foreach = [{k: v for k, v in c.by_op.items() if k.startswith("_foreach_")} for c in (solo, pack, packs[16])]
    assert sum(foreach[0].values()) == 7
    assert foreach[1] == foreach[2] == {**foreach[0], "_foreach_mul": 1, "_foreach_zero_": 1,
                                        "_foreach_add_": foreach[0]["_foreach_add_"] + 1}
    assert pack.by_op["index_select"] == packs[16].by_op["index_select"] == solo.by_op["index_select"] + 1
    assert pack.launches == packs[16].launches  # 16 members launch what 3 do


def test_bench_launches_prints_a_line_per_pack_size_and_the_pack_against_solo():
    from typer.testing import CliRunner

    from unettui.cli.app import app

    out = CliRunner().invoke(app, ["bench", "--pack", "1,2", "--launches", "--image-size", "16", "--base-channels",
                                   "2", "--batch-size", "2"])
    assert out.exit_code == 0, out.output
    lines = out.output.strip().splitlines()
    assert lines[0].startswith("launch model (CUDA kernels of one training step, counted on the CPU")
    # depth 4: 64 parameter tensors, so torch's multi-tensor Adam needs two launches where a list of 64 takes
    # the depth's slots (9 in all)
    assert lines[1].startswith("solo: ") and " launches per step (optimizer 9), 0 syncs" in lines[1]
    assert lines[2].startswith("launches N=1: ") and lines[3].startswith("launches N=2: ")
    assert lines[4].startswith("pack of 2 / solo = ")
    bad = CliRunner().invoke(app, ["bench", "--launches"])
    assert bad.exit_code == 2 and "--launches models a pack's launches" in bad.output


def test_host_work_counts_no_launch_and_a_packs_augmentation_does_not_grow_with_it():
    from unettui.core.define.config import Config
    from unettui.core.learn.devices import HOST_WORK
    from unettui.core.learn.pack_train import PackTrainer

    def draws():
        with torch.profiler.record_function(HOST_WORK):  # (a CPU generator's draws in a CUDA run)
            torch.rand(3, 4).lt(0.5)
        torch.ones(2).add_(1)

    c = count_launches(draws)
    assert c.launches == 2 and dict(c.by_op) == {"ones": 1, "add_": 1}

    def cfg(steps: int, seed: int) -> Config:
        return Config(num_images=4 * steps, train_fraction=1.0, image_size=16, batch_size=4, base_channels=2, depth=2,
                      device="cpu", preview_count=0, seed=seed, lr=1e-3 * (1 + seed), augment_hflip=0.5,
                      augment_vflip=0.5, augment_rotate=15.0)

    packs = {n: step_launches(lambda steps, n=n: PackTrainer.from_configs([cfg(steps, s) for s in range(n)]))[0]
             for n in (2, 6)}
    # each member draws its flips and angle from its own generator on the host; the flips and the rotation of the
    # whole pack's batch are the same few kernels for 2 members as for 6
    assert packs[2].launches == packs[6].launches
