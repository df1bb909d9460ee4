"""The launch model's measured counterpart (issue 27): torch.profiler's CUDA events of a training step, sorted into
kernels, copies, memsets and read-backs. The sorting is tested here on made-up and on torch's own event objects; the
measurement itself needs CUDA (its test skips without it; scripts/gpu_pack_check.sh runs it on the GPU machine)."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import pytest
import torch
from torch.autograd import DeviceType

import unettui.core.learn.launches as launches
from unettui.core.learn.launches import Measured, device_ops, measure_launches, measured_step_launches

CUDA = torch.cuda.is_available()


def dev(name: str, activity: str | None = None, **kw) -> SimpleNamespace:
    return SimpleNamespace(name=name, device_type=DeviceType.CUDA, activity_type=activity, **kw)


def host(name: str, kernels: tuple[str, ...] = ()) -> SimpleNamespace:
    return SimpleNamespace(name=name, device_type=DeviceType.CPU, activity_type="cpu_op",
                           kernels=[SimpleNamespace(name=k, device=0, duration=1.0) for k in kernels])


def test_device_events_are_sorted_by_their_activity_type():
    events = [
        host("aten::add_", ("vectorized_add",)), host("aten::copy_", ("Memcpy HtoD (Pageable -> Device)",)),
        host("aten::_local_scalar_dense", ("Memcpy DtoH (Device -> Pageable)",)),
        host("Optimizer.step#Adam.step", ("Optimizer.step#Adam.step",)), host("cudaLaunchKernel"),
        dev("vectorized_add", "kernel"), dev("vectorized_add", "kernel"), dev("reduce_kernel", "kernel"),
        dev("Memcpy HtoD (Pageable -> Device)", "gpu_memcpy"), dev("Memcpy DtoD (Device -> Device)", "gpu_memcpy"),
        dev("Memcpy DtoH (Device -> Pageable)", "gpu_memcpy"), dev("Memset (Device)", "gpu_memset"),
        dev("Optimizer.step#Adam.step", "gpu_user_annotation"),  # record_function's range on the device: no work
        dev("Stream Sync", "cuda_sync"),
    ]
    got = device_ops(events)
    assert (got.kernels, got.copies, got.memsets, got.syncs, got.other) == (3, 2, 1, 1, 1)
    assert got.launches == 6  # kernels, copies and memsets: what the model counts a launch each
    assert got.by_kernel == {"vectorized_add": 2, "reduce_kernel": 1}
    # what each aten op launched: the read-back and the annotation's own range are no launches
    assert got.by_op == {"add_": 1, "copy_": 1}


def test_without_an_activity_type_the_names_decide():
    """torch before 2.6 keeps no activity type on its events: kineto's names tell copies, memsets and annotations."""
    events = [host("## forward ##"), dev("void at::native::elementwise_kernel<128, 4>(...)"),
              dev("Memcpy HtoD (Pinned -> Device)"), dev("Memcpy DtoH (Device -> Pinned)"), dev("Memset (Device)"),
              dev("## forward ##"),  # an annotation, named as the host's range
              dev("flagged range", is_user_annotation=True), dev("Event Sync")]
    for e in events:
        del e.activity_type
    got = device_ops(events)
    assert (got.kernels, got.copies, got.memsets, got.syncs, got.other) == (1, 1, 1, 1, 1)


def test_torchs_own_event_objects_are_read():
    from torch.autograd.profiler_util import FunctionEvent

    op = FunctionEvent(1, "aten::mul", 0, 0.0, 5.0)
    op.append_kernel("mul_kernel", 0, 2.0)
    kernel = FunctionEvent(2, "mul_kernel", 0, 1.0, 3.0, device_type=DeviceType.CUDA)
    got = device_ops([op, kernel])
    assert (got.kernels, got.launches, got.by_op, got.by_kernel) == (1, 1, {"mul": 1}, {"mul_kernel": 1})
    # a real profile of CPU work: host events only, nothing on a device
    from torch.profiler import ProfilerActivity, profile

    x = torch.rand(8, 8)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        (x @ x).relu().sum()
    events = prof.events()
    assert len(events) >= 3 and device_ops(events) == Measured()


def test_a_step_is_an_epoch_of_two_steps_minus_an_epoch_of_one(monkeypatch):
    """measured_step_launches mirrors step_launches: a warm-up epoch, then a profiled one, for 1 and for 2 steps."""
    built, epochs = [], []

    class FakeTrainer:
        device = torch.device("cuda", 0)

        def __init__(self, steps):
            self.steps = steps
            built.append(steps)

        def train_epoch(self):
            epochs.append(self.steps)

    def measure(work):  # an epoch: 5 kernels of its own (shuffle, loss read-back ...) and 7 per step, 1 sync
        work()
        steps = epochs[-1]
        return Measured(kernels=5 + 7 * steps, copies=steps, syncs=1, by_op=Counter(mm=2 * steps))

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(launches, "measure_launches", measure)
    step, epoch = measured_step_launches(FakeTrainer)
    assert built == [1, 2] and epochs == [1, 1, 2, 2]  # each trainer: a warm-up epoch, then the measured one
    assert (step.kernels, step.copies, step.syncs, step.launches, step.by_op) == (7, 1, 0, 8, {"mm": 2})
    assert (epoch.kernels, epoch.syncs) == (5, 1)
    # a profile with no kernel at all (no CUPTI) is an error, not a count of zero
    monkeypatch.setattr(launches, "measure_launches", lambda work: (work(), Measured())[1])
    with pytest.raises(RuntimeError, match="recorded no CUDA kernel"):
        measured_step_launches(FakeTrainer)


@pytest.mark.skipif(CUDA, reason="checks the error given where torch sees no CUDA device")
def test_without_cuda_measuring_is_a_clear_error():
    for call in (lambda: measure_launches(lambda: None), lambda: measured_step_launches(lambda steps: None)):
        with pytest.raises(RuntimeError, match=r"needs a CUDA device.*torch.cuda.is_available\(\) is False"):
            call()


def tiny_trainer(steps: int, device: str):
    from unettui.core.define.config import Config
    from unettui.core.learn.train import Trainer

    return Trainer(Config(num_images=4 * steps, train_fraction=1.0, image_size=16, batch_size=4, base_channels=2,
                          depth=2, device=device, amp="off", preview_count=0))


def test_a_trainer_not_on_cuda_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(RuntimeError, match="needs a trainer on CUDA; this one trains on cpu"):
        measured_step_launches(lambda steps: tiny_trainer(steps, "cpu"))


@pytest.mark.skipif(not CUDA, reason="measures CUDA kernels with torch.profiler: needs a CUDA device (and CUPTI)")
def test_on_cuda_a_training_step_is_measured_beside_the_model():
    from unettui.core.learn.launches import step_launches

    step, _ = measured_step_launches(lambda steps: tiny_trainer(steps, "cuda"))
    model, _ = step_launches(lambda steps: tiny_trainer(steps, "cpu"))
    assert step.kernels > 0 and step.launches == step.kernels + step.copies + step.memsets
    assert sum(step.by_op.values()) <= step.launches
    # a step reads nothing back (the epoch's loss is read once per epoch): no sync, as the model says
    assert step.syncs == model.syncs == 0
    # cuDNN may launch several kernels for one convolution, channels_last conversions add some: the same order
    assert model.launches / 3 <= step.launches <= model.launches * 3
