"""The job readers of the backends unettui ships, by kind (SHIPPED: what a face hands the read model to ask, and
job_states re-exported), and the lines about submissions that may still run (the TUI's runner line).

A new backend adds its JobReader to SHIPPED; the read model and the faces stay as they are."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from .backend import JobReader, JobRef, JobState, LocalJobs, job_states
from .slurm_state import SlurmJobs

SHIPPED: Mapping[str, JobReader] = MappingProxyType({"local": LocalJobs(), "slurm": SlurmJobs()})
__all__ = ["SHIPPED", "JobRef", "JobState", "job_states", "last_active", "refresh_active"]


_lock = threading.Lock()
_active: dict[str, list[str]] = {}


def refresh_active(project: Path, readers: Mapping[str, JobReader] = SHIPPED) -> list[str]:
    """Every reader's lines about ``project``'s submissions that may still run (may ask the backends: call it off any
    UI thread); ``last_active`` then hands them out without I/O."""
    lines = [line for reader in readers.values() for line in reader.active(project)]
    with _lock:
        _active[str(Path(project).resolve())] = lines
    return lines


def last_active(project: Path) -> list[str]:
    """What ``refresh_active`` found last for ``project`` (no I/O)."""
    with _lock:
        return list(_active.get(str(Path(project).resolve()), []))
