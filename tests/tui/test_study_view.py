"""The Studies tab (4): stages with state, runs, progress and winner; the selected stage's configurations;
live updates as study runs finish on disk; the hint without a study; opening a run in Preview.

Assertions read the screen as drawn (the compositor's text), not the widgets' data."""

from __future__ import annotations

import asyncio
import time

from textual.widgets import TabbedContent

from tests.tui.fixtures import STUDY, study_project, study_run
from unettui.core.define.study import base_hash
from unettui.core.runs.store import RunStore, append_jsonl, atomic_write_json, read_json
from unettui.tui import data as tui_data
from unettui.tui.app import make_app
from unettui.tui.data import QUEUE_CHANGED, STUDIES_CHANGED, ProjectMonitor
from unettui.tui.widgets.queue import QueuePanel
from unettui.tui.widgets.study import StudyPanel

H1 = base_hash({"lr": 0.01})  # stage 2 stands on stage 1's winner
H2 = base_hash({"lr": 0.01, "scheduler": "none"})


def run(coro):
    return asyncio.run(coro)


def screen(app) -> str:
    """The terminal's text as drawn now."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def rows(app) -> list[list[str]]:
    """Every screen line split into words."""
    return [line.split() for line in screen(app).splitlines()]


def has_row(app, *words: str) -> bool:
    """A screen line that starts (after any table border) with these words, in order."""
    return any(line[: len(words)] == list(words) for line in rows(app))


async def wait_for(pilot, condition, timeout: float = 20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        await pilot.pause(0.1)
    return condition()


async def open_studies(pilot, app) -> None:
    assert await wait_for(pilot, lambda: app.query_one(QueuePanel).row_count > 0)
    await pilot.press("4")
    assert app.query_one(TabbedContent).active == "studies"
    assert await wait_for(pilot, lambda: "stage" in screen(app) and "progress" in screen(app))
    await pilot.pause(0.2)


def test_stages_states_winner_and_the_selected_stage(tmp_path):
    proj = study_project(tmp_path / "proj")

    async def go():
        app = make_app(proj, poll_interval=60)
        async with app.run_test(size=(100, 30)) as pilot:
            await open_studies(pilot, app)
            text = screen(app)
            assert " Studies " in text.splitlines()[1]  # the fourth tab
            assert "study opt: 3 stages; metric best_val_dice (max); train_fraction 0.4, 0.8 (score = mean)" in text
            # the stages: number, name, state, finished/planned, progress bar, winner
            assert has_row(app, "1", "lr", "done", "4/4", "██████████", "lr=0.01", "(tie-break)"), text
            assert has_row(app, "2", "sched", "running", "2/4", "█████░░░░░", "-"), text
            assert has_row(app, "3", "loss", "waiting", "0/4", "░░░░░░░░░░", "-"), text
            # the current stage's configurations, as `unettui study show` has them
            assert "stage 2 sched: running, 2/4 runs finished · on lr=0.01" in text
            assert has_row(app, "scheduler", "f=0.4", "f=0.8", "mean", "spread", "note"), text
            assert has_row(app, "none", "0.7500", "failed", "-", "-"), text
            assert has_row(app, "step", "pending", "pending", "-", "-"), text
            assert "configuration so far: optimizer=adam, lr=0.01" in text

            await pilot.press("up")  # stage 1: finished, its winner marked and why it won
            await pilot.pause(0.2)
            text = screen(app)
            assert "stage 1 lr: done, 4/4 runs finished" in text
            assert has_row(app, "0.001", "0.6000", "0.8000", "0.7000", "0.2000"), text
            assert has_row(app, "*", "0.01", "0.7000", "0.7000", "0.7000", "0.0000", "winner"), text
            assert ("winner: lr=0.01 (tie-break: tie at score 0.7000 between 2 configurations; smallest spread"
                    in " ".join(text.split())), text

            await pilot.press("down", "down")  # stage 3: not expanded yet
            await pilot.pause(0.2)
            text = screen(app)
            assert "stage 3 loss: waiting, 0/4 runs finished · on lr=0.01" in text
            assert "waits until every run of the earlier stages is finished; then 4 runs" in text
            assert "dice_bce" not in text  # no configurations table for a stage that has not expanded

            await pilot.press("question_mark")
            await pilot.pause(0.2)
            assert "show the Studies tab" in screen(app)  # the help (from tui.actions) is open

    run(go())


def test_the_view_follows_the_runs_on_disk(tmp_path):
    """A run starts, finishes, a summary is rewritten, the stage ends: the view shows each step, and the next
    stage's experiments join the queue (not "not in queue") without experiments.toml changing."""
    proj = study_project(tmp_path / "proj")
    none8 = f"opt-sched-none-b{H1}-f0.8"
    step4, step8 = f"opt-sched-step-b{H1}-f0.4", f"opt-sched-step-b{H1}-f0.8"

    async def go():
        app = make_app(proj, poll_interval=0.2)
        async with app.run_test(size=(100, 30)) as pilot:
            await open_studies(pilot, app)
            assert has_row(app, "step", "pending", "pending", "-", "-")

            study_run(proj, step4, 0.5, state="running", epochs_done=1)  # another runner trains it: epoch 1 of 2
            assert await wait_for(pilot, lambda: has_row(app, "step", "running", "1/2", "pending")), screen(app)

            study_run(proj, step4, 0.5)
            assert await wait_for(pilot, lambda: has_row(app, "2", "sched", "running", "3/4", "████████░░")), screen(app)
            assert has_row(app, "step", "0.5000", "pending", "-", "-"), screen(app)

            # a summary changes on disk (a finished run's best val Dice is corrected)
            run_dir = RunStore(proj).run(step4)
            atomic_write_json(run_dir.file("summary.json"), {**read_json(run_dir.file("summary.json")), "best_val_dice": 0.65})
            assert await wait_for(pilot, lambda: has_row(app, "step", "0.6500", "pending", "-", "-")), screen(app)

            # the failed run is trained again: scheduler none gets a score and leads
            RunStore(proj).run(none8).archive_attempt()
            study_run(proj, none8, 0.85)
            assert await wait_for(pilot, lambda: has_row(app, "*", "none", "0.7500", "0.8500", "0.8000", "0.1000",
                                                         "leading")), screen(app)
            assert has_row(app, "2", "sched", "running", "3/4", "████████░░", "leading:", "scheduler=none"), screen(app)
            assert "leading: scheduler=none (so far: max score 0.8000)" in screen(app)

            # the last run of stage 2 ends: it is done, and stage 3 expands on its winner
            study_run(proj, step8, 0.55)
            assert await wait_for(pilot, lambda: has_row(app, "2", "sched", "done", "4/4", "██████████",
                                                         "scheduler=none", "(best)")), screen(app)
            assert await wait_for(pilot, lambda: has_row(app, "3", "loss", "running", "0/4")), screen(app)
            text = screen(app)  # the cursor follows the current stage while the user has not moved it
            assert "stage 3 loss: running, 0/4 runs finished · on lr=0.01, scheduler=none" in text
            assert has_row(app, "dice", "pending", "pending", "-", "-"), text
            new = f"opt-loss-dice-b{H2}-f0.4"
            assert new in app.monitor.order() and app.views[new].in_queue

    run(go())


def test_without_a_study_the_tab_says_how_to_start_one(make_project):
    proj = make_project()

    async def go():
        app = make_app(proj, poll_interval=60)
        async with app.run_test(size=(80, 24)) as pilot:
            assert await wait_for(pilot, lambda: app.query_one(QueuePanel).row_count == 1)
            await pilot.press("4")
            await pilot.pause(0.3)
            text = " ".join(screen(app).split())
            assert "no [[study]] in experiments.toml — `unettui study new --template quick` creates one" in text
            assert "progress" not in text

    run(go())


def test_an_invalid_study_or_file_is_named_with_its_problem(make_project):
    proj = make_project("[[study]]\nid = 'broken'\n[[study.stage]]\nname = 'x'\nlr = 1e-3\n")

    async def go():
        app = make_app(proj, poll_interval=60)
        async with app.run_test(size=(100, 24)) as pilot:
            assert await wait_for(pilot, lambda: app.monitor.queue is not None)
            await pilot.press("4")
            await pilot.pause(0.3)
            text = " ".join(screen(app).split())
            assert "1 [[study]] table is invalid (`unettui check` lists every problem):" in text
            assert "[[study]] 'broken'" in text and "a stage needs at least one key with a list of values" in text
            assert "no valid [[study]] in experiments.toml — `unettui study new --template quick` creates one" in text

            (proj / "experiments.toml").write_text("[defaults\n")  # broken while being edited: said so
            app.refresh_now()
            assert await wait_for(pilot, lambda: "experiments.toml: not valid TOML" in " ".join(screen(app).split())), screen(app)

    run(go())


def test_a_run_of_the_configurations_table_opens_in_preview(tmp_path):
    proj = study_project(tmp_path / "proj")

    async def go():
        app = make_app(proj, poll_interval=60)
        async with app.run_test(size=(100, 30)) as pilot:
            await open_studies(pilot, app)
            first = app.selected
            await pilot.press("up")  # stage 1; the stages table has the focus, so the selection stays
            await pilot.pause(0.1)
            assert app.selected == first
            await pilot.press("enter")  # to the configurations: the run under the cursor is selected
            await pilot.pause(0.1)
            assert app.focused is app.query_one(StudyPanel).config_table
            assert app.selected == "opt-lr-lr0.001-f0.4"
            await pilot.press("down", "right", "right", "right")  # lr 0.01, column f=0.8
            await pilot.pause(0.1)
            assert app.selected == "opt-lr-lr0.01-f0.8"
            await pilot.press("enter")
            await pilot.pause(0.2)
            assert app.query_one(TabbedContent).active == "preview"
            assert app.query_one("#preview-panel").run_id == "opt-lr-lr0.01-f0.8"
            assert "opt-lr-lr0.01-f0.8" in screen(app)

    run(go())


def test_the_poll_expands_studies_only_when_a_study_run_moves(make_project, monkeypatch):
    """The queue is planned again when experiments.toml changes, or when a study run changes state or a finished
    one its summary — never because a running run wrote an epoch, and never without a study; the file itself is read
    only when it changed."""
    proj = make_project(STUDY)
    loads, reads = [], []
    real, real_read = tui_data.plan, tui_data.read_queue
    monkeypatch.setattr(tui_data, "plan", lambda q, lookup: loads.append(q) or real(q, lookup))
    monkeypatch.setattr(tui_data, "read_queue", lambda p, **kw: reads.append(p) or real_read(p, **kw))
    mon = ProjectMonitor(proj)
    changed = mon.poll()
    assert len(loads) == 1 and STUDIES_CHANGED in changed
    assert [st.state for st in mon.studies[0].stages] == ["running", "waiting", "waiting"]
    assert mon.study_run_ids == set(mon.studies[0].stages[0].experiments)
    assert STUDIES_CHANGED not in mon.poll() and len(loads) == 1

    study_run(proj, "opt-lr-lr0.001-f0.4", 0.6, state="running", epochs_done=1)
    assert STUDIES_CHANGED in mon.poll() and len(loads) == 2  # pending -> running
    append_jsonl(RunStore(proj).run("opt-lr-lr0.001-f0.4").file("metrics.jsonl"), {"epoch": 2, "val_dice": 0.5})
    changed = mon.poll()
    assert "opt-lr-lr0.001-f0.4" in changed and STUDIES_CHANGED not in changed and len(loads) == 2

    for run_id, dice in {"opt-lr-lr0.001-f0.4": 0.6, "opt-lr-lr0.001-f0.8": 0.8, "opt-lr-lr0.01-f0.4": 0.7,
                         "opt-lr-lr0.01-f0.8": 0.7}.items():
        study_run(proj, run_id, dice)
    changed = mon.poll()  # stage 1 done: reloaded once, and stage 2's experiments are in the queue
    assert {STUDIES_CHANGED, QUEUE_CHANGED} <= changed and len(loads) == 3
    assert [st.state for st in mon.studies[0].stages] == ["done", "running", "waiting"]
    assert f"opt-sched-none-b{H1}-f0.4" in mon.order() and f"opt-sched-none-b{H1}-f0.4" in mon.study_run_ids
    assert mon.poll() == set() and len(loads) == 3 and len(reads) == 1  # (planned three times, read once)

    plain = make_project("[[experiment]]\nid = 'a'\n", name="plain")
    mon = ProjectMonitor(plain)
    mon.poll()
    study_run(plain, "a", 0.5)
    mon.poll()
    assert len(loads) == 4 and mon.studies == [] and mon.study_run_ids == set()


def test_quitting_does_not_wait_for_the_next_poll(tmp_path):
    """The polling thread ends at unmount: before, a poll asked for by the Studies tab woke it after the unmount's
    wake-up, and it then waited a whole poll_interval (two minutes here), which the app's exit waited for."""
    import time

    proj = study_project(tmp_path / "proj")

    async def go():
        app = make_app(proj, poll_interval=120)
        async with app.run_test(size=(100, 30)) as pilot:
            await open_studies(pilot, app)

    started = time.monotonic()
    asyncio.run(go())  # (its end waits for the app's threads)
    assert time.monotonic() - started < 60  # (over 120 s before the fix)
