"""Binary segmentation is exactly what it was before multi-class label maps existed: the same numbers, bit for bit, on
the CPU. tests/data/binary_before_classes.json holds what the trainer of df3be0d (the last commit before the task
definition) recorded for these definitions, one thread, float32 (scripts in the commit message of that file)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unettui.core.define.config import DEFAULTS, Config, build_config
from unettui.core.learn.train import Trainer

GOLDEN = json.loads((Path(__file__).parents[1] / "data" / "binary_before_classes.json").read_text())

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_a_binary_run_records_exactly_the_numbers_it_recorded_before_classes_existed(name):
    want = GOLDEN[name]
    cfg = build_config(want["config"], name)
    assert cfg.num_classes == 2 and cfg.mask_values == () and cfg.fingerprint() != DEFAULTS.fingerprint()
    trainer = Trainer(cfg)
    result = trainer.fit()
    history = [{k: v for k, v in h.items() if k != "seconds"} for h in trainer.history]
    assert history == want["history"]  # every key, every float: ==, not approx
    summary = {k: v for k, v in result.summary.items() if k != "seconds"}
    assert {k: summary[k] for k in want["summary"]} == want["summary"]
    # the keys binary runs gained: best_val_iou, how the images reached the model ("resize to 64"), and the best
    # epoch's validation counts (what pooled out-of-fold scores sum)
    assert set(summary) - set(want["summary"]) == {"best_val_iou", "mode", "best_val_counts"}
    tp, fp, fn = summary["best_val_counts"][0]
    assert summary["best_val_dice"] == (2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0)
    assert summary["mode"] == f"resize to {cfg.image_size}"
    best = next(h for h in trainer.history if h["epoch"] == summary["best_epoch"])
    assert summary["best_val_iou"] == best["val_iou"]


def test_binary_definitions_keep_their_fingerprints():
    # the fingerprint of the defaults as df3be0d computed it: the class keys are hashed only when set
    assert DEFAULTS.fingerprint() == "5fb006d34cfe23f0"
    assert Config(num_classes=3).fingerprint() != DEFAULTS.fingerprint()
