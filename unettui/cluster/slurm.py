"""Submit the queue to SLURM as a pilot job array (submitit), and cancel what this project submitted.

`unettui run --headless --backend slurm` submits P array tasks; each is an ordinary runner that claims from the
project's queue on the shared filesystem until nothing is left (see cluster/task.py). Every submission is recorded in
runs/.slurm/<token>.json before sbatch is called and completed with its job id after; when sbatch refuses, the record
and the submission's folder are removed and one line says why.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..core.runs.slurm_state import (
    ACTIVE,
    JOB_PREFIX,
    SCHEDULER,
    backend_of,
    base_id,
    new_token,
    parse_time,
    record_path,
    records,
    slurm_dir,
    write_record,
)
from ..core.runs.store import HOST, RUNS_DIR, RunStore

DEFAULT_MINUTES = 240  # --time when not given (capped by the partition's MaxTime): pilots requeue at their limit
MAX_REQUEUES = 20  # submitit's max_num_timeout: time-limit requeues of one task (preemptions are always requeued)
DEFAULT_TASKS = 4  # --max-parallel when not given: min(this, what there is to train)
COMMAND_TIMEOUT = 60.0  # sbatch / scancel / sinfo
# sbatch options unettui sets itself: passing them through --sbatch would break the job's logs, array or requeue
RESERVED = {"array", "output", "error", "signal", "open-mode", "job-name", "o", "e", "a", "j", "J"}


class SlurmError(Exception):
    """One line that says what went wrong and names the cause (no sbatch, a refused option, ...)."""


@dataclass
class SlurmOptions:
    partition: str | None = None
    gpus_per_run: int = 0
    cpus_per_run: int = 1
    mem: str | None = None  # SLURM syntax: 16G, 4000M
    time: str | None = None  # SLURM syntax: 30, 4:00:00, 1-12:00:00
    max_parallel: int | None = None
    account: str | None = None
    qos: str | None = None
    sbatch: list[str] = field(default_factory=list)  # KEY=VALUE (or KEY) passed through


def parse_sbatch(items: list[str]) -> dict[str, Any]:
    """``--sbatch KEY=VALUE`` (or a bare ``KEY`` for a flag) as submitit's slurm_additional_parameters."""
    out: dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        key = key.strip().lstrip("-")
        if not key or (eq and not value.strip()):
            raise SlurmError(f"--sbatch {item}: expected KEY=VALUE (an sbatch option without its dashes, "
                             "e.g. constraint=a100) or KEY for a flag")
        if key in RESERVED or key.replace("_", "-") in RESERVED:
            raise SlurmError(f"--sbatch {item}: unettui sets --{key.replace('_', '-')} itself (the tasks' logs go to "
                             f"{RUNS_DIR}/.slurm/, their array and warning signal make requeue work)")
        out[key.replace("-", "_")] = value.strip() if eq else True
    return out


def _run(cmd: list[str], timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def partition_minutes(partition: str | None) -> int | None:
    """The MaxTime of ``partition`` (the default one when None) in minutes; None when unlimited or unknown."""
    try:
        out = _run(["sinfo", "-h", "-o", "%P|%l"] + (["-p", partition] if partition else []), 15)
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.stdout.splitlines():
        name, _, limit = line.partition("|")
        if partition is None and not name.endswith("*"):
            continue
        try:
            return parse_time(limit)
        except ValueError:
            return None
    return None


def partitions() -> list[str]:
    try:
        out = _run(["sinfo", "-h", "-o", "%P"], 15)
    except (OSError, subprocess.SubprocessError):
        return []
    return sorted({p.strip().rstrip("*") for p in out.stdout.split() if p.strip()})  # "debug*": the default


def sbatch_message(text: str) -> str:
    """The line of sbatch's stderr that says why it refused."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("Try ")]
    errors = [ln for ln in lines if "error" in ln.lower()] or lines
    line = errors[-1] if errors else "no message"
    for prefix in ("sbatch: error: ", "sbatch: "):
        if line.startswith(prefix):
            line = line[len(prefix):]
    return line


def to_train(project: Path, only: list[str] | None) -> tuple[int, bool, set[str]]:
    """(how many experiments `unettui run` would train now, whether a study has stages still to come, the devices
    their definitions ask for)."""
    from ..core.define.queue import load_queue
    from ..core.runs.status import TRAINABLE, collect

    queue = load_queue(project)
    rows = collect(queue, RunStore(project), ids=only, scheduler=None)
    n = sum(r.state in TRAINABLE for r in rows if r.in_queue)
    later = any(st.state != "done" for s in queue.studies for st in s.stages)
    devices = {str(r.definition.device) for r in rows if r.in_queue and r.state in TRAINABLE and r.definition}
    return n, later, devices


def submit(project: Path, opts: SlurmOptions, device: str | None = None, only: list[str] | None = None,
           stale_after: float = 120.0, tasks: int | None = None, pack: str = "auto") -> dict[str, Any]:
    """Submit ``tasks`` pilot array tasks on ``project``'s queue; returns the submission's record. Raises SlurmError
    (nothing recorded, nothing left behind) when it cannot."""
    project = Path(project).resolve()
    if shutil.which("sbatch") is None:
        raise SlurmError("sbatch not found on PATH: submit from a machine of the SLURM cluster (its login node), "
                         "or load its Slurm module first")
    try:
        import submitit
    except ImportError:
        raise SlurmError('the SLURM backend needs submitit: pip install "unettui[slurm]"') from None
    extra = parse_sbatch(opts.sbatch)
    try:
        minutes = parse_time(opts.time) if opts.time else None
    except ValueError as exc:
        raise SlurmError(f"--time {exc}") from None
    if minutes is None:
        cap = partition_minutes(opts.partition)
        minutes = min(DEFAULT_MINUTES, cap) if cap else DEFAULT_MINUTES
    n = max(1, tasks or opts.max_parallel or 1)
    token = new_token()
    folder = slurm_dir(project) / token
    record: dict[str, Any] = {
        "job": None, "tasks": n, "mode": "pilot", "submitted": time.time(), "host": HOST, "project": str(project),
        "folder": str(folder.relative_to(project)), "name": JOB_PREFIX + token, "minutes": minutes,
        "options": {**asdict(opts), "device": device, "only": only, "stale_after": stale_after, "pack": pack},
        "python": sys.executable,
    }
    params: dict[str, Any] = {
        "timeout_min": int(minutes), "name": JOB_PREFIX + token, "cpus_per_task": int(opts.cpus_per_run),
        "slurm_array_parallelism": n, "slurm_signal_delay_s": 90 if minutes >= 10 else 10,
    }
    if opts.gpus_per_run:
        params["gpus_per_node"] = int(opts.gpus_per_run)
    for key, value in (("slurm_partition", opts.partition), ("slurm_mem", opts.mem),
                       ("slurm_account", opts.account), ("slurm_qos", opts.qos)):
        if value:
            params[key] = value
    if extra:
        params["slurm_additional_parameters"] = extra
    task = PilotArgs(str(project), device, only, stale_after, int(opts.cpus_per_run), token, pack)
    said = io.StringIO()
    try:
        write_record(project, token, record)  # before sbatch: a submission is never left unrecorded
    except OSError as exc:
        raise SlurmError(f"cannot record the submission in {slurm_dir(project)}: {exc.strerror or exc}; "
                         "nothing submitted") from None
    try:
        executor = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm", slurm_max_num_timeout=MAX_REQUEUES)
        executor.update_parameters(**params)
        with contextlib.redirect_stderr(said), contextlib.redirect_stdout(said):  # submitit echoes sbatch's stderr
            jobs = _submit(executor, task, n)
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, nothing is left half-submitted
        _forget(project, token)
        raise SlurmError(_why(exc, opts)) from None
    # (Ctrl-C while sbatch runs: the record stays, without a job id; `cancel --all` finds its job by name)
    record["job"] = base_id(jobs[0].job_id)
    try:
        write_record(project, token, record)
    except OSError as exc:
        raise SlurmError(f"submitted slurm job {record['job']} but could not record its id in {slurm_dir(project)} "
                         f"({exc.strerror or exc}); `unettui cancel --all` finds it by its name {record['name']}") from None
    return {**record, "token": token}


@dataclass
class PilotArgs:
    project: str
    device: str | None
    only: list[str] | None
    stale_after: float
    threads: int
    submission: str
    pack: str = "auto"  # the runners' --pack


def _submit(executor, args: PilotArgs, n: int) -> list:
    from .task import PilotTask

    def make() -> PilotTask:
        return PilotTask(args.project, device=args.device, only=args.only, stale_after=args.stale_after,
                         threads=args.threads, submission=args.submission, pack=args.pack)

    if n == 1:
        return [executor.submit(make())]
    with executor.batch():
        jobs = [executor.submit(make()) for _ in range(n)]
    return jobs


def _forget(project: Path, token: str) -> None:
    record_path(project, token).unlink(missing_ok=True)
    shutil.rmtree(slurm_dir(project) / token, ignore_errors=True)


def _why(exc: Exception, opts: SlurmOptions) -> str:
    """One line naming the cause of a failed submission."""
    text = str(exc)
    if type(exc).__name__ == "FailedJobError" or "sbatch" in text.lower() or "Batch job submission failed" in text:
        msg = sbatch_message(text)
        if "partition" in msg.lower() and opts.partition:
            have = partitions()
            msg += f" (--partition {opts.partition}; partitions here: {', '.join(have) or 'none found'})"
        return f"sbatch refused the job: {msg}"
    if isinstance(exc, subprocess.TimeoutExpired):
        return f"sbatch did not answer within {COMMAND_TIMEOUT:.0f}s; nothing was submitted"
    if isinstance(exc, (ValueError, AssertionError, TypeError)):
        return f"invalid SLURM option: {text.splitlines()[0] if text else type(exc).__name__}"
    return f"submission failed: {type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


# ---- cancel ---------------------------------------------------------------------------------------------------


def _scancel(target: str) -> None:
    if shutil.which("scancel") is None:
        raise SlurmError("scancel not found on PATH: cancel from a machine of the SLURM cluster (its login node)")
    try:
        out = _run(["scancel", target])
    except subprocess.TimeoutExpired:
        raise SlurmError(f"scancel {target} did not answer within {COMMAND_TIMEOUT:.0f}s") from None
    if out.returncode != 0:
        raise SlurmError(f"scancel {target} failed: {sbatch_message(out.stderr or out.stdout).replace('scancel: ', '')}")


def _jobs_named(name: str) -> list[str]:
    try:
        out = _run(["squeue", "-h", "-n", name, "-o", "%F"], 15)
    except (OSError, subprocess.SubprocessError):
        return []
    return sorted({ln.strip() for ln in out.stdout.splitlines() if ln.strip()})


def cancel_all(project: Path) -> list[str]:
    """scancel every job this project submitted that may still run; one line per job. Raises SlurmError when there is
    nothing to cancel."""
    project = Path(project).resolve()
    recs = records(project)
    if not recs:
        raise SlurmError(f"nothing to cancel: no SLURM submission recorded in {project / RUNS_DIR / '.slurm'}")
    SCHEDULER.forget()
    states = SCHEDULER.states(str(r["job"]) for r in recs if r.get("job"))
    done: list[str] = []
    for rec in recs:
        jobs = [str(rec["job"])] if rec.get("job") else _jobs_named(str(rec.get("name") or ""))
        for job in jobs:
            tasks = {k: v for k, v in states.items() if base_id(k) == job}
            live = [v for v in tasks.values() if v.word in ACTIVE]
            if tasks and not live:
                continue
            _scancel(job)
            counts: dict[str, int] = {}
            for v in live:
                counts[v.word] = counts.get(v.word, 0) + 1
            what = ", ".join(f"{c} {w}" for w, c in counts.items()) or "state not known yet"
            done.append(f"cancelled slurm job {job} ({what})")
            _mark(project, rec, "cancelled")
    if not done:
        raise SlurmError("nothing to cancel: every job this project submitted has ended (`unettui ls` shows the runs)")
    SCHEDULER.forget()
    return done


def cancel_run(project: Path, run_id: str) -> str:
    """scancel the task that trains (or is requeued to resume) ``run_id``; raises SlurmError when it is in none."""
    from ..core.runs.status import State, judge_run

    run = RunStore(project).run(run_id)
    st = run.status() or {}
    backend = backend_of(st)
    if not backend or backend.get("kind") != "slurm":
        raise SlurmError(f"'{run_id}' was not claimed by a SLURM task (state {judge_run(run, None).state}); "
                         "nothing to cancel")
    job = str(backend["job"])
    SCHEDULER.forget()
    task = SCHEDULER.states([job]).get(job)
    state = judge_run(run, None).state
    if state is not State.RUNNING and (task is None or task.word not in ACTIVE):
        raise SlurmError(f"'{run_id}' is {state}; its SLURM task {job} is "
                         f"{task.word if task else 'no longer known to the scheduler'}: nothing to cancel")
    _scancel(job)
    SCHEDULER.forget()
    return (f"cancelled slurm task {job} ({task.word if task else 'state unknown'}), which trains '{run_id}'; "
            "its run is left interrupted and resumes from its checkpoint with the next runner (other tasks of the "
            "job, `unettui run`, or a new submission)")


def _mark(project: Path, rec: dict[str, Any], what: str) -> None:
    try:
        write_record(project, rec["token"], {**rec, what: time.time()})
    except OSError:
        pass
