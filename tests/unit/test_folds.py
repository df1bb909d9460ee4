"""k-fold cross-validation, the first part (issue 26): folds of the non-test images that are disjoint, cover every
non-test image once and stay the same on every read; a configuration with folds (and repeats) becomes one run per
fold with stable ids; each run trains on the other folds and records its split in split.json; bad settings are
refused with one line."""

from __future__ import annotations

import json

import pytest
import torch

from unettui.core.define.config import Config, ConfigError, build_config
from unettui.core.define.queue import read_queue
from unettui.core.learn.data import DatasetError, fold_of, split_folds, split_with_test
from unettui.core.learn.feasible import problems
from unettui.core.learn.train import Trainer
from unettui.core.runs.store import RunStore

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("n,k,tf", [(10, 3, 0.0), (77, 5, 0.2), (12, 4, 0.25), (5, 5, 0.0)])
def test_folds_are_disjoint_cover_every_non_test_image_once_and_are_stable(n, k, tf):
    fold, test = fold_of(n, k, seed=7, test_fraction=tf)
    assert torch.equal(torch.sort(test).values, split_with_test(n, 0.8, 7, tf)[2])  # the test images of every run
    assert set(torch.nonzero(fold == 0).reshape(-1).tolist()) == set(test.tolist())
    sizes = [int((fold == i).sum()) for i in range(1, k + 1)]
    assert sum(sizes) == n - len(test) and max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
    again, _ = fold_of(n, k, seed=7, test_fraction=tf)
    assert torch.equal(fold, again)  # the same folds on every read
    assert not torch.equal(fold, fold_of(n, k, seed=8, test_fraction=tf)[0]) or n <= k  # data_seed deals them
    seen = []
    for i in range(1, k + 1):
        train, val, t, vot = split_folds(n, k, i, seed=7, test_fraction=tf)
        assert not vot and not set(train.tolist()) & set(val.tolist())
        assert set(train.tolist()) | set(val.tolist()) | set(t.tolist()) == set(range(n))
        seen += val.tolist()
    assert sorted(seen) == sorted(set(range(n)) - set(test.tolist()))  # each non-test image validated once


def test_more_folds_than_images_to_validate_on_is_refused_naming_both_counts():
    with pytest.raises(DatasetError, match="folds = 6 needs at least 6 images to validate on, the dataset has 4 "
                                           "after test_fraction 0.2 holds out 1"):
        fold_of(5, 6, 0, 0.2)
    found = problems(Config(folds=6, test_fraction=0.2, num_images=5, batch_size=1), 5)
    assert found and found[0][0] == "folds" and "use folds = 4 or fewer" in found[0][1]


def test_bad_fold_settings_are_refused_in_one_line():
    for values, key, words in (({"folds": 1}, "folds", "one fold would validate on the images it trains on"),
                               ({"fold": 2}, "fold", "is set without folds"),
                               ({"folds": 3, "fold": 4}, "fold", "above folds = 3"),
                               ({"folds": 3, "train_fraction": 0.5}, "train_fraction", "train_fraction is not used")):
        with pytest.raises(ConfigError) as err:
            build_config(values, "experiments.toml")
        assert err.value.key == key and words in str(err.value) and "\n" not in str(err.value)


def test_a_configuration_with_folds_and_repeats_becomes_one_run_per_fold_with_stable_ids(tmp_path):
    (tmp_path / "experiments.toml").write_text('[defaults]\nfolds = 3\n\n[[experiment]]\nid = "cv"\nrepeats = 2\n\n'
                                               '[[experiment]]\nid = "plain"\nfolds = 0\n')
    queue = read_queue(tmp_path)
    ids = [e.id for e in queue.experiments]
    assert ids == ["cv-f1", "cv-f2", "cv-f3", "cv-r2-f1", "cv-r2-f2", "cv-r2-f3", "plain"]
    cv = [e for e in queue.experiments if e.configuration == "cv"]
    assert [(e.repeat, e.fold, e.config.fold, e.config.seed) for e in cv] == [
        (1, 1, 1, 0), (1, 2, 2, 0), (1, 3, 3, 0), (2, 1, 1, 1000), (2, 2, 2, 1000), (2, 3, 3, 1000)]
    assert [e.id for e in read_queue(tmp_path).experiments] == ids  # stable under re-reads


def test_each_fold_run_trains_on_the_other_folds_and_records_its_split(tmp_path):
    base = dict(device="cpu", dataset="synthetic:nuclei", num_images=11, image_size=32, base_channels=4, depth=2,
                batch_size=2, epochs=1, test_fraction=0.2, folds=3, preview_count=0)
    store = RunStore(tmp_path)
    splits = []
    for i in (1, 2, 3):
        run = store.run(f"cv-f{i}")
        run.path.mkdir(parents=True)
        trainer = Trainer(Config(**base, fold=i))
        assert trainer.fit(run, run_id=run.id).state == "done"
        split = json.loads(run.file("split.json").read_text())
        assert set(split) == {"train", "val", "test"} and not set(split["train"]) & set(split["val"])
        assert split["val"] == trainer.names and len(split["test"]) == 2  # round(0.2 * 11)
        splits.append(split)
    assert all(s["test"] == splits[0]["test"] for s in splits)  # one test split for every fold
    vals = sorted(name for s in splits for name in s["val"])
    assert vals == sorted(set(vals)) and len(vals) == 9  # out of fold: every non-test image validated once
    plain = store.run("plain")
    plain.path.mkdir()
    Trainer(Config(**{**base, "folds": 0})).fit(plain, run_id="plain")
    assert set(json.loads(plain.file("split.json").read_text())) == {"train", "val", "test"}  # every run has one


def test_the_pooled_out_of_fold_score_counts_every_non_test_image_once(tmp_path):
    from unettui.core.learn.datasets import load_dataset
    from unettui.core.runs.groups import configuration_rows, pooled_oof

    base = dict(device="cpu", dataset="synthetic:nuclei", num_images=11, image_size=32, base_channels=4, depth=2,
                batch_size=2, epochs=2, test_fraction=0.2, folds=3, preview_count=0)
    rows = []
    for i in (1, 2, 3):
        trainer = Trainer(Config(**base, fold=i))
        summary = trainer.fit().summary
        rows.append({"id": f"cv-f{i}", "configuration": "cv", "repeat": 1, "fold": i, "folds": 3, "status": "done",
                     "best_val_counts": summary["best_val_counts"], "best_val_dice": summary["best_val_dice"]})
    sums = [sum(r["best_val_counts"][0][j] for r in rows) for j in range(3)]
    data = load_dataset("synthetic:nuclei", 32, 11, 0)
    test = set(split_with_test(11, 0.8, 0, 0.2)[2].tolist())
    foreground = sum(int((data.masks[i] > 0).sum()) for i in range(11) if i not in test)
    assert sums[0] + sums[2] == foreground  # tp + fn: the truth of every non-test image, each counted once
    mean, sd, n = pooled_oof(rows)
    assert n == 1 and sd is None and mean == pytest.approx(2 * sums[0] / (2 * sums[0] + sums[1] + sums[2]))
    assert pooled_oof(rows[:2]) == (None, None, 0)  # a fold missing: no pooled score yet
    folded = configuration_rows([{**r, "seed": 0, "seconds": 1.0} for r in rows])[0]
    assert folded["oof_val_dice"] == pytest.approx(mean) and folded["runs"] == 3
