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


# a tiny binary project whose 14 images deal into 3 folds of 4, 4 and 3 (3 held out for test): the CLI fold tests'
FOLD_DEFAULTS = """[defaults]
dataset = "synthetic:nuclei"
num_images = 14
image_size = 32
base_channels = 4
depth = 2
epochs = 2
batch_size = 4
test_fraction = 0.2
device = "cpu"
preview_count = 0
"""


def trained_project(root, body: str, *args: str):
    """``root`` with FOLD_DEFAULTS and ``body`` as its experiments.toml, trained by `unettui run --headless --plain
    ARGS` in this process; returns ``root``."""
    from typer.testing import CliRunner

    from unettui.cli.app import app

    (root / "experiments.toml").write_text(FOLD_DEFAULTS + "\n" + body)
    out = CliRunner().invoke(app, ["run", "--headless", "--plain", *args, "-p", str(root)])
    assert out.exit_code == 0, out.output
    return root
