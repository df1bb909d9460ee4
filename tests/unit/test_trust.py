"""Winners you can trust: repeats with their own seeds and stable ids, mean ± sd, the noise-aware winner rule, and a
held-out test split that nothing chooses by."""

import json
import math

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from tests.helpers import finish
from unettui.core.define.config import Config
from unettui.core.define.study import ConfigScore, RunScore, choose, score
from unettui.core.learn.data import split_with_test
from unettui.core.learn.feasible import held_out_count, split_counts
from unettui.core.learn.train import Trainer
from unettui.core.plan import load_queue
from unettui.core.runs.export import collect_rows
from unettui.core.runs.groups import configuration_rows, mean_sd, within_noise
from unettui.core.runs.store import RunStore

TINY = dict(dataset="synthetic:nuclei", num_images=20, image_size=32, base_channels=4, depth=2, batch_size=4,
            device="cpu")


# ---- repeats -------------------------------------------------------------------------------------------


def test_repeats_expand_to_runs_with_their_own_seeds_and_stable_ids(tmp_path):
    (tmp_path / "experiments.toml").write_text(
        "[defaults]\nseed = 7\n[[experiment]]\nid = 'a'\nrepeats = 3\n"
        "[[sweep]]\nid = 's'\nlr = [0.1, 0.2]\nrepeats = 2\n[[experiment]]\nid = 'single'\n")
    q = load_queue(tmp_path)
    assert [e.id for e in q.experiments] == ["a", "a-r2", "a-r3", "s-lr0.1", "s-lr0.1-r2", "s-lr0.2", "s-lr0.2-r2",
                                             "single"]
    a = [q.get(i) for i in ("a", "a-r2", "a-r3")]
    assert [e.config.seed for e in a] == [7, 1007, 2007]  # init, order, augmentation and dropout differ
    assert {e.config.data_seed for e in a} == {0}  # ... the data split does not
    assert {e.configuration for e in a} == {"a"} and [e.repeat for e in a] == [1, 2, 3]
    assert q.get("s-lr0.2-r2").configuration == "s-lr0.2" and q.get("single").configuration == "single"
    # adding repeats keeps the first run: its id and definition do not change
    (tmp_path / "experiments.toml").write_text(
        "[defaults]\nseed = 7\n[[experiment]]\nid = 'a'\nrepeats = 5\n")
    q2 = load_queue(tmp_path)
    assert [e.id for e in q2.experiments][:3] == ["a", "a-r2", "a-r3"]
    from unettui.core.define.config import definition_changes

    assert definition_changes(a[0].config.to_dict(), q2.get("a").config) == []


def test_repeats_cannot_be_swept_and_leave_room_for_their_seeds(tmp_path):
    (tmp_path / "experiments.toml").write_text("[[sweep]]\nrepeats = [1, 3]\n[[experiment]]\nid = 'big'\n"
                                               "seed = 9223372036854775000\nrepeats = 3\n")
    q = load_queue(tmp_path)
    messages = [str(p) for p in q.problems]
    assert any("repeats: cannot be swept" in m for m in messages)
    assert any("seed: 9223372036854775000 leaves no room for 3 repeats" in m for m in messages)


def _done(proj, run_id, dice, test=None, seed=0):
    finish(proj, run_id, "done", best_val_dice=dice, best_epoch=2, epochs_done=20, final_val_dice=dice,
           test_dice=test)
    cfg = Config(seed=seed).to_dict()
    (proj / "runs" / run_id / "config.json").write_text(json.dumps({"id": run_id, **cfg}))


def test_mean_and_sd_per_configuration_in_results_and_export(tmp_path):
    proj = tmp_path / "p"
    proj.mkdir()
    (proj / "experiments.toml").write_text("[[experiment]]\nid = 'a'\nrepeats = 3\n[[experiment]]\nid = 'b'\n")
    for run_id, dice, seed in (("a", 0.70, 0), ("a-r2", 0.80, 1000), ("a-r3", 0.75, 2000), ("b", 0.6, 0)):
        _done(proj, run_id, dice, test=dice - 0.1, seed=seed)
    rows = configuration_rows(collect_rows(load_queue(proj), RunStore(proj)))
    a = next(r for r in rows if r["configuration"] == "a")
    assert a["runs"] == 3 and a["seeds"] == "0,1000,2000" and a["status"] == "done"
    assert a["best_val_dice"] == pytest.approx(0.75) and a["best_val_dice_n"] == 3
    assert a["best_val_dice_sd"] == pytest.approx(0.05)  # sample sd of 0.70, 0.80, 0.75
    assert a["test_dice"] == pytest.approx(0.65) and a["test_dice_sd"] == pytest.approx(0.05)
    b = next(r for r in rows if r["configuration"] == "b")
    assert b["best_val_dice"] == pytest.approx(0.6) and b["best_val_dice_sd"] is None and b["best_val_dice_n"] == 1

    from typer.testing import CliRunner

    from unettui.cli.app import app

    out = CliRunner().invoke(app, ["results", "-p", str(proj)], env={"COLUMNS": "80"})
    assert out.exit_code == 0, out.output
    assert "0.750±0.050(3)" in out.output and "0.650±0.050(3)" in out.output and "…" not in out.output  # 80 columns
    assert "seed" not in out.output.split("same for all")[0]  # repeats differ only in seed: not a column
    runs = CliRunner().invoke(app, ["results", "-p", str(proj), "--runs"], env={"COLUMNS": "120"})
    assert "a-r3" in runs.output and "±" not in runs.output
    import csv
    import io

    table = list(csv.DictReader(io.StringIO(CliRunner().invoke(app, ["export", "-p", str(proj), "--by-configuration"]).stdout)))
    row = next(r for r in table if r["configuration"] == "a")
    assert row["seeds"] == "0,1000,2000" and row["runs"] == "3"
    assert float(row["best_val_dice_sd"]) == pytest.approx(0.05) and row["best_val_dice_n"] == "3"


def test_mean_sd_and_the_noise_test():
    assert mean_sd([1.0, 2.0, 3.0]) == (2.0, 1.0, 3)
    assert mean_sd([0.5]) == (0.5, None, 1) and mean_sd([]) == (None, None, 0)
    assert within_noise(0.80, 0.02, 0.78, 0.02)  # 0.02 apart, SE of the difference 0.028
    assert not within_noise(0.80, 0.005, 0.78, 0.005)  # 0.02 apart, SE 0.007
    assert not within_noise(0.80, None, 0.7999, None)  # single runs: no noise estimate, no tie within noise


def _config(values, per_repeat, fractions=(None,)):
    cs = ConfigScore(values=values)
    for f in fractions:
        for k, v in enumerate(per_repeat, 1):
            cs.runs.append(RunScore(id=f"{values}-{f}-{k}", fraction=f, state="done", value=v, repeat=k))
    score(cs)
    return cs


def test_a_winner_within_the_noise_is_called_a_tie_and_the_steadiest_wins():
    noisy_best = _config({"loss": "dice"}, [0.90, 0.70, 0.86])  # mean 0.82, sd 0.106
    steady = _config({"loss": "dice_bce"}, [0.80, 0.81, 0.79])  # mean 0.80, sd 0.01
    far = _config({"loss": "bce"}, [0.50, 0.52, 0.51])
    assert noisy_best.score == pytest.approx(0.82) and noisy_best.n == 3
    assert noisy_best.se == pytest.approx(noisy_best.sd / math.sqrt(3))
    best, how, why = choose([noisy_best, steady, far], "max")
    assert best is steady and how == "tie within noise"
    assert "2 configurations within one standard error of the best mean (0.8200, n=3)" in why
    # a margin beyond the noise is a win
    clear = _config({"loss": "dice"}, [0.95, 0.96, 0.94])
    best, how, why = choose([clear, steady, far], "max")
    assert best is clear and how == "best" and "± 0.0100 (n=3)" in why and "0.1500 ahead" in why
    # without repeats: the best score wins as before (no noise estimate)
    best, how, _ = choose([_config({"x": 1}, [0.8]), _config({"x": 2}, [0.79])], "max")
    assert best.values == {"x": 1} and how == "best"
    # a loss metric: lower is better, the same rule
    lo = _config({"x": 1}, [0.20, 0.40, 0.24])
    lo_steady = _config({"x": 2}, [0.30, 0.31, 0.29])
    best, how, _ = choose([lo, lo_steady], "min")
    assert best is lo_steady and how == "tie within noise"


def test_scores_average_repeats_within_each_fraction_then_over_fractions():
    cs = ConfigScore(values={"wd": 0.1})
    for f, vals in ((0.2, [0.5, 0.7]), (0.8, [0.9, 0.9])):
        for k, v in enumerate(vals, 1):
            cs.runs.append(RunScore(id=f"{f}-{k}", fraction=f, state="done", value=v, repeat=k))
    score(cs)
    assert cs.score == pytest.approx(0.75) and cs.spread == pytest.approx(0.3) and cs.n == 2
    assert cs.sd == pytest.approx(math.sqrt((0.02 + 0.0) / 2))  # pooled over the two fractions


# ---- the held-out test split ------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [5, 20, 96, 160])
def test_the_test_split_is_disjoint_and_the_same_for_every_train_fraction(n):
    tests = set()
    for f in (0.2, 0.5, 0.8, 1.0):
        train, val, test, vot = split_with_test(n, f, seed=3, test_fraction=0.2)
        t, tr, va = set(test.tolist()), set(train.tolist()), set(val.tolist())
        assert not t & tr and not t & va  # never trained on, never validated on
        assert vot == (f == 1.0) and (tr == va if vot else not tr & va)
        assert len(t) == held_out_count(n, 0.2) and (len(tr), len(va)) == split_counts(n, f, 0.2)
        assert t | tr | va == set(range(n))
        tests.add(frozenset(t))
    assert len(tests) == 1  # every experiment of a study holds out the same images
    assert split_with_test(n, 0.8, seed=3, test_fraction=0.2)[2].tolist() != \
        split_with_test(n, 0.8, seed=4, test_fraction=0.2)[2].tolist() or n < 6


def test_no_test_fraction_is_exactly_the_earlier_split():
    from unettui.core.learn.data import split_indices

    for n, f, seed in ((160, 0.8, 0), (96, 0.5, 7), (20, 1.0, 1)):
        train, val, test, vot = split_with_test(n, f, seed, 0.0)
        old = split_indices(n, f, seed)
        assert train.tolist() == old[0].tolist() and val.tolist() == old[1].tolist() and not len(test)


def _folder(root, n, flip_masks=()):
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        img = (rng.random((32, 32)) * 80).astype(np.uint8)
        mask = np.zeros((32, 32), np.uint8)
        mask[6 + i % 5:20 + i % 5, 8:22] = 255
        img[mask > 0] += 120
        if i in flip_masks:
            mask = 255 - mask
        iio.imwrite(root / "images" / f"c{i:02d}.png", img)
        iio.imwrite(root / "masks" / f"c{i:02d}.png", mask)


def test_test_images_never_touch_training_or_selection(tmp_path):
    """Corrupting every test image's mask changes the test score and nothing else: the same curves, the same best
    epoch, the same best.pt. If test images leaked into training or validation, the curves would move."""
    cfg = Config(dataset="data", num_images=24, image_size=32, base_channels=4, depth=2, batch_size=4, epochs=4,
                 test_fraction=0.25, train_fraction=0.75, lr=3e-3, device="cpu")
    test_idx = split_with_test(24, cfg.train_fraction, cfg.data_seed, cfg.test_fraction)[2].tolist()
    results = []
    for name, flip in (("clean", ()), ("poisoned", tuple(test_idx))):
        proj = tmp_path / name
        _folder(proj / "data", 24, flip_masks=flip)
        run = RunStore(proj).run("r")
        run.path.mkdir(parents=True)
        out = Trainer(cfg, proj).fit(run)
        results.append((out.summary, run.metrics(), torch.load(run.file("best.pt"), weights_only=False)["model"]))
    (clean, m1, w1), (poisoned, m2, w2) = results
    strip = [{k: v for k, v in m.items() if k != "seconds"} for m in m1]
    assert strip == [{k: v for k, v in m.items() if k != "seconds"} for m in m2]
    assert clean["best_epoch"] == poisoned["best_epoch"] and clean["best_val_dice"] == poisoned["best_val_dice"]
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    assert clean["n_test"] == 6 and clean["test_dice"] is not None
    assert poisoned["test_dice"] < clean["test_dice"]  # the test score alone sees the difference


def test_best_pt_is_the_best_epochs_model(tmp_path):
    """Scoring best.pt on the run's own validation images gives back the best epoch's val Dice exactly, whatever came
    after it."""
    from unettui.core.learn.predict import load_model, run_split
    from unettui.core.learn.predict import score as score_model

    proj = tmp_path
    run = RunStore(proj).run("r")
    run.path.mkdir(parents=True)
    summary = Trainer(Config(epochs=6, lr=3e-3, test_fraction=0.2, **TINY), proj).fit(run).summary
    tm = load_model(run, device="cpu")
    assert tm.epoch == summary["best_epoch"]
    val = score_model(tm, *run_split(tm, proj, "val"))
    assert val.dice == summary["best_val_dice"]
    test = score_model(tm, *run_split(tm, proj, "test"))
    assert test.dice == pytest.approx(summary["test_dice"], abs=1e-12) and test.images == summary["n_test"]
    last = load_model(run, last=True, device="cpu")
    assert last.epoch == 6 and score_model(last, *run_split(last, proj, "val")).dice == summary["final_val_dice"]


def _folded(values, per_fold):
    cs = ConfigScore(values=values)
    for k, v in enumerate(per_fold, 1):
        cs.runs.append(RunScore(id=f"{values}-f{k}", fraction=None, state="done", value=v, fold=k))
    score(cs)
    return cs


def test_with_folds_winners_are_compared_fold_by_fold():
    from unettui.core.define.study import paired, paired_text

    # fold 3 is hard for everyone: unpaired, the fold-to-fold spread (sd ~0.1) hides a margin that every fold shows
    a = _folded({"opt": "adam"}, [0.92, 0.90, 0.71])
    b = _folded({"opt": "sgd"}, [0.90, 0.88, 0.70])
    assert within_noise(a.score, a.se, b.score, b.se)  # what the unpaired rule would call a tie
    diff, se, n = paired(a, b)
    assert n == 3 and diff == pytest.approx(0.05 / 3) and se == pytest.approx(0.0033333, abs=1e-6)
    best, how, why = choose([b, a], "max")
    assert best is a and how == "best" and "paired: +0.0167 ± 0.0033 (SE, 3 pairs; 95 % +0.0023 ... +0.0310)" in why
    assert b.paired == paired(a, b) and a.paired is None
    # a difference that changes sign from fold to fold is within the paired noise: the steadier wins
    c = _folded({"opt": "rmsprop"}, [0.95, 0.86, 0.70])  # mean 0.8367: ahead of a by 0.0033, not on every fold
    best, how, why = choose([a, c], "max")
    assert how == "tie within noise" and "one paired standard error (the same folds)" in why
    assert best is (a if a.sd < c.sd else c)
    assert paired_text(None) == "-"
    # only matched folds pair: a fold without a value (failed) leaves that pair out
    d = _folded({"opt": "sgd"}, [0.90, None, 0.70])
    assert paired(a, d)[2] == 2
