"""Start and stop a runner process for the TUI, and say which runner (if any) works on the project (no Textual here)."""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path

from ..cluster.local import LocalBackend
from ..core.runs.jobs import last_active
from ..core.runs.options import RunnerOptions
from ..core.runs.store import RUNS_DIR
from .data import RunView

RUNNER_LOG = ".tui-runner.log"  # in runs/: what the runner started from the TUI printed


@dataclass
class RunnerState:
    """What the status line says about runners on this project."""

    kind: str  # "ours", "submitted" (jobs submitted to a backend may still run), "elsewhere", "stale", "none"
    text: str


class RunnerControl:
    """The runner the TUI starts is an ordinary `unettui run --headless` in its own process session (the local
    backend's submission), so it keeps running if the TUI quits (when the user says so) and the TUI observes it
    through runs/ only, exactly as it observes a runner started elsewhere. It runs with ``options`` (what `unettui run`
    was given), with the workers and packs chosen in the TUI since."""

    def __init__(self, project: Path, options: RunnerOptions | None = None):
        self.project = Path(project)
        self.proc: subprocess.Popen | None = None
        self.options = options or RunnerOptions()

    def use(self, options: RunnerOptions) -> None:
        """The options of the next runner start."""
        self.options = options

    @property
    def workers(self) -> int:
        return self.options.workers

    @property
    def pack(self) -> str:
        """The runner's --pack as the TUI shows and cycles it: "auto", "off" or a number ("2")."""
        return str(self.options.pack)

    @pack.setter
    def pack(self, value: str | int | None) -> None:
        self.options = replace(self.options, pack=value if value is not None else "auto")

    @property
    def log_path(self) -> Path:
        return self.project / RUNS_DIR / RUNNER_LOG

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, workers: int | None = None, pack: str | int | None = None) -> int:
        """Start a runner with the options (``workers`` processes, None: as they say; packing as ``pack`` says: auto,
        off or N, None: as they say); returns its pid. Does nothing if ours already runs."""
        if self.running():
            return self.proc.pid
        if workers is not None:
            self.options = self.options.with_workers(workers)
        if pack is not None:
            self.pack = pack
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(f"--- runner started from the TUI at {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        self.proc = LocalBackend(self.log_path).submit(self.project, self.options).process
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
        jobs = last_active(self.project)  # submissions to a backend that may still run (the poll thread asked)
        if jobs:
            return RunnerState("submitted", "runner: " + "; ".join(jobs))
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
