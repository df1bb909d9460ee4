"""The end-of-run boundary metrics (HD95 and NSD, issue 24) in every face: the registry (a per-metric worst class:
HD95's is the highest, ``_max``), `export` (val/test HD95 and NSD columns in every project, per class in multi-class
ones, folded over repeats), `results --boundary`, `show`, the study report and `study show` (the metric that chose,
how each metric aggregates), the TUI's Results tab (h, sorted with the lowest HD95 first) — on run folders written by
hand in the trainers' format (tests/per_class_runs.py plus the keys core.learn.boundary.run_keys writes), and once on
the summaries of a real tiny training."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import re

import pytest
from typer.testing import CliRunner

from tests.helpers import finish
from tests.per_class_runs import PER_CLASS, epoch_rows, heart_project, summary_of
from tests.tui.fixtures import seeded_project, wait_for
from unettui.cli.app import app
from unettui.core.define.task import (
    END_KEYS,
    METRICS,
    SUMMARY_KEYS,
    classes_of,
    describe_key,
    direction_of,
    key_of,
    label_of,
    metric_value,
    per_class_keys,
    split_class_key,
    spread_keys,
    worst_key,
)
from unettui.core.plan import load_queue
from unettui.core.runs.export import COLUMNS, collect_rows
from unettui.core.runs.groups import configuration_rows
from unettui.core.runs.store import RunStore, atomic_write_json

WIDE = {"COLUMNS": "250"}
CLASSES = ("cavity", "myocardium")
BOUNDARY = ("val_hd95", "val_nsd", "test_hd95", "test_nsd")

# per run: per split and class (HD95 px, its sd over images, NSD, its sd, images scored); None: no image scored
END: dict[str, dict[str, dict[str, tuple | None]]] = {
    "heart-adam": {"val": {"cavity": (2.0, 0.5, 0.9, 0.05, 4), "myocardium": (6.0, 1.0, 0.5, 0.1, 3)},
                   "test": {"cavity": (3.0, 0.4, 0.85, 0.02, 4), "myocardium": (8.0, 2.0, 0.45, 0.1, 4)}},
    "heart-adam-r2": {"val": {"cavity": (3.0, 0.5, 0.8, 0.05, 4), "myocardium": None},
                      "test": {"cavity": (4.0, 0.5, 0.75, 0.05, 4), "myocardium": None}},
    "heart-sgd": {"val": {"cavity": (10.0, 2.0, 0.3, 0.1, 4), "myocardium": (20.0, 4.0, 0.1, 0.05, 4)},
                  "test": {"cavity": (12.0, 2.0, 0.25, 0.1, 4), "myocardium": (22.0, 4.0, 0.05, 0.05, 4)}},
    "heart-sgd-r2": {"val": {"cavity": (8.0, 2.0, 0.4, 0.1, 4), "myocardium": (16.0, 4.0, 0.2, 0.05, 4)},
                     "test": {"cavity": (9.0, 2.0, 0.35, 0.1, 4), "myocardium": (18.0, 4.0, 0.15, 0.05, 4)}},
}


def end_keys(end: dict[str, dict[str, tuple | None]]) -> dict:
    """A multi-class run's end-of-run keys as core.learn.boundary.run_keys and Trainer.end_of_run write them."""
    out: dict = {"nsd_tolerance": 2.0}
    for split, classes in end.items():
        hd, nsd = {}, {}
        for c, v in classes.items():
            h, hsd, s, ssd, n = v if v is not None else (None, None, None, None, 0)
            out.update({f"{split}_hd95_{c}": h, f"{split}_hd95_sd_{c}": hsd, f"{split}_nsd_{c}": s,
                        f"{split}_nsd_sd_{c}": ssd, f"{split}_boundary_n_{c}": n})
            if h is not None:
                hd[c], nsd[c] = h, s
        out.update({f"{split}_hd95": sum(hd.values()) / len(hd) if hd else None,
                    f"{split}_hd95_max": max(hd.values()) if hd else None,
                    f"{split}_nsd": sum(nsd.values()) / len(nsd) if nsd else None,
                    f"{split}_nsd_min": min(nsd.values()) if nsd else None})
    return out


# a binary run's: the foreground's, with its sd over images and n (no test split: no test keys)
BIN_END = {"nsd_tolerance": 2.0, "val_hd95": 1.5, "val_hd95_sd": 0.7, "val_nsd": 0.95, "val_nsd_sd": 0.03,
           "val_boundary_n": 4}


def boundary_project(root):
    """tests/per_class_runs.heart_project (four 3-class runs in two configurations with two repeats, and a binary
    run) with the end-of-run keys added to their summaries."""
    proj = heart_project(root)
    for run_id, end in [*((r, end_keys(e)) for r, e in END.items()), ("bin", BIN_END)]:
        path = proj / "runs" / run_id / "summary.json"
        atomic_write_json(path, {**json.loads(path.read_text()), **end})
    return proj


@pytest.fixture
def heart(tmp_path):
    return boundary_project(tmp_path / "heart")


def invoke(*args, env=None):
    return CliRunner().invoke(app, list(args), env=env or WIDE, catch_exceptions=False)


def _csv(text):
    return list(csv.DictReader(io.StringIO(text)))


def _table_rows(output: str) -> dict[str, list[str]]:
    return {m.group(1): m.group(0).split() for m in re.finditer(r"^\s*(\S+)\s+done\b.*$", output, re.M)}


# ---- the registry --------------------------------------------------------------------------------------------------
def test_the_registry_knows_hd95_and_nsd_and_each_metrics_worst_class():
    hd95, nsd, dice = METRICS["hd95"], METRICS["nsd"], METRICS["dice"]
    assert (hd95.label, hd95.direction, hd95.when, hd95.images, hd95.worst) == ("HD95", "min", "end", "mean", "max")
    assert (nsd.label, nsd.direction, nsd.when, nsd.images, nsd.worst) == ("NSD", "max", "end", "mean", "min")
    assert (dice.when, dice.images, dice.worst) == ("epoch", "pooled", "min")
    assert END_KEYS == BOUNDARY and all(SUMMARY_KEYS[k].column and SUMMARY_KEYS[k].folded for k in BOUNDARY)
    heart = classes_of({"dataset": "synthetic:heart", "num_classes": 3})
    assert per_class_keys("val_hd95", heart) == ["val_hd95_cavity", "val_hd95_myocardium", "val_hd95_max"]
    assert per_class_keys("test_nsd", heart) == ["test_nsd_cavity", "test_nsd_myocardium", "test_nsd_min"]
    assert per_class_keys("best_val_dice", heart) == ["best_val_dice_cavity", "best_val_dice_myocardium",
                                                      "best_val_dice_min"]  # unchanged
    assert (worst_key("val_hd95"), worst_key("val_nsd"), worst_key("best_val_iou")) == (
        "val_hd95_max", "val_nsd_min", "best_val_iou_min")
    assert split_class_key("val_hd95_max") == ("val_hd95", "max")
    assert split_class_key("val_hd95_sd_myocardium") == ("val_hd95_sd", "myocardium")  # the longest base wins
    assert split_class_key("test_boundary_n_cavity") == ("test_boundary_n", "cavity")
    assert label_of("val_hd95_max") == "val HD95 (worst class)" and label_of("test_nsd_cavity", short=True) == \
        "test nsd cavity"
    assert direction_of("val_hd95_myocardium") == "min" and direction_of("test_nsd_min") == "max"
    assert key_of("val_hd95_sd").direction is None  # a spread over images: no direction
    assert spread_keys("val_hd95") == ("val_hd95_sd", "val_boundary_n")
    assert spread_keys("test_nsd_cavity") == ("test_nsd_sd_cavity", "test_boundary_n_cavity")
    assert spread_keys("val_hd95_max") is None and spread_keys("best_val_dice") is None
    # a binary run's worst class is its foreground, its spreads are not classes
    assert metric_value({"val_hd95": 3.0, "val_hd95_sd": 1.0, "val_boundary_n": 4}, "val_hd95_max") == 3.0
    assert metric_value({"val_hd95": 3.0, "val_hd95_cavity": 3.0, "val_hd95_max": None}, "val_hd95_max") is None
    assert "pooled counts" in describe_key("best_val_dice_min") and "lowest" in describe_key("best_val_dice_min")
    assert "per image, then the mean over the images" in describe_key("val_hd95")
    assert "lower is better" in describe_key("val_hd95")


# ---- export ----------------------------------------------------------------------------------------------------------
def test_export_has_boundary_columns_per_class_and_empty_cells_for_nulls(heart):
    out = invoke("export", "-p", str(heart))
    assert out.exit_code == 0, out.output
    head = out.stdout.splitlines()[0].split(",")
    assert tuple(head[:len(COLUMNS)]) == COLUMNS and head[len(COLUMNS) - 5:len(COLUMNS)] == [*BOUNDARY, "error"]
    # the per-class boundary columns follow the per-class Dice and IoU ones, the worst HD95 under _max
    assert head[-12:] == [f"{k}_{c}" for k in BOUNDARY for c in (*CLASSES, "max" if "hd95" in k else "min")]
    assert head.index("test_iou_min") < head.index("val_hd95_cavity")
    assert "nan" not in out.stdout.lower()
    rows = {r["id"]: r for r in _csv(out.stdout)}
    adam, r2, sgd, binary = rows["heart-adam"], rows["heart-adam-r2"], rows["heart-sgd"], rows["bin"]
    assert (adam["val_hd95"], adam["val_hd95_cavity"], adam["val_hd95_myocardium"], adam["val_hd95_max"]) == (
        "4.0", "2.0", "6.0", "6.0")
    assert (adam["val_nsd"], adam["val_nsd_min"], adam["test_hd95"], adam["test_nsd_myocardium"]) == (
        "0.7", "0.5", "5.5", "0.45")
    assert (sgd["test_hd95_max"], sgd["test_nsd_min"]) == ("22.0", "0.05")
    # no image scored the myocardium: empty cells, and the means and the worst are the cavity's alone
    assert r2["val_hd95_myocardium"] == r2["test_nsd_myocardium"] == ""
    assert (r2["val_hd95"], r2["val_hd95_max"], r2["val_nsd_min"]) == ("3.0", "3.0", "0.8")
    # the binary run: its foreground's; no test split: empty; no classes: empty per-class cells
    assert (binary["val_hd95"], binary["val_nsd"], binary["test_hd95"], binary["test_nsd"]) == ("1.5", "0.95", "", "")
    assert all(binary[f"{k}_cavity"] == "" for k in BOUNDARY) and binary["val_hd95_max"] == ""
    assert binary["nsd_tolerance"] == "2.0"

    out = invoke("export", "-p", str(heart), "--by-configuration")
    table = {r["configuration"]: r for r in _csv(out.stdout)}
    a, s = table["heart-adam"], table["heart-sgd"]
    assert float(a["val_hd95"]) == pytest.approx(3.5) and float(a["val_hd95_sd"]) == pytest.approx(math.sqrt(0.5))
    assert a["val_hd95_n"] == "2"
    # a repeat without a score is left out (n = 1), never counted as 0
    assert (a["val_hd95_myocardium"], a["val_hd95_myocardium_sd"], a["val_hd95_myocardium_n"]) == ("6.0", "", "1")
    assert float(a["val_hd95_max"]) == pytest.approx(4.5) and float(s["test_nsd_min"]) == pytest.approx(0.1)
    assert (table["bin"]["val_hd95"], table["bin"]["val_hd95_n"], table["bin"]["test_hd95_n"]) == ("1.5", "1", "0")
    assert "nan" not in out.stdout.lower()


def test_a_binary_project_without_boundary_metrics_exports_empty_cells(tmp_path):
    proj = seeded_project(tmp_path / "p")  # runs from before boundary metrics
    out = invoke("export", "-p", str(proj))
    rows = _csv(out.stdout)
    assert rows and all(r[k] == "" for r in rows for k in BOUNDARY)
    assert not any(c.startswith("val_hd95_") for c in out.stdout.splitlines()[0].split(","))


# ---- results and show --------------------------------------------------------------------------------------------------
def test_results_shows_boundary_columns_on_demand_sorted_with_the_lowest_hd95_first(heart):
    plain = invoke("results", "-p", str(heart), "--runs")
    assert "hd95" not in plain.stdout
    out = invoke("results", "-p", str(heart), "--runs", "--boundary", "--sort", "val_hd95", "--asc")
    assert out.exit_code == 0, out.output
    assert list(_table_rows(out.stdout)) == ["bin", "heart-adam-r2", "heart-adam", "heart-sgd-r2", "heart-sgd"]
    heads = out.stdout.split("────")[0]
    assert "val hd95" in heads and "val nsd" in heads
    rows = _table_rows(out.stdout)
    assert rows["heart-adam"][-4:-2] == ["4.00", "0.7000"] and rows["bin"][-4:-2] == ["1.50", "0.9500"]
    assert "per image, then the mean over the images that scored" in out.stdout

    out = invoke("results", "-p", str(heart), "--runs", "--boundary", "--classes")
    rows = _table_rows(out.stdout)
    heads = out.stdout.split("────")[0]
    assert heads.count("max") == 1 and heads.count("val hd95") == 4  # the mean, two classes and the worst
    # ... val hd95, val nsd, then cavity, myocardium, max of HD95 and cavity, myocardium, min of NSD
    assert rows["heart-adam"][-10:-2] == ["4.00", "0.7000", "2.00", "6.00", "6.00", "0.9000", "0.5000", "0.5000"]
    assert rows["heart-adam-r2"][-10:-2] == ["3.00", "0.8000", "3.00", "—", "3.00", "0.8000", "—", "0.8000"]
    assert rows["bin"][-8:-2] == ["—"] * 6  # a binary run has no classes

    grouped = invoke("results", "-p", str(heart), "--boundary", "--sort", "val_hd95", "--asc")
    rows = _table_rows(grouped.stdout)
    assert list(rows) == ["bin", "heart-adam", "heart-sgd"]
    assert rows["heart-adam"][-4:-2] == ["3.50±0.71(2)", "0.750±0.071(2)"]


def test_results_boundary_on_runs_without_them_shows_dashes(tmp_path):
    out = invoke("results", "-p", str(seeded_project(tmp_path / "p")), "--boundary")
    assert out.exit_code == 0
    assert all(r[-4:-2] == ["—", "—"] for r in _table_rows(out.stdout).values())
    assert "—: none" in out.stdout


def test_show_puts_hd95_and_nsd_beside_dice_per_class_and_a_line_for_a_binary_run(heart):
    out = invoke("show", "heart-adam-r2", "-p", str(heart), "--ascii")
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    at = next(i for i, x in enumerate(lines) if x.startswith("per class: Dice and IoU"))
    assert lines[at].rstrip().endswith("; HD95 and NSD")
    assert "HD95 (pixels, lower is better) and NSD at 2 px (higher is better): once, at the end of the run on the " \
           "best epoch's weights, per image, then the mean over the images that scored" in out.stdout
    assert lines[at + 1].split()[-8:] == ["val", "hd95", "val", "nsd", "test", "hd95", "test", "nsd"]
    table = {x.split()[0]: x.split()[1:] for x in lines[at + 3:at + 7]}
    assert table["cavity"][-4:] == ["3.00", "0.8000", "4.00", "0.7500"]
    assert table["myocardium"][-4:] == ["—"] * 4
    assert table["worst"][-4:] == ["3.00", "0.8000", "4.00", "0.7500"]
    assert any("no validation image scored" in x and x.strip().startswith("— myocardium (val hd95, val nsd)")
               for x in lines)
    assert "worst: the lowest of them (HD95's: the highest)" in out.stdout
    assert "val: cavity 4, myocardium 0" in out.stdout and "nan" not in out.stdout.lower()

    adam = invoke("show", "heart-adam", "-p", str(heart), "--ascii").stdout.splitlines()
    rows = {x.split()[0]: x.split()[1:] for x in adam if x.split() and x.split()[0] in ("myocardium", "worst")}
    assert rows["myocardium"][-4:] == ["6.00", "0.5000", "8.00", "0.4500"]
    assert rows["worst"][-4:] == ["6.00", "0.5000", "8.00", "0.4500"]  # HD95's worst is the highest

    binary = invoke("show", "bin", "-p", str(heart), "--ascii").stdout
    assert "per class" not in binary
    assert "  boundary:" in binary and "NSD at 2 px (higher is better): once, at the end of the run" in binary
    assert "validation: HD95 1.50 ± 0.70 px, NSD 0.9500 ± 0.0300 (4 images scored)" in binary
    assert "    test: HD95" not in binary  # no test split


# ---- the study report and study show -------------------------------------------------------------------------------
STUDY = """[defaults]
dataset = "synthetic:heart"
num_classes = 3
repeats = 2
epochs = 3

[[study]]
id = "h"
metric = "best_val_dice_min"
test_fraction = 0.2
[[study.stage]]
name = "opt"
optimizer = ["adam", "sgd"]
"""


def _study(tmp_path):
    proj = tmp_path / "s"
    proj.mkdir()
    (proj / "experiments.toml").write_text(STUDY)
    names = {}
    for e in load_queue(proj).experiments:  # the study's first stage: adam and sgd, two repeats each
        key = f"heart-{e.config.optimizer}" + ("-r2" if e.repeat == 2 else "")
        names[key] = e.id
        dice, test = PER_CLASS[key]
        finish(proj, e.id, **summary_of(epoch_rows(dice), test), **end_keys(END[key]))
    return proj, names


def test_the_report_has_end_of_run_tables_final_scores_and_says_how_each_metric_aggregates(tmp_path):
    proj, names = _study(tmp_path)
    out = invoke("report", "h", "-p", str(proj), "--no-figures")
    assert out.exit_code == 0, out.output
    md = out.stdout
    # the metric that chose, in words
    assert "Metric `best_val_dice_min` (max)" in md
    assert "It chooses by best_val_dice_min, the best val Dice (worst class): higher is better; the lowest " \
           "foreground class's" in md
    # the stage's end-of-run table: mean ± sd (n) over the repeats; how each aggregates; the empty-case policy
    assert "End-of-run boundary metrics, on each run's best weights, NSD at 2 px (reported, never chosen by)" in md
    assert "Dice and IoU are pooled counts" in md
    assert "HD95 and NSD are computed at the end of a run on its best epoch's weights, per image, then the mean over " \
           "the images that scored" in md
    assert "left out of that class's mean" in md and "the image's diagonal and NSD 0; never NaN" in md
    assert "| optimizer | val HD95 (px) | val NSD | test HD95 (px) | test NSD |" in md
    adam = next(x for x in md.splitlines() if x.startswith("| adam | 3.50"))
    assert adam == "| adam | 3.50 ± 0.71 (n=2) | 0.7500 ± 0.0707 (n=2) | 4.75 ± 1.06 (n=2) | 0.7000 ± 0.0707 (n=2) |"
    # per class: the myocardium's mean over the one repeat with a score; the worst HD95 is the highest
    assert "worst is the highest HD95 and the lowest NSD" in md
    head = next(x for x in md.splitlines() if x.startswith("| optimizer | cavity (val HD95)"))
    assert head.split(" | ")[1:5] == ["cavity (val HD95)", "myocardium (val HD95)", "mean (val HD95)",
                                      "worst (val HD95)"]
    cells = next(x for x in md.splitlines() if x.startswith("| adam | 2.50")).split(" | ")
    assert cells[1:5] == ["2.50 ± 0.71 (n=2)", "6.00 (1 of 2 runs)", "3.50 ± 0.71 (n=2)", "4.50 ± 2.12 (n=2)"]
    # the final configuration's scores: val and test HD95 and NSD, never chosen by
    assert "- Validation best_val_dice_min (chose it, optimistic): 0.6500 ± 0.2121 (n=2)." in md
    assert ("- End-of-run boundary metrics, on each run's best weights (never used to choose; NSD at 2 px): "
            "val HD95 3.50 ± 0.71 px (n=2), val NSD 0.7500 ± 0.0707 (n=2), test HD95 4.75 ± 1.06 px (n=2), "
            "test NSD 0.7000 ± 0.0707 (n=2).") in md
    assert "- Held-out test HD95 per class: cavity 3.50 ± 0.71 (n=2), myocardium 8.00 (1 of 2 runs have a score), " \
           "worst 6.00 ± 2.83 (n=2)." in md
    assert "nan" not in md.replace("never NaN", "").lower()  # (the policy says so; no value is)

    show = invoke("study", "show", "h", "-p", str(proj))
    assert "study h: metric best_val_dice_min (max)" in show.stdout
    assert "chosen by best_val_dice_min, the best val Dice (worst class)" in show.stdout
    assert "val HD95 3.50 ± 0.71 px (n=2)" in show.stdout

    target = proj / "h.csv"
    assert invoke("report", "h", str(target), "--format", "csv", "-p", str(proj)).exit_code == 0
    rows = {r["id"]: r for r in _csv(target.read_text())}
    r2 = rows[names["heart-adam-r2"]]
    assert (r2["val_hd95"], r2["val_hd95_myocardium"], r2["val_hd95_max"], r2["test_nsd_min"]) == ("3.0", "", "3.0",
                                                                                                  "0.75")
    assert "nan" not in target.read_text().lower()


# ---- the TUI's Results tab -------------------------------------------------------------------------------------------
def test_results_tab_h_shows_hd95_and_nsd_sorted_with_the_lowest_hd95_first(heart):
    from unettui.tui.app import make_app
    from unettui.tui.widgets.results import ResultsPanel

    def cell(panel, key, column):
        return panel.shown.cells[key][panel.shown.columns.index(column)].plain

    async def go():
        app = make_app(heart, poll_interval=0.2)
        async with app.run_test(size=(220, 40)) as pilot:
            await pilot.press("2")
            panel = app.query_one(ResultsPanel)
            assert await wait_for(pilot, lambda: len(panel.shown.keys) == 3)
            panel.table.focus()
            await pilot.pause()
            assert "val_hd95" not in panel.shown.columns
            await pilot.press("h")
            assert await wait_for(pilot, lambda: "val_hd95" in panel.shown.columns)
            assert panel.shown.columns[-2:] == ("val_hd95", "val_nsd")
            assert str(panel.table.columns["val_hd95"].label).strip() == "val hd95"
            assert cell(panel, "heart-adam", "val_hd95") == "3.50±0.71(2)"
            assert cell(panel, "heart-adam", "val_nsd") == "0.7500±0.0707(2)"
            assert cell(panel, "bin", "val_hd95") == "1.50"
            # HD95: lower is better, so the first sort is ascending
            table = panel.table
            table.move_cursor(column=panel.shown.columns.index("val_hd95"), animate=False)
            await pilot.pause()
            await pilot.press("s")
            assert await wait_for(pilot, lambda: panel.sort_key == "val_hd95")
            assert not panel.sort_reverse and panel.shown.keys == ["bin", "heart-adam", "heart-sgd"]
            assert str(panel.table.columns["val_hd95"].label).startswith("val hd95 ▲")
            await pilot.press("k")  # with the per-class columns: each class's HD95 and NSD and the worst's
            assert await wait_for(pilot, lambda: "val_hd95_max" in panel.shown.columns)
            assert panel.shown.columns[-8:] == ("val_hd95", "val_nsd", "val_hd95_cavity", "val_hd95_myocardium",
                                                "val_hd95_max", "val_nsd_cavity", "val_nsd_myocardium", "val_nsd_min")
            assert cell(panel, "heart-adam", "val_hd95_myocardium") == "6.00(1)"
            assert cell(panel, "bin", "val_hd95_max") == "—"
            await pilot.press("c")  # one row per run: sorted by HD95 the run without one... has one (binary)
            assert await wait_for(pilot, lambda: len(panel.shown.keys) == 5)
            assert panel.shown.keys == ["bin", "heart-adam-r2", "heart-adam", "heart-sgd-r2", "heart-sgd"]
            assert [cell(panel, k, "val_hd95_myocardium") for k in panel.shown.keys] == [
                "—", "—", "6.00", "16.00", "20.00"]
            panel.set_filter("val_hd95_max<7")  # the filter knows the worst HD95's key
            await pilot.pause()
            assert panel.shown.keys == ["heart-adam-r2", "heart-adam"] and panel.filter_error is None
            panel.set_filter("val_hd95_min<7")
            await pilot.pause()
            assert "did you mean 'val_hd95_max'" in panel.filter_error
            panel.set_filter("hd95<2")
            await pilot.pause()
            assert panel.shown.keys == ["bin"]
            await pilot.press("h")
            assert await wait_for(pilot, lambda: "val_hd95" not in panel.shown.columns)

    asyncio.run(go())


# ---- a real run ------------------------------------------------------------------------------------------------------
REAL = """[defaults]
dataset = "synthetic:nuclei"
num_images = 12
image_size = 32
base_channels = 4
depth = 2
epochs = 2
batch_size = 4
test_fraction = 0.25
device = "cpu"

[[experiment]]
id = "tiny"
"""


@pytest.mark.usefixtures("one_thread")  # (a tiny model: one thread trains it fastest)
def test_a_real_run_fills_the_boundary_columns_from_its_summary(tmp_path):
    proj = tmp_path / "real"
    proj.mkdir()
    (proj / "experiments.toml").write_text(REAL)
    done = CliRunner().invoke(app, ["run", "--headless", "--plain", "-p", str(proj)])
    assert done.exit_code == 0, done.output
    summary = json.loads((proj / "runs" / "tiny" / "summary.json").read_text())
    row = next(r for r in collect_rows(load_queue(proj), RunStore(proj)) if r["id"] == "tiny")
    for key in BOUNDARY:
        assert isinstance(summary[key], float) and math.isfinite(summary[key])
        assert row[key] == summary[key]
    assert 0.0 <= summary["val_nsd"] <= 1.0 and summary["val_hd95"] >= 0.0
    out = invoke("export", "-p", str(proj))
    exported = _csv(out.stdout)[0]
    assert [float(exported[k]) for k in BOUNDARY] == [summary[k] for k in BOUNDARY]
    res = invoke("results", "-p", str(proj), "--boundary")
    cells = _table_rows(res.stdout)["tiny"]
    assert cells[-4:-2] == [f"{summary['val_hd95']:.2f}", f"{summary['val_nsd']:.4f}"]
    shown = invoke("show", "tiny", "-p", str(proj), "--ascii").stdout
    assert (f"validation: HD95 {summary['val_hd95']:.2f} ± {summary['val_hd95_sd']:.2f} px, NSD "
            f"{summary['val_nsd']:.4f}") in shown
    assert configuration_rows([row])[0]["val_hd95_n"] == 1
