"""One truth: `ls`, `results`, `export`, `show` and the TUI give the same state word and the same best val Dice for
every experiment of a project that has them all: pruned and promoted (successive halving), failed, interrupted,
running, changed, damaged, pending, invalid and not in the queue."""

import asyncio
import csv
import io
import json
import os
import re
import subprocess

from typer.testing import CliRunner

from tests.helpers import finish
from unettui.cli.app import app
from unettui.core.plan import load_queue
from unettui.core.runs.store import HOST, RunStore, atomic_write_json

DEFAULTS = """[defaults]
dataset = "synthetic:nuclei"
num_images = 16
image_size = 32
base_channels = 4
depth = 2
epochs = 2
batch_size = 4
device = "cpu"
"""
BODY = """
[[experiment]]
id = "ok"
[[experiment]]
id = "bad"
[[experiment]]
id = "stopped"
[[experiment]]
id = "busy"
[[experiment]]
id = "edited"
lr = 0.002
[[experiment]]
id = "broken"
[[experiment]]
id = "fresh"
[[experiment]]
id = "typo"
optimiser = "sgd"

[[study]]
id = "s"
[[study.stage]]
name = "h"
lr = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06]
epochs = 6
halving = { min_epochs = 2, eta = 3 }
"""


def _run(proj, run_id, state, dice, epochs=2, **status):
    """A run as a runner leaves it: config (its definition), metrics, summary and status."""
    q = load_queue(proj)
    exp = q.get(run_id)
    run = RunStore(proj).run(run_id)
    run.path.mkdir(parents=True, exist_ok=True)
    cfg = exp.config.to_dict() if exp is not None else {}
    atomic_write_json(run.file("config.json"), {"id": run_id, **cfg})
    lines = [{"epoch": e, "train_loss": 1.0, "train_dice": dice, "val_loss": 1.0 - dice, "val_dice": dice * e / epochs,
              "val_iou": dice, "lr": 0.001, "seconds": 0.1} for e in range(1, epochs + 1)]
    run.file("metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    if state != "running":
        atomic_write_json(run.file("summary.json"), {
            "best_val_dice": dice, "best_epoch": epochs, "best_val_loss": 1.0 - dice, "final_val_dice": dice,
            "final_val_loss": 1.0 - dice, "final_train_loss": 1.0, "final_train_dice": dice, "final_val_iou": dice,
            "epochs_done": epochs, "epochs": cfg.get("epochs", epochs), "seconds": 0.2, "stopped_early": False})
    run.write_status(state=state, epoch=epochs, attempt=1, heartbeat=1.0, **status)


def build(proj):
    proj.mkdir()
    (proj / "experiments.toml").write_text(DEFAULTS + BODY)
    _run(proj, "ok", "done", 0.80)
    _run(proj, "bad", "failed", 0.10, error="training diverged: train loss is nan in epoch 2 (lr 0.001)")
    dead = subprocess.Popen(["true"])
    dead.wait()
    _run(proj, "stopped", "running", 0.30, host=HOST, pid=dead.pid)  # its process is gone: interrupted
    _run(proj, "busy", "running", 0.40, host=HOST, pid=os.getpid())  # this very process: running
    _run(proj, "edited", "done", 0.50)
    (proj / "experiments.toml").write_text((proj / "experiments.toml").read_text().replace("lr = 0.002", "lr = 0.005"))
    _run(proj, "broken", "done", 0.60)
    (proj / "runs" / "broken" / "status.json").write_text("[1, 2]")
    finish(proj, "gone", "done", best_val_dice=0.70, best_epoch=2, epochs_done=2)  # not in the queue
    q = load_queue(proj)
    stage = q.studies[0].stages[0]
    for n, run_id in enumerate(stage.experiments):  # rung 1 (2 epochs) done: the best 2 of 6 go on, 4 are pruned
        _run(proj, run_id, "done", 0.1 * (n + 1), epochs=2)
    return proj


EXPECTED = {"ok": "done", "bad": "failed", "stopped": "interrupted", "busy": "running", "edited": "changed",
            "broken": "damaged", "fresh": "pending", "typo": "invalid", "gone": "done"}


def test_every_face_says_the_same(tmp_path):
    proj = build(tmp_path / "p")
    q = load_queue(proj)
    stage_ids = q.studies[0].stages[0].experiments
    expected = dict(EXPECTED)
    for n, run_id in enumerate(stage_ids):
        expected[run_id] = "pending" if n >= 4 else "pruned"  # 0.5 and 0.6 promoted, the rest pruned at epoch 2
    runner = CliRunner()

    ls = runner.invoke(app, ["ls", "-p", str(proj)], terminal_width=250)
    assert ls.exit_code == 0, ls.output
    ls_state = {}
    for line in ls.output.splitlines():
        m = re.match(r"^(\S+)\s+(pending|running|interrupted|done|pruned|failed|invalid|changed|damaged)\b", line)
        if m:
            ls_state[m.group(1)] = m.group(2)
    export = runner.invoke(app, ["export", "-p", str(proj)])
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(export.stdout))}
    results = runner.invoke(app, ["results", "-p", str(proj)], terminal_width=250)
    res_state = {m.group(1): m.group(2) for m in re.finditer(
        r"^\s*(\S+)\s+(pending|running|interrupted|done|pruned|failed|invalid|changed|damaged)\b", results.output, re.M)}

    from unettui.tui.data import ProjectMonitor

    monitor = ProjectMonitor(proj)
    monitor.poll()
    tui = {v.id: v for v in monitor.views()}

    assert set(expected) <= set(rows), sorted(rows)
    for run_id, want in expected.items():
        show = runner.invoke(app, ["show", run_id, "-p", str(proj), "--ascii"], terminal_width=250)
        head = show.output.splitlines()[0]
        faces = {"ls": ls_state.get(run_id), "results": res_state.get(run_id), "export": rows[run_id]["status"],
                 "show": re.match(rf"^{re.escape(run_id)}: (\w+)", head).group(1), "tui": tui[run_id].state.value}
        assert set(faces.values()) == {want}, (run_id, faces)
        # the same best val Dice everywhere it is shown
        best = rows[run_id]["best_val_dice"]
        if best:
            assert f"{float(best):.4f}" in next(line for line in ls.output.splitlines() if line.startswith(run_id + " "))
            assert tui[run_id].best_val_dice == float(best)
    # words that tell more: ls and the TUI's queue label agree
    assert any(line.startswith(stage_ids[0]) and "pruned @2" in line for line in ls.output.splitlines())
    assert tui[stage_ids[0]].label == "pruned @2" and tui["stopped"].label == "interrupted 2/2"
    assert tui["gone"].in_queue is False and rows["gone"]["in_queue"] == "false"


def test_the_tui_app_shows_the_read_model_states(tmp_path):
    proj = build(tmp_path / "p")
    from unettui.tui.app import make_app
    from unettui.tui.widgets.queue import QueuePanel

    async def go():
        app_ = make_app(proj, poll_interval=0.2)
        async with app_.run_test(size=(160, 50)) as pilot:
            table = app_.query_one(QueuePanel)
            for _ in range(50):
                if table.row_count >= len(EXPECTED) + 6:
                    break
                await pilot.pause(0.1)
            cells = {row.key.value: str(table.get_cell(row.key, "status")) for row in table.ordered_rows}
            assert cells["stopped"] == "interrupted 2/2" and cells["busy"] == "running 2/2"
            assert cells["broken"] == "damaged" and cells["edited"] == "changed" and cells["typo"] == "invalid"
            assert cells["gone"] == "done (not in queue)"
            assert sum(v == "pruned @2" for v in cells.values()) == 4

    asyncio.run(go())
