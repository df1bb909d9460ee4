"""The Compare tab: runs marked with space in Queue, Results (M: every run the filter shows) or a stage's configurations
overlay their curves, labelled by the keys that differ; epochs written while the app runs arrive; ASCII with NO_COLOR;
repeats as one mean curve with its spread. And Results / Studies per configuration: mean ± sd (n)."""

from __future__ import annotations

import asyncio

import pytest
from textual.widgets import Static, TabbedContent

from tests.tui.fixtures import (
    metric_rows,
    repeats_project,
    repeats_study_project,
    seeded_project,
    select,
    wait_for,
    write_run,
)
from unettui.core.define.config import Config
from unettui.core.runs.store import RunStore, append_jsonl
from unettui.core.show.curves import ASCII_MARKERS, plain
from unettui.tui.app import make_app
from unettui.tui.widgets.compare import CompareView, layout
from unettui.tui.widgets.queue import QueuePanel
from unettui.tui.widgets.results import ResultsPanel
from unettui.tui.widgets.study import StudyPanel


def run(coro):
    return asyncio.run(coro)


def labels(view: CompareView) -> list[str]:
    return [s.label for s in view.drawing.comparison.series]


def shown_text(view: CompareView) -> str:
    return "\n".join(str(view.query_one(f"#compare-{part}", Static).render()) for part in ("title", "left", "legend"))


def test_marking_in_queue_results_and_filter_then_comparing(tmp_path, monkeypatch):
    """space in Queue marks the selected experiment, space in Results the highlighted run, M every run the filter shows;
    the Compare tab (5) overlays them all, each named by the keys that differ and only those."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    proj = seeded_project(tmp_path / "p")

    async def go():
        app = make_app(proj, poll_interval=0.2)
        async with app.run_test(size=(160, 45)) as pilot:
            queue = app.query_one(QueuePanel)
            assert await wait_for(pilot, lambda: queue.row_count == 7)
            await select(pilot, app, "opt-adam-none")
            await pilot.press("space")
            assert app.marked == ["opt-adam-none"]
            assert queue.get_cell("opt-adam-none", "mark").plain == "●"
            await pilot.press("2")
            results = app.query_one(ResultsPanel)
            assert await wait_for(pilot, lambda: len(results.shown_ids) == 6)
            assert results.table.get_cell("opt-adam-none", "mark").plain == "●"  # one set of marks, every table
            results.set_filter("optimizer=sgd")
            results.table.focus()
            await pilot.pause()
            await pilot.press("M")  # every run the filter shows
            assert app.marked == ["opt-adam-none", "opt-sgd-none", "opt-sgd-plateau"]
            await pilot.press("5")
            view = app.query_one(CompareView)
            assert app.query_one(TabbedContent).active == "compare"
            assert await wait_for(pilot, lambda: view.drawing is not None and len(view.drawing.comparison.series) == 3)
            # they differ in optimizer and scheduler: both name each curve, nothing else does (no id, no lr)
            assert labels(view) == ["optimizer=adam, scheduler=none", "optimizer=sgd, scheduler=none",
                                    "optimizer=sgd, scheduler=plateau"]
            assert view.drawing.comparison.varied == ["optimizer", "scheduler"]
            # at 160 x 45: val Dice on the left, the two losses on the right
            assert view.drawing.metrics == ("val_dice", "val_loss", "train_loss")
            text = shown_text(view)
            assert "3 runs; they differ in optimizer, scheduler" in text and "val Dice per epoch" in text
            # M again: all shown are marked, so they are unmarked; u in Compare clears the rest
            await pilot.press("2")
            results.table.focus()
            await pilot.press("M")
            assert app.marked == ["opt-adam-none"]
            await pilot.press("5", "u")
            assert app.marked == [] and await wait_for(pilot, lambda: view.drawing is None)
            assert "Nothing is marked" in str(view.query_one("#compare-hint", Static).render())

    run(go())


def test_the_legend_names_only_the_keys_that_differ(tmp_path, monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    proj = seeded_project(tmp_path / "p")

    async def go():
        app = make_app(proj, poll_interval=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            assert await wait_for(pilot, lambda: app.query_one(QueuePanel).row_count == 7)
            for run_id in ("opt-adam-plateau", "opt-sgd-plateau", "opt-rmsprop-plateau"):
                await select(pilot, app, run_id)
                await pilot.press("space")
            await pilot.press("5")
            view = app.query_one(CompareView)
            assert await wait_for(pilot, lambda: view.drawing is not None and len(labels(view)) == 3)
            assert labels(view) == ["optimizer=adam", "optimizer=sgd", "optimizer=rmsprop"]  # the same scheduler
            legend = plain(view.drawing.legend)
            assert all("scheduler" not in line for line in legend)
            assert legend[0].startswith("  ●⠒ optimizer=adam   opt-adam-plateau  done  best 0.85")

    run(go())


def test_an_epoch_written_while_the_app_runs_reaches_the_comparison(tmp_path, monkeypatch):
    """A marked run that trains (its claim alive): a metrics line appended to it shows up in the drawn curves."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    proj = seeded_project(tmp_path / "p")
    cfg = Config(dataset="synthetic:nuclei", num_images=16, image_size=32, base_channels=4, depth=2, epochs=4,
                 batch_size=4)
    write_run(proj, "base", cfg, metric_rows(0.6, 4)[:2], state="running", epochs=4)
    metrics = RunStore(proj).run("base").file("metrics.jsonl")

    async def go():
        app = make_app(proj, poll_interval=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            assert await wait_for(pilot, lambda: app.views.get("base") is not None
                                  and app.views["base"].state.value == "running")
            for run_id in ("opt-adam-none", "base"):
                await select(pilot, app, run_id)
                await pilot.press("space")
            await pilot.press("5")
            view = app.query_one(CompareView)

            def epochs_of_base() -> int:
                d = view.drawing
                return 0 if d is None else len(d.comparison.series[1].points)

            assert await wait_for(pilot, lambda: epochs_of_base() == 2)
            append_jsonl(metrics, {**metric_rows(0.6, 4)[2], "val_dice": 0.9})
            assert await wait_for(pilot, lambda: epochs_of_base() == 3)
            assert view.drawing.comparison.series[1].points[-1] == (3.0, 0.9)
            assert "best 0.9 at epoch 3" in plain(view.drawing.legend)[1]

    run(go())


def test_ascii_mode_with_no_color(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    proj = seeded_project(tmp_path / "p")

    async def go():
        app = make_app(proj, poll_interval=0.2)
        async with app.run_test(size=(100, 40)) as pilot:
            assert await wait_for(pilot, lambda: app.query_one(QueuePanel).row_count == 7)
            for run_id in ("opt-adam-none", "opt-sgd-none"):
                await select(pilot, app, run_id)
                await pilot.press("space")
            await pilot.press("5")
            view = app.query_one(CompareView)
            assert not view.colour
            assert await wait_for(pilot, lambda: view.drawing is not None)
            text = shown_text(view)
            assert text.isascii() and "|" in text and "+--" in text
            assert f"{ASCII_MARKERS[0]}  optimizer=adam" in text and f"{ASCII_MARKERS[1]}  optimizer=sgd" in text
            # c: colour (braille dots and markers) and back
            await pilot.press("c")
            assert await wait_for(pilot, lambda: not shown_text(view).isascii())
            await pilot.press("c")
            assert await wait_for(pilot, lambda: shown_text(view).isascii())

    run(go())


def test_repeats_compare_as_one_mean_curve_with_their_spread(tmp_path, monkeypatch):
    """Marking a configuration's row in Results marks its three repeats; they are drawn as one curve (their mean), with
    a band, and g draws each run instead."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    proj = repeats_project(tmp_path / "p")

    async def go():
        app = make_app(proj, poll_interval=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            assert await wait_for(pilot, lambda: app.query_one(QueuePanel).row_count == 7)
            await pilot.press("2")
            results = app.query_one(ResultsPanel)
            assert await wait_for(pilot, lambda: results.shown_ids == ["adam", "sgd", "rms"])
            await pilot.press("space", "down", "space")  # adam's and sgd's configurations
            assert app.marked == ["adam", "adam-r2", "adam-r3", "sgd", "sgd-r2", "sgd-r3"]
            await pilot.press("5")
            view = app.query_one(CompareView)
            assert await wait_for(pilot, lambda: view.drawing is not None and len(labels(view)) == 2)
            adam = view.drawing.comparison.series[0]
            assert adam.label == "optimizer=adam" and adam.band
            assert adam.points[-1] == (4.0, pytest.approx(0.8))  # the mean of 0.80, 0.82, 0.78 at the last epoch
            assert adam.band[-1] == (4.0, 0.78, 0.82)
            assert "best 0.8000 ± 0.0200 (n=3)" in adam.note
            assert "6 runs in 2 configurations" in shown_text(view)
            await pilot.press("g")
            assert await wait_for(pilot, lambda: len(labels(view)) == 6)

    run(go())


def test_results_per_configuration_mean_sd_n_and_per_run(tmp_path):
    proj = repeats_project(tmp_path / "p")

    async def go():
        app = make_app(proj, poll_interval=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            assert await wait_for(pilot, lambda: app.query_one(QueuePanel).row_count == 7)
            await pilot.press("2")
            results = app.query_one(ResultsPanel)
            table = results.table
            assert await wait_for(pilot, lambda: results.shown_ids == ["adam", "sgd", "rms"])
            assert results.grouped
            assert table.get_cell("adam", "best_val_dice").plain == "0.8000±0.0200(3)"
            assert table.get_cell("sgd", "best_val_dice").plain == "0.4000±0.0500(3)"
            assert table.get_cell("rms", "best_val_dice").plain == "0.7000"  # a single run: its value
            assert table.get_cell("adam", "status").plain == "done ×3"
            assert "seed" not in results.varying and "repeats" not in results.varying
            assert "3 of 3 configurations · mean ± sd (n) over repeats" in str(
                results.query_one("#results-status", Static).render())
            # sorted by the mean, the filter on the mean
            results.sort_by("best_val_dice")
            await pilot.pause()
            assert results.shown_ids == ["adam", "rms", "sgd"]
            results.set_filter("val_dice>0.75")
            await pilot.pause()
            assert results.shown_ids == ["adam"]
            results.set_filter("")
            # the highlighted configuration's first run is the selected one (its curves, its preview)
            table.focus()
            table.move_cursor(row=results.shown_ids.index("sgd"))
            await pilot.pause()
            assert app.selected == "sgd"
            # c: one row per run
            await pilot.press("c")
            assert await wait_for(pilot, lambda: len(results.shown_ids) == 7)
            assert not results.grouped and table.get_cell("adam-r2", "best_val_dice").plain == "0.8200"
            await pilot.press("c")
            assert await wait_for(pilot, lambda: results.grouped)

    run(go())


def test_studies_show_sd_and_n_beside_each_score_and_a_tie_within_noise(tmp_path):
    proj = repeats_study_project(tmp_path / "p")

    async def go():
        app = make_app(proj, poll_interval=0.2)
        async with app.run_test(size=(120, 36)) as pilot:
            assert await wait_for(pilot, lambda: app.monitor.complete and len(app.views) >= 12)
            await pilot.press("4")
            panel = app.query_one(StudyPanel)
            assert await wait_for(pilot, lambda: panel.stage_table.row_count == 2)
            stages = [[c.plain for c in panel.stage_table.get_row_at(i)] for i in range(2)]
            assert stages[0][-1] == "lr=0.001 (tie within noise)"
            panel.stage_table.focus()
            panel.stage_table.move_cursor(row=0)
            await pilot.pause()
            configs = panel.config_table
            labels = [str(c.label) for c in configs.ordered_columns]
            assert labels == [" ", "lr", "best_val_dice", "mean", "± sd", "n", "spread", "note"]
            rows = {configs.get_row_at(i)[1].plain: [c.plain for c in configs.get_row_at(i)] for i in range(2)}
            assert rows["0.001"][2:6] == ["0.7000", "0.7000", "0.0500", "3"]
            assert rows["0.01"][2:6] == ["0.7200", "0.7200", "0.0600", "3"]
            notes = str(panel.query_one("#study-notes", Static).render())
            assert "winner: lr=0.001 (tie within noise:" in notes
            # space on a configuration marks its three repeats
            await pilot.press("enter")
            configs.move_cursor(row=1, column=1)
            await pilot.press("space")
            assert app.marked == ["opt-lr-lr0.01", "opt-lr-lr0.01-r2", "opt-lr-lr0.01-r3"]
            assert configs.get_row_at(1)[0].plain == " ●"

    run(go())


def test_layout_uses_the_room_it_has():
    # wide and tall: val Dice left, the losses right; narrow: stacked; small: one metric (m steps through them)
    places, width = layout(160, 40, 4, "all")
    assert [(m, col) for m, col, _ in places] == [("val_dice", 0), ("val_loss", 1), ("train_loss", 1)] and width == 79
    places, width = layout(100, 40, 4, "all")
    assert [m for m, _, _ in places] == ["val_dice", "val_loss", "train_loss"] and {c for _, c, _ in places} == {0}
    assert [m for m, _, _ in layout(80, 20, 4, "all")[0]] == ["val_dice"]
    assert [m for m, _, _ in layout(80, 20, 4, "val_loss")[0]] == ["val_loss"]
