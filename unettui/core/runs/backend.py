"""Where runners run, as an interface: a backend submits runner processes with a RunnerOptions, cancels them, reports
the state of its jobs as plain data (JobState), and names the files its jobs wrote. unettui ships two: local processes
(unettui/cluster/local.py) and SLURM (unettui/cluster/slurm.py); their read halves — job states, and lines about
submissions that may still run — are JobReaders in the core (``core.runs.jobs`` lists them by kind).

The read model (core.runs.status) never asks a backend itself: rows take their job's state from a mapping
``{(kind, job): JobState}`` handed to them. A claim records its backend in status.json (``backend``: kind and job)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .options import RunnerOptions
from .store import HOST, RUNS_DIR, claim_alive, pid_alive, read_json

JobRef = tuple[str, str]  # (backend kind, job id in that backend's words): ("slurm", "42_3"), ("local", "box:4242")


@dataclass(frozen=True)
class JobState:
    """A backend's job (or task) as its backend sees it, in unettui's words."""

    word: str  # submitted, pending, requeued, running, completed, cancelled, timeout, failed, gone, ...
    reason: str = ""  # why it waits, while it waits (a scheduler's reason: Resources, Priority, ...); "" otherwise

    @property
    def label(self) -> str:
        """``running``, ``pending (Resources)``: what is shown beside a run's state."""
        return f"{self.word} ({self.reason})" if self.reason else self.word


@dataclass
class Submission:
    """What a backend's ``submit`` started."""

    kind: str  # the backend's kind: "local", "slurm"
    job: str  # its id in the backend's words: "box:4242" (host:pid), "4242" (a SLURM job)
    tasks: int = 1  # runner processes it starts (local: the runner and its --workers; SLURM: array tasks)
    log: str | None = None  # where its output goes (a file; SLURM: the folder of the tasks' files)
    record: dict[str, Any] = field(default_factory=dict)  # the backend's own record (SLURM: runs/.slurm/<token>.json)
    process: Any = None  # local: the subprocess.Popen; None for a backend whose processes run elsewhere


class BackendError(Exception):
    """One line: what a backend could not do, and why."""


@runtime_checkable
class JobReader(Protocol):
    """The read half of a backend, for every face: no submission library, bounded in time, safe off the UI thread."""

    kind: str

    def job_states(self, jobs: Iterable[str]) -> dict[str, JobState]:
        """{job: JobState} for the jobs of ``jobs`` (ids in this backend's words) it knows; the others are left out."""
        ...

    def active(self, project: Path) -> list[str]:
        """One line per submission of ``project`` that may still run (may ask the backend: call it off a UI thread)."""
        ...


@runtime_checkable
class Backend(JobReader, Protocol):
    """A place runners run: what `unettui run`, the TUI and `unettui cancel` use whatever it is."""

    def submit(self, project: Path, options: RunnerOptions) -> Submission:
        """Start runner processes on ``project``'s queue with ``options``; returns at once. Raises BackendError."""
        ...

    def cancel(self, project: Path, run_ids: list[str] | None = None) -> list[str]:
        """Stop the processes training ``run_ids`` (None: all this backend runs for ``project``), which leave their
        runs interrupted and resumable; the lines that say what was stopped. Raises BackendError when nothing is."""
        ...

    def logs(self, project: Path, run_id: str) -> list[tuple[str, Path]]:
        """(which claim: "current", "attempt N", ..., file) for the output files this backend's jobs wrote while
        training ``run_id``, oldest first."""
        ...


# ---- a claim's backend, as status.json records it ---------------------------------------------------------------


def backend_of(status: dict[str, Any] | None) -> dict[str, Any]:
    """The ``backend`` recorded in a status.json ({} for a local claim, or anything unreadable)."""
    b = (status or {}).get("backend")
    return dict(b) if isinstance(b, dict) and isinstance(b.get("kind"), str) and b.get("job") is not None else {}


def job_ref(backend: dict[str, Any]) -> JobRef | None:
    """The (kind, job) of a claim's ``backend``, or None for a local claim."""
    return (str(backend["kind"]), str(backend["job"])) if backend.get("kind") and backend.get("job") is not None \
        else None


def claim_backend(prev: dict[str, Any] | None, backend: dict[str, Any] | None) -> dict[str, Any]:
    """The fields a new claim writes into status.json: ``backend`` (this runner's, when it has one) and ``backends``
    (the backends of the earlier claims of this attempt: where its earlier logs are)."""
    prev = prev or {}
    history = [b for b in prev.get("backends", []) if isinstance(b, dict)] if isinstance(prev.get("backends"), list) else []
    old = backend_of(prev)
    if old and old not in history:
        history.append(old)
    out: dict[str, Any] = {}
    if backend:
        out["backend"] = dict(backend)
    history = [b for b in history if b != backend]
    if history:
        out["backends"] = history
    return out


# ---- local processes: the read half ---------------------------------------------------------------------------


class LocalJobs:
    """Runner processes on machines sharing the project folder. A local job is ``HOST:PID``; only this machine can
    say anything of its own processes (alive: running; gone: gone), so another machine's are left out (unknown)."""

    kind = "local"

    def job_states(self, jobs: Iterable[str]) -> dict[str, JobState]:
        out: dict[str, JobState] = {}
        for job in jobs:
            host, _, pid = str(job).rpartition(":")
            if host == HOST and pid.isdigit():
                out[job] = JobState("running" if pid_alive(int(pid)) else "gone")
        return out

    def active(self, project: Path) -> list[str]:
        return []  # local runners are seen through their claims (the TUI's runner line), not through submissions

    @staticmethod
    def claims(project: Path) -> dict[str, int]:
        """{run id: pid} of the live claims of processes of this machine that run outside any scheduler."""
        out: dict[str, int] = {}
        root = Path(project) / RUNS_DIR
        try:
            names = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
        except OSError:
            return out
        for name in names:
            st = read_json(root / name / "status.json") or {}
            pid = st.get("pid")
            if (st.get("host") == HOST and isinstance(pid, int) and not isinstance(pid, bool) and not backend_of(st)
                    and claim_alive(st)):
                out[name] = pid
        return out


def job_states(refs: Iterable[JobRef], readers: Mapping[str, JobReader]) -> dict[JobRef, JobState]:
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
