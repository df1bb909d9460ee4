"""The job readers of the backends unettui ships, by kind, and asking them: the states of the jobs claims run in
(handed to the read model as data) and the lines about submissions that may still run (the TUI's runner line).

A new backend adds its JobReader to SHIPPED; the read model and the faces stay as they are."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType

from .backend import JobReader, JobRef, JobState, LocalJobs
from .slurm_state import SlurmJobs

SHIPPED: Mapping[str, JobReader] = MappingProxyType({"local": LocalJobs(), "slurm": SlurmJobs()})


def job_states(refs: Iterable[JobRef], readers: Mapping[str, JobReader] = SHIPPED) -> dict[JobRef, JobState]:
    """{(kind, job): JobState} for the jobs ``refs`` names that their kind's reader knows (each reader asked once, for
    all its jobs; a kind without a reader is left out)."""
    by_kind: dict[str, list[str]] = {}
    for kind, job in refs:
        by_kind.setdefault(kind, []).append(job)
    out: dict[JobRef, JobState] = {}
    for kind, jobs in by_kind.items():
        reader = readers.get(kind)
        if reader is not None:
            out.update({(kind, job): state for job, state in reader.job_states(jobs).items()})
    return out


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
