"""`unettui ls` and `unettui show` colour a state as the TUI does: from the one map, core.show.styles."""

from __future__ import annotations

import pytest
from rich.color import ColorSystem
from rich.style import Style
from typer.testing import CliRunner

from tests.tui.fixtures import metric_rows, seeded_project, write_run
from unettui.cli.app import app
from unettui.core.plan import load_queue
from unettui.core.show.styles import state_style


def coloured(word: str, text: str) -> str:
    """``text`` as a terminal shows it in the style of the state ``word`` (the escape codes before it)."""
    return Style.parse(state_style(word)).render("\0", color_system=ColorSystem.STANDARD).split("\0")[0] + text


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich colours what CliRunner captures
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("COLUMNS", "120")
    proj = seeded_project(tmp_path / "p")
    queue = load_queue(proj)
    write_run(proj, "base", queue.get("base").config, metric_rows(0.5, 2), state="running", epochs=4)
    write_run(proj, "opt-sgd-none", queue.get("opt-sgd-none").config, metric_rows(0.4, 2), state="failed",
              error="diverged")
    return proj


def test_ls_colours_each_state_from_the_one_map(project):
    out = CliRunner().invoke(app, ["ls", "-p", str(project)], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    for word, label in (("running", "running 2/4"), ("failed", "failed"), ("done", "done")):
        assert coloured(word, label) in out.output, (word, out.output)


def test_show_colours_the_state_in_its_heading(project):
    out = CliRunner().invoke(app, ["show", "base", "-p", str(project)], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert coloured("running", "running 2/4") in out.output.splitlines()[0]


def test_results_colours_each_state_and_reads_no_value_as_markup(project, tmp_path):
    out = CliRunner().invoke(app, ["results", "-p", str(project)], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    for word in ("failed", "done"):
        assert coloured(word, word) in out.output, (word, out.output)
    other = tmp_path / "q"
    other.mkdir()
    (other / "experiments.toml").write_text("[defaults]\nepochs = 2\n[[experiment]]\nid = 'a'\n"
                                            "dataset = 'scans[bold]'\n[[experiment]]\nid = 'b'\n")
    queue = load_queue(other)
    for run_id in ("a", "b"):
        write_run(other, run_id, queue.get(run_id).config, metric_rows(0.5, 2))
    out = CliRunner().invoke(app, ["results", "-p", str(other)], catch_exceptions=False)
    assert "scans[bold]" in out.output, out.output  # (read as markup, "[bold]" was eaten)
