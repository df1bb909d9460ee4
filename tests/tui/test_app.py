"""The whole TUI driven by a pilot: editing the queue, live updates from another process, a real runner."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from textual.widgets import DataTable, Input, TabbedContent

from tests.tui.fixtures import (
    QUEUE,
    experiments,
    seeded_project,
    select,
    wait_for,
    write_run,
)
from unettui.core.define.config import Config
from unettui.core.runs.store import RunStore
from unettui.tui.app import make_app
from unettui.tui.widgets.live import LivePanel
from unettui.tui.widgets.queue import QueuePanel
from unettui.tui.widgets.results import ResultsPanel


def run(coro):
    return asyncio.run(coro)


def row_ids(table: DataTable) -> list[str]:
    return [row.key.value for row in table.ordered_rows]


def test_opens_with_the_queue_in_file_order_and_the_results(tmp_path):
    proj = seeded_project(tmp_path / "p")

    async def go():
        app = make_app(proj, poll_interval=0.2)
        async with app.run_test(size=(80, 24)) as pilot:
            assert await wait_for(pilot, lambda: app.query_one(QueuePanel).row_count == 7)
            assert row_ids(app.query_one(QueuePanel)) == [
                "opt-adam-none", "opt-adam-plateau", "opt-sgd-none", "opt-sgd-plateau",
                "opt-rmsprop-none", "opt-rmsprop-plateau", "base"]
            assert "runner: none" in app.sub_title
            await pilot.press("2")
            assert app.query_one(TabbedContent).active == "results"
            results = app.query_one(ResultsPanel)
            assert set(results.shown_ids) == {v for v in row_ids(app.query_one(QueuePanel)) if v != "base"}

    run(go())


def test_add_edit_duplicate_delete_through_the_ui_keep_comments(tmp_path):
    """Each edit is read back from experiments.toml: the key it set, the entry it added or removed, the order it
    changed; the comments stay."""
    proj = seeded_project(tmp_path / "p")
    toml = proj / "experiments.toml"

    def ids() -> list[str]:
        return [e["id"] for e in experiments(proj)]

    def entry(exp_id: str) -> dict:
        return next(e for e in experiments(proj) if e["id"] == exp_id)

    async def go():
        app = make_app(proj, poll_interval=0.2)
        async with app.run_test(size=(100, 40)) as pilot:
            assert await wait_for(pilot, lambda: app.query_one(QueuePanel).row_count == 7)
            # add
            await pilot.press("a")
            await pilot.pause()
            app.screen.query_one("#field-id", Input).value = "fast"
            app.screen.query_one("#field-lr", Input).value = "3e-3"
            await pilot.pause()
            await pilot.press("ctrl+s")
            assert await wait_for(pilot, lambda: "fast" in app.monitor.order())
            assert ids() == ["base", "fast"] and entry("fast") == {"id": "fast", "lr": 0.003}
            assert toml.read_text().startswith(QUEUE)
            # edit: a bad value is refused in the form with the CLI's message, a good one saved
            await select(pilot, app, "fast")
            await pilot.press("e")
            await pilot.pause()
            lr = app.screen.query_one("#field-lr", Input)
            lr.value = "fast"
            await pilot.pause()
            assert "must be a number" in str(app.screen.query_one("#error-lr").render())
            assert entry("fast")["lr"] == 0.003  # nothing written while the value is bad
            lr.value = "0.01"
            await pilot.pause()
            await pilot.press("ctrl+s")
            assert await wait_for(pilot, lambda: entry("fast")["lr"] == 0.01)
            assert entry("fast") == {"id": "fast", "lr": 0.01} and entry("base") == {"id": "base"}
            assert toml.read_text().startswith(QUEUE)
            # duplicate, then delete the copy (confirmed)
            await select(pilot, app, "fast")
            await pilot.press("d")
            assert await wait_for(pilot, lambda: "fast-copy" in app.monitor.order())
            assert ids() == ["base", "fast", "fast-copy"] and entry("fast-copy")["lr"] == 0.01
            await select(pilot, app, "fast-copy")
            await pilot.press("x")
            await pilot.pause()
            assert "fast-copy" in str(app.screen.query_one("#confirm-message").render())
            await pilot.press("y")
            assert await wait_for(pilot, lambda: "fast-copy" not in app.monitor.order())
            assert ids() == ["base", "fast"] and toml.read_text().startswith(QUEUE)
            # move 'fast' up one entry: it now stands before 'base' in the file, and in the queue
            await select(pilot, app, "fast")
            await pilot.press("K")
            assert await wait_for(pilot, lambda: ids() == ["fast", "base"])
            assert await wait_for(pilot, lambda: app.monitor.order().index("fast") < app.monitor.order().index("base"))
            assert app.query_one(QueuePanel).selected_id() == "fast"  # the cursor went with it
            # and down again
            await pilot.press("J")
            assert await wait_for(pilot, lambda: ids() == ["base", "fast"])
            assert toml.read_text().startswith(QUEUE)

    run(go())


def test_live_panel_follows_metrics_appended_by_another_process(tmp_path):
    proj = seeded_project(tmp_path / "p")
    cfg = Config(dataset="synthetic:nuclei", epochs=10)
    write_run(proj, "base", cfg, [], state="running", epochs=10)
    metrics = RunStore(proj).run("base").file("metrics.jsonl")

    async def go():
        app = make_app(proj, poll_interval=0.2)
        async with app.run_test(size=(100, 30)) as pilot:
            assert await wait_for(pilot, lambda: "base" in app.views)
            await select(pilot, app, "base")
            live = app.query_one(LivePanel)
            for epoch in (1, 2, 3):
                code = ("import sys; from unettui.core.runs.store import append_jsonl; "
                        f"append_jsonl(sys.argv[1], {{'epoch': {epoch}, 'train_loss': {1.0 / epoch}, 'train_dice': 0.5, "
                        f"'val_loss': {1.1 / epoch}, 'val_dice': {0.2 * epoch}, 'val_iou': 0.1, 'lr': 0.001, 'seconds': 1.5}})")
                subprocess.run([sys.executable, "-c", code, str(metrics)], check=True)
                assert await wait_for(pilot, lambda epoch=epoch: live.view is not None and len(live.view.metrics) == epoch)
            assert list(live.sparklines["val_dice"].data) == [0.2, 0.4, 0.2 * 3]
            assert "ETA" in str(live.query_one("#live-eta").render())

    run(go())


TINY = ('[defaults]\ndataset = "synthetic:nuclei"\nnum_images = 16\nimage_size = 32\nbase_channels = 4\n'
        "depth = 2\nbatch_size = 4\n")


def tiny_project(tmp_path, body: str):
    """A project whose runs train in seconds on the CPU: TINY defaults, then ``body``."""
    proj = tmp_path / "p"
    proj.mkdir()
    (proj / "experiments.toml").write_text(TINY + body)
    return proj


def test_start_and_stop_a_real_runner(tmp_path):
    proj = tiny_project(tmp_path, "\n[[experiment]]\nid = 'quick'\nepochs = 2\n\n"
                                  "[[experiment]]\nid = 'long'\nepochs = 400\n")

    async def go():
        app = make_app(proj, poll_interval=0.2)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("R")
            assert app.runner.running() and "started here" in app.sub_title
            assert await wait_for(pilot, lambda: app.views.get("quick") and app.views["quick"].state == "done", 120)
            assert await wait_for(pilot, lambda: app.views.get("long") and len(app.views["long"].metrics) >= 1, 120)
            await pilot.press("R")  # stop: the run is left interrupted and resumable
            assert await wait_for(pilot, lambda: not app.runner.running(), 60)
            assert await wait_for(pilot, lambda: app.views["long"].state == "interrupted", 10)
            assert await wait_for(pilot, lambda: "finished" in app.sub_title, 10)

    run(go())
    st = RunStore(proj).run("long").status()
    assert st["state"] == "interrupted" and 1 <= st["epoch"] < 400


def test_p_chooses_packs_for_the_runner_it_starts(tmp_path, monkeypatch):
    """P cycles the next runner's --pack (auto, off, 2, ...); the runner started with R then trains the two
    experiments as one pack of 2 (each records it in its config.json)."""
    monkeypatch.delenv("UNETTUI_PACK", raising=False)
    proj = tiny_project(tmp_path, "epochs = 2\ndevice = 'cpu'\n\n[[experiment]]\nid = 'a'\n\n"
                                  "[[experiment]]\nid = 'b'\nlr = 0.01\n")

    async def go():
        app = make_app(proj, poll_interval=0.2)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("P")
            assert app.runner.pack == "off"
            await pilot.press("P")
            assert app.runner.pack == "2"
            await pilot.press("R")
            assert "packs 2" in app.sub_title
            assert await wait_for(pilot, lambda: all(app.views.get(i) and app.views[i].state == "done"
                                                     for i in ("a", "b")), 120)

    run(go())
    for run_id, other in (("a", "b"), ("b", "a")):
        cfg = RunStore(proj).run(run_id).config()
        assert cfg["pack_size"] == 2 and cfg["pack_members"] == [other]


def test_quitting_with_our_runner_working_asks_and_can_stop_it(tmp_path):
    proj = tiny_project(tmp_path, "epochs = 400\n\n[[experiment]]\nid = 'long'\n")

    async def go():
        app = make_app(proj, poll_interval=0.2)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("R")
            await pilot.press("q")
            await pilot.pause()
            assert type(app.screen).__name__ == "QuitDialog"
            await pilot.press("s")
            await pilot.pause(0.5)
        return app

    app = run(go())
    app.runner.proc.wait(timeout=60)
    assert not app.runner.running()


def test_a_runner_that_crashes_is_reported_not_fatal(tmp_path):
    proj = seeded_project(tmp_path / "p")

    async def go():
        app = make_app(proj, poll_interval=0.2)
        async with app.run_test(size=(100, 30)) as pilot:
            assert await wait_for(pilot, lambda: app.query_one(QueuePanel).row_count == 7)
            (proj / "experiments.toml").write_text("[defaults]\nlr = \n")  # a half-saved edit
            await pilot.press("R")  # the runner refuses the broken file and exits 2
            assert await wait_for(pilot, lambda: app.runner.exit_code() is not None, 60)
            assert await wait_for(pilot, lambda: any("crashed (exit 2)" in n.message for n in app._notifications), 10)
            assert any("not valid TOML" in n.message for n in app._notifications)
            assert app.query_one(QueuePanel).row_count == 7  # the last good queue stays on screen

    run(go())


def test_damaged_run_files_are_shown_and_the_tui_keeps_following_the_project(tmp_path):
    """A status.json that is JSON but not an object, a summary of the wrong type, bad bytes in metrics.jsonl:
    the queue says damaged (naming the file), the header is not fooled, and later changes still arrive."""
    proj = seeded_project(tmp_path / "p")
    (proj / "runs" / "opt-adam-none" / "status.json").write_text("[]")
    (proj / "runs" / "opt-sgd-none" / "summary.json").write_text('"oops"')
    with open(proj / "runs" / "opt-rmsprop-none" / "metrics.jsonl", "ab") as fh:
        fh.write(b"\xff\xfe not json\n")

    async def go():
        app = make_app(proj, poll_interval=0.2)
        async with app.run_test(size=(120, 30)) as pilot:
            assert await wait_for(pilot, lambda: app.query_one(QueuePanel).row_count == 7)
            views = app.views
            assert views["opt-adam-none"].state.value == "damaged"
            assert "runs/opt-adam-none/status.json holds a list, not a JSON object" in views["opt-adam-none"].note
            assert views["opt-sgd-none"].state.value == "done"
            assert "runs/opt-sgd-none/summary.json holds a string" in views["opt-sgd-none"].note
            # a finished run's metrics are read when its curves are shown: once it is selected
            await select(pilot, app, "opt-rmsprop-none")
            assert await wait_for(pilot, lambda: "runs/opt-rmsprop-none/metrics.jsonl: 1 unreadable line skipped"
                                  in app.views["opt-rmsprop-none"].note)
            assert "runner: none" in app.sub_title
            # the project goes on changing: a new run appears, the damaged one is repaired
            cfg = Config(dataset="synthetic:nuclei", num_images=16, image_size=32, base_channels=4, depth=2, epochs=4,
                         batch_size=4)
            write_run(proj, "base", cfg, [], state="running", epochs=4)
            (proj / "runs" / "opt-adam-none" / "status.json").write_text('{"state": "done", "attempt": 1}')
            assert await wait_for(pilot, lambda: app.views["opt-adam-none"].state.value == "done"
                                  and app.views["base"].state.value != "pending")

    run(go())


def test_hidden_panels_follow_the_selection_when_their_tab_is_shown(tmp_path):
    """Keys in the Results table select runs; the live panel (Queue tab) and the preview (Preview tab) are hidden
    meanwhile and are not redrawn for each (a hidden panel that changes still lays the screen out): they show the
    selected run when their tab is shown."""
    from unettui.tui.widgets.preview import PreviewPanel

    proj = seeded_project(tmp_path / "p")

    async def go():
        app = make_app(proj, poll_interval=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            assert await wait_for(pilot, lambda: app.query_one(QueuePanel).row_count == 7 and app.selected)
            live, preview = app.query_one(LivePanel), app.query_one(PreviewPanel)
            first = app.selected
            assert live.view is not None and live.view.id == first
            await pilot.press("2")
            results = app.query_one(ResultsPanel)
            assert await wait_for(pilot, lambda: len(results.shown_ids) == 6)
            results.table.focus()
            await pilot.press("down", "down")
            assert await wait_for(pilot, lambda: app.selected not in (None, first))
            chosen = app.selected
            assert chosen == results.highlighted_id()
            await pilot.pause(0.5)  # (polls go on meanwhile)
            assert live.view.id == first and preview.run_id != chosen
            await pilot.press("3")
            assert app.query_one(TabbedContent).active == "preview"
            await pilot.pause()
            assert preview.run_id == chosen and live.view.id == first
            await pilot.press("1")
            await pilot.pause()
            assert live.view.id == chosen and len(live.view.metrics) == 4  # its curves (read when it was selected)

    run(go())


def test_the_current_theme_is_the_one_textual_would_find(tmp_path):
    """UnettuiApp.current_theme looks the theme up without Textual's copies of the theme dict (asked per drawn line)."""
    from textual.app import App

    proj = seeded_project(tmp_path / "p")

    async def go():
        app = make_app(proj, poll_interval=5.0)
        async with app.run_test() as pilot:
            found = [(app.current_theme, App.current_theme.fget(app))]
            app.theme = "nord"
            await pilot.pause()
            found.append((app.current_theme, App.current_theme.fget(app)))
            return found

    (dark, dark_theirs), (nord, nord_theirs) = run(go())
    assert dark is dark_theirs and nord is nord_theirs and nord.name == "nord" and dark.name != "nord"
