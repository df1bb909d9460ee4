"""What the TUI knows about a project, read incrementally from experiments.toml and runs/ (no Textual here).

The state of each experiment comes from the read model (core.status.row_of), exactly as `unettui ls` derives
it; this module only decides what to re-read, so a poll with nothing changed reads (almost) nothing."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.define.queue import QUEUE_FILE, Queue, QueueError, load_queue
from ..core.runs.slurm_state import SCHEDULER, JobState, refresh_summary, task_word
from ..core.runs.status import DataIds, Halving, Row, RunFiles, State, jobs_to_ask, row_of
from ..core.runs.store import (
    ARCHIVING,
    CONFIG,
    METRICS,
    RUNS_DIR,
    STATUS,
    SUMMARY,
    Run,
    RunStore,
    read_json_checked,
)

QUEUE_CHANGED = "__queue__"
STUDIES_CHANGED = "__studies__"  # the studies' status was recomputed (experiments.toml or a study run changed)
RUN_FINISHED = (State.DONE, State.FAILED, State.PRUNED)

RunView = Row  # one experiment as the TUI shows it: the read model's row, with its metrics


@dataclass
class _FileState:
    mtime: float = -1.0
    size: int = -1
    offset: int = 0  # bytes of metrics.jsonl already read
    bad: int = 0  # metrics.jsonl lines that could not be read


def _stat(path: Path) -> tuple[float, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime, st.st_size


class ProjectMonitor:
    """Polls a project: re-reads experiments.toml when it changes and each run's files when they change.

    metrics.jsonl is read incrementally (from the last offset; from the start again when the file
    shrank, as it does when a resumed run rewrites it). ``poll()`` returns the ids whose view changed
    (plus QUEUE_CHANGED when the queue file was re-read, STUDIES_CHANGED when the studies' status was
    recomputed). Safe to call from a worker thread; the views, the queue and the study statuses it
    hands out are replaced, never mutated in place, so a UI thread may read them meanwhile.
    """

    def __init__(self, project: Path):
        self.project = Path(project)
        self.store = RunStore(self.project)
        self.queue: Queue | None = None
        self.queue_error: str | None = None
        self.runs: dict[str, RunView] = {}
        self._order: list[str] = []
        self._files: dict[tuple[str, str], _FileState] = {}
        self._snaps: dict[str, RunFiles] = {}
        self._queue_stamp: tuple[float, int] | None = None
        self._study_ids: frozenset[str] = frozenset()  # experiment ids of every study's expanded stages
        self._study_seen: dict[str, tuple | None] = {}  # their signature when the studies were last expanded
        self._halving = Halving()
        self._jobs: dict[str, JobState] = {}  # the scheduler's last answer about the jobs of cluster claims

    def order(self) -> list[str]:
        """Queue order, then runs that are no longer in the queue."""
        return list(self._order)

    def views(self) -> list[RunView]:
        return [self.runs[i] for i in self._order if i in self.runs]

    # ---- studies ---------------------------------------------------------------------
    @property
    def studies(self) -> list[Any]:
        """core.study.StudyStatus of each valid [[study]], as of the last (re)load of the queue."""
        return list(self.queue.studies) if self.queue is not None else []

    @property
    def study_problems(self) -> list[str]:
        """Why a [[study]] table is invalid (it then has no status), one line each."""
        if self.queue is None:
            return []
        return [str(p) for p in self.queue.problems if "[[study]]" in p.where]

    @property
    def study_run_ids(self) -> frozenset[str]:
        """Every experiment id of every study's expanded stages."""
        return self._study_ids

    def _study_signature(self, run_id: str) -> tuple | None:
        """What a study's status depends on in a run: its state, and its summary once finished."""
        v = self.runs.get(run_id)
        if v is None:
            return None
        return (v.state, v.summary if v.state in RUN_FINISHED else None)

    def _studies_moved(self, changed: set[str], loaded: bool) -> bool:
        """Record the signature of the study runs that changed; True when one differs from before.

        Right after the queue was (re)loaded, runs the study has not seen before are taken as they are
        (the load has just read them)."""
        moved = False
        for run_id in (self._study_ids & changed) if not loaded else self._study_ids:
            sig = self._study_signature(run_id)
            known = run_id in self._study_seen
            if (known and self._study_seen[run_id] != sig) or (not known and not loaded):
                moved = True
            self._study_seen[run_id] = sig
        return moved

    def _set_queue(self, queue: Queue) -> None:
        self.queue = queue
        ids = frozenset(i for s in queue.studies for st in s.stages for i in st.experiments)
        self._study_seen = {i: sig for i, sig in self._study_seen.items() if i in ids}
        self._study_ids = ids
        self._halving = Halving.of(queue)

    # ---- polling -------------------------------------------------------------------
    def poll(self) -> set[str]:
        """Read what changed; returns the ids whose view changed, QUEUE_CHANGED when experiments.toml was
        re-read or the order changed, and STUDIES_CHANGED when the studies' status was recomputed.

        A study's status (stages, scores, winners, and the experiments of its later stages) depends on
        its runs: when one of them changes state, or a finished one its summary, the queue is expanded
        again (at most once per poll); the file itself is re-read only then or when it changed."""
        changed: set[str] = set()
        stamp = _stat(self.project / QUEUE_FILE)
        loaded = False
        if stamp != self._queue_stamp:
            self._queue_stamp = stamp
            try:
                self._set_queue(load_queue(self.project))
                self.queue_error = None
                loaded = True
            except QueueError as exc:
                self.queue_error = str(exc)  # keep the last good queue on screen
            changed |= {QUEUE_CHANGED, STUDIES_CHANGED}
        self._refresh_runs(changed)
        self._poll_jobs(changed)
        if self._study_ids and self._studies_moved(changed, loaded) and not loaded:
            before = [e.id for e in self.queue.experiments] if self.queue else []
            try:
                queue = load_queue(self.project)
            except QueueError:
                return changed  # a half-written file: its own change is reported by the next poll
            self._set_queue(queue)
            changed.add(STUDIES_CHANGED)
            if [e.id for e in queue.experiments] != before:  # a stage expanded: its experiments join the queue
                changed.add(QUEUE_CHANGED)
            self._refresh_runs(changed | {QUEUE_CHANGED})  # halving may have pruned or promoted runs
            self._studies_moved(changed, True)
        return changed

    def _poll_jobs(self, changed: set[str]) -> None:
        """The scheduler's state of the cluster jobs that running or interrupted runs are claimed in, and of this
        project's SLURM submissions. Asked only here, in the polling thread, and at most every few seconds (the core
        caches the answers and limits every squeue/sacct call in time); views whose job state moved are replaced."""
        refresh_summary(self.project)
        ask = jobs_to_ask(self.runs.values())
        if not ask and not self._jobs:
            return
        states = SCHEDULER.states(ask) if ask else {}
        if states == self._jobs:
            return
        self._jobs = states
        for run_id, view in list(self.runs.items()):
            if view.backend:
                word = task_word(view.backend, states)
                if word != view.scheduler:
                    self.runs[run_id] = dataclasses.replace(view, scheduler=word)
                    changed.add(run_id)

    def _refresh_runs(self, changed: set[str]) -> None:
        run_ids = self._run_ids()
        queue_ids = list(dict.fromkeys(e.id for e in self.queue.experiments)) if self.queue else []
        order = queue_ids + sorted(set(run_ids) - set(queue_ids))
        if order != self._order:
            self._order = order
            changed.add(QUEUE_CHANGED)
        defs: dict[str, Any] = {}
        for e in (self.queue.experiments if self.queue else []):
            defs.setdefault(e.id, e)
        data = DataIds(self.project)
        present = set(run_ids)
        for run_id in order:
            view = self._refresh(run_id, defs.get(run_id), run_id in present, QUEUE_CHANGED in changed, data)
            if view is not None:
                self.runs[run_id] = view
                changed.add(run_id)
        for gone in set(self.runs) - set(order):
            del self.runs[gone]
            self._snaps.pop(gone, None)
            changed.add(gone)

    def _run_ids(self) -> list[str]:
        try:
            return [e.name for e in os.scandir(self.store.root) if e.is_dir() and not e.name.startswith(".")]
        except OSError:
            return []

    def _changed(self, run_id: str, name: str) -> tuple[bool, _FileState, tuple[float, int] | None]:
        key = (run_id, name)
        fs = self._files.setdefault(key, _FileState())
        stamp = _stat(self.store.root / run_id / name)
        now = (stamp[0], stamp[1]) if stamp else (-1.0, -1)
        different = now != (fs.mtime, fs.size)
        return different, fs, stamp

    def _refresh(self, run_id: str, exp, has_run: bool, queue_changed: bool, data: DataIds) -> RunView | None:
        old = self.runs.get(run_id)
        run = Run(self.store.root / run_id)
        files = {name: self._changed(run_id, name) for name in (STATUS, METRICS, SUMMARY, CONFIG, ARCHIVING)}
        # a running claim goes stale without any file changing: re-derive its state now and then
        stale_check = old is not None and old.state is State.RUNNING
        if old is not None and not queue_changed and not stale_check and not any(f[0] for f in files.values()):
            return None
        snap = self._snaps.get(run_id) or RunFiles()
        snap = RunFiles(**{**snap.__dict__})
        snap.exists = has_run
        rel = f"{RUNS_DIR}/{run_id}"
        if files[STATUS][0] or old is None:
            status, problem = read_json_checked(run.file(STATUS))
            snap.status, snap.status_problem = status, f"{rel}/{STATUS} {problem}" if problem else None
            snap.attempts = len(run.attempts()) if has_run else 0
        problems: dict[str, str] = {}
        for name, attr in ((CONFIG, "config"), (SUMMARY, "summary")):
            if files[name][0] or old is None:
                value, problem = read_json_checked(run.file(name))
                setattr(snap, attr, value)
                files[name][1].bad = 1 if problem else 0
                if problem:
                    problems[name] = f"{rel}/{name} {problem}"
            elif files[name][1].bad:
                problems[name] = next((p for p in snap.problems if p.startswith(f"{rel}/{name} ")), f"{rel}/{name}")
        if files[METRICS][0] or old is None:
            snap.metrics = self._read_metrics(run, files[METRICS][1], files[METRICS][2], list(snap.metrics))
        bad = files[METRICS][1].bad
        snap.problems = [problems[n] for n in (CONFIG, SUMMARY) if n in problems] + (
            [f"{rel}/{METRICS}: {bad} unreadable line{'s' if bad > 1 else ''} skipped"] if bad else [])
        snap.archiving = files[ARCHIVING][2] is not None
        for name, (_, fs, stamp) in files.items():
            fs.mtime, fs.size = (stamp if stamp else (-1.0, -1))
        self._snaps[run_id] = snap
        valid = exp is not None and exp.config is not None
        view = row_of(run_id, exp, snap, self._halving, data(exp.config) if valid else None, jobs=self._jobs)
        if old is not None and old == view:
            return None
        return view

    @staticmethod
    def _read_metrics(run: Run, fs: _FileState, stamp, metrics: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not stamp:
            fs.offset, fs.bad = 0, 0
            return []
        size = stamp[1]
        if size < fs.offset:  # rewritten (a resumed run): read again from the start
            fs.offset, fs.bad, metrics = 0, 0, []
        try:
            with open(run.file(METRICS), "rb") as fh:
                fh.seek(fs.offset)
                chunk = fh.read(size - fs.offset)
        except OSError:
            return metrics
        end = chunk.rfind(b"\n") + 1  # only whole lines; a line being written is read next time
        for line in chunk[:end].splitlines():
            if not line.strip():
                continue
            try:
                rec = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                fs.bad += 1
                continue
            if isinstance(rec, dict):
                metrics.append(rec)
            else:
                fs.bad += 1
        fs.offset += end
        return metrics


def now() -> float:
    return time.time()
