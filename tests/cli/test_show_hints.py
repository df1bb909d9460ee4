"""`unettui show ID` names the command that moves a run on from its state — never one that does nothing for it
(`run --only` passes a failed run by: `retry` is what trains it again)."""

import pytest
from typer.testing import CliRunner

from tests.helpers import finish
from unettui.cli.app import app

runner = CliRunner()
BODY = "".join(f"[[experiment]]\nid = '{x}'\n" for x in ("new", "broke", "stopped", "ok"))


@pytest.fixture
def proj(make_project):
    p = make_project(BODY)
    finish(p, "broke", state="failed")
    finish(p, "stopped", state="interrupted")
    finish(p, "ok", state="done", best_val_dice=0.5, best_epoch=2, epochs_done=2, epochs=2)
    return p


def show(proj, run_id):
    out = runner.invoke(app, ["show", run_id, "-p", str(proj), "--ascii"], env={"COLUMNS": "250"})
    assert out.exit_code == 0, out.output
    return " ".join(out.stdout.split())  # (a long hint wraps)


@pytest.mark.parametrize("run_id, hint", [
    ("new", "run it with: unettui run --headless --only new"),
    ("stopped", "resume it with: unettui run --headless --only stopped"),
    ("broke", "unettui retry broke -p {p}, then unettui run --headless --only broke -p {p}"),
])
def test_show_names_the_command_that_works_for_the_state(proj, run_id, hint):
    text = show(proj, run_id)
    assert hint.format(p=proj) in text, text
    if run_id == "broke":  # `run --only` alone would pass a failed run by
        assert "run it with" not in text and "resume it with" not in text


def test_a_done_run_gets_no_hint(proj):
    text = show(proj, "ok")
    assert "unettui retry" not in text and "unettui run" not in text


def test_retry_then_run_trains_a_failed_run_again(proj):
    """What the hint says works: retry makes the failed run pending, and show then says `run --only`."""
    out = runner.invoke(app, ["retry", "broke", "-p", str(proj)])
    assert out.exit_code == 0, out.output
    assert f"run it with: unettui run --headless --only broke -p {proj}" in show(proj, "broke")
