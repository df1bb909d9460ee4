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
    assert rows[7]["state"] == "pending" and rows[7]["best_val_dice"] == ""

    out = invoke("report", "opt", "-p", str(proj), "--vector", "pdf", "--figures", str(proj / "pdf"))
    assert out.exit_code == 0, out.output
    pdfs = sorted(p.name for p in (proj / "pdf").iterdir() if p.suffix == ".pdf")
    assert pdfs == ["overview.pdf", "stage1-lr-loss.pdf", "stage1-lr-scores.pdf", "stage2-sched-loss.pdf",
                    "stage2-sched-scores.pdf"]  # no predictions: these runs have no previews
    assert (proj / "pdf" / "overview.pdf").read_bytes()[:5] == b"%PDF-"
    assert "![lr: scores](pdf/stage1-lr-scores.png) [PDF](pdf/stage1-lr-scores.pdf)" in out.stdout


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


FIG_STUDY = """
[[study]]
id = "fig"
[[study.stage]]
name = "opt-sched"
optimizer = ["adam", "sgd"]
scheduler = ["none", "step"]
[[study.stage]]
name = "wd"
weight_decay = [0.0, 0.01]
train_fraction = [0.5, 0.8]
"""


def trained(proj, rid, dice, val_loss):
    """A finished run as a runner leaves it: status, summary, per-epoch metrics and the best epoch's preview."""
    import numpy as np

    from unettui.core.show.preview import save_preview

    finish(proj, rid, **summ(dice))
    run = RunStore(proj).run(rid)
    run.file("metrics.jsonl").write_text("".join(json.dumps(
        {"epoch": e, "train_loss": v * 0.9, "val_loss": v, "val_dice": dice * e / len(val_loss)}) + "\n"
        for e, v in enumerate(val_loss, 1)))
    truth = np.zeros((2, 1, 16, 16), np.float32)
    truth[:, :, 3:11, 5:13] = 1
    images = np.random.default_rng(len(rid)).random((2, 1, 16, 16)).astype(np.float32)
    save_preview(run.path, "best", epoch=len(val_loss), images=images, masks=truth, probs=truth * dice, names=["x", "y"])


def test_report_figures_png_and_vector_with_full_labels_and_one_colour_per_configuration(make_project):
    import xml.etree.ElementTree as ET

    from PIL import Image

    from tests.unit.test_figures import svg_colour, svg_texts
    from unettui.core.plan import load_queue

    proj = make_project(FIG_STUDY)
    scores = {("adam", "none"): 0.9, ("adam", "step"): 0.8, ("sgd", "none"): 0.7, ("sgd", "step"): 0.6}
    for c in load_queue(proj).studies[0].stages[0].configs:
        diverges = c.values == {"optimizer": "sgd", "scheduler": "step"}
        trained(proj, c.runs[0].id, scores[c.values["optimizer"], c.values["scheduler"]],
                [0.8, 120.0, 0.5] if diverges else [0.8, 0.6, 0.5])  # one epoch of sgd/step diverges
    for c in load_queue(proj).studies[0].stages[1].configs:  # stage 2 exists once stage 1 is done
        for r in c.runs:
            trained(proj, r.id, 0.5 + r.fraction / 2 - c.values["weight_decay"], [0.7, 0.5, 0.4])

    out = invoke("report", "fig", str(proj / "rep.md"), "-p", str(proj))
    assert out.exit_code == 0, out.output
    assert "wrote 7 figures (per stage: loss curves, scores, predictions; the study's overview), each as PNG and SVG" \
        in out.stderr
    folder = proj / "rep-figures"
    stems = ["overview", "stage1-opt-sched-loss", "stage1-opt-sched-scores", "stage1-opt-sched-predictions",
             "stage2-wd-loss", "stage2-wd-scores", "stage2-wd-predictions"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{s}.{e}" for s in stems for e in ("png", "svg"))
    for s in stems:
        with Image.open(folder / f"{s}.png") as im:
            assert im.format == "PNG" and im.size[0] >= 600 and im.size[1] >= 400, (s, im.size)
        assert ET.parse(folder / f"{s}.svg").getroot().tag == "{http://www.w3.org/2000/svg}svg"
    loss1 = svg_texts(folder / "stage1-opt-sched-loss.svg")
    assert {"optimizer=adam, scheduler=none", "optimizer=sgd, scheduler=step"} <= set(loss1)  # full labels
    assert "loss (log scale)" in loss1  # sgd/step's diverging epoch
    assert "loss" in svg_texts(folder / "stage2-wd-loss.svg")
    assert not any("log scale" in t for t in svg_texts(folder / "stage2-wd-loss.svg"))
    assert "weight_decay=0.01" in svg_texts(folder / "stage2-wd-scores.svg")
    assert {"train_fraction=0.5", "train_fraction=0.8"} <= set(svg_texts(folder / "overview.svg"))

    # a configuration has one colour in every figure of the study, and no other configuration has it
    gid = "cfg-optimizer-adam-scheduler-none"
    colour = svg_colour(folder / "stage1-opt-sched-loss.svg", f"{gid}-val_loss", "stroke")
    assert svg_colour(folder / "stage1-opt-sched-loss.svg", f"{gid}-train_loss", "stroke") == colour
    assert svg_colour(folder / "stage1-opt-sched-scores.svg", f"{gid}-score", "fill") == colour
    assert svg_colour(folder / "overview.svg", f"{gid}-overview", "fill") == colour
    assert svg_colour(folder / "stage1-opt-sched-scores.svg", "cfg-optimizer-sgd-scheduler-step-score", "fill") != colour

    md = (proj / "rep.md").read_text()
    assert "![fig: overview](rep-figures/overview.png) [SVG](rep-figures/overview.svg)" in md
    assert "![opt-sched: loss](rep-figures/stage1-opt-sched-loss.png) [SVG](rep-figures/stage1-opt-sched-loss.svg)" in md


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
    assert f"```toml\nlr = {float(win)!r}\nscheduler = " in out.stdout.split("## Final configuration")[1]
    # the score that chose it, labelled apart from the (absent) held-out test score
    assert "- Validation best_val_dice (chose it, optimistic): " in out.stdout
    assert "- Held-out test: none (test_fraction = 0); set test_fraction = 0.2" in out.stdout

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

    # the report with its figures: loss curves, scores and a prediction grid per stage, the overview; PNG and SVG
    out = invoke("report", "-p", str(proj), str(proj / "rep.md"))
    assert out.exit_code == 0, out.output
    figs = sorted(p.name for p in (proj / "rep-figures").iterdir())
    assert figs == sorted(f"{stem}.{ext}" for ext in ("png", "svg") for stem in (
        "overview", "stage1-h-loss", "stage1-h-predictions", "stage1-h-scores",
        "stage2-lr-loss", "stage2-lr-predictions", "stage2-lr-scores"))
    import imageio.v3 as iio
    assert iio.imread(proj / "rep-figures" / "stage1-h-scores.png").shape[2] in (3, 4)
    md = (proj / "rep.md").read_text()
    assert "![h: scores](rep-figures/stage1-h-scores.png) [SVG](rep-figures/stage1-h-scores.svg)" in md
    assert "pruned after epoch 1" in md
    assert "epochs trained: 6 of 8 for the full grid (75 %)" in md and "- Best lr: 0.0" in md

    # removing the study keeps every stage's run folders, and says so
    out = invoke("rm", "t", "-p", str(proj))
    assert out.exit_code == 0, out.output
    assert "removed [[study]] t" in out.output and "runs/t-lr-" in out.output and "runs/t-h-" in out.output
    assert "[[study]]" not in (proj / "experiments.toml").read_text()
