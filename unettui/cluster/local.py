"""The local backend: runner processes on this machine (a core.runs.backend.Backend).

``submit`` starts one ordinary `unettui run --headless` in its own process session with the options given (which
starts its `--workers` children itself: runner.run_workers), its output appended to a log file; it returns at once,
and the process keeps running if its starter quits. A local job is ``HOST:PID``. What the backend can say and do
follows from what a process on one machine can know:

- ``job_states``: a process of this machine is running or gone; another machine's processes are not known here;
- ``cancel``: SIGTERM to the process of this machine that holds a run's claim (it stops after its current batch and
  leaves the run interrupted, resumable); a run claimed on another machine, or in a SLURM task, is refused;
- ``logs``: a run's own run.log (a local runner writes no other file per run; its lines go where its starter sent
  them: the terminal, `--workers`' relay, or the TUI's runs/.tui-runner.log).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterable
from pathlib import Path

from ..core.runs.backend import BackendError, JobState, LocalJobs, Submission
from ..core.runs.options import RunnerOptions
from ..core.runs.store import HOST, RUNS_DIR, RunStore
from ..runner import runner_command


class LocalBackend:
    kind = "local"

    def __init__(self, log: Path | None = None):
        self.log = Path(log) if log is not None else None  # where a submitted runner's output goes (None: nowhere)
        self.jobs = LocalJobs()

    def submit(self, project: Path, options: RunnerOptions) -> Submission:
        args = runner_command(project, options)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if self.log is not None:
            self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log if self.log is not None else os.devnull, "a", encoding="utf-8") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, env=env)
        return Submission(self.kind, f"{HOST}:{proc.pid}", tasks=options.workers,
                          log=None if self.log is None else str(self.log), record={"args": args}, process=proc)

    def cancel(self, project: Path, run_ids: list[str] | None = None) -> list[str]:
        claims = LocalJobs.claims(project)
        if run_ids is None:
            if not claims:
                raise BackendError(f"nothing to cancel: no runner of this machine ({HOST}) holds a claim in "
                                   f"{Path(project) / RUNS_DIR}")
            targets = claims
        else:
            missing = [r for r in dict.fromkeys(run_ids) if r not in claims]
            if missing:
                st = RunStore(project).run(missing[0]).status() or {}
                where = (f"claimed on {st.get('host')}" if st.get("state") == "running" and st.get("host") != HOST
                         else "not trained by a live runner process of this machine")
                raise BackendError(f"'{missing[0]}' is {where}: nothing to cancel here; nothing cancelled")
            targets = {r: claims[r] for r in dict.fromkeys(run_ids)}
        by_pid: dict[int, list[str]] = {}
        for run_id, pid in targets.items():
            by_pid.setdefault(pid, []).append(run_id)
        lines = []
        for pid, runs in by_pid.items():
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue  # it ended meanwhile: nothing left to stop
            lines.append(f"asked runner {HOST} pid {pid} to stop after its current batch ({', '.join(runs)}: left "
                         "interrupted, resumed by the next runner)")
        return lines

    def job_states(self, jobs: Iterable[str]) -> dict[str, JobState]:
        return self.jobs.job_states(jobs)

    def active(self, project: Path) -> list[str]:
        return self.jobs.active(project)

    def logs(self, project: Path, run_id: str) -> list[tuple[str, Path]]:
        log = RunStore(project).run(run_id).file("run.log")
        return [("current", log)] if log.exists() else []
