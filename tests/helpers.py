"""Helpers for tests: the real `unettui` command in a subprocess, and hand-made finished runs."""

import os
import subprocess
import sys


def unettui_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "unettui", *args]


def run_cli(*args: str, timeout: float = 240, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    """Run the real `unettui` in a subprocess (one CPU thread, so runs are bit-reproducible)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(unettui_cmd(*args), capture_output=True, text=True, timeout=timeout, env=env, **kw)


def finish(proj, run_id, state="done", **summary):
    """A run folder as a runner leaves it: status.json with ``state``, and summary.json when ``summary`` is given."""
    from unettui.core.runs.store import RunStore, atomic_write_json

    run = RunStore(proj).run(run_id)
    run.path.mkdir(parents=True, exist_ok=True)
    run.write_status(state=state)
    if summary:
        atomic_write_json(run.file("summary.json"), summary)


class StopInEpoch:
    """A runner's reporter that asks its runner to stop (as SIGTERM does) at the first batch of epoch ``epoch``; set
    ``.runner`` once the runner exists. Every other event is ignored."""

    def __init__(self, epoch: int):
        self.epoch_no, self.runner = epoch, None

    def batch(self, exp, epoch, step, steps):
        if epoch >= self.epoch_no:
            self.runner.stop_requested = True

    def __getattr__(self, name):  # every other event is a no-op
        return lambda *a, **k: None
