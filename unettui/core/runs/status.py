"""The read model: the state of every experiment, derived in one place from experiments.toml and runs/.

Every face — `ls`, `results`, `export`, `show`, the runner's plan and claims, study stages and the TUI — takes an
experiment's state, epoch, attempt, error and metrics from here, so they agree by construction and use one
vocabulary (State). Run folders are read by core.runs.reader, the one reader: the TUI follows them (RunReader) and
hands what it read to ``row_of``; everyone else calls ``collect`` or ``judge`` with files read by ``read_run``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..define.config import Config, definition_changes, describe_changes
from ..learn.dataset_id import DataId, data_id
from .backend import JobReader, JobRef, JobState, backend_of, job_ref, job_states
from .reader import RunFiles, read_run
from .store import (
    HEARTBEAT_TIMEOUT,
    METRICS,
    STATUS,
    Run,
    RunStore,
    claim_alive,
    read_json,
    read_jsonl,
    short_of,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..define.experiment import Experiment
    from ..define.queue import Queue


class State(str, Enum):
    """What an experiment is, in the words every face uses."""

    PENDING = "pending"
    RUNNING = "running"
    INTERRUPTED = "interrupted"
    DONE = "done"
    PRUNED = "pruned"
    FAILED = "failed"
    INVALID = "invalid"
    CHANGED = "changed"
    DAMAGED = "damaged"

    def __str__(self) -> str:
        return self.value


STATE_HELP = {
    State.PENDING: "nothing trained yet (or `retry` made it start again, or successive halving promoted it to "
                   "train on): the next `unettui run` trains it",
    State.RUNNING: "a live runner is training it (E/N: epochs finished of the epochs it trains to now)",
    State.INTERRUPTED: "stopped (Ctrl-C, SIGTERM, a full disk), crashed, or its runner is gone: the next "
                       "`unettui run` resumes it from its last checkpoint",
    State.DONE: "trained to its epochs (or stopped early by early_stop_patience)",
    State.PRUNED: "successive halving stopped it after epoch E: a study stage kept better configurations",
    State.FAILED: "the run failed (divergence, a dataset error, out of memory): its error says why; "
                  "`unettui retry ID` trains it again from scratch",
    State.INVALID: "its definition in experiments.toml has a problem (shown): nothing is trained until it is fixed",
    State.CHANGED: "its definition or its dataset changed since it ran: the next `unettui run` trains it again "
                   "from scratch and keeps the earlier attempt in runs/ID/attempts/",
    State.DAMAGED: "runs/ID/status.json cannot be read (named): the runner leaves it alone; "
                   "`unettui retry ID` archives the damaged files and trains it again",
}
# what `unettui run` will train: new, resumed, or again
TRAINABLE = (State.PENDING, State.INTERRUPTED, State.CHANGED)
FINAL = (State.DONE, State.PRUNED, State.FAILED)


@dataclass
class Judgement:
    """A run's state as far as the run folder, the definition and the dataset tell (study halving aside)."""

    state: State
    changes: list[tuple[str, Any, Any]] = field(default_factory=list)  # definition: (key, recorded, now)
    data_change: str | None = None  # why the dataset differs from the one the run used
    alive: bool = False  # status.json says running and its process is alive

    @property
    def change_text(self) -> str | None:
        parts = ([f"definition changed ({describe_changes(self.changes)})"] if self.changes else []) \
            + ([self.data_change] if self.data_change else [])
        return "; ".join(parts) or None


def _int(v: Any, default: int = 0) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else default


def judge(files: RunFiles, cfg: Config | None = None, data: DataId | None = None, now: float | None = None,
          stale_after: float = HEARTBEAT_TIMEOUT) -> Judgement:
    """The state of a run of definition ``cfg`` (None: a run not in the queue, never "changed") whose dataset is
    ``data`` now (None: unknown, never "changed")."""
    if not files.exists or files.archiving:
        return Judgement(State.PENDING)
    if files.status_problem:
        return Judgement(State.DAMAGED)
    st = files.status
    if not st:
        # a folder without a status: a claim never finished writing it, or only earlier attempts are left
        return Judgement(State.PENDING)
    raw = st.get("state")
    alive = raw == "running" and claim_alive(st, now, stale_after)
    if raw in (None, "queued"):
        state = State.PENDING
    elif raw == "running":
        state = State.RUNNING if alive else State.INTERRUPTED
    elif raw in ("done", "failed", "interrupted"):
        state = State(raw)
    else:  # a value this version does not know (a hand edit): resumable, never silently final
        state = State.INTERRUPTED
    verdict = Judgement(state, alive=alive)
    if cfg is not None and files.config:
        verdict.changes = definition_changes(files.config, cfg)
        recorded = files.config.get("data_fingerprint")
        if data is not None and isinstance(recorded, str) and recorded != data.fingerprint:
            then = files.config.get("data_images")
            verdict.data_change = (f"dataset {cfg.dataset} changed since this run "
                                   + (f"({then} images then, {data.images} now)" if isinstance(then, int) and then != data.images
                                      else "(its files were edited, added, removed or renamed)"))
    if state in (State.DONE, State.FAILED, State.INTERRUPTED) and (verdict.changes or verdict.data_change):
        verdict.state = State.CHANGED
    return verdict


class DataIds:
    """The identity of each dataset an experiment uses, computed once per dataset."""

    def __init__(self, project: Path):
        self.project = Path(project)
        self._seen: dict[tuple, DataId | None] = {}

    def __call__(self, cfg: Config | None) -> DataId | None:
        if cfg is None:
            return None
        key = (cfg.dataset, cfg.num_images, cfg.image_size, cfg.data_seed)
        if key not in self._seen:
            self._seen[key] = data_id(cfg.dataset, cfg.num_images, cfg.image_size, cfg.data_seed, self.project)
        return self._seen[key]


def judge_run(run: Run, cfg: Config | None, data: DataIds | None = None, now: float | None = None,
              stale_after: float = HEARTBEAT_TIMEOUT) -> Judgement:
    """``judge`` on a run folder read now (metrics not read)."""
    return judge(read_run(run, metrics=False), cfg, data(cfg) if data is not None else None, now, stale_after)


# ---- rows: one per experiment ------------------------------------------------------------------------


@dataclass
class Row:
    """One experiment as every face shows it."""

    id: str
    state: State = State.PENDING
    in_queue: bool = True
    origin: str = ""  # where experiments.toml defines it
    definition: Config | None = None  # the queue's definition (None: not in the queue, or invalid)
    error: str | None = None  # the invalid definition's problem, the run's error, or why it is damaged
    epoch: int = 0  # epochs finished
    target: int | None = None  # the epoch it is trained to now: a halving rung, else its epochs
    epochs: int | None = None  # its full epochs
    attempt: int = 0  # 1 for the first attempt; +1 with each retry or restart from scratch (resumes don't count)
    pruned_at: int | None = None
    promoted: bool = False  # successive halving promoted it: it trains on to the next rung
    changes: list[tuple[str, Any, Any]] = field(default_factory=list)
    data_change: str | None = None
    problems: list[str] = field(default_factory=list)  # files of the run that cannot be read
    earlier_error: str | None = None  # the error of the latest earlier attempt, when this one has none
    config: dict[str, Any] = field(default_factory=dict)  # what ran (config.json), else the definition's keys
    summary: dict[str, Any] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)  # only when asked for (collect(metrics=True))
    backend: dict[str, Any] = field(default_factory=dict)  # where its claim runs: status.json "backend" ({} local)
    # that job's state as its backend says it (running, requeued, cancelled, ...), with the reason while it waits:
    # "pending (Resources)", "requeued (BeginTime)" (backend.JobState.label, from the mapping the row was handed)
    scheduler: str | None = None
    configuration: str = ""  # the id its repeats share (its own id when it is not a repeat)
    repeat: int = 1  # 1..repeats: repeats of one configuration differ only in their seed

    def __post_init__(self) -> None:
        if type(self.state) is not State:
            self.state = State(self.state)
        self.configuration = self.configuration or self.id

    # ---- derived -------------------------------------------------------------------------------------
    @property
    def host(self) -> str | None:
        return self.status.get("host") if isinstance(self.status.get("host"), str) else None

    @property
    def pid(self) -> int | None:
        return _int(self.status.get("pid"), None)  # type: ignore[arg-type]

    @property
    def heartbeat(self) -> float | None:
        v = self.status.get("heartbeat")
        return float(v) if _number(v) else None

    @property
    def started(self) -> float | None:
        v = self.status.get("started")
        return float(v) if _number(v) else None

    @property
    def claimed(self) -> bool:
        """status.json says running (the state may still be interrupted: a claim whose process is gone)."""
        return self.status.get("state") == "running"

    @property
    def label(self) -> str:
        """The state as tables show it: ``running 7/20``, ``interrupted 3/20``, ``pruned @6``, ``done``, ..."""
        if self.state in (State.RUNNING, State.INTERRUPTED) and self.target:
            return f"{self.state.value} {self.epoch}/{self.target}" + (f" · {self.job_label}" if self.job_label else "")
        if self.state in (State.RUNNING, State.INTERRUPTED) and self.job_label:
            return f"{self.state.value} · {self.job_label}"
        if self.state is State.PRUNED and self.pruned_at:
            return f"pruned @{self.pruned_at}"
        return self.state.value

    @property
    def job_label(self) -> str:
        """``slurm 42_3 running``, ``slurm 42_3 requeued (Resources)``: the job a running or interrupted run's claim is
        in and its backend's state of it, with the reason while it waits (beside the run's own state); "" for a
        local claim or a finished run."""
        if not self.backend or self.state not in (State.RUNNING, State.INTERRUPTED):
            return ""
        return " ".join(str(x) for x in (self.backend.get("kind"), self.backend.get("job"), self.scheduler) if x)

    @property
    def note(self) -> str:
        """The one line that explains the state: the error, what changed, what is damaged."""
        if self.state is State.CHANGED or (self.state is State.RUNNING and (self.changes or self.data_change)):
            return "; ".join(x for x in (self.change_text, "trains again from scratch" if self.state is State.CHANGED
                                         else "restarts after its current epoch") if x)
        return self.error or ("; ".join(self.problems) if self.problems else "") or (
            f"attempt {self.attempt - 1}: {self.earlier_error}" if self.earlier_error and self.state is not State.DONE
            else "")

    @property
    def change_text(self) -> str | None:
        return Judgement(self.state, self.changes, self.data_change).change_text

    @property
    def best_val_dice(self) -> float | None:
        v = self.summary.get("best_val_dice")
        if _number(v):
            return float(v)
        best = [r.get("val_dice") for r in self.metrics if _number(r.get("val_dice"))]
        return float(max(best)) if best else None

    @property
    def best_epoch(self) -> int | None:
        if _number(self.summary.get("best_val_dice")):
            return _int(self.summary.get("best_epoch"), None)  # type: ignore[arg-type]
        best = None
        for r in self.metrics:
            if _number(r.get("val_dice")) and (best is None or r["val_dice"] > best[0]):
                best = (r["val_dice"], r.get("epoch"))
        return best[1] if best else None

    def eta_seconds(self) -> float | None:
        """Remaining time of a running run to its target, from its mean epoch time so far."""
        target = self.target or self.epochs
        if self.state is not State.RUNNING or not self.metrics or not target:
            return None
        secs = [r.get("seconds") for r in self.metrics if _number(r.get("seconds"))]
        if not secs:
            return None
        return sum(secs) / len(secs) * max(0, target - max(self.epoch, len(self.metrics)))


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass
class Halving:
    """What the queue's study stages say about their runs: pruned at a rung, or promoted to train on."""

    pruned: dict[str, int] = field(default_factory=dict)
    promoted: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, queue: Queue | None) -> Halving:
        """What the planner (core.plan) found of ``queue``'s studies; nothing for a queue as read, not planned."""
        if queue is None:
            return cls()
        return cls(dict(queue.pruned), set(queue.promoted))


def row_of(run_id: str, exp: Experiment | None, files: RunFiles, halving: Halving | None = None,
           data: DataId | None = None, now: float | None = None, stale_after: float = HEARTBEAT_TIMEOUT,
           jobs: Mapping[JobRef, JobState] | None = None) -> Row:
    """The row of experiment ``exp`` (None: a run folder not in the queue) from its run's ``files``; ``jobs``: the
    states of the jobs claims run in, by (kind, job), as their backends answered (core.runs.backend.job_states)."""
    recorded = files.config or {}
    row = Row(id=run_id, in_queue=exp is not None, origin=exp.origin if exp is not None else "",
              metrics=list(files.metrics), problems=list(files.problems),
              configuration=exp.configuration if exp is not None else str(recorded.get("configuration") or run_id),
              repeat=exp.repeat if exp is not None else _int(recorded.get("repeat"), 1))
    if exp is not None and not exp.valid:
        row.state = State.INVALID
        row.error = f"{exp.error.key}: {exp.error.message}" if getattr(exp.error, "key", None) else \
            getattr(exp.error, "message", str(exp.error))
        row.attempt = _int((files.status or {}).get("attempt"), files.attempts)
        row.config = dict(files.config or {})
        row.summary = dict(files.summary or {})
        return row
    cfg = exp.config if exp is not None else None
    row.definition = cfg
    verdict = judge(files, cfg, data, now, stale_after)
    row.state, row.changes, row.data_change = verdict.state, verdict.changes, verdict.data_change
    st = files.status or {}
    row.status = dict(st)
    row.backend = backend_of(st)
    if row.backend and jobs:
        row.scheduler = job_word(row.backend, jobs)
    row.config = dict(files.config) if files.config else (cfg.to_dict() if cfg is not None else {})
    row.summary = dict(files.summary or {})
    row.epochs = cfg.epochs if cfg is not None else _int(row.config.get("epochs"), None)  # type: ignore[arg-type]
    target = exp.target_epochs if exp is not None and cfg is not None else row.epochs
    row.target = target
    row.epoch = _int(st.get("epoch"), len(row.metrics)) if st and not files.archiving else 0
    row.attempt = _int(st.get("attempt"), files.attempts) if st and not files.archiving else files.attempts
    if files.status_problem:
        row.error = files.status_problem + f"; `unettui retry {run_id}` archives it and trains it again"
    elif row.state not in (State.PENDING,):
        row.error = st.get("error") if isinstance(st.get("error"), str) else None
    halving = halving or Halving()
    if row.state is State.DONE and run_id in halving.pruned:
        row.state, row.pruned_at = State.PRUNED, halving.pruned[run_id]
    elif row.state is State.DONE and run_id in halving.promoted:
        row.state, row.promoted = State.PENDING, True
    elif row.state is State.DONE and exp is not None and cfg is not None and short_of(row.summary, exp.target_epochs):
        row.state = State.PENDING  # stopped short of its epochs (a stage that no longer prunes): it trains on
        row.promoted = True
    return row


def _earlier_error(run: Run) -> str | None:
    for old in reversed(run.attempts()):
        st = read_json(old / STATUS) or {}
        if isinstance(st.get("error"), str) and st["error"]:
            return f"{st['error']}"
    return None


def collect(queue: Queue | None, store: RunStore, metrics: bool = False, now: float | None = None,
            stale_after: float = HEARTBEAT_TIMEOUT, ids: Iterable[str] | None = None,
            readers: Mapping[str, JobReader] | None = None) -> list[Row]:
    """One row per experiment in queue order, then the run folders whose experiment is no longer in the queue.
    ``metrics``: also read every run's metrics.jsonl (for curves, or the best epoch of a run still training);
    ``ids``: only these experiments; ``readers``: the backends' job readers, by kind, asked (cached, time-limited)
    about the jobs of claims, whose answer the rows are handed (attach_jobs); None (the default): not asked — the
    read model itself knows no backend: a face that shows job states hands it their readers
    (core.runs.jobs.SHIPPED)."""
    want = set(ids) if ids is not None else None
    halving = Halving.of(queue)
    data = DataIds(store.project)
    rows: list[Row] = []
    seen: set[str] = set()
    for exp in (queue.experiments if queue else []):
        if exp.id in seen:
            continue
        seen.add(exp.id)
        if want is not None and exp.id not in want:
            continue
        run = store.run(exp.id)
        files = read_run(run, metrics=metrics)
        if not metrics and files.exists and files.summary is None:
            files.metrics = read_jsonl(run.file(METRICS))  # a run still training: its best so far
        rows.append(_finish(row_of(exp.id, exp, files, halving, data(exp.config) if exp.valid else None, now,
                                   stale_after), run))
    for run in store.runs():
        if run.id in seen or (want is not None and run.id not in want):
            continue
        files = read_run(run, metrics=True)
        rows.append(_finish(row_of(run.id, None, files, halving, None, now, stale_after), run))
    if readers is not None:
        ask = jobs_to_ask(rows)
        if ask:
            attach_jobs(rows, job_states(ask, readers))
    return rows


def jobs_to_ask(rows: Iterable[Row]) -> list[JobRef]:
    """The jobs whose state the faces show, as (kind, job): those of running or interrupted runs claimed in a
    backend's job."""
    return sorted({ref for r in rows if r.state in (State.RUNNING, State.INTERRUPTED)
                   for ref in [job_ref(r.backend)] if ref is not None})


def attach_jobs(rows: Iterable[Row], jobs: Mapping[JobRef, JobState]) -> None:
    """Hand every row whose claim runs in a backend's job the state of that job (``Row.scheduler``; None when
    ``jobs`` does not know it)."""
    for r in rows:
        if r.backend:
            r.scheduler = job_word(r.backend, jobs)


def job_word(backend: dict[str, Any], jobs: Mapping[JobRef, JobState]) -> str | None:
    """The state of the job a claim's ``backend`` names, as ``jobs`` gives it (``pending (Resources)``:
    JobState.label), or None when unknown."""
    ref = job_ref(backend)
    state = jobs.get(ref) if ref is not None else None
    return state.label if state is not None else None


def _finish(row: Row, run: Run) -> Row:
    if not row.error and row.state is not State.DONE and row.attempt > 1:
        row.earlier_error = _earlier_error(run)
    return row


def counts(rows: Iterable[Row]) -> dict[State, int]:
    out: dict[State, int] = {}
    for r in rows:
        out[r.state] = out.get(r.state, 0) + 1
    return out


def counts_text(rows: Iterable[Row]) -> str:
    """``2 running, 1 pending, 5 done``: in the order of State, only the states present."""
    c = counts(rows)
    return ", ".join(f"{c[s]} {s.value}" for s in State if c.get(s))
