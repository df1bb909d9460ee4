"""What the TUI knows about a project, read incrementally from experiments.toml and runs/ (no Textual here).

The state of each experiment comes from the read model (core.status.row_of), exactly as `unettui ls` derives
it, from run folders read by the one reader (core.runs.reader.RunReader: stamps, files read again only when they
change, metrics.jsonl followed from its offset); this module only decides which runs to look at, so that a poll with
nothing changed reads (almost) nothing even with 10,000 runs: a ``stat`` of each run folder (a file renamed into it,
as unettui writes every run file but an append, moves the folder's time; so does a file made or removed) and of its
JSON files (a file rewritten in place, by a user or a script, moves only its own time and size: RunReader.still), the
files of running runs, and a rotating slice of every run's files (metrics.jsonl too) as a safety net."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..core.define.queue import QUEUE_FILE, Queue, QueueError, read_queue
from ..core.plan import StoreLookup, plan
from ..core.runs import index as run_index
from ..core.runs.backend import JobRef, JobState
from ..core.runs.jobs import SHIPPED, job_states, refresh_active
from ..core.runs.reader import UNSEEN, RunFiles, RunReader, file_stamp, folder_stamp
from ..core.runs.runners import RunnerFigures, read_figures
from ..core.runs.status import DataIds, Halving, Row, State, job_word, jobs_to_ask, row_of
from ..core.runs.store import RUNS_DIR, RunStore

QUEUE_CHANGED = "__queue__"
STUDIES_CHANGED = "__studies__"  # the studies' status was recomputed (experiments.toml or a study run changed)
RUNNERS_CHANGED = "__runners__"  # the runners' figures files (runs/.runners/) changed
RUN_FINISHED = (State.DONE, State.FAILED, State.PRUNED)

RunView = Row  # one experiment as the TUI shows it: the read model's row, with its metrics


class ProjectMonitor:
    """Polls a project: re-reads experiments.toml when it changes and each run's files when they change.

    Run folders are read through a core.runs.reader.RunReader: metrics.jsonl incrementally (from the last offset;
    from the start again when the file shrank, as it does when a resumed run rewrites it). A finished run's metrics
    (its curves) are not needed for its row: they are read only for the runs ``want`` names (the selected run, the
    compared runs), so that opening 10,000 runs does not wait for 10,000 metrics files.

    ``poll()`` returns the ids whose view changed (plus QUEUE_CHANGED when the queue file was re-read or the order
    changed, STUDIES_CHANGED when the studies' status was recomputed, RUNNERS_CHANGED when a runner's figures did).
    One poll at a time (a lock); the views, the queue and the study statuses it hands out are replaced, never
    mutated in place, so a UI thread may read them meanwhile.
    """

    FULL_CHECK = 50  # runs whose every file is stat-ed in each poll, in rotation (all of them in a smaller project)
    FOLDER_CHECK = 2500  # runs not training whose folder and WATCHED files each poll stats, in rotation
    INDEX_MIN = run_index.INDEX_MIN  # runs a project needs for the monitor to keep an index of them
    INDEX_CHANGED = 50  # runs re-read since the index was written for it to be written again ...
    INDEX_EVERY = 60.0  # ... at most this often (seconds); any change at all: every INDEX_IDLE seconds
    INDEX_IDLE = 600.0
    HELPER_MIN = 2000  # run folders from which a first read without an index has a helper process write one
    HELPER_SLICE = 1000  # runs a slice of the first read reads at most while that helper works

    def __init__(self, project: Path):
        self.project = Path(project)
        self.root = str(self.project / RUNS_DIR)
        self.queue: Queue | None = None  # as planned with the runs (core.plan)
        self._read: Queue | None = None  # ... and as read from experiments.toml: planned again when study runs move
        self.queue_error: str | None = None
        self.runs: dict[str, RunView] = {}
        self.runners: list[RunnerFigures] = []
        self._order: list[str] = []
        self._reader = RunReader(self.root)  # what was read of each run folder, and of each of its files
        self._root_stamp: tuple[int, int] | None = UNSEEN  # runs/'s folder_stamp when its folders were last listed
        self._run_ids: set[str] = set()
        self._want: frozenset[str] = frozenset()
        self._rotation = 0
        self._folder_rotation = 0
        self._lock = threading.RLock()
        self._queue_stamp: tuple[float, int] | None = None
        self._defs: dict[str, Any] = {}  # experiment id -> its definition (the first of that id)
        self._queue_ids: list[str] = []
        self._study_ids: frozenset[str] = frozenset()  # experiment ids of every study's expanded stages
        self._study_seen: dict[str, tuple | None] = {}  # their signature when the studies were last expanded
        self._halving = Halving()
        self._jobs: dict[JobRef, JobState] = {}  # the backends' last answer about the jobs claims run in
        self.job_readers = SHIPPED  # the backends' job readers, by kind (core.runs.jobs): asked by _poll_jobs
        self._data = DataIds(self.project)
        self._claimed: set[str] = set()  # runs whose status says running
        self.complete = False  # every run has been read (a poll with a budget may read part of them)
        self._index: dict[str, Any] | None = None  # the entries of runs/.index not used yet (None: not loaded)
        self._helper: subprocess.Popen | None = None  # writing the index meanwhile (run_index.start_refresh)
        self._index_written = -math.inf  # time.monotonic() of that
        self._loaded_partly = False  # the queue was loaded by a poll that did not read every run

    def close(self) -> None:
        """Stop the helper process, if one still writes the index (the app quits, or the first read is done)."""
        helper, self._helper = self._helper, None
        if helper is not None and helper.poll() is None:
            helper.terminate()
            try:
                helper.wait(5)
            except subprocess.TimeoutExpired:
                helper.kill()

    def order(self) -> list[str]:
        """Queue order, then runs that are no longer in the queue."""
        return list(self._order)

    def views(self) -> list[RunView]:
        return [self.runs[i] for i in self._order if i in self.runs]

    def claimed(self) -> list[RunView]:
        """The views of runs whose status says running (live or stale claims): what the runner header reads."""
        return [self.runs[i] for i in self._claimed if i in self.runs]

    # ---- metrics on demand -------------------------------------------------------------
    def want(self, run_ids: Iterable[str]) -> bool:
        """Runs whose metrics are needed now (the selected one, the compared ones; replaces the last call; safe from any
        thread). True when one of them has not been read yet: ``load_wanted`` reads them."""
        self._want = frozenset(run_ids)
        followed = self._reader.followed
        return any(i not in followed and i in self.runs for i in self._want)

    def load_wanted(self) -> set[str]:
        """Read the metrics of the wanted runs not read yet; returns the ids whose view changed."""
        with self._lock:
            followed = self._reader.followed
            return self._load_metrics([i for i in self._want if i not in followed and i in self.runs])

    def _load_metrics(self, run_ids: list[str]) -> set[str]:
        changed: set[str] = set()
        for run_id in run_ids:
            snap = self._reader.follow(run_id)
            if snap is None:
                continue
            view = self._row(run_id, snap)
            if view != self.runs.get(run_id):
                self.runs[run_id] = view
                changed.add(run_id)
        return changed

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
        self._defs = {}
        for e in queue.experiments:
            self._defs.setdefault(e.id, e)
        self._queue_ids = list(self._defs)
        self._data = DataIds(self.project)  # a reload may be a dataset's change too: ask again

    # ---- polling -------------------------------------------------------------------
    def poll(self, budget: int | None = None) -> set[str]:
        """Read what changed (at most ``budget`` runs not seen before: the rest on the next calls, ``complete`` says
        when every run has been read; None: all); returns the ids whose view changed, QUEUE_CHANGED when experiments.toml was
        re-read or the order changed, STUDIES_CHANGED when the studies' status was recomputed and RUNNERS_CHANGED
        when the runners' figures changed.

        A study's status (stages, scores, winners, and the experiments of its later stages) depends on
        its runs: when one of them changes state, or a finished one its summary, the queue is expanded
        again (at most once per poll); the file itself is re-read only then or when it changed."""
        with self._lock:
            return self._poll(budget)

    def _poll(self, budget: int | None) -> set[str]:
        changed: set[str] = set()
        if self._index is None:  # the first poll: before the queue file, so that a helper starts at once
            self._index = run_index.load_index(self.project)
            if not self._index:
                self._helper = run_index.start_refresh(self.project, self.HELPER_MIN)
        elif (helper := self._helper) is not None and helper.poll() is not None:
            self._helper = None  # its index: the runs not read yet come from it
            self._index = run_index.load_index(self.project) if not self.complete else {}
        if self._helper is not None and budget is not None:
            budget = min(budget, self.HELPER_SLICE)  # smaller slices: the first one after it is done uses its index
        stamp = file_stamp(str(self.project / QUEUE_FILE))
        loaded = False
        if stamp != self._queue_stamp:
            self._queue_stamp = stamp
            try:
                self._read = read_queue(self.project, cache=True)
                self._set_queue(plan(self._read, StoreLookup(RunStore(self.project))))
                self.queue_error = None
                loaded = True
            except QueueError as exc:
                self.queue_error = str(exc)  # keep the last good queue on screen
            changed |= {QUEUE_CHANGED, STUDIES_CHANGED}
        self._refresh_runs(changed, budget)
        self._poll_jobs(changed)
        self._poll_runners(changed)
        if not self.complete:  # the studies are looked at once every run has been read
            self._loaded_partly = self._loaded_partly or loaded
            return changed
        self._index = {}  # its entries of runs not in the project any more
        self.close()  # (a helper still writing the index: not needed any more)
        if self._loaded_partly:
            loaded, self._loaded_partly = True, False
        if self._study_ids and self._studies_moved(changed, loaded) and not loaded:
            before = list(self._queue_ids)
            # planned again from the file as last read (its own change is seen by the stamp above)
            assert self._read is not None
            self._set_queue(plan(self._read, StoreLookup(RunStore(self.project))))
            changed.add(STUDIES_CHANGED)
            if self._queue_ids != before:  # a stage expanded: its experiments join the queue
                changed.add(QUEUE_CHANGED)
            again = changed | {QUEUE_CHANGED}  # every row derived again: halving may have pruned or promoted runs
            self._refresh_runs(again)
            changed |= again - ({QUEUE_CHANGED} - changed)
            self._studies_moved(changed, True)
        return changed

    def _poll_runners(self, changed: set[str]) -> None:
        figures = read_figures(self.project)
        if figures != self.runners:
            self.runners = figures
            changed.add(RUNNERS_CHANGED)

    def _poll_jobs(self, changed: set[str]) -> None:
        """The backends' state of the jobs that running or interrupted runs are claimed in, and of this project's
        submissions (the runner line), asked through their job readers. Asked only here, in the polling thread, and
        at most every few seconds (the readers cache their answers and limit every call in time, e.g. squeue's);
        views whose job state moved are replaced."""
        refresh_active(self.project, self.job_readers)
        ask = jobs_to_ask(self.claimed())
        if not ask and not self._jobs:
            return
        states = job_states(ask, self.job_readers) if ask else {}
        if states == self._jobs:
            return
        self._jobs = states
        for run_id, view in list(self.runs.items()):
            if view.backend:
                word = job_word(view.backend, states)
                if word != view.scheduler:
                    self.runs[run_id] = dataclasses.replace(view, scheduler=word)
                    changed.add(run_id)

    def _refresh_runs(self, changed: set[str], budget: int | None = None) -> None:
        self._data = DataIds(self.project)  # each poll asks again (cached in the core): a dataset may have changed
        root_now = folder_stamp(self.root)  # runs/ itself changes only when a run folder comes or goes
        arrived: set[str] = set()  # run folders made since the last poll (a runner claimed a run): looked at now
        if root_now != self._root_stamp or root_now is None:
            before = self._run_ids
            try:
                self._run_ids = {e.name for e in os.scandir(self.root) if e.is_dir() and not e.name.startswith(".")}
            except OSError:
                self._run_ids = set()
            self._root_stamp = root_now
            arrived = self._run_ids - before
        run_ids = self._run_ids
        queue_ids = self._queue_ids
        known = set(queue_ids)
        order = queue_ids + sorted(run_ids - known) if run_ids - known else list(queue_ids)
        if order != self._order:
            self._order = order
            changed.add(QUEUE_CHANGED)
        if budget is not None and not self.runs and not self._want and order:
            # the first slice of a first read (the TUI's): the first run is the one the queue table selects first; its
            # curves come with its row, not with the next slice (a change of the screen's layout while it is read)
            self._want = frozenset(order[:1])
        reread = QUEUE_CHANGED in changed
        checked, self._rotation = _in_turn(order, self._rotation, self.FULL_CHECK)
        # the runs not training whose folder (and status, config and summary: an edit in place does not move the
        # folder) this poll stats: all of them (None) in a project of up to FOLDER_CHECK runs, so that any change
        # shows at the next poll, else the next FOLDER_CHECK in rotation — a poll with nothing changed then costs the
        # same at 10,000 runs as at 2,500, and a change to a finished run of a larger project (a retry from another
        # terminal, a summary edited by a script) shows within a few polls; runs training, claimed, new or not read
        # yet are looked at in every poll
        window = None
        if len(order) > self.FOLDER_CHECK:
            window, self._folder_rotation = _in_turn(order, self._folder_rotation, self.FOLDER_CHECK)
        self.complete = True
        runs, dirs, root, stat, claimed = self.runs, self._reader.dirs, self.root, os.stat, self._claimed
        still = self._reader.still
        now = time.time()
        for run_id in order:
            if budget is None and not reread and run_id not in checked:
                # the common case of a poll, inlined (10,000 runs): a run that is not training, whose folder has not
                # changed (or is not in this poll's window of folders)
                old = runs.get(run_id)
                if old is not None and old.state is not State.RUNNING and run_id not in claimed \
                        and run_id not in arrived:
                    if window is not None and run_id not in window:
                        continue
                    folder = f"{root}/{run_id}"
                    try:
                        st = stat(folder)
                        if (st.st_mtime_ns, st.st_ino) == dirs.get(run_id) and still(run_id, folder, now):
                            continue
                    except OSError:
                        pass
            elif budget is not None:  # the first read, in slices: the runs read by the last slices wait for their turn
                if run_id in self.runs:
                    if not reread and run_id not in checked and run_id not in self._claimed:
                        continue
                elif budget <= 0:
                    self.complete = False
                    continue
                else:
                    budget -= 1
            view = self._refresh(run_id, run_id in run_ids, run_id in checked, reread)
            if view is not None:
                self.runs[run_id] = view
                changed.add(run_id)
                if view.claimed or view.state is State.RUNNING:
                    self._claimed.add(run_id)
                else:
                    self._claimed.discard(run_id)
        for gone in [i for i in self.runs if i not in self._defs and i not in run_ids]:
            del self.runs[gone]
            self._reader.forget(gone)
            self._claimed.discard(gone)
            changed.add(gone)

    def _row(self, run_id: str, snap: RunFiles) -> RunView:
        exp = self._defs.get(run_id)
        valid = exp is not None and exp.config is not None
        return row_of(run_id, exp, snap, self._halving, self._data(exp.config) if valid else None, jobs=self._jobs)

    def _refresh(self, run_id: str, has_run: bool, full: bool, rederive: bool) -> RunView | None:
        """The new view of ``run_id`` when it changed, else None. Its files are looked at when its folder changed,
        when it is running (its metrics grow; its claim may go stale), when it is new and when ``full``; ``rederive``
        (the queue changed: its definition may have) derives its row again from what was read."""
        old = self.runs.get(run_id)
        folder = f"{self.root}/{run_id}"
        read_at = time.time()
        dir_now = folder_stamp(folder) if has_run else None
        running = old is not None and old.state is State.RUNNING
        reader = self._reader
        if old is not None and not running and not full and reader.unchanged(run_id, folder, dir_now, read_at):
            return self._rederived(run_id, old) if rederive else None
        wanted = run_id in self._want
        if old is None and dir_now is not None and self._index:
            item = run_index.decode(self._index, run_id)
            if item is not None and run_index.trusted(item, dir_now, folder):  # the index's entry stands for it
                return self._row(run_id, reader.adopt(run_id, dir_now, *run_index.files_of(item), wanted))
        snap = reader.read(run_id, has_run, dir_now, read_at, wanted, must=running or rederive)
        if snap is None:
            return None
        view = self._row(run_id, snap)
        if old is not None and old == view:
            return None
        return view

    def _rederived(self, run_id: str, old: RunView) -> RunView | None:
        view = self._row(run_id, self._reader.snaps.get(run_id) or RunFiles())
        return None if view == old else view

    # ---- the index (core.runs.index): what was read of each run, kept for the next start -------------------
    def _index_entries(self) -> Iterable[tuple[str, dict[str, Any]]]:
        """What goes into the index: every run read whole, without a problem, not being archived."""
        for run_id, folder, read_at, stamps, snap in self._reader.readings():
            yield run_id, run_index.entry(folder, read_at, stamps, snap)

    def keep_index(self) -> bool:
        """Write the index (core.runs.index) when every run has been read and enough of them were read from their
        folders since it was last written (or any, a while ago); only for projects large enough to gain from it. The
        TUI's polling thread calls it after handing a poll's views over. True when it was written."""
        with self._lock:
            return self._keep_index()

    def _keep_index(self) -> bool:
        dirty = self._reader.dirty  # runs read from their folders since the index was last written
        if not self.complete or len(self._reader.snaps) < self.INDEX_MIN or not dirty:
            return False
        since = time.monotonic() - self._index_written
        if not ((len(dirty) >= self.INDEX_CHANGED and since >= self.INDEX_EVERY) or since >= self.INDEX_IDLE):
            return False
        dirty.clear()
        self._index_written = time.monotonic()
        return run_index.write_index(self.project, self._index_entries(), time.time())


def _in_turn(order: list[str], start: int, width: int) -> tuple[set[str], int]:
    """The ``width`` ids of ``order`` from ``start`` on (wrapping round), and where the next turn starts."""
    n = len(order)
    start, width = start % max(1, n), min(n, width)
    return set(order[start:start + width]) | set(order[:max(0, start + width - n)]), start + width


# ---- figures derived from views (pure) ----------------------------------------------------


def images_per_second(view: RunView) -> float | None:
    """Training images (native runs: patches) per second of a run's latest epoch (its wall time, validation
    included): the throughput a user compares between devices and batch sizes. None before its first epoch."""
    n = view.config.get("samples_per_epoch", view.config.get("n_train"))
    if not view.metrics or not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        return None
    secs = view.metrics[-1].get("seconds")
    if not isinstance(secs, (int, float)) or isinstance(secs, bool) or not math.isfinite(secs) or secs <= 0:
        return None
    return n / secs


TO_TRAIN = (State.PENDING, State.INTERRUPTED, State.CHANGED, State.RUNNING)


def queue_eta(views: Iterable[RunView], workers: int = 1) -> tuple[int, float | None]:
    """(runs left to train, seconds until the queue is done): running runs by their own ETA, the others by their epochs
    left times the mean epoch time of the project's runs so far, all of it shared by as many runs at a time as there
    are ``workers`` or runs training now (a pack trains several at once), and never before the longest running run
    ends. The time is None when no epoch has been timed yet."""
    left, eta, epochs_left, running, longest = 0, 0.0, 0, 0, 0.0
    secs: list[float] = []
    for v in views:
        s = v.summary.get("seconds")
        done = v.summary.get("epochs_done")
        if isinstance(s, (int, float)) and isinstance(done, int) and done > 0 and not isinstance(s, bool):
            secs.append(s / done)
        if v.state not in TO_TRAIN or not v.in_queue:
            continue
        left += 1
        if v.state is State.RUNNING and (own := v.eta_seconds()) is not None:
            eta, running, longest = eta + own, running + 1, max(longest, own)
            continue
        target = v.target or v.epochs or 0
        epochs_left += max(0, target - (v.epoch if v.state is not State.CHANGED else 0))
    if left == 0:
        return 0, 0.0
    if epochs_left and not secs:
        return left, None
    per_epoch = sum(secs) / len(secs) if secs else 0.0
    return left, max(longest, (eta + epochs_left * per_epoch) / max(1, workers, running))


def now() -> float:
    return time.time()
