"""Snapshot tests of the main screens at 80x24 and 160x45 on a seeded project (update with --snapshot-update)."""

from __future__ import annotations

import pytest

from tests.tui.fixtures import add_preview, seeded_project, study_project
from unettui.tui.app import make_app
from unettui.tui.widgets.queue import QueuePanel


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    proj = seeded_project(tmp_path / "study")
    add_preview(proj, "opt-adam-plateau")
    return proj


async def loaded(pilot) -> None:
    app = pilot.app
    while app.query_one(QueuePanel).row_count < 7:
        await pilot.pause(0.05)
    await pilot.pause(0.3)


def test_queue_screen(snap_compare, project):
    assert snap_compare(make_app(project, poll_interval=60), terminal_size=(80, 24), run_before=loaded)


def test_results_screen_sorted_by_best_dice(snap_compare, project):
    async def before(pilot):
        await loaded(pilot)
        await pilot.press("2")
        panel = pilot.app.query_one("#results-panel")
        panel.sort_by("best_val_dice", reverse=True)
        await pilot.pause(0.2)

    assert snap_compare(make_app(project, poll_interval=60), terminal_size=(80, 24), run_before=before)


def test_preview_screen(snap_compare, project):
    async def before(pilot):
        await loaded(pilot)
        table = pilot.app.query_one(QueuePanel)
        table.move_cursor(row=1)  # opt-adam-plateau
        await pilot.pause(0.2)
        await pilot.press("3")
        await pilot.pause(1.0)

    assert snap_compare(make_app(project, poll_interval=60), terminal_size=(80, 24), run_before=before)


def test_help_screen(snap_compare, project):
    async def before(pilot):
        await loaded(pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.2)

    assert snap_compare(make_app(project, poll_interval=60), terminal_size=(80, 24), run_before=before)


def test_studies_screen(snap_compare, tmp_path, monkeypatch):
    """The Studies tab on the 'opt' study: stage 1 done, stage 2 running (shown), stage 3 waiting."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    proj = study_project(tmp_path / "study")

    async def before(pilot):
        app = pilot.app
        while app.query_one(QueuePanel).row_count < 8:  # the 4 runs of stage 1 and the 4 of stage 2
            await pilot.pause(0.05)
        await pilot.press("4")
        await pilot.pause(0.5)

    assert snap_compare(make_app(proj, poll_interval=60), terminal_size=(80, 24), run_before=before)


def test_queue_screen_wide(snap_compare, project):
    """At 160x45 the live panel (curves) takes the room the queue table does not need."""
    assert snap_compare(make_app(project, poll_interval=60), terminal_size=(160, 45), run_before=loaded)


async def _compare(pilot) -> None:
    await loaded(pilot)
    table = pilot.app.query_one(QueuePanel)
    for row in (0, 1, 2):
        table.move_cursor(row=row)
        await pilot.pause(0.05)
        await pilot.press("space")
    await pilot.press("5")
    await pilot.pause(0.5)


@pytest.mark.parametrize("size", [(80, 24), (160, 45)], ids=["80x24", "160x45"])
def test_compare_screen(snap_compare, project, size):
    """Three marked runs overlaid, the legend naming what differs."""
    assert snap_compare(make_app(project, poll_interval=60), terminal_size=size, run_before=_compare)
