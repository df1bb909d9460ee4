"""The k folds of a configuration trained as one pack (issue 26): each member trains and validates on its own fold's
images and equals its fold trained alone (float64), with folds of unequal size; killed, the pack resumes to the
uninterrupted numbers."""

from __future__ import annotations

import json

import pytest
import torch

from tests.unit.test_native_train import records, run_of, worst, write_folder
from unettui.core.define.config import Config
from unettui.core.learn.pack_train import PackTrainer, pack_key
from unettui.core.learn.train import Events, Trainer
from unettui.core.runs.store import RunStore

F64 = torch.float64
# 14 images, 3 held out for test: 11 to deal into 3 folds of 4, 4 and 3 (training sets of 7, 7 and 8 images)
BASE = dict(device="cpu", dataset="synthetic:nuclei", num_images=14, image_size=32, base_channels=4, depth=2,
            batch_size=3, epochs=2, test_fraction=0.2, folds=3, preview_count=2, seed=5, lr=3e-3,
            augment_hflip=0.5, dropout=0.2)

pytestmark = pytest.mark.usefixtures("one_thread")


def split(tmp_path, folder, run_id):
    return json.loads(RunStore(tmp_path / folder).run(run_id).file("split.json").read_text())


def test_the_folds_of_a_configuration_share_a_pack_key_and_each_epoch_is_the_smallest_folds_training_set():
    cfgs = [Config(**BASE, fold=i) for i in (1, 2, 3)]
    assert len({pack_key(c) for c in cfgs}) == 1
    trainers = [Trainer(c) for c in cfgs]
    assert sorted(t.n_val for t in trainers) == [3, 4, 4] and sorted(t.n_train for t in trainers) == [7, 7, 8]
    assert {t.samples_per_epoch for t in trainers} == {7} and {t.steps_per_epoch for t in trainers} == {3}
    eight = next(t for t in trainers if t.n_train == 8)
    left_out = [set(range(8)) - set(eight.new_epoch().tolist()) for _ in range(6)]
    assert all(len(s) == 1 for s in left_out) and len(set(map(min, left_out))) > 1  # a different one each epoch
    plain = Trainer(Config(**{**BASE, "folds": 0}))
    assert plain.samples_per_epoch == plain.n_train  # without folds an epoch is every training image
    # two configurations' folds in one pack: the dataset is read once, each fold split once
    pack = PackTrainer.from_configs([*cfgs, *(c.replace(lr=1e-2) for c in cfgs)])
    a, b = pack.members[:3], pack.members[3:]
    assert all(x.train_x is y.train_x and x.val_x is y.val_x for x, y in zip(a, b))
    assert a[0].train_x is not a[1].train_x and len({id(m.source) for m in pack.members}) == 1


def test_a_pack_of_unequal_folds_equals_each_fold_trained_alone_in_float64(tmp_path):
    cfgs = [Config(**BASE, fold=i) for i in (1, 2, 3)]
    ids = [f"cv-f{i}" for i in (1, 2, 3)]
    pack = PackTrainer.from_configs(cfgs, dtype=F64)
    assert not pack.same_data
    results = pack.fit([run_of(tmp_path, i, "packed") for i in ids], run_ids=ids)
    assert [r.state for r in results] == ["done"] * 3
    largest = 0.0
    for cfg, member, result, rid in zip(cfgs, pack.members, results, ids):
        alone = Trainer(cfg, dtype=F64)
        alone_result = alone.fit(run_of(tmp_path, rid, "solo"), run_id=rid)
        largest = max(largest, worst(records(member.history), records(alone.history)))
        assert result.summary["best_val_counts"] == alone_result.summary["best_val_counts"]
        assert result.summary["test_dice"] == pytest.approx(alone_result.summary["test_dice"], abs=1e-12)
        assert split(tmp_path, "packed", rid) == split(tmp_path, "solo", rid)
    vals = [v for rid in ids for v in split(tmp_path, "packed", rid)["val"]]
    assert len(vals) == len(set(vals)) == 11  # every non-test image validated once, by the fold that left it out
    print(f"pack of 3 unequal folds vs 3 solo folds, float64: max |diff| = {largest:.3g}")
    assert largest <= 1e-12


def test_a_killed_fold_pack_resumes_to_the_uninterrupted_numbers(tmp_path):
    cfgs = [Config(**{**BASE, "epochs": 3}, fold=i) for i in (1, 2, 3)]
    ids = [f"cv-f{i}" for i in (1, 2, 3)]
    whole = PackTrainer.from_configs(cfgs, dtype=F64)
    whole.fit([run_of(tmp_path, i, "whole") for i in ids], run_ids=ids)

    first = PackTrainer.from_configs(cfgs, dtype=F64)
    first.max_write_share = 1.0  # write after every epoch, as a checkpoint before the kill
    epochs = []

    def stop_after_two():
        return len(epochs) >= 6  # two epochs of three members: stopped as a kill at the start of the third

    events = [Events(on_epoch=epochs.append, should_stop=stop_after_two) for _ in ids]
    results = first.fit([run_of(tmp_path, i, "resumed") for i in ids], events, ids)
    assert [r.state for r in results] == ["interrupted"] * 3
    again = PackTrainer.from_configs(cfgs, dtype=F64)
    resumed = again.fit([run_of(tmp_path, i, "resumed") for i in ids], run_ids=ids)
    assert [r.state for r in resumed] == ["done"] * 3
    for rid in ids:
        a = RunStore(tmp_path / "whole").run(rid).metrics()
        b = RunStore(tmp_path / "resumed").run(rid).metrics()
        assert [r["epoch"] for r in b] == [1, 2, 3]
        assert worst(records(a), records(b)) == 0.0


def test_native_folds_of_images_of_their_own_sizes_pack_and_equal_their_solo_runs(tmp_path):
    sizes = [(40, 72), (56, 24), (33, 47), (64, 64), (48, 80), (20, 30), (36, 36), (44, 28), (30, 52), (60, 40)]
    folder = write_folder(tmp_path / "data", sizes)
    base = dict(device="cpu", dataset=str(folder), patch_size=16, base_channels=4, depth=2, batch_size=4, epochs=2,
                folds=3, preview_count=1, augment_rotate=10.0, seed=3)
    cfgs = [Config(**base, fold=i) for i in (1, 2, 3)]
    ids = [f"nat-f{i}" for i in (1, 2, 3)]
    pack = PackTrainer.from_configs(cfgs, dtype=F64)
    # the same epoch for every fold: the patches that cover (k - 1) / k of the 10 images' pixels once
    pixels = sum(h * w for h, w in sizes)
    assert {m.samples_per_epoch for m in pack.members} == {-(-2 * pixels // (3 * 16 * 16))}
    results = pack.fit([run_of(tmp_path, i, "packed") for i in ids], run_ids=ids)
    assert [r.state for r in results] == ["done"] * 3
    for cfg, member, rid in zip(cfgs, pack.members, ids):
        alone = Trainer(cfg, dtype=F64)
        alone.fit(run_of(tmp_path, rid, "solo"), run_id=rid)
        assert worst(records(member.history), records(alone.history)) <= 1e-12
        assert split(tmp_path, "packed", rid) == split(tmp_path, "solo", rid)
