"""The runner: claims the next experiment of the queue, trains it via the core, keeps a heartbeat, handles signals."""

from __future__ import annotations

import errno
import os
import signal
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from filelock import FileLock

from .core.queue import Experiment, Queue, QueueError, load_queue
from .core.store import HEARTBEAT_TIMEOUT, HOST, Run, RunStore

HEARTBEAT_INTERVAL = 5.0


class Reporter(Protocol):
    """What the runner tells whoever is watching (plain lines, a rich progress bar, a test)."""

    def plan(self, queue: Queue, store: RunStore) -> None: ...
    def skip(self, exp: Experiment, reason: str) -> None: ...
    def note(self, exp: Experiment | None, text: str) -> None: ...
    def run_start(self, exp: Experiment, info: dict[str, Any]) -> None: ...
    def batch(self, exp: Experiment, epoch: int, step: int, steps: int) -> None: ...
    def epoch(self, exp: Experiment, rec: dict[str, Any]) -> None: ...
    def run_end(self, exp: Experiment, state: str, summary: dict[str, Any], error: str | None) -> None: ...


class SilentReporter:
    def __getattr__(self, name):  # every event is a no-op
        return lambda *a, **k: None


@dataclass
class Outcome:
    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    interrupted: list[str] = field(default_factory=list)
    skipped_invalid: list[str] = field(default_factory=list)
    stopped: bool = False  # by a signal

    @property
    def exit_code(self) -> int:
        if self.stopped:
            return 130
        return 1 if self.failed or self.skipped_invalid or self.interrupted else 0


class Runner:
    """Trains, in file order, every experiment without a finished run; resumes interrupted or crashed ones."""

    def __init__(self, project: Path, device: str | None = None, reporter: Reporter | None = None,
                 heartbeat_interval: float = HEARTBEAT_INTERVAL, only: list[str] | None = None,
                 stale_after: float = HEARTBEAT_TIMEOUT):
        self.project = Path(project)
        self.store = RunStore(self.project)
        self.device = device
        self.reporter = reporter or SilentReporter()
        self.heartbeat_interval = heartbeat_interval
        self.only = set(only) if only else None
        self.stale_after = stale_after
        self.attempted: set[tuple[str, int | None]] = set()
        self.stop_requested = False
        self.token = uuid.uuid4().hex
        self._status_lock = threading.Lock()

    # ---- signals -------------------------------------------------------------------
    def request_stop(self, *_: Any) -> None:
        if self.stop_requested:  # a second Ctrl-C: leave now; the claim goes stale and resumes later
            raise KeyboardInterrupt
        self.stop_requested = True

    def _install_signals(self):
        if threading.current_thread() is not threading.main_thread():
            return {}
        old = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, self.request_stop)
        return old

    # ---- claiming ------------------------------------------------------------------
    def _claimable(self, exp: Experiment, run: Run) -> str | None:
        """Why ``exp`` should run now ('new', 'resume'), or None to pass it by."""
        st = run.status()
        if not st:
            return "new"
        state = st.get("state")
        # a successive-halving survivor promoted to a further rung goes on from its checkpoint (the trainer starts
        # it afresh if its definition changed since); outside halving (a pruned run of a stage that no longer
        # prunes) only a run of the same definition does
        if state == "done" and run.stopped_short(exp.target_epochs,
                                                 None if exp.budget is not None else exp.config.fingerprint()):
            return "resume"
        if state in ("done", "failed"):
            return None
        if state == "running" and not Run.is_stale(st, timeout=self.stale_after):
            return None
        return "resume"

    def claim_next(self, queue: Queue, seen_invalid: set[str]) -> tuple[Experiment, Run, str] | None:
        with FileLock(str(self.store.lock_path()), timeout=60):
            for exp in queue.experiments:
                if (self.only is not None and exp.id not in self.only) or (exp.id, exp.budget) in self.attempted:
                    continue  # at most one attempt per experiment in one runner session
                if not exp.valid:
                    if exp.id not in seen_invalid:
                        seen_invalid.add(exp.id)
                        self.reporter.skip(exp, str(exp.error))
                    continue
                run = self.store.run(exp.id)
                why = self._claimable(exp, run)
                if why is None:
                    continue
                run.path.mkdir(parents=True, exist_ok=True)
                prev = run.status() or {}
                if prev.get("state") == "running":
                    age = time.time() - float(prev.get("heartbeat", 0))
                    note = (f"taking over the stale claim of {prev.get('host')} pid {prev.get('pid')} "
                            f"(last heartbeat {age:.0f}s ago)")
                    run.log(note)
                    self.reporter.note(exp, note)
                now = time.time()
                # a halving promotion goes on with the same attempt; anything else is a new one
                attempt = int(prev.get("attempt", len(run.attempts()))) + (0 if prev.get("state") == "done" else 1)
                run.write_status(
                    state="running", host=HOST, pid=os.getpid(), token=self.token, heartbeat=now,
                    started=now, ended=None, error=None, attempt=max(1, attempt),
                    epoch=prev.get("epoch", 0), epochs=exp.config.epochs,
                )
                return exp, run, why
        return None

    # ---- the loop -------------------------------------------------------------------
    def run(self) -> Outcome:
        outcome = Outcome()
        old = self._install_signals()
        seen_invalid: set[str] = set()
        queue: Queue | None = None
        try:
            while not self.stop_requested:
                try:  # re-read: edits made while training are picked up
                    fresh = load_queue(self.project)
                except QueueError as exc:
                    if queue is None:
                        raise
                    # a half-saved or broken edit must not kill a night of training: keep the last good queue
                    self.reporter.note(None, f"{exc} (keeping the queue as it was)")
                    fresh = queue
                if queue is None:
                    self.reporter.plan(fresh, self.store)
                queue = fresh
                claimed = self.claim_next(queue, seen_invalid)
                if claimed is None:
                    if self._study_stage_pending(queue):
                        # another runner is finishing a study stage whose successor we can then train
                        time.sleep(min(self.heartbeat_interval, 1.0))
                        continue
                    break
                exp, run, _ = claimed
                self.attempted.add((exp.id, exp.budget))
                state = self.train(exp, run)
                getattr(outcome, state).append(exp.id)
            outcome.skipped_invalid = sorted(seen_invalid)
            outcome.stopped = self.stop_requested
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
        return outcome

    def _study_stage_pending(self, queue: Queue) -> bool:
        """A study has a waiting stage while runs of an earlier one are still being trained elsewhere."""
        # a waiting stage, or a running one whose next successive-halving rung depends on those runs
        waiting = any(st.state != "done" for study in queue.studies for st in study.stages)
        if not waiting:
            return False
        busy = (self.store.run(e.id).state() == "running" for e in queue.experiments if e.valid)
        return any(busy)

    def train(self, exp: Experiment, run: Run) -> str:
        """Train one claimed experiment; every failure is recorded in its run, never raised."""
        from .core.train import Events, Trainer  # torch is imported here, not at CLI start-up

        status: dict[str, Any] = {"epoch": 0}
        stop_beat = threading.Event()

        def beat() -> None:
            while not stop_beat.wait(self.heartbeat_interval):
                self._update_status(run, heartbeat=time.time(), epoch=status["epoch"])

        hb = threading.Thread(target=beat, name=f"heartbeat-{exp.id}", daemon=True)
        hb.start()
        run.log(f"claimed by {HOST} pid {os.getpid()} ({exp.origin})")
        state, error, summary = "failed", None, {}
        try:
            trainer = Trainer(exp.config, self.project, self.device)

            def on_epoch(rec: dict[str, Any]) -> None:
                status["epoch"] = rec["epoch"]
                self._update_status(run, heartbeat=time.time(), epoch=rec["epoch"])
                run.log(
                    f"epoch {rec['epoch']}/{exp.config.epochs} train_loss {rec['train_loss']:.4f} "
                    f"train_dice {rec['train_dice']:.4f} val_loss {rec['val_loss']:.4f} "
                    f"val_dice {rec['val_dice']:.4f} lr {rec['lr']:.3g} {rec['seconds']:.1f}s"
                )
                self.reporter.epoch(exp, rec)

            def on_start(info: dict[str, Any]) -> None:
                status["epoch"] = info.get("resumed_epoch") or 0
                what = f"resumed at epoch {info['resumed_epoch']}" if info.get("resumed_epoch") else "started"
                run.log(f"{what} on {info['resolved_device']} (amp {info['amp_dtype']}), "
                        f"{info['n_train']} train / {info['n_val']} val images"
                        + (" (validating on the training images)" if info["val_on_train"] else ""))
                self.reporter.run_start(exp, info)

            events = Events(
                on_start=on_start,
                on_batch=lambda e, s, n: self.reporter.batch(exp, e, s, n),
                on_epoch=on_epoch,
                should_stop=lambda: self.stop_requested,
            )
            result = trainer.fit(run, events, run_id=exp.id, until_epoch=exp.budget)
            state, error, summary = result.state, result.error, result.summary
        except OSError as exc:
            # the machine, not the experiment: the run stays resumable from its last (intact) checkpoint
            state, error = ("interrupted" if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else "failed",
                            _describe_failure(exc, exp))
            run.log(f"{state}:\n" + traceback.format_exc())
        except Exception as exc:  # any failure ends this run as failed; the queue goes on
            error = _describe_failure(exc, exp)
            run.log("failed:\n" + traceback.format_exc())
        finally:
            stop_beat.set()
            hb.join()
        try:
            self._update_status(run, state=state, error=error, ended=time.time(), heartbeat=time.time(),
                                epoch=summary.get("epochs_done", status["epoch"]))
            run.log(f"{state}" + (f": {error}" if error else ""))
        except OSError as exc:  # e.g. the disk is still full: the claim goes stale and resumes later
            self.reporter.note(exp, f"could not record the run's end ({exc.strerror or exc})")
        self.reporter.run_end(exp, state, summary, error)
        return state

    def _update_status(self, run: Run, **fields: Any) -> None:
        with self._status_lock:
            try:
                run.write_status(**fields)
            except OSError:
                if "state" in fields:
                    raise
                # a missed heartbeat is harmless; the next one (or the end of the run) writes again


def _describe_failure(exc: Exception, exp: Experiment) -> str:
    """A one-line reason for a failed run, with what to do where we know it."""
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return (f"CUDA out of memory (batch_size {exp.config.batch_size}, image_size {exp.config.image_size}); "
                "lower batch_size, image_size or base_channels")
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        where = f" writing {exc.filename}" if exc.filename else ""
        return (f"disk full{where} ({exc.strerror}); the last checkpoint is intact: free space, then "
                "`unettui run` resumes this run")
    name = type(exc).__name__
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if name in ("DatasetError", "RuntimeError", "ValueError"):
        return msg or name
    return f"{name}: {msg}" if msg else name


# ---- several workers on one queue -----------------------------------------------------

def plan_workers(n: int, devices: list[str] | None, cores: int | None = None) -> list[tuple[str | None, int | None]]:
    """(device, cpu threads) for each of ``n`` workers: devices round-robin; CPU workers share the cores."""
    cores = cores or os.cpu_count() or 1
    out = []
    cpu_workers = sum(1 for i in range(n) if not devices or devices[i % len(devices)] == "cpu")
    for i in range(n):
        dev = devices[i % len(devices)] if devices else None
        threads = max(1, cores // max(1, cpu_workers)) if dev in (None, "cpu") else None
        out.append((dev, threads))
    return out


def run_workers(project: Path, n: int, devices: list[str] | None, base_args: list[str], threads: int | None = None,
                out=None) -> int:
    """Start ``n`` runner processes on one project and relay their lines, each prefixed with its worker name.

    Each worker is an ordinary `unettui run --headless`: claims are exclusive, so no experiment is
    trained twice, and a worker that dies leaves a claim the others (or a restart) take over.
    SIGINT/SIGTERM are passed on; every worker stops after its current batch.
    """
    import subprocess
    import sys

    out = out or sys.stdout
    procs: list[subprocess.Popen] = []
    lock = threading.Lock()

    def relay(name: str, stream) -> None:
        for line in stream:
            with lock:
                out.write(f"{name} | {line}")
                out.flush()

    relays = []
    for i, (dev, nthreads) in enumerate(plan_workers(n, devices), 1):
        nthreads = threads or nthreads
        args = [sys.executable, "-m", "unettui", "run", "--headless", "--plain", "-p", str(project), *base_args]
        if dev:
            args += ["--device", dev]
        if nthreads:
            args += ["--threads", str(nthreads)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        procs.append(p)
        t = threading.Thread(target=relay, args=(f"w{i}", p.stdout), daemon=True)
        t.start()
        relays.append(t)

    def forward(sig, _frame) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(sig)

    old = {}
    if threading.current_thread() is threading.main_thread():
        old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes = [p.wait() for p in procs]
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    for t in relays:
        t.join(timeout=5)
    codes = [130 if c in (130, -signal.SIGINT, -signal.SIGTERM) else c for c in codes]
    if any(c == 130 for c in codes):
        return 130
    return max((c for c in codes if c >= 0), default=1) if all(c >= 0 for c in codes) else 1
