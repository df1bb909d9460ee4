"""The results panel: rows keyed by run id, varying columns, sorting, filtering, grouping, CSV export."""

import asyncio
import csv
import time

from textual.app import App
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Input

from unettui.core.define.config import DEFAULTS
from unettui.core.runs.export import COLUMNS
from unettui.tui.data import RunView
from unettui.tui.messages import RunHighlighted
from unettui.tui.widgets.results import ResultsPanel

# id: (optimizer, scheduler, best_val_dice, best_epoch, final_val_dice, final_val_loss, seconds)
STUDY = {
    "adam-none": ("adam", "none", 0.8512, 17, 0.8470, 0.2104, 61.5),
    "adam-cosine": ("adam", "cosine", 0.8731, 20, 0.8731, 0.1932, 63.0),
    "rmsprop-none": ("rmsprop", "none", 0.8120, 15, 0.8011, 0.2488, 60.2),
    "rmsprop-cosine": ("rmsprop", "cosine", 0.8345, 19, 0.8302, 0.2301, 62.7),
    "sgd-none": ("sgd", "none", 0.3120, 20, 0.3120, 0.6905, 58.9),
    "sgd-cosine": ("sgd", "cosine", 0.2875, 18, 0.2799, 0.7012, 59.4),
}
BY_DICE = ["adam-cosine", "adam-none", "rmsprop-cosine", "rmsprop-none", "sgd-none", "sgd-cosine"]


def view(run_id, optimizer, scheduler, best, best_epoch, final_dice, final_loss, seconds, state="done", lr=1e-3):
    cfg = DEFAULTS.replace(optimizer=optimizer, scheduler=scheduler, lr=lr, epochs=20).to_dict()
    summary = {
        "best_val_dice": best, "best_epoch": best_epoch, "best_val_loss": final_loss - 0.01,
        "final_train_loss": final_loss - 0.05, "final_train_dice": final_dice + 0.02,
        "final_val_loss": final_loss, "final_val_dice": final_dice, "final_val_iou": final_dice - 0.1,
        "epochs_done": 20, "epochs": 20, "seconds": seconds, "val_on_train": False,
    }
    metrics = [{"epoch": e, "train_loss": 0.5, "train_dice": 0.5, "val_loss": 0.5, "val_dice": 0.5, "lr": lr, "seconds": 3.0}
               for e in range(1, 21)]
    return RunView(id=run_id, state=state, epoch=20, epochs=20, config=cfg, metrics=metrics, summary=summary)


def study_views():
    views = [view(i, *v) for i, v in STUDY.items()]
    views.append(RunView(id="queued", state="pending", config=views[0].config))  # no epoch yet: not shown
    return views


class Host(App):
    def __init__(self, project, views=None):
        super().__init__()
        self.project, self.views, self.highlighted = project, views, []

    def compose(self):
        yield ResultsPanel(self.project)

    def on_mount(self):
        if self.views is not None:
            self.query_one(ResultsPanel).update_runs(self.views)

    def on_run_highlighted(self, message: RunHighlighted):
        self.highlighted.append(message.run_id)


def run(project, body, views=None, size=(120, 40)):
    """Run ``body(pilot, panel, table)`` in a Host app showing the study's six runs."""

    async def main():
        app = Host(project, study_views() if views is None else views)
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            panel = app.query_one(ResultsPanel)
            table = panel.query_one("#results-table", DataTable)
            table.focus()
            await pilot.pause()
            await body(pilot, panel, table)

    asyncio.run(main())


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def order(table):
    return [str(r.key.value) for r in table.ordered_rows]


def column_keys(table):
    return [str(c.key.value) for c in table.ordered_columns]


def cell(table, run_id, key):
    return table.get_cell(run_id, key).plain


async def move_to_column(pilot, table, key):
    table.cursor_coordinate = Coordinate(table.cursor_row, column_keys(table).index(key))
    await pilot.pause()


def header_offset(table, key):
    """Where to click on a column's header, relative to the table."""
    x = 0
    for column in table.ordered_columns:
        if column.key.value == key:
            return (x + 2, 0)
        x += column.get_render_width(table)
    raise KeyError(key)


def test_rows_keyed_by_id_and_only_varying_columns(tmp_path):
    async def body(pilot, panel, table):
        assert order(table) == list(STUDY)  # the order given; the pending run is not shown
        assert column_keys(table) == ["mark", "id", "status", "optimizer", "scheduler", "best_val_dice", "best_epoch",
                                      "final_val_dice", "final_val_loss", "epochs_done", "seconds"]
        assert cell(table, "adam-cosine", "best_val_dice") == "0.8731"
        assert cell(table, "adam-cosine", "final_val_loss") == "0.1932"
        assert cell(table, "adam-cosine", "epochs_done") == "20/20"
        assert cell(table, "adam-cosine", "seconds") == "1m03s"
        assert cell(table, "sgd-none", "seconds") == "58.9s"
        assert panel.varying == ["optimizer", "scheduler"]
        assert table.cursor_type == "row" and table.zebra_stripes
        # the first row is highlighted and announced
        assert pilot.app.highlighted == ["adam-none"]
        await pilot.press("down")
        assert pilot.app.highlighted == ["adam-none", "adam-cosine"]

    run(tmp_path, body)


def test_sort_by_key_both_directions_missing_last(tmp_path):
    fresh = RunView(id="fresh", state="running", epoch=1, epochs=20, config=DEFAULTS.replace(epochs=20).to_dict(),
                    metrics=[{"epoch": 1, "train_loss": 0.9, "train_dice": 0.1, "val_loss": 0.9}])

    async def body(pilot, panel, table):
        await move_to_column(pilot, table, "best_val_dice")
        await pilot.press("s")  # Dice sorts best first
        assert (panel.sort_key, panel.sort_reverse) == ("best_val_dice", True)
        assert order(table) == BY_DICE + ["fresh"]
        assert panel.shown_ids == order(table)
        assert (cell(table, "fresh", "best_val_dice"), cell(table, "fresh", "epochs_done")) == ("", "1/20")
        assert table.columns["best_val_dice"].label.plain == "best dice ▼"
        await pilot.press("s")  # again: reversed, the run without a Dice still last
        assert order(table) == BY_DICE[::-1] + ["fresh"]
        assert table.columns["best_val_dice"].label.plain == "best dice ▲"
        await pilot.press("S")
        assert order(table) == BY_DICE + ["fresh"]
        await move_to_column(pilot, table, "final_val_loss")
        await pilot.press("s")  # other columns sort ascending first
        assert order(table) == ["adam-cosine", "adam-none", "rmsprop-cosine", "rmsprop-none", "sgd-none", "sgd-cosine", "fresh"]
        assert table.columns["best_val_dice"].label.plain == "best dice  "
        assert "sorted by final loss ▲" in str(panel.query_one("#results-status").render())

    run(tmp_path, body, views=study_views() + [fresh])


def test_left_right_choose_the_sort_column(tmp_path):
    async def body(pilot, panel, table):
        await pilot.press("right", "right", "s")  # id → status → optimizer
        assert panel.sort_key == "optimizer" and panel.sort_reverse is False
        assert order(table)[:2] == ["adam-none", "adam-cosine"]
        assert table.columns["optimizer"].label.spans  # the current column is marked

    run(tmp_path, body)


def test_click_header_sorts_and_clicking_again_reverses(tmp_path):
    async def body(pilot, panel, table):
        await pilot.click(table, offset=header_offset(table, "best_val_dice"))
        await pilot.pause()
        assert order(table) == BY_DICE
        await pilot.click(table, offset=header_offset(table, "best_val_dice"))
        await pilot.pause()
        assert order(table) == BY_DICE[::-1]
        # the message itself, as the app would see it from any header
        table.post_message(DataTable.HeaderSelected(table, table.columns["seconds"].key, 9, table.columns["seconds"].label))
        await pilot.pause()
        assert (panel.sort_key, panel.sort_reverse) == ("seconds", False)
        assert order(table) == ["sgd-none", "sgd-cosine", "rmsprop-none", "adam-none", "rmsprop-cosine", "adam-cosine"]

    run(tmp_path, body)


def test_filter_live_and_bad_filter_shows_message(tmp_path):
    async def body(pilot, panel, table):
        await pilot.press("slash")
        box = panel.query_one("#results-filter", Input)
        assert box.has_focus
        await pilot.press(*"optimizer=adam")
        await pilot.pause()
        assert order(table) == ["adam-none", "adam-cosine"]
        box.value = "val_dice>0.8"
        await pilot.pause()
        assert order(table) == ["adam-none", "adam-cosine", "rmsprop-none", "rmsprop-cosine"]
        box.value = "optimiser=sgd"
        await pilot.pause()
        status = str(panel.query_one("#results-status").render())
        assert "unknown filter key 'optimiser': did you mean 'optimizer'?" in status
        assert panel.filter_error and panel.query_one("#results-status").has_class("-error")
        assert order(table) == ["adam-none", "adam-cosine", "rmsprop-none", "rmsprop-cosine"]  # last good filter
        await pilot.press("escape")
        await pilot.pause()
        assert box.value == "" and panel.filter_error is None and order(table) == list(STUDY)
        assert table.has_focus
        assert not panel.check_action("clear_filter", ())  # nothing to clear: escape goes on to the app

    run(tmp_path, body)


def test_group_by_scheduler_shows_means(tmp_path):
    async def body(pilot, panel, table):
        groups = panel.query_one("#results-groups", DataTable)
        assert not groups.display
        await pilot.press("g")
        assert panel.group_key == "optimizer"
        await pilot.press("g")
        assert panel.group_key == "scheduler" and groups.display
        rows = [[c.plain for c in groups.get_row_at(i)] for i in range(groups.row_count)]
        assert rows == [["cosine", "3", "0.6650", "0.3748"], ["none", "3", "0.6584", "0.3832"]]
        assert [str(c.label) for c in groups.ordered_columns] == ["scheduler", "n", "mean best dice", "mean final loss"]
        # the means follow the filter
        panel.set_filter("optimizer!=sgd")
        await pilot.pause()
        assert panel.query_one("#results-filter", Input).value == "optimizer!=sgd"  # the box shows it
        rows = [[c.plain for c in groups.get_row_at(i)] for i in range(groups.row_count)]
        assert rows == [["cosine", "2", "0.8538", "0.2117"], ["none", "2", "0.8316", "0.2296"]]
        await pilot.press("g")
        assert panel.group_key is None and not groups.display

    run(tmp_path, body)


def test_export_writes_exactly_the_rows_shown(tmp_path):
    async def body(pilot, panel, table):
        panel.set_filter("val_dice>0.8")
        panel.sort_by("best_val_dice")
        await pilot.pause()
        await pilot.press("x")
        await pilot.pause()
        dialog_input = pilot.app.screen.query_one("#export-path", Input)
        assert dialog_input.value == "results.csv"
        dialog_input.value = "out/study.csv"
        (tmp_path / "out").mkdir()
        await pilot.press("enter")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        rows = read_csv(tmp_path / "out" / "study.csv")
        assert [r["id"] for r in rows] == ["adam-cosine", "adam-none", "rmsprop-cosine", "rmsprop-none"]
        assert tuple(rows[0]) == COLUMNS
        assert rows[0]["best_val_dice"] == "0.8731" and rows[0]["optimizer"] == "adam" and rows[0]["lr"] == "0.001"
        assert any("wrote 4 rows to" in n.message for n in pilot.app._notifications)
        # a folder that does not exist: an error notification, no crash
        panel.export_csv(tmp_path / "missing" / "x.csv")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        assert any(n.severity == "error" and "could not write" in n.message for n in pilot.app._notifications)

    run(tmp_path, body)


def test_update_runs_updates_cells_in_place_and_keeps_sort_and_cursor(tmp_path):
    async def body(pilot, panel, table):
        panel.sort_by("best_val_dice")
        await pilot.pause()
        table.move_cursor(row=order(table).index("rmsprop-none"))
        await pilot.pause()
        rows_before = set(table.rows)
        views = study_views()
        views[4] = view("sgd-none", "sgd", "none", 0.9050, 20, 0.9050, 0.1500, 75.0)  # sgd-none got better
        panel.update_runs(views)
        await pilot.pause()
        assert set(table.rows) == rows_before  # same row keys: updated, not rebuilt
        assert cell(table, "sgd-none", "best_val_dice") == "0.9050"
        assert cell(table, "sgd-none", "seconds") == "1m15s"
        assert order(table) == ["sgd-none", "adam-cosine", "adam-none", "rmsprop-cosine", "rmsprop-none", "sgd-cosine"]
        assert table.columns["best_val_dice"].label.plain == "best dice ▼"
        assert order(table)[table.cursor_row] == "rmsprop-none"  # the cursor followed its run
        # the same data again (a poll with nothing new): no cell is touched
        updates = []
        original = table.update_cell
        table.update_cell = lambda *a, **k: (updates.append(a), original(*a, **k))
        panel.update_runs(views)
        await pilot.pause()
        assert updates == []
        views[0] = view("adam-none", "adam", "none", 0.8512, 17, 0.8470, 0.2104, 65.0)
        panel.update_runs(views)
        assert updates == [("adam-none", "seconds", updates[0][2])] and updates[0][2].plain == "1m05s"
        del table.update_cell
        # a new run with a new learning rate: an lr column appears; a run going away removes its row
        views = views[1:] + [view("adam-lr4", "adam", "none", 0.7000, 12, 0.6900, 0.3300, 40.0, state="running", lr=1e-4)]
        panel.update_runs(views)
        await pilot.pause()
        assert "lr" in column_keys(table) and panel.varying == ["optimizer", "lr", "scheduler"]
        assert cell(table, "adam-lr4", "lr") == "0.0001" and cell(table, "adam-lr4", "status") == "running"
        assert "adam-none" not in order(table)
        assert order(table) == ["sgd-none", "adam-cosine", "rmsprop-cosine", "rmsprop-none", "adam-lr4", "sgd-cosine"]
        assert order(table)[table.cursor_row] == "rmsprop-none"

    run(tmp_path, body)


def test_usable_at_80x24(tmp_path):
    async def body(pilot, panel, table):
        assert table.size.width <= 80 and table.size.height >= 10
        assert table.virtual_size.width > table.size.width  # scrolls horizontally instead of overflowing
        for _ in range(len(table.columns)):
            await pilot.press("right")
        assert panel._current_column() == "seconds" and table.scroll_x > 0

    started = time.perf_counter()
    run(tmp_path, body, size=(80, 24))
    assert time.perf_counter() - started < 10


def test_a_new_view_with_the_same_row_changes_nothing_and_a_new_summary_does(tmp_path):
    """The selected run's view comes again once its curves are read: its row is the same, so the table is neither
    computed nor drawn again (with 10,000 runs every key that moved the selection did both)."""
    import dataclasses

    async def body(pilot, panel, table):
        views = study_views()
        shown = panel.shown
        model = panel.model
        assert model.same_rows(views)
        again = [dataclasses.replace(v, metrics=v.metrics + [dict(v.metrics[-1], epoch=21)]) if v.id == "adam-none"
                 else v for v in views]  # (a longer curve, the same summary: the same row)
        assert model.same_rows(again)
        panel.update_runs(again)
        await pilot.pause()
        assert panel.shown is shown and model.shown() is shown
        moved = [view("adam-none", "adam", "none", 0.9000, 18, 0.8470, 0.2104, 61.5) if v.id == "adam-none" else v
                 for v in again]
        assert not model.same_rows(moved) and not model.same_rows(list(reversed(again)))
        panel.update_runs(moved)
        await pilot.pause()
        assert panel.shown is not shown and cell(table, "adam-none", "best_val_dice") == "0.9000"
        assert order(table)[0] == "adam-none"  # sorted by best val dice: first now

    run(tmp_path, body)


def test_workers_are_described_without_their_arguments(tmp_path):
    """Textual describes a worker by the repr of its arguments unless told: the results table's worker got the list
    of every run's view, and the repr of 10,000 views took seconds on the UI thread at each poll."""
    calls = []
    real = RunView.__repr__
    RunView.__repr__ = lambda self: calls.append(self.id) or real(self)
    try:
        async def body(pilot, panel, table):
            views = study_views()
            import unettui.tui.widgets.results as results
            old, results.IN_WORKER = results.IN_WORKER, 0  # (a worker from IN_WORKER runs on)
            try:
                moved = [view("adam-none", "adam", "none", 0.9000, 18, 0.8470, 0.2104, 61.5)] + views[1:]
                panel.update_runs(moved)
                for _ in range(50):
                    await pilot.pause(0.02)
                    if cell(table, "adam-none", "best_val_dice") == "0.9000":
                        break
                assert cell(table, "adam-none", "best_val_dice") == "0.9000"  # computed in a worker
                assert [w.description for w in panel.app.workers if w.group == "results-compute"] in ([], [
                    "computing the results table"])
            finally:
                results.IN_WORKER = old

        run(tmp_path, body)
    finally:
        RunView.__repr__ = real
    assert calls == []


def test_a_large_table_computed_anew_is_moved_out_of_the_collectors_way(tmp_path, monkeypatch):
    """The rows and cells of 10,000 runs live as long as the table shows them: frozen (gc.freeze), a full collection
    no longer walks them (one took 150 ms in the middle of keys moving through the table)."""
    import gc

    import unettui.tui.widgets.results as results

    monkeypatch.setattr(results, "FREEZE_ROWS", 3)  # (the six runs of the study stand for 10,000)

    async def body(pilot, panel, table):
        gc.unfreeze()
        panel.update_runs([view("adam-none", "adam", "none", 0.9000, 18, 0.8470, 0.2104, 61.5)] + study_views()[1:])
        await pilot.pause()
        assert cell(table, "adam-none", "best_val_dice") == "0.9000"
        one_row = gc.get_freeze_count()  # one row drawn anew: nothing frozen (young garbage would stay, frozen)
        panel.sort_by("final_val_loss")  # the same cells in another order: nothing frozen either
        await pilot.pause()
        sorted_again = gc.get_freeze_count()
        panel.set_by_configuration(True)  # every row drawn anew (per configuration)
        await pilot.pause()
        frozen = gc.get_freeze_count()
        gc.unfreeze()
        assert one_row == sorted_again == 0 and frozen > 1000

    try:
        run(tmp_path, body)
    finally:
        gc.unfreeze()
