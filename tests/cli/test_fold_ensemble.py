"""The final model of a cross-validated configuration is the ensemble of its folds (issue 26): `predict` and
`evaluate` on its id (or any fold's) average the folds' probabilities and say so; `--fold N` uses one fold."""

import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from unettui.cli.app import app
from unettui.core.learn.predict import image_logits, load_model, probabilities
from unettui.core.runs.store import RunStore

QUEUE = """[defaults]
dataset = "synthetic:nuclei"
num_images = 14
image_size = 32
base_channels = 4
depth = 2
epochs = 2
batch_size = 4
test_fraction = 0.2
device = "cpu"
preview_count = 0

[[experiment]]
id = "cv"
folds = 3
"""

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("cv")
    (root / "experiments.toml").write_text(QUEUE)
    out = CliRunner().invoke(app, ["run", "--headless", "--plain", "--pack", "3", "-p", str(root)])
    assert out.exit_code == 0, out.output
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
