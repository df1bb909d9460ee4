"""A study with folds (issue 26), trained for real at a tiny size: each configuration's folds train as one pack, the
stage compares configurations fold by fold (paired), `study show` has a column per fold and the paired difference,
and the final configuration's scores are the ensemble's held-out test Dice beside the single folds' and the pooled
out-of-fold Dice; the report says the same."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from tests.helpers import trained_project
from unettui.cli.app import app
from unettui.core.plan import load_queue

STUDY = """[[study]]
id = "cvs"
folds = 3

[[study.stage]]
name = "lr"
lr = [0.0001, 0.01]
"""

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return trained_project(tmp_path_factory.mktemp("cvs"), STUDY, "--pack", "3")


def test_the_stage_is_decided_fold_by_fold_and_shown_per_fold(project):
    status = next(s for s in load_queue(project).studies if s.id == "cvs")
    stage = status.stages[0]
    assert stage.state == "done" and [len(c.runs) for c in stage.configs] == [3, 3]
    assert [r.fold for r in stage.configs[0].runs] == [1, 2, 3]
    loser = next(c for c in stage.configs if c.paired is not None)
    winner_runs = {r.fold: r.value for c in stage.configs if c.paired is None for r in c.runs}
    diffs = [winner_runs[r.fold] - r.value for r in loser.runs]
    assert loser.paired[0] == pytest.approx(sum(diffs) / 3) and loser.paired[2] == 3
    out = CliRunner().invoke(app, ["study", "show", "cvs", "-p", str(project)], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "stage 1 lr: done, 6/6 runs finished" in out.output
    assert re.search(r"fold 1 +fold 2 +fold 3 +mean", out.output)
    assert "paired Δ to the best ± SE" in out.output and f"{loser.paired[0]:+.4f}" in out.output
    assert "pooled out-of-fold Dice (every non-test image predicted once" in out.output
    ens = status.final_scores()["ensemble_test_dice"][0]
    assert ens is not None and "held-out test Dice of the ensemble of the 3 folds" in out.output
    assert f"{ens:.4f}" in out.output and "held-out test Dice (each of the 3 folds alone, 3 images)" in out.output


def test_the_report_has_the_cross_validated_final_scores(project):
    out = CliRunner().invoke(app, ["report", "cvs", "--no-figures", "-p", str(project)])
    assert out.exit_code == 0, out.output
    stage = next(s for s in load_queue(project).studies if s.id == "cvs").stages[0]
    loser = next(c for c in stage.configs if c.paired is not None)
    assert "| lr | fold | train loss |" in out.output  # a row per fold
    assert "| lr | mean over folds | pooled out-of-fold Dice | paired Δ (best − this) |" in out.output
    oof = loser.cv["repeats"][0]["oof"]["dice"]
    assert f"| {loser.values['lr']:g} | {loser.score:.4f} ± {loser.sd:.4f} (n=3) | {oof:.4f} | " \
           f"{loser.paired[0]:+.4f} ± {loser.paired[1]:.4f} (SE, 3 pairs; 95 % " in out.output
    assert "Held-out test Dice of the ensemble of the 3 folds" in out.output
    assert "Pooled out-of-fold Dice" in out.output


def test_the_tuis_studies_tab_shows_the_paired_difference(project):
    import asyncio

    from tests.tui.test_study_view import has_row, open_studies, screen
    from unettui.tui.app import make_app

    stage = next(s for s in load_queue(project).studies if s.id == "cvs").stages[0]
    loser = next(c for c in stage.configs if c.paired is not None)

    async def go():
        app = make_app(project, poll_interval=60)
        async with app.run_test(size=(120, 30)) as pilot:
            await open_studies(pilot, app)
            text = screen(app)
            assert has_row(app, "lr", "best_val_dice", "mean", "±", "sd", "n", "spread", "paired", "Δ", "±", "SE",
                           "note"), text
            assert f"{loser.paired[0]:+.4f} ± {loser.paired[1]:.4f}" in text

    asyncio.run(go())
