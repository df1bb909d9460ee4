"""The Results tab with multi-class runs (hand-written in the trainers' format: tests/per_class_runs.py), in the real
app driven by Textual's pilot: per-class columns on demand (k), "—" for a class without a score and its reason on the
status line, sorting with rows without a value last in both directions, the filter's per-class keys, the CSV export."""

from __future__ import annotations

import asyncio
import csv

from tests.per_class_runs import NO_VAL, heart_project
from tests.tui.fixtures import seeded_project, wait_for
from unettui.tui.app import make_app
from unettui.tui.widgets.results import ResultsPanel

CLASS_COLUMNS = ("best_val_dice_cavity", "best_val_dice_myocardium", "best_val_dice_min")


def cell(panel: ResultsPanel, key: str, column: str) -> str:
    return panel.shown.cells[key][panel.shown.columns.index(column)].plain


def column_texts(panel: ResultsPanel, column: str) -> list[str]:
    return [cell(panel, k, column) for k in panel.shown.keys]


async def put_cursor(pilot, panel: ResultsPanel, column: str, key: str | None = None) -> None:
    table = panel.table
    row = panel.shown.keys.index(key) if key is not None else table.cursor_row
    table.move_cursor(row=row, column=panel.shown.columns.index(column), animate=False)
    await pilot.pause()


def test_results_tab_per_class_columns_sorted_with_missing_last(tmp_path):
    proj = heart_project(tmp_path / "heart")

    async def go():
        app = make_app(proj, poll_interval=0.2)
        async with app.run_test(size=(200, 40)) as pilot:
            await pilot.press("2")
            panel = app.query_one(ResultsPanel)
            assert await wait_for(pilot, lambda: len(panel.shown.keys) == 3)  # two configurations and the binary run
            panel.table.focus()
            await pilot.pause()
            assert panel.grouped and not any(c in panel.shown.columns for c in CLASS_COLUMNS)
            assert panel.shown.classes == ["cavity", "myocardium"]

            await pilot.press("k")  # per-class columns, on demand
            assert await wait_for(pilot, lambda: all(c in panel.shown.columns for c in CLASS_COLUMNS))
            assert panel.shown.columns[-3:] == CLASS_COLUMNS
            assert [str(panel.table.columns[c].label).strip() for c in CLASS_COLUMNS] == [
                "best dice cavity", "best dice myocardium", "best dice min"]
            # heart-adam: cavity 0.9 and 0.8 over its repeats; myocardium only heart-adam's 0.5 (its repeat has none)
            assert cell(panel, "heart-adam", "best_val_dice_cavity") == "0.8500±0.0707(2)"
            assert cell(panel, "heart-adam", "best_val_dice_myocardium") == "0.5000(1)"
            assert cell(panel, "heart-sgd", "best_val_dice_min") == "0.1500±0.0707(2)"
            assert [cell(panel, "bin", c) for c in CLASS_COLUMNS] == ["—"] * 3  # a binary run: no classes

            # sorting by a class: higher is better, so descending first; rows without a value last either way
            await put_cursor(pilot, panel, "best_val_dice_myocardium")
            await pilot.press("s")
            assert await wait_for(pilot, lambda: panel.sort_key == "best_val_dice_myocardium")
            assert panel.sort_reverse and panel.shown.keys == ["heart-adam", "heart-sgd", "bin"]
            await pilot.press("s")
            assert await wait_for(pilot, lambda: not panel.sort_reverse)
            assert panel.shown.keys == ["heart-sgd", "heart-adam", "bin"]
            assert str(panel.table.columns["best_val_dice_myocardium"].label).startswith("best dice myocardium ▲")

            await pilot.press("c")  # one row per run
            assert await wait_for(pilot, lambda: len(panel.shown.keys) == 5)
            assert panel.shown.keys == ["heart-sgd", "heart-sgd-r2", "heart-adam", "heart-adam-r2", "bin"]
            assert column_texts(panel, "best_val_dice_myocardium") == ["0.1000", "0.2000", "0.5000", "—", "—"]
            await pilot.press("s")
            assert await wait_for(pilot, lambda: panel.sort_reverse)
            assert panel.shown.keys == ["heart-adam", "heart-sgd-r2", "heart-sgd", "heart-adam-r2", "bin"]

            # the reason of a "—" under the cursor, on the status line
            await put_cursor(pilot, panel, "best_val_dice_myocardium", "heart-adam-r2")
            status = str(panel.query_one("#results-status").render())
            assert f"— best dice myocardium: {NO_VAL}" in status
            assert panel.no_score_here() == f"— best dice myocardium: {NO_VAL}"
            await put_cursor(pilot, panel, "best_val_dice_cavity", "heart-adam-r2")
            assert panel.no_score_here() is None

            # the filter takes per-class keys (val_dice_<class> is best_val_dice_<class>, as val_dice is)
            panel.set_filter("val_dice_myocardium>0.15")
            await pilot.pause()
            assert panel.shown.keys == ["heart-adam", "heart-sgd-r2"] and panel.filter_error is None
            panel.set_filter("best_val_dice_min<0.5")
            await pilot.pause()
            assert panel.shown.keys == ["heart-sgd-r2", "heart-sgd"]
            panel.set_filter("best_val_dice_aorta>0")
            await pilot.pause()
            assert "unknown class 'aorta'" in panel.filter_error and "cavity, myocardium" in panel.filter_error
            panel.set_filter("")
            await pilot.pause()

            panel.export_csv("shown.csv")
            assert await wait_for(pilot, lambda: (proj / "shown.csv").exists())
            rows = {r["id"]: r for r in csv.DictReader((proj / "shown.csv").open())}
            assert rows["heart-adam-r2"]["best_val_dice_myocardium"] == "" and rows["heart-sgd"]["test_dice_min"] == "0.05"
            assert "nan" not in (proj / "shown.csv").read_text().lower()

            await pilot.press("k")  # and hidden again
            assert await wait_for(pilot, lambda: not any(c in panel.shown.columns for c in CLASS_COLUMNS))

    asyncio.run(go())


def test_k_on_a_binary_project_says_there_are_no_classes(tmp_path):
    proj = seeded_project(tmp_path / "p")

    async def go():
        app = make_app(proj, poll_interval=0.2)
        async with app.run_test(size=(160, 40)) as pilot:
            await pilot.press("2")
            panel = app.query_one(ResultsPanel)
            assert await wait_for(pilot, lambda: len(panel.shown.keys) == 6)
            panel.table.focus()
            columns = panel.shown.columns
            await pilot.press("k")
            await pilot.pause()
            assert not panel.class_columns and panel.shown.columns == columns
            assert any("no multi-class runs" in str(n.message) for n in app._notifications)
            panel.set_filter("best_val_dice_min>0")
            await pilot.pause()
            assert "no run here has classes" in panel.filter_error

    asyncio.run(go())


def test_the_compare_tab_steps_through_each_class_of_the_marked_runs(tmp_path):
    from unettui.core.plan import load_queue
    from unettui.core.runs.status import collect
    from unettui.core.runs.store import RunStore
    from unettui.tui.widgets.compare import MODES, CompareView, draw

    proj = heart_project(tmp_path / "heart")
    rows = {r.id: r for r in collect(load_queue(proj), RunStore(proj), metrics=True)}
    view = CompareView(colour=False)
    view.rows = [rows["bin"]]
    assert view.modes() == MODES == ("all", "val_dice", "val_loss", "train_loss")  # binary: no class to step to
    view.rows = [rows["heart-adam"], rows["heart-adam-r2"], rows["bin"]]
    assert view.modes() == (*MODES, "val_dice_cavity", "val_dice_myocardium", "val_dice_min")
    for _ in range(len(MODES) + 1):
        view.action_step_metric()
    assert view.mode == "val_dice_myocardium"
    d = draw(view.rows, 100, 30, ascii=True, each=True, mode="val_dice_myocardium")
    assert d.metrics == ("val_dice_myocardium",)
    assert "val Dice myocardium" in "\n".join("".join(t for t, *_ in row) for row in d.left)
    notes = [s.note for s in d.comparison.series]
    assert notes[0].endswith("best 0.5 at epoch 3") and notes[1].endswith("no val_dice_myocardium in its epochs")
