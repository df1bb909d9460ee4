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
