"""Seeded projects for TUI tests: run folders written with the run store's own functions, fixed numbers."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import tomllib

from unettui.core.define.config import Config
from unettui.core.runs.store import RunStore, append_jsonl, atomic_write_json

QUEUE = """# study of optimizers (a comment that edits must keep)
[defaults]
dataset = "synthetic:nuclei"
num_images = 16
image_size = 32
base_channels = 4
depth = 2
epochs = 4
batch_size = 4

[[sweep]]
id = "opt"
optimizer = ["adam", "sgd", "rmsprop"]
scheduler = ["none", "plateau"]

# the reference
[[experiment]]
id = "base"
"""

DICE = {"adam": 0.82, "sgd": 0.41, "rmsprop": 0.77}
SCHED = {"none": 0.0, "plateau": 0.03}


def metric_rows(final: float, epochs: int) -> list[dict]:
    rows = []
    for e in range(1, epochs + 1):
        f = final * (1 - math.exp(-e)) / (1 - math.exp(-epochs))
        rows.append({"epoch": e, "train_loss": round(1.5 - f, 4), "train_dice": round(min(1.0, f + 0.05), 4),
                     "val_loss": round(1.6 - f, 4), "val_dice": round(f, 4), "val_iou": round(f / (2 - f), 4),
                     "lr": 0.001, "seconds": 2.0})
    return rows


def write_run(project: Path, run_id: str, cfg: Config, rows: list[dict], state: str = "done", epochs: int = 4,
              error: str | None = None) -> None:
    run = RunStore(project).run(run_id)
    run.path.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run.file("config.json"), {"id": run_id, **cfg.to_dict(), "resolved_device": "cpu"})
    for r in rows:
        append_jsonl(run.file("metrics.jsonl"), r)
    if rows:
        best = max(rows, key=lambda r: r["val_dice"])
        last = rows[-1]
        atomic_write_json(run.file("summary.json"), {
            "best_val_dice": best["val_dice"], "best_epoch": best["epoch"], "best_val_loss": best["val_loss"],
            "final_train_loss": last["train_loss"], "final_train_dice": last["train_dice"],
            "final_val_loss": last["val_loss"], "final_val_dice": last["val_dice"], "final_val_iou": last["val_iou"],
            "epochs_done": len(rows), "epochs": epochs, "seconds": 2.0 * len(rows), "val_on_train": False})
    run.write_status(state=state, host="lab", pid=1, heartbeat=1_800_000_000.0, started=1_800_000_000.0,
                     ended=None if state == "running" else 1_800_000_010.0, error=error, attempt=1,
                     epoch=len(rows), epochs=epochs)
    run.log("seeded by the tests")


def seeded_project(root: Path) -> Path:
    """Six finished sweep runs (3 optimizers x 2 schedulers) and a pending 'base'."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "experiments.toml").write_text(QUEUE)
    for opt, d in DICE.items():
        for sched, bump in SCHED.items():
            cfg = Config(dataset="synthetic:nuclei", num_images=16, image_size=32, base_channels=4, depth=2,
                         epochs=4, batch_size=4, optimizer=opt, scheduler=sched)
            write_run(root, f"opt-{opt}-{sched}", cfg, metric_rows(d + bump, 4))
    return root


async def wait_for(pilot, condition, timeout: float = 30.0) -> bool:
    """Let the app run until ``condition()`` holds (True) or ``timeout`` seconds pass (then what it says)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        await pilot.pause(0.1)
    return condition()


async def select(pilot, app, run_id: str) -> None:
    """Put the queue's cursor on ``run_id`` (and the focus on the queue)."""
    from unettui.tui.widgets.queue import QueuePanel

    table = app.query_one(QueuePanel)
    table.focus()
    table.move_cursor(row=app.monitor.order().index(run_id))
    await pilot.pause()
    assert table.selected_id() == run_id


def experiments(project: Path) -> list[dict]:
    """The [[experiment]] tables of the project's experiments.toml, in file order, as read back from the file."""
    return tomllib.loads((project / "experiments.toml").read_text()).get("experiment", [])


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def add_preview(project: Path, run_id: str) -> None:
    """A real preview_best.npz: two 32x32 nuclei-like images, truth disks, a prediction shifted by two pixels."""
    import numpy as np
    import torch

    from unettui.core.show.preview import save_preview

    yy, xx = np.mgrid[:32, :32]
    images, masks, probs = [], [], []
    for k, (cy, cx, r) in enumerate([(12, 14, 7), (20, 18, 9)]):
        truth = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.float32)
        pred = ((yy - cy) ** 2 + (xx - cx - 2) ** 2 <= r * r).astype(np.float32)
        images.append(0.2 + 0.6 * truth + 0.05 * ((xx + yy + k) % 3))
        masks.append(truth)
        probs.append(0.1 + 0.8 * pred)
    t = lambda a: torch.tensor(np.stack(a)[:, None])  # noqa: E731
    save_preview(RunStore(project).run(run_id).path, "best", epoch=4, images=t(images), masks=t(masks),
                 probs=t(probs), names=["cells-0001", "cells-0002"])


STUDY = """
[[study]]
id = "opt"
train_fraction = [0.4, 0.8]
optimizer = "adam"

[[study.stage]]
name = "lr"
lr = [1e-3, 1e-2]

[[study.stage]]
name = "sched"
scheduler = ["none", "step"]

[[study.stage]]
name = "loss"
loss = ["dice", "dice_bce"]
"""

# stage 1: lr 0.001 scores (0.6 + 0.8) / 2, lr 0.01 (0.7 + 0.7) / 2: a tie, won by lr 0.01's smaller spread
STAGE1 = {"opt-lr-lr0.001-f0.4": 0.6, "opt-lr-lr0.001-f0.8": 0.8, "opt-lr-lr0.01-f0.4": 0.7, "opt-lr-lr0.01-f0.8": 0.7}


def study_run(project: Path, run_id: str, dice: float, state: str = "done", epochs_done: int | None = None) -> None:
    """A run of the study as the runner leaves it: its config from the queue, metrics, summary (best val Dice
    ``dice``) and status; ``state="running"`` with ``epochs_done`` epochs of 2 (a heartbeat that stays fresh)."""
    from unettui.core.plan import load_queue

    exp = load_queue(project).get(run_id)
    assert exp is not None and exp.config is not None, f"{run_id} is not (yet) an experiment of the queue"
    epochs = exp.config.epochs
    rows = metric_rows(dice, epochs)[: epochs if epochs_done is None else epochs_done]
    write_run(project, run_id, exp.config, rows, state=state, epochs=epochs)


def study_project(root: Path) -> Path:
    """The 'opt' study: stage 1 done (lr=0.01 won a tie on spread), stage 2 started on it (scheduler none:
    0.75 at f=0.4, f=0.8 failed; step pending), stage 3 waiting."""
    from tests.conftest import TINY_DEFAULTS
    from unettui.core.define.study import base_hash

    root.mkdir(parents=True, exist_ok=True)
    (root / "experiments.toml").write_text(TINY_DEFAULTS + STUDY)
    for run_id, dice in STAGE1.items():
        study_run(root, run_id, dice)
    h = base_hash({"lr": 0.01})
    study_run(root, f"opt-sched-none-b{h}-f0.4", 0.75)
    study_run(root, f"opt-sched-none-b{h}-f0.8", 0.0, state="failed", epochs_done=0)
    return root


REPEATS = """[defaults]
dataset = "synthetic:nuclei"
num_images = 16
image_size = 32
base_channels = 4
depth = 2
epochs = 4
batch_size = 4

[[experiment]]
id = "adam"
optimizer = "adam"
repeats = 3

[[experiment]]
id = "sgd"
optimizer = "sgd"
repeats = 3

[[experiment]]
id = "rms"
optimizer = "rmsprop"
"""

# best val Dice of each run: adam 0.80 ± 0.02 over its three seeds, sgd 0.40 ± 0.05, rms alone
REPEAT_DICE = {"adam": 0.80, "adam-r2": 0.82, "adam-r3": 0.78, "sgd": 0.40, "sgd-r2": 0.45, "sgd-r3": 0.35, "rms": 0.70}


def repeats_project(root: Path) -> Path:
    """Two configurations trained three times each (seeds +1000 per repeat) and one trained once, all done."""
    from unettui.core.plan import load_queue

    root.mkdir(parents=True, exist_ok=True)
    (root / "experiments.toml").write_text(REPEATS)
    queue = load_queue(root)
    for run_id, dice in REPEAT_DICE.items():
        write_run(root, run_id, queue.get(run_id).config, metric_rows(dice, 4))
    return root


REPEAT_STUDY = """
[[study]]
id = "opt"
optimizer = "adam"
repeats = 3

[[study.stage]]
name = "lr"
lr = [1e-3, 1e-2]

[[study.stage]]
name = "sched"
scheduler = ["none", "step"]
"""

# lr 0.001: 0.70 ± 0.05 over three seeds; lr 0.01: 0.72 ± 0.06 — a margin well within the noise
REPEAT_STAGE1 = {"opt-lr-lr0.001": 0.65, "opt-lr-lr0.001-r2": 0.70, "opt-lr-lr0.001-r3": 0.75,
                 "opt-lr-lr0.01": 0.66, "opt-lr-lr0.01-r2": 0.72, "opt-lr-lr0.01-r3": 0.78}


def repeats_study_project(root: Path) -> Path:
    """The 'opt' study with three repeats per configuration: stage 1 done, its winner a tie within noise."""
    from tests.conftest import TINY_DEFAULTS

    root.mkdir(parents=True, exist_ok=True)
    (root / "experiments.toml").write_text(TINY_DEFAULTS + REPEAT_STUDY)
    for run_id, dice in REPEAT_STAGE1.items():
        study_run(root, run_id, dice)
    return root
