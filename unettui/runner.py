"""The runner: claims the next experiment of the queue (or a pack of them), trains it via the core, keeps a heartbeat,
handles signals.

Over 600 lines: one Runner whose claims, fences, heartbeat, solo and packed training and recorded ends share its
state, then the few functions that start several runner processes on one queue.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from filelock import FileLock, Timeout

from .core.define.config import Config, definition_changes
from .core.define.experiment import Experiment, folds_of
from .core.define.queue import QUEUE_FILE, Queue, QueueError
from .core.plan import load_queue
from .core.runs.backend import claim_backend
from .core.runs.index import file_stamp, index_path, refresh_index
from .core.runs.options import PACK_DROPOUT, RunnerOptions
from .core.runs.runners import remove_figures, write_figures
from .core.runs.slurm_state import backend_from_env
from .core.runs.status import DataIds, Judgement, Row, State, collect, judge_run
from .core.runs.store import (
    HOST,
    ME,
    RUN_LOCK,
    STATUS,
    Run,
    RunStore,
    atomic_write_json,
    short_of,
)

HEARTBEAT_INTERVAL = 5.0
# `--pack auto` on CUDA: experiments packed together at most, once the packs' GPU check passed on this pack code (its
# record may set another size: "auto_pack"); on the CPU auto packs no new experiments (a CPU is compute-bound: packing
# gains nothing there)
AUTO_PACK_CUDA = 8
INDEX_EVERY = 600.0  # seconds between a runner's refreshes of the run index while its queue runs (refresh_index)
INDEX_SHARE = 0.05  # ... and at most this share of its time: a slow filesystem spaces them further apart
PACK_MEMORY_SHARE = 0.8  # a pack is made no larger than this share of the device's memory holds (feasible.py)

# ---- packs on a GPU only once measured ----------------------------------------------------------------------------
# The packs' GPU check (scripts/gpu_pack_check.sh: the CUDA pack tests and `bench --pack` on a GPU) writes its record
# here, in the package, so that an installed unettui reads it too. `--pack auto` packs on CUDA only while the record
# says "pass" for the pack code installed now: the hash of these files (under unettui/), whose code a pack runs.
PACK_CHECK_FILE = Path(__file__).with_name("pack_check.json")
PACK_CHECK_SCRIPT = "scripts/gpu_pack_check.sh"
# per parameter, the floats a pack's optimizer step adds to a member's weights, gradients and state (pack_optim.py):
# each element's member index (int32), a per-element coefficient (a member's own lr) and Adam's two temporaries (the
# denominator, the scaled first moment)
PACK_STEP_FLOATS = 4
PACK_CODE_FILES = ("core/learn/pack.py", "core/learn/pack_optim.py", "core/learn/pack_train.py",
                   "core/learn/pack_eval.py", "core/learn/train.py", "core/learn/model.py", "core/learn/losses.py",
                   "core/learn/optim.py", "core/learn/augment.py")


def pack_code_hash(root: Path | None = None) -> str:
    """sha256 over PACK_CODE_FILES (each one's path and bytes; a missing file counts as missing) under ``root`` (this
    package by default): what the GPU check records, and what `--pack auto` compares with the installed code."""
    import hashlib

    root = Path(__file__).parent if root is None else Path(root)
    digest = hashlib.sha256()
    for rel in PACK_CODE_FILES:
        try:
            data: bytes | None = (root / rel).read_bytes()
        except OSError:
            data = None
        digest.update(rel.encode() + b"\0")
        digest.update(b"missing" if data is None else len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def read_pack_check(path: Path | None = None) -> dict[str, Any] | None:
    """The packs' GPU check record (PACK_CHECK_FILE by default): None when there is none; a file that cannot be read
    as a JSON object is a check that did not pass (verdict "unreadable")."""
    import json

    path = PACK_CHECK_FILE if path is None else Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        return {"verdict": "unreadable", "reasons": [f"{path.name} cannot be read ({exc})"]}
    try:
        record = json.loads(text)
    except ValueError as exc:
        return {"verdict": "unreadable", "reasons": [f"{path.name} is not JSON ({exc})"]}
    if not isinstance(record, dict):
        return {"verdict": "unreadable", "reasons": [f"{path.name} is not a JSON object"]}
    return record


@dataclass(frozen=True)
class PackDecision:
    """What a runner does with new experiments on one device: at most ``limit`` in a pack (1: each alone), and the one
    line its log gives for it. ``checked``: a passing GPU check of the installed pack code is on record."""

    limit: int
    line: str
    checked: bool = False


def _check_said(record: dict[str, Any]) -> str:
    """'commit 9b366e1db on 2026-11-26, NVIDIA H200, torch 2.11.0+cu130': what a check record says of itself."""
    commit = str(record.get("commit") or "?")[:9] + (" with uncommitted changes" if record.get("dirty") else "")
    bits = [f"commit {commit}", f"on {str(record.get('date') or '?')[:10]}"]
    if record.get("device"):
        bits.append(str(record["device"]))
    if record.get("torch"):
        bits.append(f"torch {record['torch']}")
    return ", ".join(bits)


def decide_pack(pack: str | int, device: Any, check: dict[str, Any] | Path | None = PACK_CHECK_FILE,
                code_hash: str | None = None) -> PackDecision:
    """The one decision every runner (`run`, its --workers, SLURM pilot tasks, the TUI's runner) takes for new
    experiments on ``device`` (a torch.device or its name: "cpu", "cuda:0", ...), from ``pack`` (RunnerOptions.pack)
    and the packs' GPU check (a record, the path of one, or None: no record):

    - off (or 1): each alone; N: up to N (on CUDA the line says so when no passing check of this pack code exists);
    - auto: each alone on the CPU (and any non-CUDA device); on CUDA up to the record's "auto_pack" (AUTO_PACK_CUDA)
      while its verdict is "pass" for the installed pack code (pack_code_hash), else each alone, saying why.

    Runs interrupted in a pack resume in that pack under auto whatever this says (Runner.claim_pack)."""
    dev = str(device)
    cuda = dev.split(":")[0] == "cuda"
    if pack in ("off", 1):
        return PackDecision(1, "packs: off (--pack off): every experiment trains alone")
    record = read_pack_check(check) if isinstance(check, Path) else check
    why = ""
    if cuda:
        if not record:
            why = f"no GPU check of the pack code on record ({PACK_CHECK_SCRIPT})"
        elif record.get("verdict") != "pass":
            reasons = record.get("reasons") if isinstance(record.get("reasons"), list) else []
            why = (f"the pack code's GPU check did not pass ({_check_said(record)}"
                   + (f": {'; '.join(str(r) for r in reasons[:2])}" if reasons else "") + f"; {PACK_CHECK_SCRIPT})")
        elif record.get("code_hash") != (code_hash or pack_code_hash()):
            why = (f"the pack code changed since its GPU check passed ({_check_said(record)}); "
                   f"{PACK_CHECK_SCRIPT} checks it again")
    passed = cuda and not why
    if pack != "auto":
        n = max(1, int(pack))
        said = f"; note: {why}" if why else (f"; the pack code's GPU check passed ({_check_said(record)})"
                                             if passed else "")
        return PackDecision(n, f"packs: up to {n} on {dev} (--pack {n}){said}", passed)
    resume = "runs interrupted in a pack resume in it"
    if not cuda:
        return PackDecision(1, f"packs: off on {dev}: --pack auto packs on CUDA only (on a CPU packs gain nothing); "
                               f"{resume}; --pack N packs anyway")
    if why:
        return PackDecision(1, f"packs: off on {dev}: {why}; {resume}; --pack {AUTO_PACK_CUDA} packs anyway")
    assert record is not None
    auto = record.get("auto_pack", AUTO_PACK_CUDA)
    auto = auto if isinstance(auto, int) and not isinstance(auto, bool) and auto >= 1 else AUTO_PACK_CUDA
    if auto == 1:
        return PackDecision(1, f"packs: off on {dev}: the pack code's GPU check passed but measured no speed-up from "
                               f"packs ({_check_said(record)}); {resume}; --pack {AUTO_PACK_CUDA} packs anyway", True)
    return PackDecision(auto, f"packs: up to {auto} on {dev}: the pack code's GPU check passed "
                              f"({_check_said(record)}); --pack off trains each alone", True)


class Reporter(Protocol):
    """What the runner tells whoever is watching (plain lines, a rich progress bar, a test)."""

    def plan(self, queue: Queue, rows: list[Row]) -> None: ...
    def skip(self, exp: Experiment, reason: str) -> None: ...
    def note(self, exp: Experiment | None, text: str) -> None: ...
    def run_start(self, exp: Experiment, info: dict[str, Any]) -> None: ...
    def batch(self, exp: Experiment, epoch: int, step: int, steps: int) -> None: ...
    def epoch(self, exp: Experiment, rec: dict[str, Any]) -> None: ...
    def run_end(self, exp: Experiment, state: str, summary: dict[str, Any], error: str | None) -> None: ...


class SilentReporter:
    def __getattr__(self, name):  # every event is a no-op
        return lambda *a, **k: None


class GuardedReporter:
    """Output is not the experiment: a reporter that fails (the pipe of ``| tee`` or ``| head`` closed, the terminal
    gone after ``& disown``, a full disk behind stdout) is silenced after its first failure, which ``on_failure`` is
    told about; training goes on and run.log keeps the record."""

    def __init__(self, inner: Any, on_failure: Callable[[BaseException], None]):
        self.inner, self.on_failure = inner, on_failure
        self.broken: BaseException | None = None

    def __getattr__(self, name: str):
        fn = getattr(self.inner, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.broken is not None:
                return None
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - whatever the output does, the run is not at fault
                self.broken = exc
                try:
                    self.on_failure(exc)
                except Exception:  # noqa: BLE001
                    pass
                return None

        return call


class ClaimLost(Exception):
    """Another process holds this run's claim now (it took over a claim it saw as stale): stop touching the run."""


@dataclass
class _Job:
    """One claimed experiment while this runner trains it (alone or in a pack)."""

    exp: Experiment
    run: Run
    claim: Claim
    status: dict[str, Any] = field(default_factory=lambda: {"epoch": 0})  # what the heartbeat writes
    member: Any = None  # its PackMember, in a pack
    ended: bool = False  # its end is recorded: the heartbeat leaves it alone
    ending: str | None = None


class Claim:
    """This process's claim on one run: its token, and the fence every write to the run goes through."""

    def __init__(self, run: Run, token: str, lock_timeout: float = 60.0):
        self.run, self.token = run, token
        self._lock = FileLock(str(run.file(RUN_LOCK)), timeout=lock_timeout)
        self.lost: str | None = None

    @contextlib.contextmanager
    def fence(self) -> Iterator[None]:
        """Hold the run's lock and check that status.json still carries this claim's token; raise ClaimLost when it
        does not (and from then on). A claim is taken over only under the same lock, never while this holds it —
        and a runner suspended while holding it (mid-write) is passed by, not taken over."""
        if self.lost:
            raise ClaimLost(self.lost)
        with self._lock:
            st = self.run.status() or {}
            if st.get("token") != self.token:
                who = f"{st.get('host', '?')} pid {st.get('pid', '?')}" if st.get("token") else "someone else"
                self.lost = f"its claim was taken over by {who}; this runner stopped touching it"
                raise ClaimLost(self.lost)
            yield

    def log(self, line: str) -> None:
        if not self.lost:
            try:
                self.run.log(line)
            except OSError:
                pass


@dataclass
class Outcome:
    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    interrupted: list[str] = field(default_factory=list)
    skipped_invalid: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # claims taken over by another runner (it trains them)
    removed: list[str] = field(default_factory=list)  # removed from experiments.toml while they trained
    skipped_damaged: list[str] = field(default_factory=list)  # a file of the run cannot be read (named)
    stopped: bool = False  # by a signal

    @property
    def exit_code(self) -> int:
        if self.stopped:
            return 130
        return 1 if self.failed or self.skipped_invalid or self.interrupted or self.skipped_damaged else 0


class Runner:
    """Trains, in file order, every experiment without a finished run; resumes interrupted or crashed ones, and trains
    again (keeping the earlier attempt) those whose definition or dataset changed since they ran.

    ``options`` say how (RunnerOptions; its fields may also be given by name: ``Runner(project, pack=3)``); its fan-out
    fields (workers, devices) are run_workers' business, not this one process's."""

    def __init__(self, project: Path, options: RunnerOptions | None = None, *, reporter: Reporter | None = None,
                 heartbeat_interval: float = HEARTBEAT_INTERVAL, backend: dict[str, Any] | None = None,
                 **fields: Any):
        self.project = Path(project)
        self.options = replace(options or RunnerOptions(), **fields)  # (checked again: a field given by name)
        self.pack = self.options.pack  # packs: see claim_pack
        self.store = RunStore(self.project)
        self.device = self.options.device
        self.reporter = GuardedReporter(reporter or SilentReporter(), self._output_failed)
        self.heartbeat_interval = heartbeat_interval
        self.only = set(self.options.only) if self.options.only else None
        self.stale_after = self.options.stale_after
        self.attempted: set[tuple[str, int | None]] = set()
        self.stop_requested = False
        self.token = uuid.uuid4().hex
        self._status_lock = threading.Lock()
        self._claims: list[Claim] = []  # those of the runs being trained
        self._noted: set[tuple[str, str]] = set()  # (id, why) already reported as skipped
        self._alone_said: set[str] = set()  # why a run trained alone with packs allowed, said once each
        self._pack_cap: dict[str, int] = {}  # id -> the largest pack it may train in now (its pack ran out of memory)
        self._queue_stamp: tuple[float, int] | None = None
        self._training: dict[str, Experiment] = {}  # the experiments being trained, by id
        self._abandons: dict[str, str] = {}  # why a run in training is to stop after its epoch (redefined, removed)
        self._index_due = time.monotonic() + INDEX_EVERY  # the next refresh of the run index (_keep_index)
        self._pack_decisions: dict[str, PackDecision] = {}  # decide_pack's, by device (told once: reporter.note)
        self._pack_line = ""  # the packs line of the runs claimed last, for their run.log (claim_pack)
        self._pack_resume = False  # ... and whether they resume a pack
        self._pack_layout: list[str] | None = None  # ... and the layout of the pack they resume (its frozen slots)
        self._pack_dropout = self.options.pack_dropout  # ... and its dropout masks (a resumed pack: as it started)
        self._output_failure = ""  # the output failed while no run was claimed: logged in the next claims' logs
        # where this runner runs, recorded in its claims (a SLURM job: from its task, else from SLURM_* variables)
        self.backend = backend if backend is not None else backend_from_env()

    # ---- output --------------------------------------------------------------------
    def _output_failed(self, exc: BaseException) -> None:
        what = f"{type(exc).__name__}: {exc}".strip()
        line = f"progress output failed ({what}); training goes on, this log keeps the record"
        for claim in self._claims:
            claim.log(line)
        if not self._claims:  # (it failed between runs, e.g. on the packs line): the next runs' logs say it
            self._output_failure = line

    def _log_claimed(self, claim: Claim, line: str) -> None:
        """A claim's first lines in its run.log: who claimed it, the packs line, and a failure of the output that
        happened while no run was claimed."""
        claim.log(line)
        if self._pack_line:
            claim.log(self._pack_line)
        if self._output_failure:
            claim.log(self._output_failure)

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
    def _claimable(self, exp: Experiment, run: Run, data: DataIds) -> tuple[str, Judgement] | None:
        """Why ``exp`` should run now — 'new', 'resume' (interrupted), 'promote' (done short of its target: a
        successive-halving promotion), or 'restart' (its definition or data changed: the earlier attempt is archived
        first) — or None to pass it by."""
        verdict = judge_run(run, exp.config, data, stale_after=self.stale_after)
        state = verdict.state
        if state is State.PENDING:
            return "new", verdict
        if state is State.INTERRUPTED:
            return "resume", verdict
        if state is State.CHANGED:
            return "restart", verdict
        if state is State.DONE and short_of(run.summary(), exp.target_epochs):
            return "promote", verdict  # a successive-halving promotion, or a stage that stopped pruning: train on
        if state is State.DAMAGED:
            self._skip_once(exp, f"damaged: {run.status_damage()}",
                            f"; `unettui retry {exp.id}` archives it and trains it again")
        return None

    def _skip_once(self, exp: Experiment, why: str, hint: str = "") -> None:
        if (exp.id, why) not in self._noted:
            self._noted.add((exp.id, why))
            self.reporter.note(exp, f"skipped: {why}{hint}")

    def claim_pack(self, queue: Queue, seen_invalid: set[str]) -> list[tuple[Experiment, Run, str]]:
        """Under the queue lock, claim the first claimable experiment, then the mates it trains with:

        - a run interrupted in a pack (its config.json names the pack: Trainer.open_run writes it at each start)
          resumes in that pack, with those of its recorded mates that are interrupted too, in their recorded order
          (`--pack auto` or N; with N, at most N): its numbers are then exactly the uninterrupted pack's. Under
          `--pack off` it resumes alone, its fp32 numbers rounded from then on as a solo run's (said in its run.log);
        - a run interrupted while training alone resumes alone under `--pack auto` (as it trained); with `--pack N`
          it may join a pack;
        - anything else (new, changed, a successive-halving promotion) packs as decide_pack says for its device: up
          to N claimable experiments with its pack key (core.learn.pack_train.pack_key: data, architecture, batch
          size, device, AMP dtype) and its successive-halving budget, repeats of its configuration first; runs
          interrupted in a pack are left to resume in theirs (and under auto, those interrupted alone to resume
          alone).

        Each member is claimed exactly as a lone experiment is (its own status, token check and lock), so packed and
        unpacked runners share a queue. Returns what was claimed, in training order (a new pack's members side by
        side by optimizer kind, for the stacked step; empty: nothing to claim); the packs line for the claimed runs'
        run.log is left in ``self._pack_line``, ``self._pack_resume`` says that they resume a pack (then even one
        member alone trains through the pack trainer, as in that pack) and ``self._pack_layout`` that pack's slots
        (its mates not claimed now keep frozen slots) when all of them fit."""
        data = DataIds(self.project)
        self._pack_line, self._pack_resume, self._pack_layout = "", False, None
        self._pack_dropout = self.options.pack_dropout
        with FileLock(str(self.store.lock_path()), timeout=60):
            got: list[tuple[Experiment, Run, str]] = []
            rest: list[Experiment] = []
            for i, exp in enumerate(queue.experiments):
                if not self._wanted(exp):
                    continue
                if not exp.valid:
                    if exp.id not in seen_invalid:
                        seen_invalid.add(exp.id)
                        self.reporter.skip(exp, str(exp.error))
                    continue
                claimed = self._try_claim(exp, data)
                if claimed is not None:
                    got.append(claimed)
                    rest = queue.experiments[i + 1:]
                    break
            if not got:
                return got
            first, first_run, first_why = got[0]
            key, dev = self._pack_key(first.config)
            if dev is None:  # no such device here: it fails alone, with the trainer's message
                return got
            decision = self._decision(dev)
            self._pack_line = decision.line
            past = _pack_past(first_run) if first_why == "resume" else None
            explicit = self.pack not in ("auto", "off", 1)
            if past is not None:  # interrupted in a pack
                if self.pack in ("off", 1):
                    self._pack_line = (f"{decision.line}; this run was interrupted in a pack and resumes alone: "
                                       "from here on its fp32 numbers round as a solo run's, not as its pack's")
                    self.reporter.note(first, "interrupted in a pack, resumes alone (--pack off): from here on its "
                                              "fp32 numbers round as a solo run's, not as its pack's (docs/packs.md)")
                    return got
                most = len(past) if not explicit else min(len(past), int(self.pack))
                most = min(most, self._pack_cap.get(first.id, most))  # its pack ran out of memory: a smaller one

                def accept(run: Run, why: str) -> bool:  # a mate of that pack, interrupted in it too
                    return why == "resume" and first.id in (_pack_past(run) or ())

                candidates = [e for e in queue.experiments if e.id in past]
            else:
                solo_past = first_why == "resume" and first_run.config() is not None
                if solo_past and self.pack == "auto":  # it trained alone: it resumes alone
                    if decision.limit > 1:
                        self._pack_line = (f"{decision.line}; this run trained alone before it was interrupted and "
                                           "resumes alone (--pack auto resumes a run as it trained)")
                    return got
                most = min(decision.limit, self._pack_cap.get(first.id, decision.limit))

                def accept(run: Run, why: str) -> bool:  # not a run that is to resume in its own pack (or alone)
                    if why != "resume":
                        return True
                    return _pack_past(run) is None and (explicit or run.config() is None)

                candidates = sorted(rest, key=lambda e: e.configuration != first.configuration)
                if solo_past and most > 1:
                    self._pack_line = (f"{decision.line}; this run trained alone before it was interrupted: from "
                                       "here on its fp32 numbers round as a pack's")
            unlike: list[tuple[str, list[str]]] = []  # candidates that could not join: (id, the keys that differ)
            if most > 1 and key is not None:
                most = min(most, _members_that_fit(first.config, dev))
                self._claim_mates(first, key, candidates, most, got, data, accept, unlike)
            if most > 1 and len(got) == 1 and past is None:
                self._alone_because(first, key, unlike, most)
            if past is not None:
                self._pack_resume = True  # through the pack trainer even alone: the pack's numbers, exactly
                if len(past) <= most:  # its whole pack fits: mates not here keep frozen slots (as they had)
                    self._pack_layout = past
                got.sort(key=lambda c: past.index(c[0].id) if c[0].id in past else len(past))
                ids = ", ".join(c[0].id for c in got)
                self._pack_line = (f"packs: resumes in the pack it was interrupted in on {self._device_name(dev)} "
                                   f"({len(got)} of its {len(past)} members: {ids}"
                                   + (", the others' slots frozen as they were" if self._pack_layout
                                      and len(got) < len(past) else "")
                                   + f"), as --pack {self.pack} resumes a pack")
                if first.id in self._pack_cap:
                    self._pack_line = (f"packs: its pack of {len(past)} ran out of memory on {self._device_name(dev)}"
                                       f": resumes in a pack of {len(got)} ({ids}), at most "
                                       f"{self._pack_cap[first.id]}; from here on its fp32 numbers round as that "
                                       "pack's")
                recorded = next((m for m in ((r.config() or {}).get("pack_dropout") for _, r, _ in got)
                                 if m in PACK_DROPOUT), None)
                if recorded is not None and recorded != self._pack_dropout:  # its masks as it started: exactly
                    self._pack_dropout = recorded
                    self._pack_line += (f"; with the dropout masks it started with ({recorded}), not --pack-dropout "
                                        f"{self.options.pack_dropout}")
            else:  # a new pack: members of one optimizer kind side by side, one stacked step each (pack_optim.py)
                got.sort(key=lambda c: "adam" if c[0].config.optimizer == "adamw" else c[0].config.optimizer)
            return got

    def _alone_because(self, first: Experiment, key: tuple | None, unlike: list[tuple[str, list[str]]],
                       most: int) -> None:
        """Packs were allowed but ``first`` trains alone: why, in one line of its run.log and once per reason in the
        runner's output."""
        if most > 1 and key is None:
            why = ("amp = \"fp16\" trains alone (one GradScaler would couple a pack's members): amp = \"auto\" "
                   "(fp32 in a pack on a card without bf16), \"bf16\" or \"off\" packs")
        elif unlike:
            shown = "; ".join(f"{i} differs in {', '.join(keys)}" for i, keys in unlike[:2])
            why = f"no experiment waiting shares its data, shapes, device and AMP ({shown})"
        else:
            return  # nothing else waits to train: alone, as there is no one to pack with
        self._pack_line = (self._pack_line + "; " if self._pack_line else "") + f"{first.id} trains alone: {why}"
        if why not in self._alone_said:
            self._alone_said.add(why)
            self.reporter.note(first, f"trains alone: {why}")

    def _claim_mates(self, first: Experiment, key: tuple, candidates: list[Experiment], most: int,
                     got: list[tuple[Experiment, Run, str]], data: DataIds, accept: Callable[[Run, str], bool],
                     unlike: list[tuple[str, list[str]]] | None = None) -> None:
        """Claim, in ``candidates``' order, experiments that pack with ``first`` (its pack key and budget, wanted,
        valid, accepted) until ``got`` holds ``most``."""
        from .core.learn.pack_train import PACK_KEYS, pack_key

        seen = {c[0].id for c in got}
        for exp in candidates:
            if len(got) >= most:
                break
            if exp.id in seen or not (self._wanted(exp) and exp.valid and exp.budget == first.budget):
                continue
            if self._pack_cap.get(exp.id, most) <= len(got):  # its own pack ran out of memory at this size
                continue
            seen.add(exp.id)
            try:
                theirs = pack_key(exp.config, self.device)
            except RuntimeError:
                continue
            if theirs != key:
                if unlike is not None:
                    names = (*PACK_KEYS, "device", "amp")
                    unlike.append((exp.id, ["amp (fp16 trains alone)"] if theirs is None else
                                   [n for n, a, b in zip(names, theirs, key) if a != b]))
                continue
            claimed = self._try_claim(exp, data, accept)
            if claimed is not None:
                got.append(claimed)

    def _wanted(self, exp: Experiment) -> bool:
        """In this runner's --only, and not attempted yet in this session (at most one attempt each)."""
        return (self.only is None or exp.id in self.only) and (exp.id, exp.budget) not in self.attempted

    def _try_claim(self, exp: Experiment, data: DataIds, accept: Callable[[Run, str], bool] | None = None
                   ) -> tuple[Experiment, Run, str] | None:
        """Claim ``exp`` if it is to run now (and ``accept(run, why)`` says so: why is new, resume, restart or
        promote) and no runner is writing to it this very moment (queue lock held)."""
        run = self.store.run(exp.id)
        decided = self._claimable(exp, run, data)
        if decided is None:
            return None
        why, verdict = decided
        if accept is not None and not accept(run, why):
            return None
        run.path.mkdir(parents=True, exist_ok=True)
        run_lock = FileLock(str(run.file(RUN_LOCK)), timeout=0)
        try:
            run_lock.acquire()
        except Timeout:  # its runner is writing to it this very moment (or was suspended doing so)
            return None
        try:
            return self._claim_run(exp, run, why, verdict)
        finally:
            run_lock.release()

    def _pack_key(self, cfg: Config | None) -> tuple[tuple | None, Any]:
        """(``cfg``'s pack key, or None when it trains alone (fp16), its resolved torch device); (None, None) where
        that device does not exist here."""
        if cfg is None:
            return None, None
        from .core.learn.devices import resolve_device
        from .core.learn.pack_train import pack_key

        try:
            return pack_key(cfg, self.device), resolve_device(self.device or cfg.device)
        except RuntimeError:
            return None, None

    @staticmethod
    def _device_name(dev: Any) -> str:
        """A device's name with its index (cuda is cuda:N)."""
        name = str(dev)
        if name == "cuda":
            import torch

            name = f"cuda:{torch.cuda.current_device()}"
        return name

    def _decision(self, dev: Any) -> PackDecision:
        """decide_pack for ``dev``, taken and told (one note) once per device."""
        name = self._device_name(dev)
        if name not in self._pack_decisions:
            self._pack_decisions[name] = decide_pack(self.pack, name)
            self.reporter.note(None, self._pack_decisions[name].line)
        return self._pack_decisions[name]

    def _claim_run(self, exp: Experiment, run: Run, why: str, verdict: Judgement) -> tuple[Experiment, Run, str]:
        """Write this runner's claim into ``run`` (holding the queue lock and the run's lock)."""
        for done in run.recover():  # a kill left an archive half-done or temporary files: complete, clean
            run.log(done)
        prev = run.status() or {}
        if why == "restart":
            reason = verdict.change_text or "changed"
            dest = run.archive_attempt(reason)
            note = f"{reason}: the earlier attempt is kept in {dest.relative_to(self.project)}; training again"
            self.reporter.note(exp, note)
            prev = {}
        elif prev.get("state") == "running":
            age = time.time() - float(prev.get("heartbeat", 0) or 0)
            why_stale = "its process is gone" if prev.get("host") == HOST else "no heartbeat"
            note = (f"taking over the stale claim of {prev.get('host')} pid {prev.get('pid')} "
                    f"({why_stale}; last heartbeat {age:.0f}s ago)")
            run.log(note)
            self.reporter.note(exp, note)
        now = time.time()
        fresh = why in ("new", "restart") or not prev
        attempt = len(run.attempts()) + 1 if fresh else _as_int(prev.get("attempt"), len(run.attempts()) + 1)
        promotion = prev.get("state") == "done"
        status = {
            "state": "running", "host": HOST, "pid": os.getpid(), "process": ME, "token": self.token,
            "heartbeat": now, "started": now, "ended": None, "error": None, "attempt": max(1, attempt),
            "resumes": 0 if fresh else _as_int(prev.get("resumes")) + (0 if promotion else 1),
            "epoch": 0 if fresh else _as_int(prev.get("epoch")), "epochs": exp.config.epochs,
            "target": exp.target_epochs,
        }
        status.update(claim_backend(prev, self.backend))
        atomic_write_json(run.file(STATUS), status)
        return exp, run, why

    # ---- the loop -------------------------------------------------------------------
    def run(self) -> Outcome:
        outcome = Outcome()
        if self.options.threads:
            import torch

            torch.set_num_threads(self.options.threads)
        old = self._install_signals()
        seen_invalid: set[str] = set()
        queue: Queue | None = None
        try:
            while not self.stop_requested:
                try:  # re-read: edits made while training are picked up
                    fresh = load_queue(self.project, cache=True)  # (a large file: parsed once per change)
                    self._queue_stamp = file_stamp(self.project / QUEUE_FILE)
                except QueueError as exc:
                    if queue is None:
                        raise
                    # a half-saved or broken edit must not kill a night of training: keep the last good queue
                    self.reporter.note(None, f"{exc} (keeping the queue as it was)")
                    fresh = queue
                if queue is None:
                    rows = collect(fresh, self.store, stale_after=self.stale_after,
                                   ids=None if self.only is None else self.only, readers=None)
                    self.reporter.plan(fresh, rows)
                queue = fresh
                claimed = self.claim_pack(queue, seen_invalid)
                if not claimed:
                    if self._study_stage_pending(queue):
                        # another runner is finishing a study stage whose successor we can then train
                        time.sleep(min(self.heartbeat_interval, 1.0))
                        continue
                    break
                for exp, _, _ in claimed:
                    self.attempted.add((exp.id, exp.budget))
                if len(claimed) == 1 and not self._pack_resume:
                    exp, run, _ = claimed[0]
                    ends = [(exp, self.train(exp, run))]
                else:
                    ends = self.train_pack([(exp, run) for exp, run, _ in claimed])
                for exp, state in ends:
                    if state in ("redefined", "split"):  # to train again in this session: with its new
                        self.attempted.discard((exp.id, exp.budget))  # definition, or in a smaller pack
                        continue
                    getattr(outcome, state).append(exp.id)
                self._cross_validate(queue, [exp for exp, state in ends if state == "done" and exp.fold])
                self._keep_index()
            outcome.skipped_invalid = sorted(seen_invalid)
            outcome.skipped_damaged = sorted({i for i, why in self._noted if why.startswith("damaged:")})
            outcome.stopped = self.stop_requested
            if not self.stop_requested:  # the queue is done: the TUI opened next reads one index, not every run
                refresh_index(self.project)
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
            remove_figures(self.project)
        return outcome

    def _cross_validate(self, queue: Queue, ended: list[Experiment]) -> None:
        """A cross-validated configuration whose repeat's last fold just ended gets its runs/.configurations/ file
        (core.learn.cv: pooled out-of-fold score, per-image scores, the ensemble's test score); said in the log."""
        seen: set[tuple[str, int]] = set()
        for exp in ended:
            if (exp.configuration, exp.repeat) in seen:
                continue
            seen.add((exp.configuration, exp.repeat))
            folds = {r: [e.id for e in es] for r, es in folds_of(queue.experiments, exp.configuration).items()}
            ids = folds.get(exp.repeat, [])
            if any((self.store.run(i).status() or {}).get("state") != "done" for i in ids):
                continue
            from .core.learn.cv import cross_validate, cv_line

            try:
                with FileLock(str(self.store.lock_path()) + ".cv", timeout=600):
                    data = cross_validate(self.project, exp.configuration, folds, self.device or exp.config.device)
            except Exception as exc:  # noqa: BLE001 - the runs are done and kept; `unettui cv` computes it again
                why = (str(exc).strip() or type(exc).__name__).splitlines()[0]
                self.reporter.note(exp, f"cross-validation of {exp.configuration} not written: {why}; "
                                        f"`unettui cv {exp.configuration}` tries again")
                continue
            if data is not None:
                self.reporter.note(exp, cv_line(data, exp.repeat))

    def _keep_index(self) -> None:
        """Every INDEX_EVERY seconds of a long queue, the run index is written again from the run folders: the TUI
        opened in the middle of a night's sweep reads the runs of the last minutes from their folders, not all of
        them. A refresh that takes long (a cluster's filesystem) spaces the next ones so that they cost at most
        INDEX_SHARE of the runner's time. An index written less than INDEX_EVERY ago (by another runner of the
        queue, a SLURM task beside this one, or the TUI) is left as it is: a cluster's many runners refresh it about
        once per period between them, not once each."""
        now = time.monotonic()
        if now < self._index_due:
            return
        written = file_stamp(index_path(self.project))
        age = time.time() - written[0] if written else INDEX_EVERY
        if 0 <= age < INDEX_EVERY:
            self._index_due = now + INDEX_EVERY - age
            return
        refresh_index(self.project)
        took = time.monotonic() - now
        self._index_due = time.monotonic() + max(INDEX_EVERY, took / INDEX_SHARE)

    def _study_stage_pending(self, queue: Queue) -> bool:
        """A study has a waiting stage while runs of an earlier one are still being trained elsewhere."""
        # a waiting stage, or a running one whose next successive-halving rung depends on those runs
        waiting = any(st.state != "done" for study in queue.studies for st in study.stages)
        if not waiting:
            return False
        return any(judge_run(self.store.run(e.id), None, stale_after=self.stale_after).state is State.RUNNING
                   for e in queue.experiments if e.valid)

    def _still_wanted(self) -> None:
        """After each epoch: if experiments.toml changed, is every experiment in training still in it, as it was? If
        not, that run stops after this epoch (``self._abandons`` says why)."""
        stamp = file_stamp(self.project / QUEUE_FILE)
        if stamp == self._queue_stamp:
            return
        try:
            queue = load_queue(self.project, cache=True)
        except QueueError:
            return  # half-saved: judged again when it is whole
        self._queue_stamp = stamp
        for exp in self._training.values():
            now = queue.get(exp.id)
            if now is None:
                self._abandons[exp.id] = "removed"
            elif now.valid and exp.config is not None and definition_changes(exp.config.to_dict(), now.config):
                self._abandons[exp.id] = "redefined"

    def train(self, exp: Experiment, run: Run) -> str:
        """Train one claimed experiment; every failure is recorded in its run, never raised. Returns the state it
        ended in: done, failed, interrupted, lost (its claim was taken over), removed (from the queue while it
        trained) or redefined (its definition changed while it trained: it is to start again)."""
        from .core.learn.train import Trainer  # torch is imported here, not at CLI start-up

        job = _Job(exp, run, Claim(run, self.token))
        self._claims, self._training, self._abandons = [job.claim], {exp.id: exp}, {}
        state, error, summary = "failed", None, {}
        with self._heartbeat([job]):
            self._log_claimed(job.claim, f"claimed by {HOST} pid {os.getpid()}{self._where()} ({exp.origin})")
            self._output_failure = ""
            try:
                trainer = Trainer(exp.config, self.project, self.device)
                result = trainer.fit(run, self._events(job), run_id=exp.id, until_epoch=exp.budget)
                state, error, summary = result.state, result.error, result.summary
            except Exception as exc:  # noqa: BLE001 - any failure ends this run (failed, or interrupted by the machine)
                state, error = self._failure(exc, job)
        self._claims, self._training = [], {}
        return self._end(job, state, error, summary)

    def train_pack(self, claimed: list[tuple[Experiment, Run]]) -> list[tuple[Experiment, str]]:
        """Train claimed experiments of one pack key as one pack (core.learn.pack_train): each member as its own
        run (its files, its fence, its end recorded the moment it leaves the pack), one heartbeat thread for all.
        Returns each member's ending, as ``train`` does for one."""
        from .core.learn.pack_train import PackMember, PackTrainer, data_mate  # torch is imported here

        jobs = [_Job(exp, run, Claim(run, self.token)) for exp, run in claimed]
        self._claims, self._training, self._abandons = [j.claim for j in jobs], {j.exp.id: j.exp for j in jobs}, {}
        with self._heartbeat(jobs):
            for j in jobs:
                mates = ", ".join(o.exp.id for o in jobs if o is not j)
                self._log_claimed(j.claim, f"claimed by {HOST} pid {os.getpid()}{self._where()} ({j.exp.origin}) "
                                           f"in a pack of {len(jobs)} with {mates}")
            self._output_failure = ""
            built: list[PackMember] = []
            for j in jobs:
                try:
                    j.member = PackMember(j.exp.config, self.project, self.device,
                                          data_from=data_mate(j.exp.config, built))
                    built.append(j.member)
                except Exception as exc:  # noqa: BLE001 - this member cannot train (its checks, its data): it fails alone
                    state, error = self._failure(exc, j)
                    j.ending = self._end(j, state, error, {})
            live = [j for j in jobs if j.member is not None]
            if live:
                try:
                    here = {j.exp.id: j.member for j in live}  # a resumed pack's layout: frozen slots for the others
                    slots = [here.get(x, x) for x in self._pack_layout] if self._pack_layout else None
                    PackTrainer([j.member for j in live], dropout_mode=self._pack_dropout, slots=slots).fit(
                        [j.run for j in live], [self._events(j) for j in live], [j.exp.id for j in live],
                        [j.exp.budget for j in live])
                except Exception as exc:  # noqa: BLE001 - the pack could not be built: every member not ended yet
                    for j in live:
                        if j.ending is None:
                            state, error = self._failure(exc, j)
                            j.ending = self._end(j, state, error, {})
        for j in jobs:  # (every member ends through its on_end; this is a safety net)
            if j.ending is None:
                j.ending = self._end(j, "interrupted", None, {})
        self._claims, self._training = [], {}
        return [(j.exp, j.ending or "interrupted") for j in jobs]

    def _where(self) -> str:
        return f" in {self.backend['kind']} job {self.backend['job']}" if self.backend else ""

    @contextlib.contextmanager
    def _heartbeat(self, jobs: list[_Job]) -> Iterator[None]:
        """One thread writing every job's heartbeat (and epoch) every heartbeat_interval, through its fence."""
        stop_beat = threading.Event()

        def beat() -> None:
            while not stop_beat.wait(self.heartbeat_interval):
                # what this process does, for the TUI (runs/.runners/): device, GPU memory and utilisation, its runs
                write_figures(self.project, jobs[0].status.get("device") or self.device,
                              [j.exp.id for j in jobs if not j.ended])
                for job in jobs:
                    if job.ended or job.claim.lost:
                        continue
                    try:
                        with job.claim.fence():
                            self._update_status(job.run, heartbeat=time.time(), epoch=job.status["epoch"])
                    except ClaimLost:
                        continue  # should_stop sees claim.lost: the loop stops it at its next batch
                    except Exception:  # noqa: BLE001 - a missed heartbeat is harmless; the next one writes again
                        pass

        hb = threading.Thread(target=beat, name=f"heartbeat-{jobs[0].exp.id}", daemon=True)
        hb.start()
        try:
            yield
        finally:
            stop_beat.set()
            hb.join()

    def _events(self, job: _Job):
        """The trainer's callbacks for one job: status and run.log per epoch, the reporter, the fence, stopping."""
        from .core.learn.train import Events

        exp, run, claim, status = job.exp, job.run, job.claim, job.status

        def on_epoch(rec: dict[str, Any]) -> None:
            status["epoch"] = rec["epoch"]
            with claim.fence():
                self._update_status(run, heartbeat=time.time(), epoch=rec["epoch"])
            classes = "".join(f" {k[4:]} {_num(v)}" for k, v in rec.items() if k.startswith("val_dice_"))
            claim.log(
                f"epoch {rec['epoch']}/{exp.config.epochs} train_loss {rec['train_loss']:.4f} "
                f"train_dice {_num(rec['train_dice'])} val_loss {rec['val_loss']:.4f} "
                f"val_dice {_num(rec['val_dice'])}{classes} lr {rec['lr']:.3g} {rec['seconds']:.1f}s"
            )
            self.reporter.epoch(exp, rec)
            self._still_wanted()

        def on_start(info: dict[str, Any]) -> None:
            status["epoch"] = info.get("resumed_epoch") or 0
            status["device"] = info.get("resolved_device")  # for the heartbeat's figures
            status["pack_size"] = info.get("pack_size")  # (halved for it if its pack runs out of memory)
            what = f"resumed at epoch {info['resumed_epoch']}" if info.get("resumed_epoch") else "started"
            if info.get("restarted"):
                what = f"started again from scratch ({info['restarted']})"
            claim.log(f"{what} on {info['resolved_device']} (amp {info['amp_dtype']}), "
                      f"{info['n_train']} train / {info['n_val']} val"
                      + (f" / {info['n_test']} test" if info.get("n_test") else "") + " images"
                      + (" (validating on the training images)" if info["val_on_train"] else "")
                      + (f", in a pack of {info['pack_size']}" if info.get("pack_size") else ""))
            for note in info.get("data_notes") or ():  # what reading the data changed (an alpha dropped, ...)
                claim.log(f"data: {note}")
            self.reporter.run_start(exp, info)

        def on_end(result: Any) -> None:  # a pack's member left its pack: record its end now
            state, error = result.state, result.error
            if state == "split":  # its pack ran out of memory: interrupted, to train again in a smaller pack
                size = job.status.get("pack_size") or 2
                self._pack_cap[exp.id] = max(1, min(self._pack_cap.get(exp.id, size), size) // 2)
                ending = self._end(job, "interrupted", error, result.summary)
                job.ending = "split" if ending == "interrupted" else ending  # (lost, removed: as they are)
                return
            if state == "raised":
                state, error = self._failure(result.exc, job)
            job.ending = self._end(job, state, error, result.summary)

        return Events(
            on_start=on_start,
            on_batch=lambda e, s, n: self.reporter.batch(exp, e, s, n),
            on_epoch=on_epoch,
            should_stop=lambda: self.stop_requested or claim.lost is not None or exp.id in self._abandons,
            guard=claim.fence,
            on_end=on_end,
            on_note=claim.log,
        )

    def _failure(self, exc: BaseException, job: _Job) -> tuple[str, str | None]:
        """(state, error) of a run whose training raised ``exc``: lost (its claim was taken over), interrupted (the
        machine, not the experiment: resumable from its last checkpoint) or failed; the traceback goes to run.log."""
        if isinstance(exc, ClaimLost):
            return "lost", None
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        if isinstance(exc, OSError):
            job.claim.log("interrupted:\n" + trace)
            return "interrupted", _describe_failure(exc, job.exp)  # type: ignore[arg-type]
        job.claim.log("failed:\n" + trace)
        return "failed", _describe_failure(exc, job.exp)  # type: ignore[arg-type]

    def _end(self, job: _Job, state: str, error: str | None, summary: dict[str, Any]) -> str:
        """Record how a run ended (status, run.log, the reporter); returns its ending (see ``train``)."""
        job.ended = True
        exp, run, claim = job.exp, job.run, job.claim
        if claim.lost:
            self.reporter.note(exp, claim.lost)
            return "lost"
        ending = state
        abandon = self._abandons.get(exp.id)
        if state == "interrupted" and abandon and not self.stop_requested:
            ending, error = abandon, None
        try:
            with claim.fence():
                self._update_status(run, state=state, error=error, ended=time.time(), heartbeat=time.time(),
                                    epoch=summary.get("epochs_done", job.status["epoch"]))
            claim.log(f"{state}" + (f": {error}" if error else "")
                      + (f" ({ending} in experiments.toml)" if ending in ("removed", "redefined") else ""))
        except ClaimLost:
            self.reporter.note(exp, claim.lost or "claim lost")
            return "lost"
        except Exception as exc:  # noqa: BLE001 - e.g. the disk is still full: the claim goes stale, resumes later
            self.reporter.note(exp, f"could not record the run's end ({getattr(exc, 'strerror', None) or exc})")
        self.reporter.run_end(exp, ending, summary, error)
        return ending

    def _update_status(self, run: Run, **fields: Any) -> None:
        with self._status_lock:
            try:
                run.write_status(**fields)
            except OSError:
                if "state" in fields:
                    raise
                # a missed heartbeat is harmless; the next one (or the end of the run) writes again


def _members_that_fit(cfg: Config, device: Any) -> int:
    """How many members of ``cfg``'s shape a pack can hold in PACK_MEMORY_SHARE of the device's memory (the
    machine's for the CPU), from feasible.py's estimate: each member its model, a batch's activations and its part
    of the stacked optimizer step's buffers (PACK_STEP_FLOATS per parameter), the data once."""
    import torch

    from .core.learn.feasible import machine_memory, memory_estimate, parameter_count

    est = memory_estimate(cfg, cfg.num_images)
    memory = torch.cuda.get_device_properties(device).total_memory if device.type == "cuda" else machine_memory()
    if not memory:
        return 10**6
    member = est["model"] + est["activations"] + PACK_STEP_FLOATS * 4 * parameter_count(cfg)
    return max(1, int((PACK_MEMORY_SHARE * memory - est["data"]) // max(1, member)))


def _as_int(v: Any, default: int = 0) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else default


def _describe_failure(exc: Exception, exp: Experiment) -> str:
    """A one-line reason for a failed run, with what to do where we know it."""
    import torch

    from .core.learn.devices import out_of_memory

    if out_of_memory(exc):  # (alone: a pack that runs out of memory is split instead, core.learn.pack_train)
        where = "CUDA " if isinstance(exc, torch.cuda.OutOfMemoryError) else ""
        return (f"{where}out of memory (batch_size {exp.config.batch_size}, image_size {exp.config.image_size}); "
                "lower batch_size, image_size or base_channels")
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        where = f" writing {exc.filename}" if exc.filename else ""
        return (f"disk full{where} ({exc.strerror}); the last checkpoint is intact: free space, then "
                "`unettui run` resumes this run")
    name = type(exc).__name__
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if name in ("DatasetError", "RuntimeError", "ValueError", "NotTrainable", "CheckpointError"):
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


def runner_command(project: Path, options: RunnerOptions) -> list[str]:
    """The command line of an ordinary `unettui run --headless` on ``project`` with ``options`` (all of them, as the
    one JSON text RunnerOptions.to_json writes: nothing comes from this process's environment)."""
    import sys

    return [sys.executable, "-m", "unettui", "run", "--headless", "--plain", "-p", str(project),
            "--runner-options", options.to_json()]


def worker_options(options: RunnerOptions) -> list[RunnerOptions]:
    """The options of each of ``options.workers`` runner processes: devices round-robin, CPU threads shared
    (plan_workers) unless ``options.threads`` says how many each gets."""
    return [options.for_worker(dev, options.threads or nthreads)
            for dev, nthreads in plan_workers(options.workers, list(options.devices) or None)]


def run_workers(project: Path, options: RunnerOptions, out=None) -> int:
    """Start ``options.workers`` runner processes on one project and relay their lines, each prefixed with its worker
    name.

    Each worker is an ordinary `unettui run --headless` (runner_command, with worker_options): claims are exclusive,
    so no experiment is trained twice, and a worker that dies leaves a claim the others (or a restart) take over.
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
    for i, mine in enumerate(worker_options(options), 1):
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        p = subprocess.Popen(runner_command(project, mine), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, env=env)
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


def _pack_past(run: Run) -> list[str] | None:
    """The pack ``run`` trained in at its last start (its members' ids in their order, the run's own included), from
    its config.json (pack_size, pack_members and pack_slot: core.learn.pack_train); None when it trained alone."""
    cfg = run.config() or {}
    if not isinstance(cfg.get("pack_size"), int) or isinstance(cfg.get("pack_size"), bool):
        return None
    mates = [m for m in cfg.get("pack_members") or [] if isinstance(m, str)]
    slot = cfg.get("pack_slot")
    slot = slot if isinstance(slot, int) and not isinstance(slot, bool) and 0 <= slot <= len(mates) else 0
    return [*mates[:slot], run.id, *mates[slot:]]


def _num(v: Any) -> str:
    """A metric in the run log: 4 decimals, "-" for none (a multi-class score no class has)."""
    return "-" if v is None else f"{v:.4f}"
