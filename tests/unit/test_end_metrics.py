"""End-of-run boundary metrics (issue 24): HD95 and NSD on the best epoch's weights for validation and test, in the
run's summary, equal to an independent recomputation from best.pt's predictions; never NaN, even from a model that
predicts nothing for a class; the same through a pack; evaluate --json holds them."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from unettui.core.define.config import Config
from unettui.core.learn.boundary import BoundaryAccumulator
from unettui.core.learn.model import UNet
from unettui.core.learn.pack_train import PackTrainer
from unettui.core.learn.train import Trainer
from unettui.core.runs.store import RunStore

TINY = dict(device="cpu", image_size=32, base_channels=4, depth=2, batch_size=4, num_images=20, test_fraction=0.2,
            preview_count=0, epochs=2, lr=5e-3)
HEART = dict(dataset="synthetic:heart", num_classes=3, **TINY)

pytestmark = pytest.mark.usefixtures("one_thread")


def new_run(tmp_path, run_id, folder="runs"):
    run = RunStore(tmp_path / folder).run(run_id)
    run.path.mkdir(parents=True)
    return run


def no_nan(obj) -> bool:
    if isinstance(obj, float):
        return not (math.isnan(obj) or math.isinf(obj))
    if isinstance(obj, dict):
        return all(no_nan(v) for v in obj.values())
    if isinstance(obj, list):
        return all(no_nan(v) for v in obj)
    return True


def recompute(trainer: Trainer, run, split: str) -> dict:
    """HD95/NSD from best.pt's predictions, computed here: a fresh UNet, argmax/threshold by hand."""
    blob = torch.load(run.file("best.pt"), weights_only=False)
    cfg = trainer.cfg
    model = UNet(trainer.channels, 1 if cfg.num_classes == 2 else cfg.num_classes, cfg.base_channels, cfg.depth)
    model.load_state_dict(blob["model"])
    model.eval()
    x, y = (trainer.val_x, trainer.val_y) if split == "val" else (trainer.test_x, trainer.test_y)
    with torch.no_grad():
        logits = model(x)
    pred = (logits[:, 0] > 0).long().numpy() if cfg.num_classes == 2 else logits.numpy().argmax(1)
    names = ("foreground",) if cfg.num_classes == 2 else trainer.task.classes.foreground
    acc = BoundaryAccumulator(names, cfg.nsd_tolerance)
    acc.add(y[:, 0].long().numpy(), pred)
    return acc.result()


@pytest.mark.parametrize("kind", ["binary", "3-class"])
def test_a_runs_summary_holds_hd95_and_nsd_of_its_best_weights(tmp_path, kind):
    cfg = Config(**(HEART if kind == "3-class" else dict(dataset="synthetic:nuclei", **TINY)))
    run = new_run(tmp_path, kind)
    trainer = Trainer(cfg)
    result = trainer.fit(run, run_id=kind)
    summary = json.loads(run.file("summary.json").read_text())
    assert result.state == "done" and no_nan(summary)
    assert summary["nsd_tolerance"] == 2.0
    for split in ("val", "test"):
        ref = recompute(trainer, run, split)
        if kind == "binary":
            assert summary[f"{split}_hd95"] == pytest.approx(ref["hd95_foreground"], abs=1e-9)
            assert summary[f"{split}_nsd"] == pytest.approx(ref["nsd_foreground"], abs=1e-9)
            assert summary[f"{split}_boundary_n"] == ref["n_foreground"] > 0
        else:
            for name in ("cavity", "myocardium"):
                assert summary[f"{split}_hd95_{name}"] == pytest.approx(ref[f"hd95_{name}"], abs=1e-9)
                assert summary[f"{split}_nsd_{name}"] == pytest.approx(ref[f"nsd_{name}"], abs=1e-9)
            assert summary[f"{split}_hd95_max"] == pytest.approx(ref["hd95_max"], abs=1e-9)
            assert summary[f"{split}_nsd_min"] == pytest.approx(ref["nsd_min"], abs=1e-9)


def test_a_model_that_predicts_nothing_for_a_class_scores_the_diagonal_and_zero_never_nan(tmp_path):
    cfg = Config(**HEART)
    run = new_run(tmp_path, "blind")
    trainer = Trainer(cfg)
    trainer.fit(run, run_id="blind")
    blob = torch.load(run.file("best.pt"), weights_only=False)
    blob["model"]["head.bias"][2] = -1e4  # the myocardium is never the most probable class
    torch.save(blob, run.file("best.pt"))
    out = trainer.end_of_run(run)
    diagonal = math.hypot(32, 32)
    assert out["val_hd95_myocardium"] == pytest.approx(diagonal)  # a missed structure in every image
    assert out["val_nsd_myocardium"] == 0.0 and out["val_nsd_min"] == 0.0 and out["val_hd95_max"] == pytest.approx(diagonal)
    assert out["val_hd95_sd_myocardium"] == pytest.approx(0.0)
    assert out["val_boundary_n_myocardium"] == trainer.n_val  # every image has a ring: each scored
    summary = trainer.summary()
    assert no_nan(summary) and summary["val_hd95_myocardium"] == out["val_hd95_myocardium"]
    text = json.dumps(summary)
    assert "NaN" not in text and "Infinity" not in text


def test_a_packs_members_get_the_end_of_run_metrics_of_their_own_best_weights(tmp_path):
    cfgs = [Config(seed=s, **HEART) for s in (1, 2)]
    runs = [new_run(tmp_path, f"m{s}", "packed") for s in (1, 2)]
    pack = PackTrainer.from_configs(cfgs)
    results = pack.fit(runs, run_ids=["m1", "m2"])
    assert [r.state for r in results] == ["done", "done"]
    for member, run in zip(pack.members, runs):
        summary = json.loads(run.file("summary.json").read_text())
        ref = recompute(member, run, "val")
        assert summary["val_hd95_myocardium"] == pytest.approx(ref["hd95_myocardium"], abs=1e-9)
        assert summary["test_nsd_cavity"] is not None and no_nan(summary)
    a, b = (json.loads(r.file("summary.json").read_text()) for r in runs)
    assert a["val_hd95"] != b["val_hd95"]  # each member's own weights


def test_evaluate_json_holds_the_runs_end_of_run_boundary_metrics(tmp_path):
    from typer.testing import CliRunner

    from unettui.cli.app import app

    proj = tmp_path / "p"
    proj.mkdir()
    keys = "\n".join(f"{k} = {json.dumps(v)}" for k, v in HEART.items())
    (proj / "experiments.toml").write_text(f"[defaults]\n{keys}\n\n[[experiment]]\nid = 'h'\n")
    assert CliRunner().invoke(app, ["run", "--headless", "-p", str(proj)]).exit_code == 0
    summary = json.loads((proj / "runs" / "h" / "summary.json").read_text())
    out = CliRunner().invoke(app, ["evaluate", "h", "-p", str(proj), "--split", "test", "--json"])
    assert out.exit_code == 0, out.output
    got = json.loads(out.output)["boundary"]
    for key in ("hd95", "nsd", "hd95_myocardium", "nsd_cavity", "hd95_max", "nsd_min"):
        assert got[key] == pytest.approx(summary[f"test_{key}"], abs=1e-9), key
    assert got["nsd_tolerance"] == 2.0 and got["units"] == "pixels"
    assert np.isfinite([v for v in got.values() if isinstance(v, float)]).all()
