"""`unettui study ls|show` and `unettui report`: on hand-written run folders (CliRunner), and one real staged study
trained end to end by `unettui run --headless` in a subprocess."""

import csv
import io
import json

from typer.testing import CliRunner

from tests.conftest import TINY_DEFAULTS
from tests.helpers import finish, run_cli
from unettui.cli.app import app
from unettui.core.define.study import base_hash
from unettui.core.runs.store import RunStore

runner = CliRunner()

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
"""


def invoke(*args):
    return runner.invoke(app, list(args))


def refused(out, message):
    assert out.exit_code == 2, out.output
    assert out.stderr.startswith("error: ") and message in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.output


def summ(dice):
    return {"best_val_dice": dice, "final_train_loss": 0.1, "final_train_dice": 0.95, "final_val_loss": 1 - dice,
            "final_val_dice": dice}


def test_ls_show_report_on_a_half_done_study(make_project):
    proj = make_project(STUDY)
    for rid, d in {"opt-lr-lr0.001-f0.4": 0.6, "opt-lr-lr0.001-f0.8": 0.8,
                   "opt-lr-lr0.01-f0.4": 0.7, "opt-lr-lr0.01-f0.8": 0.7}.items():
        finish(proj, rid, **summ(d))
    h = base_hash({"lr": 0.01})
    finish(proj, f"opt-sched-none-b{h}-f0.4", **summ(0.75))
    finish(proj, f"opt-sched-none-b{h}-f0.8", state="failed")

    out = invoke("study", "ls", "-p", str(proj))
    assert out.exit_code == 0, out.output
    assert "opt: 2 stages; metric best_val_dice (max); train_fraction 0.4, 0.8" in out.stdout
    lines = out.stdout.splitlines()
    assert any(line.split()[:4] == ["1", "lr", "done", "4/4"] and "lr=0.01 (tie-break)" in line for line in lines), out.stdout
    assert any(line.split()[:4] == ["2", "sched", "running", "2/4"] for line in lines), out.stdout

    out = invoke("study", "show", "opt", "-p", str(proj))
    assert out.exit_code == 0, out.output
    assert "*  0.01   0.7000  0.7000  0.7000  0.0000" in out.stdout, out.stdout
    assert "winner: lr=0.01 (tie-break: tie at score 0.7000 between 2 configurations; smallest spread" in out.stdout
    assert ["none", "0.7500", "failed", "-", "-"] in [line.split() for line in out.stdout.splitlines()]
    assert "configuration so far: optimizer=adam, lr=0.01" in out.stdout

    out = invoke("report", "opt", "-p", str(proj))
    assert out.exit_code == 0, out.output
    md = out.stdout
    assert "## Stage 1: lr (done)" in md and "## Stage 2: sched (running)" in md
    assert "| lr | train_fraction | train loss | train Dice | val loss | val Dice | score | note |" in md
    assert "| 0.01 | 0.8 | 0.1000 | 0.9500 | 0.3000 | 0.7000 | 0.7000 | **winner** |" in md
    assert "| 0.001 | 2/2 | 0.3000 | 0.7000 |" in md  # mean val loss / val Dice per lr
    assert "| 0.4 | 2/2 | 0.3500 | 0.6500 |" in md  # ... and per train fraction
    assert "| none | 0.8 | - | - | - | - | - | failed |" in md
    assert "Winner: **lr=0.01** (tie-break" in md
    assert "## Configuration so far" in md and 'optimizer = "adam"\nlr = 0.01\n' in md

    target = proj / "opt.csv"
    out = invoke("report", "opt", str(target), "--format", "csv", "-p", str(proj))
    assert out.exit_code == 0, out.output
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert len(rows) == 8
    assert rows[3] == {**rows[3], "study": "opt", "stage": "lr", "id": "opt-lr-lr0.01-f0.8", "state": "done",
                       "lr": "0.01", "train_fraction": "0.8", "best_val_dice": "0.7", "score": "0.7", "winner": "yes"}
    assert rows[4]["stage"] == "sched" and rows[4]["lr"] == "0.01" and rows[4]["scheduler"] == "none"
    assert rows[7]["state"] == "queued" and rows[7]["best_val_dice"] == ""


def test_bad_input_is_one_line_error(make_project, tmp_path):
    proj = make_project(STUDY + "\n[[study]]\nid = 'broken'\n[[study.stage]]\nname = 'x'\nlr = 1e-3\n")
    refused(invoke("study", "show", "op", "-p", str(proj)), "no study 'op' in experiments.toml; did you mean 'opt'? studies: opt")
    refused(invoke("report", "broken", "-p", str(proj)), "[[study]] 'broken'")
    out = invoke("report", "opt", "-f", "pdf", "-p", str(proj))
    assert out.exit_code == 2 and "Traceback" not in out.output
    refused(invoke("study", "ls", "-p", str(tmp_path / "nowhere")), "no queue file here")
    out = invoke("study", "ls", "-p", str(make_project("[[experiment]]\nid='a'\n", name="plain")))
    assert out.exit_code == 0 and "no valid [[study]]" in out.stdout


def test_every_command_has_an_example():
    for args in (["study", "ls"], ["study", "show"], ["report"]):
        out = invoke(*args, "--help")
        assert out.exit_code == 0 and "Example: unettui " in out.stdout, out.stdout


def test_real_study_trains_stage_by_stage(make_project):
    """A tiny real study: stage 2 appears only after stage 1 is trained, on stage 1's winning lr."""
    proj = make_project("""
[[study]]
id = "tiny"
[[study.stage]]
name = "lr"
lr = [1e-3, 1e-2]
[[study.stage]]
name = "sched"
scheduler = ["none", "step"]
""", defaults=TINY_DEFAULTS)
    out = run_cli("run", "--headless", "--plain", "--threads", "1", "-p", str(proj))
    assert out.returncode == 0, out.stdout + out.stderr
    store = RunStore(proj)
    runs = {r.id: r for r in store.runs()}
    assert len(runs) == 4 and all(r.state() == "done" for r in runs.values()), list(runs)
    dice = {lr: runs[f"tiny-lr-lr{lr}"].summary()["best_val_dice"] for lr in ("0.001", "0.01")}
    win = max(dice, key=lambda k: (dice[k], k == "0.001"))  # ties: the first in grid order
    stage2 = sorted(i for i in runs if i.startswith("tiny-sched-"))
    h = base_hash({"lr": float(win)})
    assert stage2 == [f"tiny-sched-none-b{h}", f"tiny-sched-step-b{h}"]
    for i in stage2:
        cfg = json.loads((proj / "runs" / i / "config.json").read_text())
        assert cfg["lr"] == float(win)
    assert runs[stage2[1]].config()["scheduler"] == "step"

    out = run_cli("report", "tiny", "-p", str(proj))
    assert out.returncode == 0, out.stderr
    assert "## Stage 1: lr (done)" in out.stdout and "## Stage 2: sched (done)" in out.stdout
    assert f"## Final configuration\n\n```toml\nlr = {float(win)!r}\nscheduler = " in out.stdout

    again = run_cli("run", "--headless", "--plain", "-p", str(proj))
    assert again.returncode == 0 and "finished: 0 done" in again.stdout, again.stdout
    assert {r.id for r in store.runs()} == set(runs)


def test_real_halving_and_lr_search_stages(make_project):
    """Successive halving trains survivors on from their checkpoints (same numbers as one straight run),
    pruned runs stop at their rung; the next stage's lr search runs decades, then one bisection step."""
    plain = "".join(f"[[experiment]]\nid = 'plain-{d}'\ndropout = {d}\n" for d in (0.0, 0.1, 0.2, 0.3))
    proj = make_project(plain + """
[[study]]
id = "t"
[[study.stage]]
name = "h"
dropout = [0.0, 0.1, 0.2, 0.3]
halving = { min_epochs = 1, eta = 2 }
[[study.stage]]
name = "lr"
lr_search = { from = 1e-3, to = 1e-2, steps = 1 }
""", defaults=TINY_DEFAULTS)
    out = run_cli("run", "--headless", "--plain", "--threads", "1", "-p", str(proj))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "a successive-halving rung" in out.stdout
    store = RunStore(proj)
    h = [r for r in store.runs() if r.id.startswith("t-h-")]
    done_to = {r.config()["dropout"]: len(r.metrics()) for r in h}
    assert sorted(done_to.values()) == [1, 1, 2, 2]  # rung 1 keeps 4 // 2 = 2
    for r in h:
        if len(r.metrics()) == 2:  # a survivor: trained to epoch 1, then on to 2 from its checkpoint
            d = r.config()["dropout"]
            same = [{k: v for k, v in m.items() if k != "seconds"} for m in r.metrics()]
            ref = [{k: v for k, v in m.items() if k != "seconds"} for m in store.run(f"plain-{d}").metrics()]
            assert same == ref
            assert r.status()["attempt"] == 1  # a promotion is not a new attempt
    out = invoke("ls", "-p", str(proj))
    assert out.output.count("pruned @1") == 2 and "2 pruned" in out.output, out.output
    out = run_cli("study", "show", "t", "-p", str(proj))
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("pruned @1") == 2 and "epochs trained: 6 of 8" in out.stdout, out.stdout
    lr_runs = sorted(r.config()["lr"] for r in store.runs() if r.id.startswith("t-lr-"))
    assert len(lr_runs) == 3 and lr_runs[:1] == [0.001] and 0.01 in lr_runs  # the two powers, then 5e-3 or 9e-3
    assert set(lr_runs) - {0.001, 0.01} <= {0.005, 0.09}  # 5 x the best power, or 9 x the top one
    again = run_cli("run", "--headless", "--plain", "-p", str(proj))
    assert again.returncode == 0 and "finished: 0 done" in again.stdout, again.stdout

    # the report with its figures: one loss chart, one score chart and one prediction grid per stage
    out = invoke("report", "-p", str(proj), str(proj / "rep.md"))
    assert out.exit_code == 0, out.output
    figs = sorted(p.name for p in (proj / "rep-figures").iterdir())
    assert figs == ["stage1-h-loss.png", "stage1-h-predictions.png", "stage1-h-scores.png",
                    "stage2-lr-loss.png", "stage2-lr-predictions.png", "stage2-lr-scores.png"]
    import imageio.v3 as iio
    assert iio.imread(proj / "rep-figures" / "stage1-h-scores.png").shape[2] == 3
    md = (proj / "rep.md").read_text()
    assert "![h: scores](rep-figures/stage1-h-scores.png)" in md and "pruned after epoch 1" in md
    assert "epochs trained: 6 of 8 for the full grid (75 %)" in md and "- Best lr: 0.0" in md

    # removing the study keeps every stage's run folders, and says so
    out = invoke("rm", "t", "-p", str(proj))
    assert out.exit_code == 0, out.output
    assert "removed [[study]] t" in out.output and "runs/t-lr-" in out.output and "runs/t-h-" in out.output
    assert "[[study]]" not in (proj / "experiments.toml").read_text()
