"""One state -> style map (core.show.styles) for every face: a running run is drawn alike in the queue table, the live
panel, the results table and a study's configurations, and no TUI or CLI module keeps a map of its own."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

from rich.style import Style
from textual.widgets import DataTable, Static

import unettui
from tests.tui.fixtures import metric_rows, seeded_project, select, study_project, wait_for, write_run
from unettui.core.plan import load_queue
from unettui.core.runs.status import State
from unettui.core.show.styles import STATE_STYLES, state_style
from unettui.tui.app import make_app
from unettui.tui.widgets.queue import QueuePanel


def test_every_state_word_has_a_style():
    words = {s.value for s in State} | {"queued"} | {"waiting", "running", "done"}  # runs, status files, stages
    assert words <= set(STATE_STYLES)
    assert all(Style.parse(style) for style in STATE_STYLES.values())  # plain Rich styles, all valid
    assert state_style(State.RUNNING) == state_style("running") == STATE_STYLES["running"]
    assert state_style("no such state") == ""
    # one colour per meaning: running stands apart from every other state
    colour = Style.parse(STATE_STYLES["running"]).color
    assert all(Style.parse(s).color != colour for w, s in STATE_STYLES.items() if w != "running")


def test_no_face_keeps_its_own_map_of_state_styles():
    """A dict literal keyed by two or more state words with string values (a style map) exists only in core.show.styles."""
    root = Path(unettui.__file__).parent
    words = set(STATE_STYLES)
    found = []
    for f in [*root.glob("tui/**/*.py"), *root.glob("cli/*.py"), *root.glob("core/show/*.py")]:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Dict):
                keys = {k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
                styled = all(isinstance(v, ast.Constant) and isinstance(v.value, str) for v in node.values)
                if len(keys & words) >= 2 and styled and f.name != "styles.py":
                    found.append(f"{f.relative_to(root)}:{node.lineno}")
    assert not found, found


def _rendered(widget, word: str):
    """The style the first drawn segment holding ``word`` has on screen (its colour and boldness)."""
    for y in range(widget.size.height):
        for seg in widget.render_line(y):
            if word in seg.text:
                colour = seg.style.color
                return (colour.get_truecolor() if colour is not None else None), seg.style.bold
    raise AssertionError(f"{word} is not on screen in {widget}")


def test_a_running_and_a_failed_run_look_the_same_in_the_queue_the_live_panel_and_the_results(tmp_path):
    proj = seeded_project(tmp_path / "p")
    queue = load_queue(proj)
    write_run(proj, "base", queue.get("base").config, metric_rows(0.5, 2), state="running", epochs=4)
    write_run(proj, "opt-sgd-none", queue.get("opt-sgd-none").config, metric_rows(0.4, 2), state="failed",
              error="diverged")

    async def go():
        app = make_app(proj, poll_interval=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            table = app.query_one(QueuePanel)
            assert await wait_for(pilot, lambda: table.row_count == 7 and app.views["base"].state is State.RUNNING)
            drawn = {}
            title = app.query_one("#live-title", Static)
            for run_id, word in (("base", "running"), ("opt-sgd-none", "failed")):
                await select(pilot, app, run_id)
                assert await wait_for(pilot, lambda run_id=run_id: title.content.plain.startswith(run_id))
                span = next(s for s in title.content.spans if title.content.plain[s.start:s.end].strip() == word)
                assert span.style == state_style(word)  # the live panel's title
                assert table.get_cell(run_id, "status").style == state_style(word)  # the queue's cell
                drawn[word] = [_rendered(title, word)]
            await select(pilot, app, "opt-adam-none")  # (the cursor's own colours off those rows)
            drawn["running"].append(_rendered(table, "running 2/4"))
            drawn["failed"].append(_rendered(table, "failed"))
            await pilot.press("2")
            results = app.query_one("#results-table", DataTable)
            assert await wait_for(pilot, lambda: "base" in [str(r.key.value) for r in results.ordered_rows])
            for run_id, word in (("base", "running"), ("opt-sgd-none", "failed")):
                assert results.get_cell(run_id, "status").style == state_style(word)
            for word, looks in drawn.items():
                assert len(set(looks)) == 1, (word, looks)  # drawn alike on screen, queue and live panel
                assert looks[0][1] == Style.parse(state_style(word)).bold

    asyncio.run(go())


def test_a_study_stage_and_its_runs_take_their_styles_from_the_map(tmp_path):
    """The study project's stage 2 runs with one run failed: the stage's state word and the failed run's cell."""
    proj = study_project(tmp_path / "s")

    async def go():
        app = make_app(proj, poll_interval=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("4")
            stages = app.query_one("#study-stages", DataTable)
            configs = app.query_one("#study-configs", DataTable)
            assert await wait_for(pilot, lambda: stages.row_count == 3 and configs.row_count > 0)
            states = {}
            for row in range(stages.row_count):
                for cell in stages.get_row_at(row):
                    if getattr(cell, "plain", None) in ("waiting", "running", "done"):
                        states[cell.plain] = cell.style
            assert states == {w: state_style(w) for w in states} and set(states) == {"waiting", "running", "done"}
            failed = [c for r in range(configs.row_count) for c in configs.get_row_at(r)
                      if getattr(c, "plain", "").startswith("failed")]
            assert failed and all(c.style == state_style("failed") for c in failed)

    asyncio.run(go())
