"""A model of the CUDA kernel launches of one training step, computed on the CPU (issue 27): what a pack of N costs
in launches against one solo run, before any GPU is lent.

How it counts. The step runs on the CPU under a ``TorchDispatchMode`` that sees every aten op the step dispatches
(forward, loss, backward, optimizer, the bookkeeping around them) with its real arguments, and charges each op the
kernels it would launch on CUDA:

* **No kernel**: views and metadata (``view``, ``transpose``, ``slice``, ``expand``, ``as_strided`` ...), allocations
  (``empty`` ...), and ops on the optimizers' step counters (0-dim tensors torch keeps on the CPU on CUDA too);
* **Multi-tensor ops** (``_foreach_*``): as torch's CUDA ``multi_tensor_apply`` splits them (``mta_launches``): a
  launch per at most ``max_tensors[depth]`` tensors and at most 320 blocks of 65,536 elements, ``depth`` the tensor
  lists the kernel touches (an out-of-place op's result too), the limits of a 4 KB kernel argument (torch with
  CUDA >= 12.1 may pass 32 KB and need fewer launches: the model is then an upper bound);
* **Convolution backward**: a kernel per gradient it computes (input, weight, bias);
* **Everything else**: one kernel. cuDNN may launch more than one kernel for a convolution, and a reduction more
  than one pass; the model counts one (the GPU check prints the profiler's measured count beside it).

``item()`` / ``tolist()`` reads (``_local_scalar_dense``) are counted apart, as ``syncs``: each is a copy to the host
that waits for the device.

A step's launches are measured, not assumed: an epoch of two steps minus an epoch of one (the same trainer set-up),
so per-epoch work (the shuffle, reading the epoch's loss) is not charged to the step.

**Measured on CUDA** (``measured_step_launches``, the same two-minus-one epochs): ``torch.profiler`` with CPU and
CUDA activity records what the step puts on the device; ``device_ops`` sorts its events into kernels, copies to or
within the device, memsets (the three together: ``Measured.launches``, what the model's ``launches`` stands for: the
model charges a copy one launch) and copies to the host (``syncs``, as the model's ``_local_scalar_dense``). It
needs a CUDA device and CUPTI (which torch's CUDA builds bring); scripts/gpu_pack_check.py prints both counts side
by side. Nothing in it has run on a GPU yet: it is written against torch's profiler API (2.2 to 2.13).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from .devices import HOST_WORK

__all__ = ["Count", "LaunchCounter", "Measured", "count_launches", "device_ops", "measure_launches",
           "measured_step_launches", "mta_launches", "step_launches"]

CHUNK = 65536  # elements per block of multi_tensor_apply
MAX_BLOCKS = 320
MAX_TENSORS = {1: 110, 2: 64, 3: 48, 4: 36, 5: 30}  # per launch, by depth (a 4 KB kernel argument)
MAX_TENSORS_SCALARLIST = {1: 96, 2: 64, 3: 48, 4: 36, 5: 30}  # with a list of scalars in the argument too

# aten ops that launch no kernel: views, metadata, allocations (by overload packet name)
NO_KERNEL = frozenset({
    "view", "_unsafe_view", "_reshape_alias", "reshape", "as_strided", "expand", "t", "transpose", "permute",
    "squeeze", "unsqueeze", "select", "slice", "narrow", "detach", "alias", "empty", "empty_like", "empty_strided",
    "new_empty", "new_empty_strided", "split", "split_with_sizes", "unbind", "chunk", "resize_", "set_",
    "lift_fresh", "is_same_size", "sym_size", "sym_stride", "sym_numel", "sym_storage_offset", "_local_scalar_dense",
    "unfold", "view_as_real", "view_as_complex", "_conj", "_neg_view", "resolve_conj", "resolve_neg", "diagonal",
    "_record_function_enter_new", "_record_function_exit",  # (profiler markers torch.optim places)
})


def mta_launches(numels: Iterable[int], depth: int, scalar_list: bool = False) -> int:
    """The launches of one CUDA ``multi_tensor_apply`` over tensors of ``numels`` elements touching ``depth`` tensor
    lists (torch's ATen/native/cuda/MultiTensorApply.cuh, 4 KB kernel arguments): a launch whenever a launch's
    tensor slots or its 320 blocks are full, and one for what is left."""
    limits = MAX_TENSORS_SCALARLIST if scalar_list else MAX_TENSORS
    max_tensors = limits[min(max(depth, 1), 5)]
    launches = tensors = blocks = 0
    for n in numels:
        if n == 0:
            continue
        tensors += 1
        chunks = math.ceil(n / CHUNK)
        for c in range(chunks):
            blocks += 1
            last = c == chunks - 1
            if (tensors == max_tensors and last) or blocks == MAX_BLOCKS:
                launches, blocks = launches + 1, 0
                tensors = 0 if last else 1
    return launches + (1 if blocks else 0)


@dataclass
class Count:
    """Kernel launches and host syncs of some work, with the launches by op (``by_op``: packet name -> launches)."""

    launches: int = 0
    syncs: int = 0
    by_op: Counter = field(default_factory=Counter)

    def __sub__(self, other: Count) -> Count:
        return Count(self.launches - other.launches, self.syncs - other.syncs, self.by_op - other.by_op)


def _tensor_lists(args: Iterable[Any]) -> list[list[torch.Tensor]]:
    return [a for a in args if isinstance(a, (list, tuple)) and a and all(isinstance(t, torch.Tensor) for t in a)]


class LaunchCounter(TorchDispatchMode):
    """Counts the modelled CUDA launches of the aten ops run under it (see the module's docstring). ``host``: tensors
    that live on the host in a CUDA run (the optimizers' step counters); an op on those alone launches nothing."""

    def __init__(self, host: Iterable[torch.Tensor] = ()):
        super().__init__()
        self.host = {t.data_ptr() for t in host}
        self.count = Count()
        self._ranges: list[str] = []  # the record_function ranges open

    def _on_host(self, tensors: list[torch.Tensor]) -> bool:
        return bool(tensors) and all(t.dim() == 0 and t.data_ptr() in self.host for t in tensors)

    def _launches(self, func, args, kwargs) -> int:
        name = func.overloadpacket.__name__
        if name in NO_KERNEL:
            return 0
        if name.startswith("_foreach_"):
            lists = _tensor_lists(args)
            if not lists or self._on_host(lists[0]):
                return 0
            depth = len(lists) + (0 if name.endswith("_") else 1)  # an out-of-place op writes a result list too
            scalar_list = any(isinstance(a, (list, tuple)) and a and not isinstance(a[0], torch.Tensor)
                              for a in args)
            return mta_launches((t.numel() for t in lists[0]), depth, scalar_list)
        tensors = [a for a in (*args, *(kwargs or {}).values()) if isinstance(a, torch.Tensor)]
        tensors += [t for lst in _tensor_lists(args) for t in lst]
        if self._on_host(tensors):
            return 0
        if name == "convolution_backward":
            mask = args[-1] if isinstance(args[-1], (list, tuple)) else (True, True, True)
            return sum(bool(m) for m in mask)
        return 1

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name == "_record_function_enter_new":  # a range: HOST_WORK ranges run on the host in a CUDA run
            self._ranges.append(args[0] if args and isinstance(args[0], str) else "")
        elif name == "_record_function_exit" and self._ranges:
            self._ranges.pop()
        if HOST_WORK in self._ranges:
            return func(*args, **(kwargs or {}))
        if name == "_local_scalar_dense" and not self._on_host([args[0]]):
            self.count.syncs += 1
        n = self._launches(func, args, kwargs)
        if n:
            self.count.launches += n
            self.count.by_op[name] += n
        return func(*args, **(kwargs or {}))


def count_launches(work: Callable[[], Any], host: Iterable[torch.Tensor] = ()) -> Count:
    """The modelled launches and syncs of ``work()`` (run once, on the CPU)."""
    counter = LaunchCounter(host)
    with counter:
        work()
    return counter.count


def _host_tensors(optimizers: Iterable[torch.optim.Optimizer]) -> list[torch.Tensor]:
    """The optimizers' step counters: 0-dim tensors torch keeps on the CPU even when training on CUDA."""
    return [s["step"] for opt in optimizers for s in opt.state.values()
            if isinstance(s.get("step"), torch.Tensor) and s["step"].dim() == 0]


def _optimizers(trainer: Any) -> list[torch.optim.Optimizer]:
    return [m.optimizer for m in trainer.in_pack] if hasattr(trainer, "in_pack") else [trainer.optimizer]


def step_launches(build: Callable[[int], Any]) -> tuple[Count, Count]:
    """(one training step's modelled launches, one epoch's own work) of the trainer ``build(steps)`` returns (a
    Trainer or PackTrainer whose epoch is ``steps`` steps): an epoch of two steps minus an epoch of one, each after a
    warm-up epoch (the optimizers' first step initialises their state off the path every later step takes)."""
    counts = []
    for steps in (1, 2):
        trainer = build(steps)
        optimizers = _optimizers(trainer)
        for opt in optimizers:  # torch's default on CUDA: the multi-tensor (foreach) implementation
            for group in opt.param_groups:
                if group.get("foreach") is None:
                    group["foreach"] = True
        trainer.train_epoch()  # warm-up
        counts.append(count_launches(trainer.train_epoch, _host_tensors(optimizers)))
    one, two = counts
    step = two - one
    return step, one - step


# ---- measured on CUDA: torch.profiler's device events -------------------------------------------------------------

@dataclass
class Measured:
    """What torch.profiler saw a piece of work put on a CUDA device: ``kernels``; ``copies`` to the device or within
    it (host to device, device to device, peer to peer); ``memsets``; ``syncs``: copies to the host (an ``item()``
    is one, and waits for the device); ``other``: device events of any other kind (e.g. CUDA synchronisation events
    where the profiler records them), kept apart. ``by_op``: the launches by the aten op that issued them (``aten::``
    dropped; empty where the profiler linked none); ``by_kernel``: kernels by name."""

    kernels: int = 0
    copies: int = 0
    memsets: int = 0
    syncs: int = 0
    other: int = 0
    by_op: Counter = field(default_factory=Counter)
    by_kernel: Counter = field(default_factory=Counter)

    @property
    def launches(self) -> int:
        """Kernels, copies and memsets: what the launch model's ``Count.launches`` counts (one per copy too)."""
        return self.kernels + self.copies + self.memsets

    def __sub__(self, other: Measured) -> Measured:
        return Measured(self.kernels - other.kernels, self.copies - other.copies, self.memsets - other.memsets,
                        self.syncs - other.syncs, self.other - other.other, self.by_op - other.by_op,
                        self.by_kernel - other.by_kernel)


_DEVICE_TYPES = ("CUDA",)  # torch.autograd.DeviceType names of the device events counted
_ANNOTATIONS = frozenset({"gpu_user_annotation", "user_annotation"})
_KERNELS = frozenset({"kernel", "concurrent_kernel"})
_SYNC_NAMES = frozenset({"Event Sync", "Stream Sync", "Context Sync", "Stream Wait Event"})  # kineto's "cuda_sync"


def _on_device(event: Any) -> bool:
    kind = getattr(event, "device_type", None)
    return getattr(kind, "name", str(kind).rsplit(".", 1)[-1]) in _DEVICE_TYPES


def _kind(name: str, activity: str | None = None) -> str:
    """A device event's kind from its activity type (torch >= 2.6 keeps kineto's: "kernel", "gpu_memcpy",
    "gpu_memset", ...) or, where the profiler keeps none, from kineto's names: "Memcpy HtoD (Pageable -> Device)",
    "Memcpy DtoH (Device -> Pinned)", "Memset (Device)", anything else a kernel."""
    low = name.lower()
    if activity in _ANNOTATIONS:
        return "annotation"
    if activity == "gpu_memcpy" or (activity in (None, "") and low.startswith("memcpy")):
        return "sync" if "dtoh" in low or "-> pageable" in low or "-> pinned" in low else "copy"
    if activity == "gpu_memset" or (activity in (None, "") and low.startswith("memset")):
        return "memset"
    if activity in _KERNELS or (activity in (None, "") and name not in _SYNC_NAMES):
        return "kernel"
    return "other"


def device_ops(events: Iterable[Any]) -> Measured:
    """Sort a profile's events (``torch.profiler.profile().events()``: FunctionEvents, or anything with their
    ``name``, ``device_type`` and, for a host event, ``kernels``) into a Measured. A device event counts once: as a
    kernel, a copy, a memset, a sync or other; the profiler's projections of ``record_function`` ranges onto the
    device's timeline (GPU user annotations: flagged, or named as a host event) are not work and count nowhere.
    ``by_op`` comes from the host events' ``kernels`` (what each aten op launched), read-backs left out."""
    events = list(events)
    host = [e for e in events if not _on_device(e)]
    host_names = {getattr(e, "name", "") for e in host}
    got = Measured()
    for e in events:
        if not _on_device(e):
            continue
        name = str(getattr(e, "name", ""))
        kind = _kind(name, getattr(e, "activity_type", None))
        if kind == "annotation" or getattr(e, "is_user_annotation", False) or name in host_names:
            continue
        if kind == "kernel":
            got.kernels += 1
            got.by_kernel[name] += 1
        elif kind == "copy":
            got.copies += 1
        elif kind == "memset":
            got.memsets += 1
        elif kind == "sync":
            got.syncs += 1
        else:
            got.other += 1
    for e in host:
        for k in getattr(e, "kernels", None) or ():
            name = str(getattr(k, "name", ""))
            if name in host_names or _kind(name) == "sync":
                continue
            got.by_op[str(getattr(e, "name", "")).removeprefix("aten::")] += 1
    return got


def _need_cuda(what: str) -> None:
    if not torch.cuda.is_available():
        raise RuntimeError(f"{what} measures CUDA kernels with torch.profiler and needs a CUDA device; this torch "
                           f"({torch.__version__}) sees none (torch.cuda.is_available() is False). On the CPU, "
                           "step_launches gives the launch model's count instead")


def measure_launches(work: Callable[[], Any]) -> Measured:
    """What ``work()`` (run once, on a CUDA device) puts on the device, as torch.profiler records it with CPU and
    CUDA activity (CPU too, so that each launch is tied to its aten op: ``by_op``); the device is synchronised
    before and inside the profile, so every event of ``work`` is in it."""
    _need_cuda("measure_launches")
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        work()
        torch.cuda.synchronize()
    return device_ops(prof.events())


def measured_step_launches(build: Callable[[int], Any]) -> tuple[Measured, Measured]:
    """(one training step's measured device work, one epoch's own) of the trainer ``build(steps)`` returns on a CUDA
    device, as ``step_launches`` models it: an epoch of two steps minus an epoch of one, each after a warm-up epoch
    (which also lets cuDNN's autotuner choose its kernels). The optimizers run as configured (on CUDA torch's
    default is the multi-tensor one, which the model assumes). Raises RuntimeError without CUDA, for a trainer not
    on CUDA, and when the profiler recorded no kernel at all (no CUPTI: the count would be meaningless)."""
    _need_cuda("measured_step_launches")
    counts = []
    for steps in (1, 2):
        trainer = build(steps)
        device = torch.device(getattr(trainer, "device", "cpu"))
        if device.type != "cuda":
            raise RuntimeError(f"measured_step_launches needs a trainer on CUDA; this one trains on {device}")
        trainer.train_epoch()  # warm-up
        counts.append(measure_launches(trainer.train_epoch))
    one, two = counts
    if not one.kernels or not two.kernels:
        raise RuntimeError("torch.profiler recorded no CUDA kernel in a training epoch: CUPTI is missing or did not "
                           "start (the profiler's warnings say which), so there is nothing to count")
    step = two - one
    return step, one - step
