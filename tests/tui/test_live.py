"""LivePanel: curves, latest numbers, progress and ETA of the selected run, updated in place."""

import asyncio
import math

from textual.app import App
from textual.widgets import ProgressBar, Static

from unettui.tui.data import RunView
from unettui.tui.widgets.live import LivePanel, duration


def _metrics(n: int) -> list[dict]:
    return [{"epoch": e, "train_loss": 1.0 / e, "train_dice": 0.1 * e, "val_loss": 1.2 / e, "val_dice": 0.15 * e,
             "val_iou": 0.1 * e, "lr": 1e-3 * 0.5 ** (e - 1), "seconds": 13.0} for e in range(1, n + 1)]


def _view(n: int, state: str = "running", **kw) -> RunView:
    return RunView(id="lr-3e-4", state=state, epoch=n, epochs=10, attempt=1, metrics=_metrics(n), **kw)


class Host(App):
    def compose(self):
        yield LivePanel()


class Counted(Host):
    """Host that counts the screen's layouts (``layouts``: one entry per layout)."""

    def on_mount(self) -> None:
        self.layouts: list[int] = []
        real = self.screen._refresh_layout
        self.screen._refresh_layout = lambda *a, **k: self.layouts.append(1) or real(*a, **k)


def _text(widget: Static) -> str:
    return str(widget.render())


def _screen_text(app: App) -> str:
    """The text of every Static on screen (itself and its parents displayed)."""
    def shown(w) -> bool:
        return all(n.display for n in [w, *w.ancestors_with_self] if hasattr(n, "display"))
    return "\n".join(_text(w) for w in app.query(Static) if shown(w))


def test_duration_formats_whole_seconds():
    assert duration(5.4) == "5s"
    assert duration(65) == "1m05s"
    assert duration(2 * 3600 + 3 * 60) == "2h03m"
    assert duration(None) == "-" and duration(math.nan) == "-"


def test_live_panel_shows_curves_numbers_and_eta_and_updates_in_place():
    async def main():
        app = Host()
        async with app.run_test(size=(100, 30)) as pilot:
            panel = app.query_one(LivePanel)
            assert "select an experiment" in _screen_text(app)

            panel.show_run(_view(5))
            await pilot.pause()
            sparks = {k: s for k, s in panel.sparklines.items()}
            children = list(panel.query("*"))
            assert sparks["val_dice"].data == [r["val_dice"] for r in _metrics(5)]
            assert sparks["train_loss"].data == [r["train_loss"] for r in _metrics(5)]
            text = _screen_text(app)
            assert "lr-3e-4" in text and "running" in text and "attempt 1" in text
            assert "epoch 5/10" in text
            assert "ETA 1m05s" in text  # 5 epochs left x 13 s
            assert _text(panel.values["val_dice"]) == f"{0.75:.4f}"
            assert str(panel.values["val_dice"].tooltip) == f"latest 0.7500; lowest {0.15:.4f}, highest {0.75:.4f}"
            assert "best val dice 0.7500 at epoch 5" in text
            bar = app.query_one(ProgressBar)
            assert (bar.progress, bar.total) == (5, 10)
            old_data = sparks["val_dice"].data

            panel.show_run(_view(6))
            await pilot.pause()
            assert list(panel.query("*")) == children  # same widgets, updated in place
            assert {k: s for k, s in panel.sparklines.items()} == sparks
            assert sparks["val_dice"].data == [r["val_dice"] for r in _metrics(6)]
            assert sparks["val_dice"].data is not old_data
            assert "epoch 6/10" in _screen_text(app) and "ETA 52s" in _screen_text(app)
            assert bar.progress == 6

            same = sparks["val_dice"].data
            panel.show_run(_view(6))  # a new view with the same metrics: the curves are not reassigned
            await pilot.pause()
            assert sparks["val_dice"].data is same

    asyncio.run(main())


def test_live_panel_states():
    async def main():
        app = Host()
        async with app.run_test(size=(80, 24)) as pilot:
            panel = app.query_one(LivePanel)
            panel.show_run(RunView(id="a", state="pending", epochs=4))
            await pilot.pause()
            text = _screen_text(app)
            assert "not started yet" in text and "ETA" not in text
            assert not any(s.parent.display for s in panel.sparklines.values())

            diverged = _metrics(3)
            diverged[-1]["train_loss"] = math.nan
            panel.show_run(RunView(id="a", state="failed", epoch=3, epochs=4, attempt=2, metrics=diverged,
                                   error="training diverged: train loss is nan in epoch 3"))
            await pilot.pause()
            text = _screen_text(app)
            assert "failed" in text and "training diverged" in text
            assert panel.sparklines["train_loss"].data == [1.0, 0.5]  # the NaN has no height
            assert "nan" in _text(panel.values["train_loss"])

            panel.show_run(RunView(id="a", state="done", epoch=4, epochs=4, metrics=_metrics(4),
                                   summary={"best_val_dice": 0.61, "best_epoch": 4, "seconds": 52.0}))
            await pilot.pause()
            text = _screen_text(app)
            assert "took 52s" in text and "best val dice 0.6100 at epoch 4" in text and "training diverged" not in text

            panel.show_run(None)
            await pilot.pause()
            assert "select an experiment" in _screen_text(app)

    asyncio.run(main())


def test_show_run_before_mount():
    class Early(App):
        def compose(self):
            panel = LivePanel()
            panel.show_run(_view(2))
            yield panel

    async def main():
        app = Early()
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            assert "epoch 2/10" in _screen_text(app)
            assert app.query_one(LivePanel).sparklines["lr"].data == [1e-3, 5e-4]

    asyncio.run(main())


def test_moving_between_runs_of_the_same_shape_redraws_the_panel_without_laying_the_screen_out():
    """Each key that moves the selection shows another run: text as wide as before is drawn in place (a layout places
    every widget of the screen again); text of another width, or a new line, lays the screen out."""
    async def main():
        app = Counted()
        async with app.run_test(size=(100, 30)) as pilot:
            layouts = app.layouts
            panel = app.query_one(LivePanel)
            panel.show_run(_view(5, state="done"))
            await pilot.pause()
            layouts.clear()
            other = RunView(id="lr-1e-4", state="done", epoch=6, epochs=10, attempt=1, metrics=_metrics(6))
            panel.show_run(other)  # same widths: "lr-1e-4" for "lr-3e-4", "epoch 6/10" for "epoch 5/10"
            await pilot.pause()
            same = len(layouts), _screen_text(app)
            layouts.clear()
            longer = RunView(id="lr-1e-4-long", state="done", epoch=6, epochs=10, attempt=1, metrics=_metrics(6))
            panel.show_run(longer)
            await pilot.pause()
            return same, len(layouts), _screen_text(app)

    (quiet, text), wider, longer_text = asyncio.run(main())
    assert quiet == 0 and "lr-1e-4" in text and "lr-3e-4" not in text and "epoch 6/10" in text
    assert wider >= 1 and "lr-1e-4-long" in longer_text


def test_a_finished_run_whose_curves_are_not_read_yet_keeps_the_curve_rows():
    """A finished run's curves are read when it is selected, a moment after its row: its curve rows stay on screen,
    empty meanwhile, and its curves then fill them without a layout for hiding and showing them."""
    async def main():
        app = Counted()
        async with app.run_test(size=(100, 30)) as pilot:
            layouts = app.layouts
            panel = app.query_one(LivePanel)
            panel.show_run(_view(6, state="done"))
            await pilot.pause()
            summary = {"best_val_dice": 0.9, "best_epoch": 6, "seconds": 78.0}
            unread = RunView(id="lr-1e-4", state="done", epoch=6, epochs=10, attempt=1, metrics=[], summary=summary)
            panel.show_run(unread)
            await pilot.pause()
            rows = [s.parent.display for s in panel.sparklines.values()]
            empty = [s.data for s in panel.sparklines.values()], _text(panel.values["val_dice"])
            layouts.clear()
            panel.show_run(RunView(id="lr-1e-4", state="done", epoch=6, epochs=10, attempt=1, metrics=_metrics(6),
                                   summary=summary))
            await pilot.pause()
            pending = RunView(id="lr-1e-2", state="pending", epochs=10)  # no epoch: no curves to come
            filled = len(layouts), panel.sparklines["val_dice"].data
            panel.show_run(pending)
            await pilot.pause()
            return rows, empty, filled, [s.parent.display for s in panel.sparklines.values()]

    rows, (data, value), (n_layouts, filled), pending_rows = asyncio.run(main())
    assert all(rows) and data == [[]] * len(data) and value == "-"
    assert len(filled) == 6 and n_layouts == 0  # (the values' column is as wide whatever it says)
    assert not any(pending_rows)
