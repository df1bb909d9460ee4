"""Multi-class runs in every CLI face, on run folders written by hand in the trainers' format (tests/per_class_runs.py):
export's per-class columns (a binary project's header: the columns it always had, then the boundary metrics), nulls
as empty cells and never NaN, means over repeats that skip a class without a score, `results --classes`, `show`'s
per-class table, `compare` on a class's metric and the study report's per-class table."""

from __future__ import annotations

import csv
import io
import re

import pytest
from typer.testing import CliRunner

from tests.helpers import finish
from tests.per_class_runs import NO_TEST, NO_VAL, PER_CLASS, heart_project
from tests.tui.fixtures import seeded_project
from unettui.cli.app import app
from unettui.core.define.config import KEYS
from unettui.core.plan import load_queue
from unettui.core.runs.export import collect_rows, row_dict
from unettui.core.runs.groups import configuration_rows, group_rows
from unettui.core.runs.status import collect
from unettui.core.runs.store import RunStore
from unettui.core.show.compare import compare

WIDE = {"COLUMNS": "250"}
# the end-of-run boundary metrics every project exports since issue 24, before `error` (empty for runs without them)
BOUNDARY = ("val_hd95", "val_nsd", "test_hd95", "test_nsd")
# the export's columns of a binary project (besides the configuration keys): those before multi-class runs existed,
# then the boundary metrics (issue 24 changed this header on purpose)
TODAY = ("id", "status", "in_queue", "attempt", "configuration", "repeat", *KEYS, "val_on_train", "best_val_dice",
         "best_epoch", "best_val_loss", "final_train_loss", "final_train_dice", "final_val_loss", "final_val_dice",
         "final_val_iou", "epochs_done", "seconds", "test_dice", "test_iou", "n_test", *BOUNDARY, "error")
TODAY_BY_CONFIGURATION = (
    "configuration", "status", "runs", "seeds", *[k for k in KEYS if k not in ("seed", "fold")],
    *[c for m in ("best_val_dice", "best_val_loss", "final_val_dice", "final_val_loss", "final_val_iou", "test_dice",
                  "test_iou", *BOUNDARY) for c in (m, f"{m}_sd", f"{m}_n")], "epochs_done", "seconds")
# what a project with synthetic:heart runs (cavity, myocardium) adds, in the registry's order: Dice and IoU, then the
# boundary metrics (the worst class's HD95 is the highest: _max)
CLASS_BLOCK = tuple(
    c for key in ("best_val_dice", "best_val_iou", "final_val_dice", "final_val_iou", "test_dice", "test_iou",
                  *BOUNDARY)
    for c in ((key,) if key == "best_val_iou" else ()) + (
        f"{key}_cavity", f"{key}_myocardium", f"{key}_max" if key.endswith("hd95") else f"{key}_min"))


def invoke(*args, env=None):
    out = CliRunner().invoke(app, list(args), env=env or WIDE, catch_exceptions=False)
    return out


@pytest.fixture
def heart(tmp_path):
    return heart_project(tmp_path / "heart")


def _csv(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_a_binary_project_exports_the_columns_it_always_did_and_the_boundary_metrics(tmp_path):
    proj = seeded_project(tmp_path / "p")  # six binary runs, written before classes existed (no best_val_iou)
    out = invoke("export", "-p", str(proj))
    assert out.exit_code == 0, out.output
    assert tuple(out.stdout.splitlines()[0].split(",")) == TODAY
    out = invoke("export", "-p", str(proj), "--by-configuration")
    assert tuple(out.stdout.splitlines()[0].split(",")) == TODAY_BY_CONFIGURATION
    md = invoke("export", "-p", str(proj), "--format", "md").stdout
    assert md.splitlines()[0] == "| " + " | ".join(TODAY) + " |"


def test_export_adds_per_class_columns_after_the_others_with_empty_cells_for_nulls(heart):
    out = invoke("export", "-p", str(heart))
    assert out.exit_code == 0, out.output
    text = out.stdout
    assert tuple(text.splitlines()[0].split(",")) == TODAY + CLASS_BLOCK
    assert "nan" not in text.lower()
    rows = {r["id"]: r for r in _csv(text)}
    adam, r2, binary = rows["heart-adam"], rows["heart-adam-r2"], rows["bin"]
    # heart-adam: best epoch 3, cavity 0.9 and myocardium 0.5 there; val_dice the mean of both
    assert (adam["best_val_dice"], adam["best_val_dice_cavity"], adam["best_val_dice_myocardium"],
            adam["best_val_dice_min"]) == ("0.7", "0.9", "0.5", "0.5")
    assert (adam["test_dice_cavity"], adam["test_dice_myocardium"], adam["test_dice_min"]) == ("0.85", "0.45", "0.45")
    assert adam["best_val_iou_myocardium"] == "0.333333" and adam["final_val_iou_cavity"] == "0.818182"
    # heart-adam-r2: myocardium has no score anywhere: empty cells; the mean and the worst are the cavity's alone
    assert r2["best_val_dice_myocardium"] == r2["test_dice_myocardium"] == r2["final_val_iou_myocardium"] == ""
    assert (r2["best_val_dice"], r2["best_val_dice_min"], r2["test_dice"]) == ("0.8", "0.8", "0.75")
    # the binary run: its per-class cells (the worst class's too) are empty; best_val_iou is its own
    assert all(binary[c] == "" for c in CLASS_BLOCK if c != "best_val_iou")
    assert binary["best_val_iou"] == "0.666667" and binary["best_val_dice"] == "0.8"
    md = invoke("export", "-p", str(heart), "--format", "md").stdout
    assert "best_val_dice_myocardium" in md.splitlines()[0] and "nan" not in md.lower()
    line = next(x for x in md.splitlines() if x.startswith("| heart-adam-r2 |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[len(TODAY) + 1] == "" and cells[len(TODAY)] == "0.8"  # myocardium: no score, an empty cell


def test_a_run_without_a_summary_gets_its_class_values_from_its_epochs(heart):
    (heart / "runs" / "heart-sgd" / "summary.json").unlink()  # as while it trains
    row = next(r for r in collect_rows(load_queue(heart), RunStore(heart)) if r["id"] == "heart-sgd")
    # best epoch 3 (val_dice 0.25): cavity 0.4, myocardium 0.1; the worst of them; no test yet
    assert (row["best_val_dice_cavity"], row["best_val_dice_myocardium"], row["best_val_dice_min"]) == (0.4, 0.1, 0.1)
    assert row["final_val_iou_myocardium"] == pytest.approx(0.1 / 1.9, abs=1e-6)
    assert row["best_val_iou_min"] == pytest.approx(row["best_val_iou_myocardium"])
    assert row["test_dice_cavity"] is None and row["classes"] == ("cavity", "myocardium")


def test_means_over_repeats_skip_a_class_without_a_score(heart):
    rows = configuration_rows(collect_rows(load_queue(heart), RunStore(heart)))
    adam = next(r for r in rows if r["configuration"] == "heart-adam")
    # cavity: both repeats (0.9, 0.8); myocardium: only heart-adam's 0.5 (heart-adam-r2 has none: not a 0)
    assert adam["best_val_dice_cavity"] == pytest.approx(0.85) and adam["best_val_dice_cavity_n"] == 2
    assert adam["best_val_dice_cavity_sd"] == pytest.approx(0.0707107, abs=1e-6)
    assert adam["best_val_dice_myocardium"] == pytest.approx(0.5) and adam["best_val_dice_myocardium_n"] == 1
    assert adam["best_val_dice_myocardium_sd"] is None
    assert adam["test_dice_myocardium"] == pytest.approx(0.45) and adam["test_dice_myocardium_n"] == 1
    assert adam["best_val_dice_min"] == pytest.approx(0.65) and adam["best_val_dice_min_n"] == 2  # 0.5 and 0.8
    sgd = next(r for r in rows if r["configuration"] == "heart-sgd")
    assert sgd["best_val_dice_myocardium"] == pytest.approx(0.15) and sgd["best_val_dice_myocardium_n"] == 2
    # Group (the study engine's and compare's view of configurations) too
    groups = {g.configuration: g for g in group_rows(collect(load_queue(heart), RunStore(heart)),
                                                     "best_val_dice_myocardium")}
    assert groups["heart-adam"].values == [0.5] and groups["heart-adam"].n == 1
    assert groups["heart-sgd"].mean == pytest.approx(0.15) and groups["heart-sgd"].n == 2
    assert groups["bin"].n == 0 and groups["bin"].mean is None

    out = invoke("export", "-p", str(heart), "--by-configuration")
    table = {r["configuration"]: r for r in _csv(out.stdout)}
    head = out.stdout.splitlines()[0].split(",")
    assert tuple(head[:len(TODAY_BY_CONFIGURATION)]) == TODAY_BY_CONFIGURATION
    assert head[len(TODAY_BY_CONFIGURATION):][:3] == ["best_val_dice_cavity", "best_val_dice_cavity_sd",
                                                        "best_val_dice_cavity_n"]
    a = table["heart-adam"]
    assert (a["best_val_dice_myocardium"], a["best_val_dice_myocardium_sd"], a["best_val_dice_myocardium_n"]) == \
        ("0.5", "", "1")
    assert float(a["best_val_dice_cavity"]) == pytest.approx(0.85) and a["best_val_dice_cavity_n"] == "2"
    assert table["bin"]["best_val_dice_cavity_n"] == table["bin"]["best_val_dice_cavity"] == ""  # binary: none
    assert "nan" not in out.stdout.lower()


def _table_rows(output: str) -> dict[str, list[str]]:
    return {m.group(1): m.group(0).split() for m in re.finditer(r"^\s*(\S+)\s+done\b.*$", output, re.M)}


def test_results_shows_per_class_columns_when_asked(heart):
    plain = invoke("results", "-p", str(heart), "--runs")
    assert plain.exit_code == 0, plain.output
    assert "myocardium" not in plain.stdout and "—" not in plain.stdout
    out = invoke("results", "-p", str(heart), "--runs", "--classes")
    assert out.exit_code == 0, out.output
    heads = out.stdout.split("────")[0]
    assert heads.count("cavity") == 2 and heads.count("myocardium") == 2 and heads.count("min") == 2  # val, test
    rows = _table_rows(out.stdout)
    # ... best val dice, last val dice, test dice, then cavity, myocardium, min at the best epoch, the same on test
    assert rows["heart-adam"][-11:-2] == ["@3", "0.7000", "0.6500", "0.9000", "0.5000", "0.5000", "0.8500", "0.4500",
                                          "0.4500"]
    assert rows["heart-adam-r2"][-11:-2] == ["@3", "0.8000", "0.7500", "0.8000", "—", "0.8000", "0.7500", "—",
                                             "0.7500"]
    assert rows["bin"][-9:-2] == ["-"] + ["—"] * 6  # no test split; a binary run has no classes
    assert "—: no score" in out.stdout and "unettui show ID" in out.stdout

    grouped = invoke("results", "-p", str(heart), "--classes")
    rows = _table_rows(grouped.stdout)
    assert rows["heart-adam"][-8:-2] == ["0.850±0.071(2)", "0.500(1)", "0.650±0.212(2)", "0.800±0.071(2)",
                                         "0.450(1)", "0.600±0.212(2)"]  # myocardium: the one repeat with a score

    out = invoke("results", "-p", str(heart), "--runs", "--sort", "best_val_dice_min", "--asc")
    assert [i for i in _table_rows(out.stdout)] == ["heart-sgd", "heart-sgd-r2", "heart-adam", "heart-adam-r2", "bin"]
    out = CliRunner().invoke(app, ["results", "-p", str(heart), "--sort", "best_val_dice_aorta"])
    assert out.exit_code == 2 and "unknown column" in out.output and "best_val_dice_myocardium" in out.output


def test_results_classes_on_a_binary_project_says_there_are_none(tmp_path):
    out = invoke("results", "-p", str(seeded_project(tmp_path / "p")), "--classes")
    assert out.exit_code == 0 and "no multi-class runs" in out.stdout and "—" not in out.stdout


def test_show_draws_a_per_class_table_with_a_dash_and_the_reason(heart):
    out = invoke("show", "heart-adam-r2", "-p", str(heart), "--ascii")
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    at = next(i for i, x in enumerate(lines) if x.startswith("per class: Dice and IoU"))
    assert lines[at + 1].split() == ["class", "best", "dice", "best", "iou", "final", "dice", "final", "iou", "test",
                                     "dice", "test", "iou"]
    table = {x.split()[0]: x.split()[1:] for x in lines[at + 3:at + 7]}
    assert table["cavity"] == ["0.8000", "0.6667", "0.8000", "0.6667", "0.7500", "0.6000"]
    assert table["myocardium"] == ["—"] * 6
    assert table["mean"] == table["worst"] == table["cavity"]
    assert any(x.strip() == f"— myocardium (best dice, best iou, final dice, final iou): {NO_VAL}" for x in lines)
    assert any(x.strip() == f"— myocardium (test dice, test iou): {NO_TEST}" for x in lines)
    assert "over the foreground classes that have a score" in out.stdout and "nan" not in out.stdout.lower()

    adam = invoke("show", "heart-adam", "-p", str(heart), "--ascii").stdout.splitlines()
    row = next(x for x in adam if x.startswith("myocardium"))
    assert row.split()[1:] == ["0.5000", "0.3333", "0.5000", "0.3333", "0.4500", "0.2903"]
    assert "per class" not in invoke("show", "bin", "-p", str(heart), "--ascii").stdout


def test_compare_draws_a_class_and_the_worst_class(heart):
    out = invoke("compare", "heart-adam", "heart-sgd", "-p", str(heart), "--metric", "val_dice_myocardium",
                 "--ascii", "--height", "6")
    assert out.exit_code == 0, out.output
    assert out.stdout.startswith("val_dice_myocardium of 4 runs in 2 configurations")
    # heart-adam-r2 has no myocardium score: the mean is heart-adam's alone, and the note says so
    assert "best 0.5000 (1 of 2 runs have a value)" in out.stdout
    assert "best 0.1500 +/- 0.0707 (n=2)" in out.stdout  # (ASCII: not a terminal)

    each = invoke("compare", "heart-adam", "heart-adam-r2", "bin", "-p", str(heart), "--metric", "val_dice_min",
                  "--each", "--ascii")
    assert "heart-adam  done  best 0.5 at epoch 3" in each.stdout
    assert "heart-adam-r2  done  best 0.8 at epoch 3" in each.stdout  # its only class with a score
    assert "bin  done  best 0.8 at epoch 3" in each.stdout  # binary: its val_dice

    alone = invoke("compare", "heart-adam-r2", "-p", str(heart), "--metric", "val_dice_myocardium", "--each")
    assert "no val_dice_myocardium in its epochs" in alone.stdout and "none of these runs has a score" in alone.stdout

    out = CliRunner().invoke(app, ["compare", "heart-adam", "-p", str(heart), "--metric", "val_dice_myocardum"])
    assert out.exit_code == 2 and "did you mean 'val_dice_myocardium'" in out.output
    out = CliRunner().invoke(app, ["compare", "bin", "-p", str(heart), "--metric", "val_dice_cavity"])
    assert out.exit_code == 2 and "binary runs" in out.output
    out = CliRunner().invoke(app, ["compare", "bin", "-p", str(heart), "--metric", "val_loss_cavity"])
    assert out.exit_code == 2 and "unknown metric" in out.output


def test_compare_curves_of_a_class(heart):
    rows = {r.id: r for r in collect(load_queue(heart), RunStore(heart), metrics=True)}
    c = compare([rows["heart-adam"], rows["heart-adam-r2"], rows["bin"]], "val_dice_min", by="none")
    assert [s.points for s in c.series] == [[(1.0, 0.1), (2.0, 0.3), (3.0, 0.5)], [(1.0, 0.4), (2.0, 0.7), (3.0, 0.8)],
                                            [(1.0, 0.6), (2.0, 0.7), (3.0, 0.8)]]
    c = compare([rows["heart-adam-r2"]], "val_dice_myocardium", by="none")
    assert c.series[0].points == []  # no score in any epoch: no point, never a 0
    with pytest.raises(ValueError):
        compare([rows["bin"]], "val_loss_min")


def test_row_dict_holds_the_reasons_of_the_nulls(heart):
    row = row_dict(next(r for r in collect(load_queue(heart), RunStore(heart)) if r.id == "heart-adam-r2"))
    assert row["best_val_dice_myocardium"] is None and row["no_score"]["best_val_dice_myocardium"] == NO_VAL
    assert row["no_score"]["test_iou_myocardium"] == NO_TEST


STUDY = """[defaults]
dataset = "synthetic:heart"
num_classes = 3
repeats = 2
epochs = 3

[[study]]
id = "h"
test_fraction = 0.2
[[study.stage]]
name = "opt"
optimizer = ["adam", "sgd"]
"""


def test_the_study_report_has_a_per_class_table(tmp_path):
    from tests.per_class_runs import epoch_rows, summary_of

    proj = tmp_path / "s"
    proj.mkdir()
    (proj / "experiments.toml").write_text(STUDY)
    queue = load_queue(proj)
    names = {}
    for e in queue.experiments:  # the study's first stage: adam and sgd, two repeats each
        key = f"heart-{e.config.optimizer}" + ("-r2" if e.repeat == 2 else "")
        names[key] = e.id
        dice, test = PER_CLASS[key]
        finish(proj, e.id, **summary_of(epoch_rows(dice), test))
    assert len(names) == 4
    out = invoke("report", "h", "-p", str(proj), "--no-figures")
    assert out.exit_code == 0, out.output
    md = out.stdout
    assert "The class mean is over the foreground classes with a score" in md
    assert "Per class: best val Dice (each class's val Dice at the run's best epoch)" in md
    assert "| optimizer | cavity | myocardium | mean | worst |" in md
    adam = next(x for x in md.splitlines() if x.startswith("| adam | 0.8500"))
    assert adam == ("| adam | 0.8500 ± 0.0707 (n=2) | 0.5000 (1 of 2 runs) | 0.7500 ± 0.0707 (n=2) "
                    "| 0.6500 ± 0.2121 (n=2) |")
    assert f"- No score: {NO_VAL} (`{names['heart-adam-r2']}`)." in md
    assert "Held-out test Dice per class" in md and "myocardium 0.4500 (1 of 2 runs have a score)" in md
    assert "nan" not in md.lower()

    target = proj / "h.csv"
    out = invoke("report", "h", str(target), "--format", "csv", "-p", str(proj))
    assert out.exit_code == 0, out.output
    rows = {r["id"]: r for r in _csv(target.read_text())}
    r2 = rows[names["heart-adam-r2"]]
    assert r2["best_val_dice_cavity"] == "0.8" and r2["best_val_dice_myocardium"] == "" and r2["test_dice_min"] == "0.75"
    assert "nan" not in target.read_text().lower()
