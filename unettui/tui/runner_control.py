"""Start and stop a runner process for the TUI, and say which runner (if any) works on the project (no Textual here)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..core.runs.slurm_state import cached_summary
from ..core.runs.store import RUNS_DIR
from .data import RunView

RUNNER_LOG = ".tui-runner.log"  # in runs/: what the runner started from the TUI printed


@dataclass
class RunnerState:
    """What the status line says about runners on this project."""

    kind: str  # "ours", "slurm" (jobs this project submitted may still run), "elsewhere", "stale", "none"
    text: str


class RunnerControl:
    """The runner the TUI starts is an ordinary `unettui run --headless` in its own process session, so it
    keeps running if the TUI quits (when the user says so) and the TUI observes it through runs/ only,
    exactly as it observes a runner started elsewhere."""

    def __init__(self, project: Path):
        self.project = Path(project)
        self.proc: subprocess.Popen | None = None
        self.workers = 1
        # the runner's --pack (auto, off or N); `unettui run --pack N` sets UNETTUI_PACK before opening the TUI
        self.pack: str | None = os.environ.get("UNETTUI_PACK") or None

    @property
    def log_path(self) -> Path:
        return self.project / RUNS_DIR / RUNNER_LOG

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, workers: int = 1, pack: str | None = None) -> int:
        """Start a runner (``workers`` processes, each packing as ``pack`` says: auto, off or N; None: self.pack);
        returns its pid. Does nothing if ours already runs."""
        if self.running():
            return self.proc.pid
        self.workers = workers
        self.pack = pack or self.pack
        args = [sys.executable, "-m", "unettui", "run", "--headless", "--plain", "-p", str(self.project)]
        if workers > 1:
            args += ["--workers", str(workers)]
        if self.pack:
            args += ["--pack", str(self.pack)]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "a", encoding="utf-8")
        log.write(f"--- runner started from the TUI at {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        log.flush()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True, env=env)
        log.close()
        return self.proc.pid

    def stop(self, wait: float = 0.0) -> None:
        """Ask our runner to stop after its current batch (SIGTERM); the run is left interrupted, resumable."""
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            if wait:
                try:
                    self.proc.wait(timeout=wait)
                except subprocess.TimeoutExpired:
                    pass

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def describe(self, views: list[RunView], now: float | None = None) -> RunnerState:
        """Ours, a runner elsewhere (from the claims of running runs), a stale claim, or none."""
        now = now or time.time()
        if self.running():
            n = f"{self.workers} workers" if self.workers > 1 else "1 worker"
            n += f", packs {self.pack}" if self.pack and self.pack != "auto" else ""
            return RunnerState("ours", f"runner: started here (pid {self.proc.pid}, {n})")
        jobs = cached_summary(self.project)  # SLURM submissions of this project (read by the poll thread, no I/O here)
        if jobs:
            return RunnerState("slurm", "runner: " + "; ".join(jobs))
        ours_pid = self.proc.pid if self.proc is not None else None
        active = [v for v in views if v.state == "running" and v.pid != ours_pid]
        if active:
            hosts = sorted({f"{v.host} pid {v.pid}" for v in active})
            beat = max(0.0, max(now - (v.heartbeat or 0) for v in active))  # (a clock ahead of ours: "0s ago")
            return RunnerState("elsewhere", f"runner: {', '.join(hosts)} (not started here), beat {beat:.0f}s ago")
        stale = [v for v in views if v.claimed and v.state == "interrupted"]
        if stale:
            v = stale[0]
            return RunnerState("stale", f"runner: stale claim on {v.id} ({v.host} pid {v.pid}, silent "
                                        f"{now - (v.heartbeat or 0):.0f}s); R starts a runner that resumes it")
        code = self.exit_code()
        if code is not None:
            return RunnerState("none", f"runner: finished (exit {code}); R starts it again")
        return RunnerState("none", "runner: none (R starts one)")
