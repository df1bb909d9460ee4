"""The final model of a cross-validated configuration is the ensemble of its folds (issue 26): `predict` and
`evaluate` on its id (or any fold's) average the folds' probabilities and say so; `--fold N` uses one fold."""

import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.helpers import trained_project
from unettui.cli.app import app
from unettui.core.learn.predict import image_logits, load_model, probabilities
from unettui.core.runs.store import RunStore

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = trained_project(tmp_path_factory.mktemp("cv"), '[[experiment]]\nid = "cv"\nfolds = 3\n', "--pack", "3")
    rng = np.random.default_rng(3)
    (root / "new").mkdir()
    for i in range(2):
        iio.imwrite(root / "new" / f"x{i}.png", (rng.random((40, 56)) * 255).astype(np.uint8))
    return root


def test_the_folds_trained_as_one_pack(project):
    configs = [json.loads((RunStore(project).run(f"cv-f{i}").file("config.json")).read_text()) for i in (1, 2, 3)]
    assert [(c["pack_size"], c["pack_slot"], c["fold"]) for c in configs] == [(3, 0, 1), (3, 1, 2), (3, 2, 3)]
    assert configs[0]["pack_members"] == ["cv-f2", "cv-f3"]
    assert "in a pack of 3" in RunStore(project).run("cv-f1").file("run.log").read_text()


def test_the_ensemble_is_the_mean_of_the_folds_probabilities(project):
    from unettui.cli.predict_cmd import _model

    ens = _model("cv-f2", project, last=False, device="cpu")  # any fold's id names the configuration
    assert [m.run_id for m in ens.folds] == ["cv-f1", "cv-f2", "cv-f3"] and ens.weights.startswith("ensemble of 3")
    chw = torch.rand(1, 40, 56)
    folds = [load_model(RunStore(project).run(f"cv-f{i}"), device="cpu") for i in (1, 2, 3)]
    mean = np.mean([probabilities(m, image_logits(m, chw)) for m in folds], axis=0)
    got = probabilities(ens, image_logits(ens, chw))
    assert got.shape == (40, 56) and np.abs(got - mean).max() < 1e-5
    single = [probabilities(m, image_logits(m, chw)) for m in folds]
    assert max(np.abs(s - mean).max() for s in single) > 1e-4  # the folds differ: the mean is not one of them


def test_predict_writes_the_ensembles_probabilities_and_fold_n_writes_one_folds(project):
    runner = CliRunner()
    outs = {}
    for name, extra in (("ens", []), ("f1", ["--fold", "1"]), ("f2", ["--fold", "2"]), ("f3", ["--fold", "3"])):
        out = project / f"pred-{name}"
        res = runner.invoke(app, ["predict", "cv", str(project / "new"), str(out), "--probabilities", "--json",
                                  "-p", str(project), *extra])
        assert res.exit_code == 0, res.output
        outs[name] = (out, json.loads(res.output))
    assert [f["run"] for f in outs["ens"][1]["weights"]["ensemble"]] == ["cv-f1", "cv-f2", "cv-f3"]
    assert "ensemble" not in outs["f2"][1]["weights"]
    for i in range(2):
        ens = iio.imread(outs["ens"][0] / f"x{i}_prob.png").astype(float)
        mean = np.mean([iio.imread(outs[f][0] / f"x{i}_prob.png").astype(float) for f in ("f1", "f2", "f3")], axis=0)
        assert ens.shape == (40, 56) and np.abs(ens - mean).max() <= 1.0  # (each PNG rounds to 1/255)


def test_evaluate_scores_the_ensemble_on_the_test_split_and_refuses_its_val_split(project):
    runner = CliRunner()
    res = runner.invoke(app, ["evaluate", "cv", "--split", "test", "--json", "-p", str(project)])
    assert res.exit_code == 0, res.output
    got = json.loads(res.output)
    assert got["images"] == 3 and len(got["weights"]["ensemble"]) == 3  # round(0.2 * 14) test images
    val = runner.invoke(app, ["evaluate", "cv", "-p", str(project)])
    assert val.exit_code != 0 and "no val images of its own" in val.output and "--fold N" in val.output
    bad = runner.invoke(app, ["evaluate", "cv", "--fold", "4", "-p", str(project)])
    assert bad.exit_code != 0 and "cv has folds 1 ... 3" in bad.output


def test_a_fold_evaluated_on_its_own_val_split_gives_back_its_recorded_best_val_dice(project):
    runner = CliRunner()
    for i in (1, 3):
        res = runner.invoke(app, ["evaluate", "cv", "--fold", str(i), "--json", "-p", str(project)])
        assert res.exit_code == 0, res.output
        got = json.loads(res.output)
        summary = json.loads(RunStore(project).run(f"cv-f{i}").file("summary.json").read_text())
        split = json.loads(RunStore(project).run(f"cv-f{i}").file("split.json").read_text())
        assert got["images"] == len(split["val"])  # its fold, not a train_fraction split
        assert got["metrics"]["dice"] == pytest.approx(summary["best_val_dice"], abs=1e-6)


def test_the_runner_writes_the_configurations_cross_validation_outside_the_run_folders(project):
    from unettui.core.learn.predict import run_split, score

    data = RunStore(project).configuration("cv")
    assert data is not None and data["folds"] == 3 and [r["repeat"] for r in data["repeats"]] == [1]
    rep = data["repeats"][0]
    store = RunStore(project)
    assert sorted(p.name for p in store.root.iterdir() if p.is_dir() and not p.name.startswith(".")) == [
        "cv-f1", "cv-f2", "cv-f3"]  # every folder that looks like a run is one
    summaries = [store.run(f"cv-f{i}").summary() for i in (1, 2, 3)]
    # pooled out of fold: the three folds' best-epoch counts summed; every non-test image once
    sums = [sum(s["best_val_counts"][0][j] for s in summaries) for j in range(3)]
    assert rep["oof"]["counts"] == [sums] and rep["oof"]["images"] == 11
    assert rep["oof"]["dice"] == pytest.approx(2 * sums[0] / (2 * sums[0] + sums[1] + sums[2]))
    # per-image out-of-fold scores: each non-test image once, with the fold that validated it
    names = [im["name"] for im in rep["images"]]
    assert len(names) == len(set(names)) == 11 and {im["fold"] for im in rep["images"]} == {1, 2, 3}
    per_image = json.loads(store.run("cv-f1").file("images.json").read_text())
    assert sum(im["counts"][0][0] for im in per_image["val"]) == summaries[0]["best_val_counts"][0][0]
    # the ensemble's test score is the ensemble's (evaluate's), beside the single folds' mean
    from unettui.cli.predict_cmd import _model

    ens = _model("cv", project, last=False, device="cpu")
    images, masks = run_split(ens.folds[0], project, "test")
    assert rep["test"]["ensemble_dice"] == pytest.approx(score(ens, images, masks).dice, abs=1e-9)
    assert rep["test"]["mean_fold_dice"]["mean"] == pytest.approx(np.mean([s["test_dice"] for s in summaries]))
    assert rep["test"]["n_test"] == 3


def test_cv_shows_a_configurations_results_and_computes_them_again_when_missing(project):
    path = RunStore(project).configuration_file("cv")
    out = CliRunner().invoke(app, ["cv", "cv-f2", "-p", str(project)])
    assert out.exit_code == 0, out.output
    assert "cross-validation of cv (repeat 1, 3 folds): pooled out-of-fold Dice 0." in out.output
    assert "held-out test Dice (3 images): ensemble of the folds 0." in out.output
    before = json.loads(path.read_text())
    path.unlink()
    again = CliRunner().invoke(app, ["cv", "cv", "--json", "-p", str(project)])
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["repeats"] == before["repeats"]
    # a repeat already written for the same runs and best epochs is kept (its ensemble not scored again) ...
    from unettui.core.learn.cv import cross_validate

    marked = json.loads(path.read_text())
    marked["repeats"][0]["test"]["ensemble_dice"] = -1.0
    path.write_text(json.dumps(marked))
    folds = {1: ["cv-f1", "cv-f2", "cv-f3"]}
    assert cross_validate(project, "cv", folds)["repeats"][0]["test"]["ensemble_dice"] == -1.0
    # ... unless asked again
    assert cross_validate(project, "cv", folds, again=True)["repeats"] == before["repeats"]
    bad = CliRunner().invoke(app, ["cv", "nope", "-p", str(project)])
    assert bad.exit_code == 2 and "nope is not a cross-validated configuration" in bad.output


def test_folds_are_one_configuration_in_the_tuis_results_and_compare(project):
    from unettui.core.plan import load_queue
    from unettui.core.runs.status import collect
    from unettui.core.show.compare import compare
    from unettui.tui.results_model import ResultsModel

    rows = collect(load_queue(project), RunStore(project), metrics=True)
    model = ResultsModel()
    model.set_views(rows)
    shown = model.shown()
    assert shown.grouped and shown.keys == ["cv"] and "fold" not in shown.columns
    oof = shown.cells["cv"][shown.columns.index("oof_val_dice")].plain
    summaries = [RunStore(project).run(f"cv-f{i}").summary() for i in (1, 2, 3)]
    sums = [sum(s["best_val_counts"][0][j] for s in summaries) for j in range(3)]
    assert oof == f"{2 * sums[0] / (2 * sums[0] + sums[1] + sums[2]):.4f}"
    c = compare(rows, "val_dice")
    assert [s.label for s in c.series] == ["cv"] and c.series[0].band is not None and "fold" not in c.varied
