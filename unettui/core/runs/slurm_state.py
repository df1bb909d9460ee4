"""What the project knows about SLURM: its submission records, the backend a claim ran on, and the scheduler's state of
those jobs (squeue, then sacct), cached and time-limited so that no face ever waits on the scheduler.

No submitit here and no UI library: this is read by every face (ls, show, results, the TUI's poll thread) and written
by the submission (unettui/cluster/slurm.py) and the runner (a claim's ``backend``).

Records: ``runs/.slurm/<token>.json`` — one per submission, written before sbatch is called (``job`` null) and
completed with the job id when sbatch answered; removed, with its folder ``runs/.slurm/<token>/`` (submitit's pickles
and the tasks' stdout/stderr), when sbatch refused. A record whose ``job`` is still null after its submitting process
is gone is found again by its unique job name (``unettui-<token>``).
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .backend import JobState, backend_of
from .store import RUNS_DIR, atomic_write_json, read_json

SLURM_DIR = ".slurm"  # runs/.slurm: records and submitit folders (RunStore skips dot folders)
JOB_PREFIX = "unettui-"  # job names: unettui-<token>
QUERY_TIMEOUT = 5.0  # seconds a squeue/sacct call may take before the state is "unknown" this time
TTL = 5.0  # seconds a scheduler answer is reused (the TUI polls every second; the scheduler is asked at most this often)
UNAVAILABLE_TTL = 60.0  # no squeue here (a laptop reading a synced project): ask again after this long

# the scheduler's words for a job that may still run (a task in one of them keeps a submission "active")
ACTIVE = frozenset({"submitted", "pending", "requeued", "running", "completing", "configuring", "suspended",
                    "resizing", "signaling", "stage_out", "requeue_hold", "requeue_fed", "resv_del_hold", "stopped"})


def slurm_dir(project: Path) -> Path:
    return Path(project) / RUNS_DIR / SLURM_DIR


# ---- the backend a claim ran on (status.json "backend") ---------------------------------------------------------


def backend_from_env(env: dict[str, str] | None = None) -> dict[str, Any] | None:
    """The backend of a runner started inside a SLURM job (its SLURM_* variables), or None outside one. A runner
    started by unettui's own submission is given a fuller one (with its log files) by its task."""
    env = os.environ if env is None else env
    job = env.get("SLURM_JOB_ID")
    if not job:
        return None
    array, task = env.get("SLURM_ARRAY_JOB_ID"), env.get("SLURM_ARRAY_TASK_ID")
    out: dict[str, Any] = {"kind": "slurm", "job": f"{array}_{task}" if array and task else job}
    if env.get("SLURMD_NODENAME"):
        out["node"] = env["SLURMD_NODENAME"]
    return out


def backends_of_run(run_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every backend that trained a run, oldest first, as (which: "attempt N" or "current", backend) — from
    status.json and the status.json of each earlier attempt (runs/ID/attempts/N/)."""
    out: list[tuple[str, dict[str, Any]]] = []
    folders = []
    attempts = Path(run_dir) / "attempts"
    if attempts.is_dir():
        folders = sorted((p for p in attempts.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
    for which, st in [(f"attempt {p.name}", read_json(p / "status.json")) for p in folders] + \
            [("current", read_json(Path(run_dir) / "status.json"))]:
        st = st or {}
        seen = [b for b in st.get("backends", []) if isinstance(b, dict) and b.get("job")] \
            if isinstance(st.get("backends"), list) else []
        cur = backend_of(st)
        for b in seen + ([cur] if cur else []):
            if (which, b) not in out:
                out.append((which, b))
    return out


# ---- submission records ---------------------------------------------------------------------------------------


def new_token() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + os.urandom(3).hex()


def record_path(project: Path, token: str) -> Path:
    return slurm_dir(project) / f"{token}.json"


def write_record(project: Path, token: str, record: dict[str, Any]) -> Path:
    path = record_path(project, token)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {**record, "token": token})
    return path


def records(project: Path) -> list[dict[str, Any]]:
    """This project's submissions, oldest first (each with its ``token``, ``job`` — None while sbatch had not
    answered —, ``tasks``, ``submitted``, ``options`` and ``folder``)."""
    d = slurm_dir(project)
    try:
        files = sorted(p for p in d.iterdir() if p.suffix == ".json" and p.is_file())
    except OSError:
        return []
    out = []
    for p in files:
        rec = read_json(p)
        if rec and isinstance(rec.get("token"), str):
            out.append(rec)
    return sorted(out, key=lambda r: (r.get("submitted") or 0, r["token"]))


# ---- the scheduler's state ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlurmJob:
    """One SLURM job (or array task) as the scheduler reports it (``state`` gives it in the backends' plain words)."""

    job: str  # "42" or "42_3"
    raw: str  # squeue/sacct State: PENDING, RUNNING, CANCELLED, TIMEOUT, ...
    reason: str = ""
    restarts: int = 0

    @property
    def word(self) -> str:
        """The state in unettui's words: submitted, pending, requeued, running, completed, cancelled, timeout,
        failed, preempted, node_fail, out_of_memory, ..."""
        w = self.raw.split()[0].lower().rstrip("+") if self.raw.strip() else "unknown"
        if w == "pending" and self.restarts > 0:  # waiting to start again after a requeue (preemption, time limit)
            return "requeued"
        return w

    @property
    def waiting(self) -> str:
        """Why the scheduler keeps a pending (or requeued) task from starting — squeue's reason (%r: Resources,
        Priority, PartitionConfig, ReqNodeNotAvail, ...) — or "" for a task that is not waiting or has no reason."""
        if not self.raw.strip() or self.raw.split()[0].upper() != "PENDING":
            return ""
        reason = self.reason.strip()
        return "" if reason in ("", "None", "(null)") else reason

    @property
    def label(self) -> str:
        """The word, with the reason while it waits: ``running``, ``pending (Resources)``, ``requeued (BeginTime)``."""
        return self.state.label

    @property
    def state(self) -> JobState:
        """What the read model is handed: the word, and the reason while it waits."""
        return JobState(self.word, self.waiting)


# squeue's reasons for a pending task, in a few words (the ones a user of a study meets; others are shown bare).
# NEVER: the request itself is the problem, so the task waits until the partition or the request changes.
NEVER = frozenset({"PartitionConfig", "BadConstraints", "PartitionNodeLimit", "PartitionTimeLimit",
                   "InvalidAccount", "InvalidQOS", "QOSMaxCpuPerJobLimit", "QOSMaxGRESPerJob", "QOSMaxMemoryPerJob",
                   "AssocMaxCpuPerJobLimit", "AssocMaxMemPerJob", "AssocMaxWallDurationPerJobLimit",
                   "QOSMaxWallDurationPerJobLimit"})
REASONS = {
    "Resources": "waiting for free resources",
    "Priority": "other jobs go first",
    "PartitionConfig": "no node of the partition can run it as asked",
    "BadConstraints": "no node can satisfy the request",
    "PartitionNodeLimit": "more nodes than the partition allows",
    "PartitionTimeLimit": "--time is over the partition's limit",
    "ReqNodeNotAvail": "the nodes it needs are down, drained or reserved",
    "BeginTime": "waiting for its start time",
    "Dependency": "waiting for another job",
    "JobHeldUser": "held: scontrol release JOB lets it start",
    "JobHeldAdmin": "held by an administrator",
    "JobArrayTaskLimit": "the array's throttle (%N) lets no more tasks run",
}


def explain(reason: str) -> str:
    """``PartitionConfig: no node of the partition can run it as asked; it cannot start: ...`` — a reason with its
    meaning, and what to do when it means the task never starts."""
    key = reason.split(",")[0].strip()
    gloss = REASONS.get(key) or ("a limit of your account, QOS or partition" if "Limit" in key or "Max" in key else "")
    text = f"{reason}: {gloss}" if gloss else reason
    if key in NEVER:
        text += ("; it cannot start until the request or the partition changes: `unettui cancel --all`, then submit "
                 "a smaller request")
    return text


def _run(cmd: list[str], timeout: float) -> str | None:
    """stdout of ``cmd``, or None when it is missing, fails, or takes longer than ``timeout`` seconds."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def base_id(job: str) -> str:
    return str(job).split("_", 1)[0]


def parse_squeue(text: str) -> dict[str, SlurmJob]:
    """Lines of ``squeue -h -r -O JobArrayID:|,State:|,Reason:|,RestartCnt:|``."""
    out: dict[str, SlurmJob] = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) < 4 or not parts[0]:
            continue
        restarts = int(parts[3]) if parts[3].isdigit() else 0
        out[parts[0]] = SlurmJob(parts[0], parts[1], parts[2], restarts)
    return out


def parse_sacct(text: str) -> dict[str, SlurmJob]:
    """Lines of ``sacct -n -P -X -o JobID,State`` (the latest run of each job or array task)."""
    out: dict[str, SlurmJob] = {}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) < 2 or not parts[0] or "[" in parts[0]:  # "23_[0-3%1]": tasks not started, not ours to name
            continue
        out[parts[0]] = SlurmJob(parts[0], parts[1])
    return out


class Scheduler:
    """The scheduler's state of jobs, asked at most once per ``ttl`` seconds per job and never for longer than
    ``timeout`` seconds; safe to call from any thread (the TUI calls it only from its polling thread)."""

    def __init__(self, ttl: float = TTL, timeout: float = QUERY_TIMEOUT):
        self.ttl, self.timeout = ttl, timeout
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[float, dict[str, SlurmJob]]] = {}  # base id -> (when asked, its tasks)
        self._down_until = 0.0  # squeue missing or failing: don't ask again before this

    def states(self, jobs: Iterable[str]) -> dict[str, SlurmJob]:
        """{job or task id: SlurmJob} for every id of ``jobs`` the scheduler knows (an array job id also brings its
        tasks); ids it does not know (yet, or any more) are left out."""
        bases = sorted({base_id(j) for j in jobs if j})
        if not bases:
            return {}
        with self._lock:
            now = time.monotonic()
            stale = [b for b in bases if b not in self._seen or now - self._seen[b][0] >= self.ttl]
            if stale and now >= self._down_until:
                got = self._ask(stale)
                if got is None:
                    self._down_until = now + UNAVAILABLE_TTL
                else:
                    for b in stale:
                        self._seen[b] = (now, {k: v for k, v in got.items() if base_id(k) == b})
            out: dict[str, SlurmJob] = {}
            for b in bases:
                out.update(self._seen.get(b, (0.0, {}))[1])
            return out

    def forget(self) -> None:
        with self._lock:
            self._seen.clear()
            self._down_until = 0.0

    def _ask(self, bases: list[str]) -> dict[str, SlurmJob] | None:
        ids = ",".join(bases)
        text = _run(["squeue", "-h", "-r", "-t", "all", "-j", ids, "-O", "JobArrayID:|,State:|,Reason:|,RestartCnt:|"],
                    self.timeout)
        found = parse_squeue(text) if text is not None else {}
        if text is None and not _have("squeue"):
            return None
        missing = [b for b in bases if not any(base_id(k) == b for k in found)]
        if missing:  # finished longer ago than MinJobAge (or squeue refused every id): accounting remembers
            acct = _run(["sacct", "-n", "-P", "-X", "-j", ",".join(missing), "-o", "JobID,State"], self.timeout)
            if acct:
                found.update(parse_sacct(acct))
        return found


def _have(cmd: str) -> bool:
    import shutil

    return shutil.which(cmd) is not None


SCHEDULER = Scheduler()  # one per process: every face of one command (and the TUI's poll) shares its answers


class SlurmJobs:
    """The SLURM backend's read half (a core.runs.backend.JobReader): the scheduler's state of jobs in plain words,
    and this project's submissions that may still run; asked through ``scheduler`` (cached, time-limited)."""

    kind = "slurm"

    def __init__(self, scheduler: Scheduler | None = None):
        self.scheduler = scheduler or SCHEDULER

    def job_states(self, jobs: Iterable[str]) -> dict[str, JobState]:
        return {job: task.state for job, task in self.scheduler.states(jobs).items()}

    def active(self, project: Path) -> list[str]:
        return refresh_summary(project) if self.scheduler is SCHEDULER else \
            active_submissions(project, self.scheduler)


# ---- submissions in a few words (ls, the TUI's status line) ---------------------------------------------------


def summarize(rec: dict[str, Any], states: dict[str, SlurmJob], now: float | None = None) -> str | None:
    """``slurm job 42 (4 tasks): 2 running, 1 pending, 1 requeued`` for a submission that may still run; None for one
    whose tasks have all ended."""
    job = rec.get("job")
    tasks = rec.get("tasks") if isinstance(rec.get("tasks"), int) else None
    n = f" ({tasks} task{'s' if tasks != 1 else ''})" if tasks else ""
    if not job:  # sbatch had not answered (or its submitting process was stopped): found by its name only
        age = (now or time.time()) - float(rec.get("submitted") or 0)
        return f"slurm submission {rec.get('token')}: submitted, job id not recorded yet" if age < 600 else None
    mine = {k: v for k, v in states.items() if base_id(k) == str(job)}
    if not mine:
        age = (now or time.time()) - float(rec.get("submitted") or 0)
        return f"slurm job {job}{n}: submitted" if age < 600 else None
    counts: dict[str, int] = {}
    reasons: dict[str, dict[str, int]] = {}  # word -> {reason: tasks} of the tasks that wait
    for st in mine.values():
        counts[st.word] = counts.get(st.word, 0) + 1
        if st.waiting:
            why = reasons.setdefault(st.word, {})
            why[st.waiting] = why.get(st.waiting, 0) + 1
    if not any(w in ACTIVE for w in counts):
        return None
    order = ["running", "requeued", "pending", "completing", "completed", "cancelled", "timeout", "failed"]
    words = sorted(counts, key=lambda w: (order.index(w) if w in order else len(order), w))

    def why(w: str) -> str:
        got = reasons.get(w)
        if not got:
            return ""
        if len(got) == 1:  # one reason: what it means
            return f" ({explain(next(iter(got)))})"
        return " (" + ", ".join(f"{c} {r}" for r, c in sorted(got.items(), key=lambda rc: (-rc[1], rc[0]))) + ")"

    return f"slurm job {job}{n}: " + ", ".join(f"{counts[w]} {w}{why(w)}" for w in words)


def active_submissions(project: Path, scheduler: Scheduler | None = None, run_id: str | None = None) -> list[str]:
    """One line per submission of this project that may still run (asks the scheduler, cached); with ``run_id``,
    only the submissions whose tasks may train that experiment (their --only, when given, names it)."""
    recs = records(project)
    if run_id is not None:
        recs = [r for r in recs if _may_train(r, run_id)]
    if not recs:
        return []
    states = (scheduler or SCHEDULER).states(str(r["job"]) for r in recs if r.get("job"))
    return [line for line in (summarize(r, states) for r in recs) if line]


def _may_train(rec: dict[str, Any], run_id: str) -> bool:
    only = (rec.get("options") or {}).get("only") if isinstance(rec.get("options"), dict) else None
    return not only or run_id in only


_summary_lock = threading.Lock()
_summaries: dict[str, tuple[float, list[str]]] = {}


def refresh_summary(project: Path, max_age: float = TTL) -> list[str]:
    """``active_submissions`` at most once per ``max_age`` seconds (reads runs/.slurm and may ask the scheduler: call
    it off any UI thread)."""
    key = str(Path(project).resolve())
    with _summary_lock:
        when, lines = _summaries.get(key, (-1e9, []))
    if time.monotonic() - when < max_age:
        return lines
    if not slurm_dir(project).is_dir():
        lines = []
    else:
        lines = active_submissions(project)
    with _summary_lock:
        _summaries[key] = (time.monotonic(), lines)
    return lines


# ---- SLURM time syntax ----------------------------------------------------------------------------------------

_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def parse_time(text: str) -> int:
    """Minutes (rounded up) of a SLURM time limit: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S. Raises ValueError."""
    m = _TIME.match(text.strip())
    if not m:
        raise ValueError(f"'{text}' is not a SLURM time (minutes, M:S, H:M:S, D-H, D-H:M or D-H:M:S)")
    days, a, b, c = m.group(1), int(m.group(2)), m.group(3), m.group(4)
    if days is not None:  # D-H[:M[:S]]
        secs = int(days) * 86400 + a * 3600 + int(b or 0) * 60 + int(c or 0)
    elif c is not None:  # H:M:S
        secs = a * 3600 + int(b) * 60 + int(c)
    elif b is not None:  # M:S
        secs = a * 60 + int(b)
    else:  # M
        secs = a * 60
    minutes = -(-secs // 60)
    if minutes < 1:
        raise ValueError(f"'{text}' is under a minute (SLURM's smallest time limit is 1 minute)")
    return minutes
