"""Submit the queue to SLURM as a pilot job array (submitit), and cancel what this project submitted.

`unettui run --headless --backend slurm` submits P array tasks; each is an ordinary runner that claims from the
project's queue on the shared filesystem until nothing is left (see cluster/task.py). Every submission is recorded in
runs/.slurm/<token>.json before sbatch is called and completed with its job id after; when sbatch refuses, the record
and the submission's folder are removed and one line says why.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..core.runs.backend import BackendError, JobState, Submission, backend_of
from ..core.runs.options import RunnerOptions
from ..core.runs.slurm_state import (
    ACTIVE,
    JOB_PREFIX,
    SCHEDULER,
    SlurmJobs,
    backends_of_run,
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


FANS_OUT = ("--workers/--devices do not go with --backend slurm: each SLURM task is one runner; ask for more tasks "
            "with --max-parallel")


class SlurmError(BackendError):
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


@dataclass(frozen=True)
class Node:
    """One node of a partition as ``sinfo -N`` reports it."""

    name: str
    partition: str
    cpus: int
    mem_mb: int | None  # RealMemory
    gpus: int


def _int_of(text: str) -> int | None:
    text = text.strip().rstrip("+")
    return int(text) if text.isdigit() else None


def gpus_of(gres: str) -> int:
    """GPUs in sinfo's %G: ``gpu:4``, ``gpu:a100:2(S:0-1),mps:200``, ``(null)`` -> 4, 2, 0."""
    total = 0
    for item in re.sub(r"\([^)]*\)", "", gres or "").split(","):
        parts = item.strip().split(":")
        if parts[0] != "gpu":
            continue
        total += int(parts[-1]) if len(parts) > 1 and parts[-1].isdigit() else 1
    return total


def mem_mb(text: str) -> int | None:
    """Megabytes of a SLURM memory size (``16G``, ``4000``, ``4000M``, ``1T``, ``512K``); None when it is not one
    (or 0: all of a node's memory)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)B?\s*", str(text), re.IGNORECASE)
    if not m:
        return None
    value = float(m.group(1)) * {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024, "": 1}[m.group(2).upper()]
    return int(value + 0.999) or None


def partition_nodes(partition: str | None) -> list[Node] | None:
    """The nodes of ``partition`` (the default one when None), or None when sinfo cannot say."""
    if shutil.which("sinfo") is None:
        return None
    try:
        out = _run(["sinfo", "-h", "-N", "-o", "%N|%c|%m|%G|%P"] + (["-p", partition] if partition else []), 15)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    nodes = []
    for line in out.stdout.splitlines():
        parts = line.split("|")
        if len(parts) < 5:
            continue
        name, cpus, mem, gres, part = (x.strip() for x in parts[:5])
        if partition is None and not part.endswith("*"):
            continue
        if _int_of(cpus) is None:
            continue
        nodes.append(Node(name, part.rstrip("*"), _int_of(cpus) or 0, _int_of(mem), gpus_of(gres)))
    return nodes or None


def unsatisfiable(opts: SlurmOptions) -> str | None:
    """One line when no node of the partition can give one task what ``opts`` asks (--cpus-per-run, --gpus-per-run,
    --mem): SLURM may accept such a job and keep it pending for ever (reason PartitionConfig, Resources, ...). None
    when a node can, or when sinfo cannot say."""
    nodes = partition_nodes(opts.partition)
    if not nodes:
        return None
    cpus, gpus = int(opts.cpus_per_run or 1), int(opts.gpus_per_run or 0)
    mem = mem_mb(opts.mem) if opts.mem else None
    mems = [n.mem_mb for n in nodes if n.mem_mb is not None]

    def fits(n: Node) -> bool:
        return n.cpus >= cpus and n.gpus >= gpus and (mem is None or n.mem_mb is None or n.mem_mb >= mem)

    if any(fits(n) for n in nodes):
        return None
    asked = [f"--cpus-per-run {cpus}"] + ([f"--gpus-per-run {gpus}"] if gpus else []) + \
        ([f"--mem {opts.mem}"] if mem is not None else [])
    top_cpus, top_gpus = max(n.cpus for n in nodes), max(n.gpus for n in nodes)
    most = [f"{top_cpus} CPU{'s' if top_cpus != 1 else ''}"] + \
        ([f"{top_gpus} GPU{'s' if top_gpus != 1 else ''}"] if gpus else []) + \
        ([f"{max(mems)}M memory"] if mem and mems else [])
    part = opts.partition or nodes[0].partition
    return (f"no node of partition {part} can run a task of {' '.join(asked)} (its {len(nodes)} "
            f"node{'s' if len(nodes) != 1 else ''}: at most {', '.join(most)}); SLURM accepted the job but its tasks "
            "will stay pending (`unettui ls` shows why): `unettui cancel --all`, then submit a smaller request")


def sbatch_message(text: str) -> str:
    """The line of sbatch's stderr that says why it refused."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("Try ")]
    errors = [ln for ln in lines if "error" in ln.lower()] or lines
    line = errors[-1] if errors else "no message"
    for prefix in ("sbatch: error: ", "sbatch: "):
        if line.startswith(prefix):
            line = line[len(prefix):]
    return line


def to_train(project: Path, only: list[str] | tuple[str, ...] | None) -> tuple[int, bool, set[str]]:
    """(how many experiments `unettui run` would train now, whether a study has stages still to come, the devices
    their definitions ask for)."""
    from ..core.plan import load_queue
    from ..core.runs.status import TRAINABLE, collect

    queue = load_queue(project)
    rows = collect(queue, RunStore(project), ids=only or None, readers=None)
    n = sum(r.state in TRAINABLE for r in rows if r.in_queue)
    later = any(st.state != "done" for s in queue.studies for st in s.stages)
    devices = {str(r.definition.device) for r in rows if r.in_queue and r.state in TRAINABLE and r.definition}
    return n, later, devices


def submit(project: Path, opts: SlurmOptions, options: RunnerOptions | None = None,
           tasks: int | None = None) -> dict[str, Any]:
    """Submit ``tasks`` pilot array tasks on ``project``'s queue, each a runner with ``options`` (its PyTorch threads:
    --threads, else --cpus-per-run); returns the submission's record. Raises SlurmError (nothing recorded, nothing left
    behind) when it cannot."""
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
    options = options or RunnerOptions()
    if options.fans_out:
        raise SlurmError(FANS_OUT)
    options = replace(options, threads=options.threads or int(opts.cpus_per_run))
    token = new_token()
    folder = slurm_dir(project) / token
    record: dict[str, Any] = {
        "job": None, "tasks": n, "mode": "pilot", "submitted": time.time(), "host": HOST, "project": str(project),
        "folder": str(folder.relative_to(project)), "name": JOB_PREFIX + token, "minutes": minutes,
        "options": {**asdict(opts), **options.to_dict()},
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
    task = PilotArgs(str(project), options, token)
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
    """What every pilot task of one submission is made of (cluster/task.py's PilotTask)."""

    project: str
    options: RunnerOptions
    submission: str


def _submit(executor, args: PilotArgs, n: int) -> list:
    from .task import PilotTask

    def make() -> PilotTask:
        return PilotTask(args.project, args.options, submission=args.submission)

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


# the scheduler's words for a task that may be training right now (a suspended one holds its run too)
HOLDING = frozenset({"running", "suspended", "stopped"})


@dataclass
class CancelPlan:
    """What ``unettui cancel ID`` would stop: the SLURM task that trains ID now, and everything that task holds."""

    run_id: str
    job: str  # the task: "42_3" (an array task) or "42"
    word: str | None  # the scheduler's word for it (None: not known, e.g. squeue answered nothing)
    claim: dict[str, Any]  # run_id's status.json when planned: the claim that must still be there when cancelling
    label: str  # run_id's state as `ls` shows it ("running 3/20 · slurm 42_3 running")
    mates: list[str] = field(default_factory=list)  # the other members of its pack, running in the same task
    mate_claims: dict[str, dict[str, Any]] = field(default_factory=dict)
    pilot: bool = False  # a task of a unettui submission: it would go on claiming other experiments
    others: int = 0  # other tasks of the same job that may still run (they keep going)

    @property
    def runs(self) -> list[str]:
        return [self.run_id] + self.mates


def _same_claim(then: dict[str, Any], now: dict[str, Any] | None) -> bool:
    """Whether status.json ``now`` is still the claim ``then``: the same runner in the same task, still running, its
    process alive (on this host) or its heartbeat fresh (from another)."""
    from ..core.runs.store import claim_alive

    if not now or now.get("state") != "running" or not claim_alive(now):
        return False
    keys = ("host", "pid", "token", "started")
    return all(now.get(k) == then.get(k) for k in keys) and backend_of(now) == backend_of(then)


def _not_running(run_id: str, row) -> str:
    """The one line that refuses to cancel a run that no task is training."""
    from ..core.runs.status import State

    state = row.state if row is not None else State.PENDING
    label = row.label if row is not None else state.value
    if state is State.PENDING:
        return (f"'{run_id}' is {label}: no runner has claimed it, nothing to cancel (`unettui cancel --all` stops "
                "every SLURM job of this project)")
    if state is State.INTERRUPTED:
        return (f"'{run_id}' is {label}: no runner trains it now, nothing to cancel (the next runner resumes it; "
                f"`unettui rm {run_id}` keeps it from training)")
    return f"'{run_id}' is {label}: nothing to cancel"


def plan_cancel(project: Path, run_id: str, queue=None) -> CancelPlan:
    """What cancelling ``run_id`` stops, asked of the run's status.json and of the scheduler now. Raises SlurmError
    (one line naming the run and its state) unless a live SLURM task is training ``run_id`` this moment."""
    from ..core.plan import load_queue
    from ..core.runs.status import State, collect, judge_run

    project = Path(project)
    store = RunStore(project)
    if queue is None:
        try:
            queue = load_queue(project)
        except Exception:  # noqa: BLE001 - a broken queue file: the run folder still says what trains it
            queue = None
    found = collect(queue, store, ids=[run_id], readers=None)
    row = found[0] if found else None
    if row is None or row.state is not State.RUNNING:
        raise SlurmError(_not_running(run_id, row))
    claim = dict(row.status)
    backend = backend_of(claim)
    if backend.get("kind") != "slurm":
        raise SlurmError(f"'{run_id}' is {row.label} on host {claim.get('host', '?')} pid {claim.get('pid', '?')}, "
                         "not in a SLURM task: nothing to cancel here (stop that runner: Ctrl-C, or kill its pid "
                         "on its host)")
    job = str(backend["job"])
    SCHEDULER.forget()
    states = SCHEDULER.states([job])
    task = states.get(job)
    if task is not None and task.word not in HOLDING:
        raise SlurmError(f"'{run_id}' is {row.label}, but its SLURM task {job} is {task.label}: it trains nothing "
                         "now, nothing to cancel (the run is resumed once its claim goes stale)")
    plan = CancelPlan(run_id, job, task.word if task else None, claim, row.label,
                      pilot=bool(backend.get("submission")),
                      others=sum(1 for k, v in states.items() if k != job and base_id(k) == base_id(job)
                                 and v.word in ACTIVE))
    cfg = store.run(run_id).config() or {}
    members = cfg.get("pack_members") if isinstance(cfg.get("pack_members"), list) else []
    if isinstance(cfg.get("pack_size"), int) and cfg["pack_size"] > 1:
        for mate in members:
            if not isinstance(mate, str) or mate == run_id:
                continue
            mate_run = store.run(mate)
            st = mate_run.status() or {}
            if (judge_run(mate_run, None).state is State.RUNNING and backend_of(st) == backend
                    and st.get("token") == claim.get("token")):
                plan.mates.append(mate)
                plan.mate_claims[mate] = dict(st)
    return plan


def describe_pack(plan: CancelPlan) -> str:
    """One line: what cancelling a pack member stops (the question asked before it is done)."""
    return (f"'{plan.run_id}' trains in one pack with {', '.join(plan.mates)} in slurm task {plan.job}: cancelling it "
            f"stops the whole pack ({len(plan.runs)} runs, left interrupted) and the task, with everything it would "
            "still train")


def cancel_plan(project: Path, plan: CancelPlan) -> list[str]:
    """scancel ``plan``'s task if — checked again this moment — it still trains the runs the plan names; the lines
    that say what was stopped. Raises SlurmError (nothing cancelled) when the task has moved on meanwhile."""
    store = RunStore(project)
    for rid, then in [(plan.run_id, plan.claim)] + list(plan.mate_claims.items()):
        now = store.run(rid).status()
        if _same_claim(then, now):
            continue
        if now and now.get("state") == "running":
            raise SlurmError(f"'{rid}' is no longer trained by slurm task {plan.job} (claimed again since, or its "
                             "runner is gone): nothing cancelled")
        raise SlurmError(f"'{rid}' is {(now or {}).get('state') or 'no longer claimed'} now (slurm task {plan.job} "
                         "finished it or moved on): nothing cancelled")
    _scancel(plan.job)
    SCHEDULER.forget()
    if plan.mates:
        first = f"cancelled slurm task {plan.job}, which was training the pack {', '.join(plan.runs)}"
        runs = f"the {len(plan.runs)} runs are left interrupted and resume"
    else:
        first = f"cancelled slurm task {plan.job}, which was training '{plan.run_id}' ({plan.label.split(' · ')[0]})"
        runs = f"'{plan.run_id}' is left interrupted and resumes"
    if not plan.pilot:
        rest = "the SLURM job stops with it (it was not submitted by unettui)"
    elif plan.others:
        rest = (f"the task stops with it and trains nothing else; the job's {plan.others} other "
                f"task{'s' if plan.others != 1 else ''} keep{'s' if plan.others == 1 else ''} going")
    else:
        rest = ("the task stops with it and trains nothing else; it was its job's last task that may run, so nothing "
                "of that submission trains any more")
    who = "another task, `unettui run`, or a new submission" if plan.others else "`unettui run`, or a new submission"
    return [first, f"  {rest}; {runs} from the checkpoint with the next runner ({who})"]


def _mark(project: Path, rec: dict[str, Any], what: str) -> None:
    try:
        write_record(project, rec["token"], {**rec, what: time.time()})
    except OSError:
        pass


# ---- the SLURM backend, as the interface every face uses (core/runs/backend.py) ----------------------------------


class SlurmBackend:
    """Pilot tasks of a SLURM job array (a core.runs.backend.Backend): ``submit`` is `unettui run --backend slurm`,
    ``cancel`` is `unettui cancel`, ``job_states`` and ``active`` are the scheduler's answers (SlurmJobs), ``logs`` the
    tasks' stdout/stderr files."""

    kind = "slurm"

    def __init__(self, opts: SlurmOptions | None = None, tasks: int | None = None, jobs: SlurmJobs | None = None):
        self.opts = opts or SlurmOptions()
        self.tasks = tasks
        self.jobs = jobs or SlurmJobs()

    def submit(self, project: Path, options: RunnerOptions) -> Submission:
        rec = submit(project, self.opts, options, tasks=self.tasks)
        return Submission("slurm", str(rec["job"]), tasks=int(rec["tasks"]), log=str(rec["folder"]), record=rec)

    def cancel(self, project: Path, run_ids: list[str] | None = None) -> list[str]:
        """Every job of ``project``'s submissions (None), or the tasks training ``run_ids`` now — each checked before
        any is cancelled; a pack member's task stops its whole pack (the CLI asks first: `unettui cancel`)."""
        if run_ids is None:
            return cancel_all(project)
        plans = {}
        for run_id in dict.fromkeys(run_ids):
            plan = plan_cancel(project, run_id)
            plans.setdefault(plan.job, plan)
        return [line for plan in plans.values() for line in cancel_plan(project, plan)]

    def job_states(self, jobs) -> dict[str, JobState]:
        return self.jobs.job_states(jobs)

    def active(self, project: Path) -> list[str]:
        return self.jobs.active(project)

    def logs(self, project: Path, run_id: str) -> list[tuple[str, Path]]:
        out = []
        for which, backend in backends_of_run(Path(project) / RUNS_DIR / run_id):
            if backend.get("kind") == self.kind:
                out += [(which, Path(project) / backend[k]) for k in ("log", "err") if isinstance(backend.get(k), str)]
        return out

