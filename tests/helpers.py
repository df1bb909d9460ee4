"""Helpers for tests that run the real `unettui` command in a subprocess."""

import os
import subprocess
import sys


def unettui_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "unettui", *args]


def run_cli(*args: str, timeout: float = 240, **kw) -> subprocess.CompletedProcess:
    """Run the real `unettui` in a subprocess (one CPU thread, so runs are bit-reproducible)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(unettui_cmd(*args), capture_output=True, text=True, timeout=timeout, env=env, **kw)
