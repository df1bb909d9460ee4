"""Keys act on the widget that owns them (never on another tab's cursor), and the bindings, the command palette and
the help screen are all generated from the one action table."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

from textual.command import CommandList
from textual.widgets import Input, Static, TabbedContent

from tests.tui.fixtures import (
    experiments,
    metric_rows,
    seeded_project,
    select,
    wait_for,
    write_run,
)
from unettui.core.plan import load_queue
from unettui.core.runs.store import HOST, RunStore
from unettui.tui import actions
from unettui.tui.actions import (
    ACTIONS,
    OWNERS,
    Action,
    ActionCommands,
    bindings,
    help_text,
    key_display,
    palette_title,
)
from unettui.tui.app import UnettuiApp, make_app
from unettui.tui.screens.dialogs import HelpScreen
from unettui.tui.screens.form import ConfirmDialog, ExperimentForm
from unettui.tui.widgets.compare import CompareView
from unettui.tui.widgets.preview import PreviewPanel
from unettui.tui.widgets.queue import QueuePanel
from unettui.tui.widgets.results import ExportDialog, ResultsPanel, ResultsTable
from unettui.tui.widgets.study import ConfigTable, StageTable

QUEUE = """[defaults]
dataset = "synthetic:nuclei"
num_images = 16
image_size = 32
base_channels = 4
depth = 2
epochs = 4
batch_size = 4

[[experiment]]
id = "alpha"
lr = 0.001

[[experiment]]
id = "beta"
lr = 0.002

[[experiment]]
id = "gamma"
lr = 0.004
"""

OWNER_CLASSES = {"app": UnettuiApp, "queue": QueuePanel, "results": ResultsPanel, "results-table": ResultsTable,
                 "preview": PreviewPanel, "study-stages": StageTable, "study-configs": ConfigTable,
                 "compare": CompareView}


def run(coro):
    return asyncio.run(coro)


def three_runs(root: Path) -> Path:
    """alpha and beta done, gamma failed: three runs the Results tab shows, each its own [[experiment]]."""
    root.mkdir(parents=True)
    (root / "experiments.toml").write_text(QUEUE)
    queue = load_queue(root)
    for run_id, dice, state in (("alpha", 0.8, "done"), ("beta", 0.6, "done"), ("gamma", 0.3, "failed")):
        write_run(root, run_id, queue.get(run_id).config, metric_rows(dice, 4 if state == "done" else 2), state=state,
                  error="CUDA out of memory" if state == "failed" else None)
    return root


def lr_of(project: Path) -> dict[str, float]:
    return {e["id"]: e.get("lr") for e in experiments(project)}


def test_results_keys_act_on_the_run_highlighted_there_never_on_the_queue_cursor(tmp_path):
    """The queue's cursor on alpha, the results' on beta then gamma: e edits beta, r retries gamma (after naming it),
    x exports and deletes nothing, the queue-only keys do nothing on Results, and alpha is never touched."""
    proj = three_runs(tmp_path / "p")
    toml = proj / "experiments.toml"
    store = RunStore(proj)

    async def go():
        app = make_app(proj, poll_interval=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            queue = app.query_one(QueuePanel)
            assert await wait_for(pilot, lambda: queue.row_count == 3)
            await select(pilot, app, "alpha")
            await pilot.press("2")
            results = app.query_one(ResultsPanel)
            assert await wait_for(pilot, lambda: results.shown_ids == ["alpha", "beta", "gamma"])
            await pilot.press("down")
            assert results.highlighted_id() == "beta" and queue.selected_id() == "alpha"

            # e: the form is beta's, and saving it changes beta's entry only
            await pilot.press("e")
            await pilot.pause()
            assert isinstance(app.screen, ExperimentForm) and app.screen.exp_id == "beta"
            app.screen.query_one("#field-lr", Input).value = "0.003"
            await pilot.pause()
            await pilot.press("ctrl+s")
            assert await wait_for(pilot, lambda: lr_of(proj)["beta"] == 0.003)
            assert lr_of(proj) == {"alpha": 0.001, "beta": 0.003, "gamma": 0.004}

            # x on Results: the export dialog, never a deletion
            before = toml.read_text()
            await pilot.press("x")
            await pilot.pause()
            assert isinstance(app.screen, ExportDialog)
            await pilot.press("escape")
            await pilot.pause()
            assert toml.read_text() == before and sorted(p.name for p in store.root.iterdir() if p.is_dir()) == [
                "alpha", "beta", "gamma"]

            # the queue's other keys do nothing here: no dialog, no edit
            await pilot.press("K", "J", "a", "w", "delete")
            await pilot.pause()
            assert app.screen is app.screen_stack[0] and toml.read_text() == before

            # r: retries the run highlighted here (gamma), after asking with its name; alpha keeps its run
            await pilot.press("down")
            assert results.highlighted_id() == "gamma" and queue.selected_id() == "alpha"
            await pilot.press("r")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmDialog)
            assert "Train gamma (failed) again from scratch?" in app.screen.message
            await pilot.press("y")
            assert await wait_for(pilot, lambda: len(store.run("gamma").attempts()) == 1)
            assert await wait_for(pilot, lambda: app.views["gamma"].state.value == "pending")
            assert store.run("alpha").attempts() == [] and store.run("alpha").status()["state"] == "done"
            assert store.run("beta").attempts() == []
            assert toml.read_text() == before
            assert queue.selected_id() == "alpha"  # the queue's cursor never moved

            # no row highlighted (a filter that hides them all): e and r do nothing
            results.set_filter("nothing-matches")
            results.table.focus()
            await pilot.pause()
            assert results.highlighted_id() is None
            await pilot.press("e", "r")
            await pilot.pause()
            assert app.screen is app.screen_stack[0] and toml.read_text() == before

            # and on the Preview tab these keys are nobody's
            await pilot.press("3", "e", "r", "x")
            await pilot.pause()
            assert app.screen is app.screen_stack[0] and toml.read_text() == before

    run(go())


def test_enter_in_results_opens_the_highlighted_run_in_preview(tmp_path):
    proj = three_runs(tmp_path / "p")

    async def go():
        app = make_app(proj, poll_interval=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            assert await wait_for(pilot, lambda: app.query_one(QueuePanel).row_count == 3)
            await select(pilot, app, "alpha")
            await pilot.press("2")
            results = app.query_one(ResultsPanel)
            assert await wait_for(pilot, lambda: len(results.shown_ids) == 3)
            await pilot.press("down", "down")
            assert results.highlighted_id() == "gamma"
            await pilot.press("enter")
            await pilot.pause()
            assert app.query_one(TabbedContent).active == "preview"
            assert app.query_one(PreviewPanel).run_id == "gamma" and app.selected == "gamma"

    run(go())


def test_every_widget_binds_exactly_its_rows_of_the_table():
    """The bindings are generated: each owner's BINDINGS is its rows of ACTIONS, each action exists on its owner,
    and the app binds none of the keys that act on a row."""
    for owner, cls in OWNER_CLASSES.items():
        assert cls.BINDINGS == bindings(owner), owner
        for a in ACTIONS:
            if a.owner == owner:
                name = a.action.split("(")[0]
                assert hasattr(cls, f"action_{name}"), f"{cls.__name__} has no action_{name}"
    assert set(OWNER_CLASSES) == set(OWNERS)
    app_keys = {k for b in UnettuiApp.BINDINGS for k in b.key.split(",")}
    assert app_keys == {"q", "question_mark", "1", "2", "3", "4", "5", "R", "P", "plus", "minus", "ctrl+p"}
    # the same key means one thing per owner: x deletes in the queue, exports in the results
    x = {(a.owner, a.action) for a in ACTIONS if "x" in a.keys.split(",")}
    assert x == {("queue", "delete"), ("results", "export")}
    assert {a.action for a in ACTIONS if a.owner == "results"} >= {"edit", "retry", "export"}
    assert "delete" not in {a.action for a in ACTIONS if a.owner.startswith("results")}


def test_palette_and_help_list_every_action_of_the_table(tmp_path, monkeypatch):
    proj = three_runs(tmp_path / "p")

    async def go():
        app = make_app(proj, poll_interval=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            assert await wait_for(pilot, lambda: app.query_one(QueuePanel).row_count == 3)
            # the palette: one entry per action (all but the palette's own key), in table order
            hits = [hit async for hit in ActionCommands(app.screen).discover()]
            want = [a for a in ACTIONS if a.action != "command_palette"]
            assert len(hits) == len(want)
            for hit, a in zip(hits, want):
                assert str(hit.display) == palette_title(a) and a.text.lower() in str(hit.display).lower()
                assert hit.help == (f"key: {key_display(a.keys)}" if a.keys else "no key: here only")
            assert "Results: edit the highlighted run's experiment" in [str(h.display) for h in hits]
            # the help screen: every action's key and text
            await pilot.press("question_mark")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            shown = str(app.screen.query_one("#help-text", Static).render())
            assert shown == help_text().plain
            for a in ACTIONS:
                assert f"{key_display(a.keys) or '(palette)'}" in shown and a.text in shown, a
            await pilot.press("escape")

            # a palette entry acts on its owner's row, as its key would there: Results' edit on Results' cursor
            await select(pilot, app, "alpha")
            await pilot.press("2")
            results = app.query_one(ResultsPanel)
            assert await wait_for(pilot, lambda: len(results.shown_ids) == 3)
            await pilot.press("down")
            await pilot.press("1")  # back on the queue (cursor: alpha), then the Results entry from the palette
            await pilot.press("ctrl+p")
            await pilot.pause()
            app.screen.query_one(Input).value = "Results: edit the highlighted run's experiment"
            assert await wait_for(pilot, lambda: app.screen.query_one(CommandList).option_count > 0, 5)
            await pilot.press("enter")
            assert await wait_for(pilot, lambda: isinstance(app.screen, ExperimentForm), 5)
            assert app.screen.exp_id == "beta" and app.query_one(TabbedContent).active == "results"

    run(go())

    # generated, not copied: a row added to the table shows up in both
    extra = Action("z", "results", "export", "zz", "a row only this test knows")
    monkeypatch.setattr(actions, "ACTIONS", (*ACTIONS, extra))
    assert "a row only this test knows" in help_text().plain
    assert any(a is extra for _, _, a in actions.palette_entries())


def test_runner_header_names_a_runner_elsewhere_then_its_stale_claim(tmp_path):
    """A live claim of a process the TUI did not start: 'HOST pid N (not started here)'; once that process is gone,
    the claim is stale and the header says so, with what R does about it."""
    proj = seeded_project(tmp_path / "p")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        write_run(proj, "base", load_queue(proj).get("base").config, metric_rows(0.5, 1), state="running")
        now = time.time()
        store = RunStore(proj)
        store.run("base").write_status(state="running", host=HOST, pid=other.pid, heartbeat=now, started=now,
                                       attempt=1, epoch=1, epochs=4)

        async def go():
            app = make_app(proj, poll_interval=0.2)
            async with app.run_test(size=(120, 30)) as pilot:
                assert await wait_for(pilot, lambda: "not started here" in app.sub_title)
                assert f"runner: {HOST} pid {other.pid} (not started here), beat " in app.sub_title
                assert app.views["base"].state.value == "running"
                other.kill()
                other.wait()
                assert await wait_for(pilot, lambda: "stale claim" in app.sub_title)
                assert (f"runner: stale claim on base ({HOST} pid {other.pid}, silent " in app.sub_title
                        and app.sub_title.endswith("R starts a runner that resumes it"))
                assert app.views["base"].state.value == "interrupted"

        run(go())
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()
