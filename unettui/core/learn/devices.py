"""Where a run trains and in which precision: the ``device`` and ``amp`` keys resolved on this machine."""

from __future__ import annotations

import torch

__all__ = ["HOST_WORK", "out_of_memory", "resolve_amp", "resolve_device"]

# a torch.profiler.record_function range around work that stays on the host in a CUDA run (draws from CPU
# generators): the launch model (launches.py) counts none of it as kernel launches
HOST_WORK = "unettui.host"


def resolve_device(requested: str) -> torch.device:
    """auto picks CUDA when available; asking for CUDA on a machine without it is an error, not a silent fallback."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {requested!r} asked for, but CUDA is not available here (torch {torch.__version__}); use device = \"cpu\" or \"auto\"")
        dev = torch.device(requested)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise RuntimeError(f"device {requested!r} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)")
        return dev
    if requested == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise RuntimeError("device 'mps' asked for, but it is not available here")
    return torch.device(requested)


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """auto: bf16 on CUDA cards that support it, else fp16 (with a GradScaler); off on the CPU."""
    if amp == "off":
        return None
    if device.type != "cuda":
        if amp == "fp16":
            raise RuntimeError("amp = \"fp16\" needs a CUDA device; use \"off\" (or \"bf16\") on the CPU")
        return torch.bfloat16 if amp == "bf16" else None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16":
        return torch.bfloat16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is the device (or the host) running out of memory rather than a fault of the run's own:
    torch's out-of-memory error, Python's MemoryError, or a RuntimeError that says so (the CPU allocator's)."""
    oom = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
    text = str(exc).lower()
    return isinstance(exc, (oom, MemoryError)) or (isinstance(exc, RuntimeError) and (
        "out of memory" in text or "not enough memory" in text))
