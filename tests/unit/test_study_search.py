"""Study stages beyond a plain grid: the decade-then-bisection learning-rate search (with the best rate per
optimizer carried into later stages) and successive halving (rungs, pruning, promotion), on hand-made runs."""

import json

import pytest

from unettui.core.define.study import metric_at, next_multiplier
from unettui.core.define.study_parse import Halving
from unettui.core.plan import load_queue
from unettui.core.runs.store import RunStore, atomic_write_json


def write(proj, body, head="[defaults]\nepochs = 2\noptimizer = \"sgd\"\n"):
    proj.mkdir(exist_ok=True)
    (proj / "experiments.toml").write_text(head + body)
    return proj


def finish(proj, run_id, history):
    """A finished run whose metrics.jsonl holds ``history`` (val Dice per epoch) and a matching summary."""
    run = RunStore(proj).run(run_id)
    run.path.mkdir(parents=True, exist_ok=True)
    lines = [{"epoch": i + 1, "train_loss": 1 - d, "train_dice": d, "val_loss": 1 - d, "val_dice": d, "val_iou": d,
              "lr": 0.1, "seconds": 0.1} for i, d in enumerate(history)]
    (run.file("metrics.jsonl")).write_text("".join(json.dumps(x) + "\n" for x in lines))
    best = max(range(len(history)), key=lambda i: history[i])
    atomic_write_json(run.file("summary.json"), {
        "best_val_dice": history[best], "best_epoch": best + 1, "final_val_dice": history[-1], "final_val_loss": 1 - history[-1],
        "final_train_loss": 1 - history[-1], "final_train_dice": history[-1], "epochs_done": len(history),
        "epochs": 9, "stopped_early": False})
    run.write_status(state="done", epoch=len(history))


def stage(q, name, study="s"):
    s = next(s for s in q.studies if s.id == study)
    return next(st for st in s.stages if st.name == name)


# ---- the bisection --------------------------------------------------------------------------------------
def test_bisection_halves_toward_the_better_end():
    assert next_multiplier({1: 0.90, 10: 0.50}, 3, "max") == 5  # [1, 10] -> mid 5
    assert next_multiplier({1: 0.90, 10: 0.50, 5: 0.95}, 3, "max") == 3  # best mid, lo better than hi: [1, 5]
    assert next_multiplier({1: 0.90, 10: 0.50, 5: 0.95, 3: 0.93}, 3, "max") == 4  # hi best: [3, 5]
    assert next_multiplier({1: 0.90, 10: 0.50, 5: 0.95, 3: 0.93, 4: 0.96}, 3, "max") is None  # [4, 5]: done
    assert next_multiplier({1: 0.90, 10: 0.50, 5: 0.95}, 1, "max") is None  # steps spent
    assert next_multiplier({1: 0.90}, 3, "max") == 9  # the top power of ten: 9 is the first new run
    assert next_multiplier({1: 0.5, 10: 0.9}, 3, "max") == 5 and next_multiplier({1: 0.5, 10: 0.9, 5: 0.6}, 3, "max") == 7
    assert next_multiplier({1: 0.2, 10: 0.9, 5: 0.1}, 3, "min") == 3  # losses: smaller is better
    assert next_multiplier({1: None, 10: 0.5}, 3, "max") == 5  # a failed run scores -inf


def test_halving_rungs():
    assert Halving(4, 3).rungs(20) == [4, 12, 20]
    assert Halving(1, 2).rungs(8) == [1, 2, 4, 8]
    assert Halving(20, 3).rungs(20) == [20] and Halving(30, 3).rungs(20) == [20]


def test_metric_at_reads_the_history_up_to_an_epoch():
    h = [{"epoch": 1, "val_dice": 0.2, "val_loss": 0.9}, {"epoch": 2, "val_dice": 0.6, "val_loss": 0.5},
         {"epoch": 3, "val_dice": 0.4, "val_loss": 0.7}]
    assert metric_at(h, "best_val_dice", 2) == 0.6 and metric_at(h, "best_val_dice", 1) == 0.2
    assert metric_at(h, "final_val_dice", 3) == 0.4 and metric_at(h, "best_val_loss", 3) == 0.5
    assert metric_at(h, "best_val_dice", 0) is None


def test_best_val_loss_is_the_val_loss_of_the_best_dice_epoch_everywhere():
    """summary.json's best_val_loss is the val loss at the best-Dice epoch, not the lowest val loss; a halving
    rung (metric_at) must rank by the same number the final summary has."""
    h = [{"epoch": 1, "val_dice": 0.30, "val_loss": 0.40}, {"epoch": 2, "val_dice": 0.70, "val_loss": 0.55},
         {"epoch": 3, "val_dice": 0.70, "val_loss": 0.35}, {"epoch": 4, "val_dice": 0.50, "val_loss": 0.20}]
    assert metric_at(h, "best_val_loss", 4) == 0.55  # epoch 2: the first with the highest Dice; the lowest is 0.20
    assert metric_at(h, "best_val_loss", 1) == 0.40

    from unettui.core.define.config import Config
    from unettui.core.learn.train import Trainer

    cfg = Config(dataset="synthetic:nuclei", num_images=16, image_size=32, base_channels=4, depth=2, epochs=5,
                 batch_size=4, device="cpu", lr=3e-3)
    trainer = Trainer(cfg)
    summary = trainer.fit().summary
    history = trainer.history
    assert summary["best_val_loss"] == metric_at(history, "best_val_loss", 5)
    assert summary["best_val_dice"] == metric_at(history, "best_val_dice", 5)
    lowest = min(r["val_loss"] for r in history)
    best_epoch_loss = next(r["val_loss"] for r in history if r["epoch"] == summary["best_epoch"])
    assert summary["best_val_loss"] == best_epoch_loss
    assert lowest <= best_epoch_loss  # (equal only when the best-Dice epoch also has the lowest loss)


# ---- learning-rate search -------------------------------------------------------------------------------
SEARCH = """
[[study]]
id = "s"
[[study.stage]]
name = "lr"
optimizer = ["adam", "sgd"]
lr_search = { from = 1e-4, to = 1e-2, steps = 3 }
[[study.stage]]
name = "opt"
optimizer = ["adam", "sgd"]
scheduler = ["none", "step"]
[[study.stage]]
name = "loss"
loss = ["dice", "bce"]
"""

# a smooth bump per optimizer in log(lr): adam peaks near 3e-3, sgd near 6e-2 (beyond the top power, 1e-2)
PEAK = {"adam": 3e-3, "sgd": 6e-2}


def score(opt, lr):
    import math
    return round(0.95 - 0.1 * (math.log10(lr) - math.log10(PEAK[opt])) ** 2, 6)


def drive(proj, stage_name, fn):
    """Finish every unfinished run of a stage with fn(config) as its val Dice, until the stage is done."""
    for _ in range(20):
        q = load_queue(proj)
        st = stage(q, stage_name)
        todo = [q.get(i) for i in st.experiments if RunStore(proj).run(i).state() != "done"]
        if not todo:
            return q
        for e in todo:
            finish(proj, e.id, [fn(e.config)] * 2)
    raise AssertionError("the stage never finished")


def test_lr_search_per_optimizer_then_each_optimizer_on_its_own_rate(tmp_path):
    proj = write(tmp_path, SEARCH)
    q = load_queue(proj)
    st = stage(q, "lr")
    assert (st.kind, st.state, st.planned) == ("lr-search", "running", 2 * (3 + 3))
    assert [q.get(i).config.lr for i in st.experiments] == [1e-4, 1e-3, 1e-2] * 2  # the powers of ten first
    assert st.experiments[0] == "s-lr-adam-lr0.0001"
    q = drive(proj, "lr", lambda c: score(c.optimizer, c.lr))
    st = stage(q, "lr")
    lrs = {opt: [q.get(i).config.lr for i in st.experiments if q.get(i).config.optimizer == opt] for opt in PEAK}
    # adam: best power 1e-3 (0.927), 1e-2 scores 0.923 -> [1, 10]: 5e-3 (0.945, best, lo > hi) -> [1, 5]: 3e-3
    # (0.950, best, lo < hi) -> [3, 5]: 4e-3 (0.948); three steps spent
    assert lrs["adam"] == [1e-4, 1e-3, 1e-2, 5e-3, 3e-3, 4e-3]
    # sgd: best power is the top one, 1e-2 -> 9e-2 first (0.947), [1, 9]: 5e-2 (0.9494) -> [5, 9]: 7e-2 (0.9496)
    assert lrs["sgd"] == [1e-4, 1e-3, 1e-2, 9e-2, 5e-2, 7e-2]
    assert st.state == "done" and st.planned == 12
    assert st.tuned == [({"optimizer": "adam"}, {"lr": 3e-3}), ({"optimizer": "sgd"}, {"lr": 7e-2})]
    assert st.winner == {"optimizer": "adam", "lr": 3e-3}  # 0.95 against sgd's 0.9496
    # stage 2: each optimizer trains at its own best rate, whatever the carried winner
    st2 = stage(q, "opt")
    assert st2.state == "running" and len(st2.experiments) == 4
    got = {(q.get(i).config.optimizer, q.get(i).config.scheduler): q.get(i).config.lr for i in st2.experiments}
    assert got == {("adam", "none"): 3e-3, ("adam", "step"): 3e-3, ("sgd", "none"): 7e-2, ("sgd", "step"): 7e-2}
    # sgd with step wins stage 2: its own rate goes on with it (not adam's, the stage-1 winner's)
    q = drive(proj, "opt", lambda c: 0.9 if (c.optimizer, c.scheduler) == ("sgd", "step") else 0.5)
    st3 = stage(q, "loss")
    assert st3.carried == {"optimizer": "sgd", "lr": 7e-2, "scheduler": "step"}
    assert {q.get(i).config.lr for i in st3.experiments} == {7e-2}
    assert next(s for s in q.studies if s.id == "s").final()["lr"] == 7e-2


def test_lr_search_stage_waits_for_each_bisection_step(tmp_path):
    proj = write(tmp_path, SEARCH.replace('optimizer = ["adam", "sgd"]\nlr_search', 'lr_search'))
    q = load_queue(proj)
    st = stage(q, "lr")
    assert len(st.experiments) == 3  # one group (the base optimizer, sgd)
    for i in st.experiments[:2]:
        finish(proj, i, [0.5, 0.5])
    q = load_queue(proj)
    assert len(stage(q, "lr").experiments) == 3  # not before the whole decade sweep is done
    finish(proj, stage(q, "lr").experiments[2], [0.7, 0.7])
    q = load_queue(proj)
    st = stage(q, "lr")
    assert [q.get(i).config.lr for i in st.experiments] == [1e-4, 1e-3, 1e-2, 9e-2]
    assert st.state == "running" and stage(q, "opt").state == "waiting"


@pytest.mark.parametrize("body, key, needle", [
    ("lr_search = { from = 3e-4, to = 1e-1 }", "lr_search.from", "power of ten"),
    ("lr_search = { from = 1e-1, to = 1e-3 }", "lr_search", "must be below"),
    ("lr_search = { from = 1e-4, to = 1e-1, step = 2 }", "lr_search.step", "steps"),
    ("lr_search = { steps = -1 }", "lr_search.steps", ">= 0"),
    ("lr_search = 3", "lr_search", "must be a table"),
    ("lr = [1e-3, 1e-2]\nlr_search = {}", "lr", "remove lr here"),
    ("lr = [1e-3, 1e-2]\nhalving = { eta = 3 }", "halving.min_epochs", "required"),
    ("lr = [1e-3, 1e-2]\nhalving = { min_epochs = 0 }", "halving.min_epochs", ">= 1"),
    ("lr = [1e-3, 1e-2]\nhalving = { min_epochs = 1, eta = 1 }", "halving.eta", ">= 2"),
    ("lr = [1e-3, 1e-2]\nhalving = { min_epochs = 1, rate = 2 }", "halving.rate", "valid: min_epochs, eta"),
    ("epochs = [4, 8]\nhalving = { min_epochs = 1 }", "halving", "don't vary epochs"),
    ("lr_search = {}\nhalving = { min_epochs = 1 }", "halving", "cannot also use halving"),
])
def test_search_and_halving_validation(tmp_path, body, key, needle):
    proj = write(tmp_path, f"[[study]]\nid = \"s\"\n[[study.stage]]\nname = \"x\"\n{body}\n")
    q = load_queue(proj)
    bad = [p for p in q.problems if p.key == key]
    assert bad and needle in bad[0].message, [str(p) for p in q.problems]
    assert "stage 'x'" in bad[0].where


# ---- successive halving --------------------------------------------------------------------------------
HALVING = """
[[study]]
id = "s"
[[study.stage]]
name = "h"
lr = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09]
epochs = 9
halving = { min_epochs = 1, eta = 3 }
[[study.stage]]
name = "next"
scheduler = ["none", "step"]
"""

# val Dice per epoch of each lr: 0.05 starts slowly but ends best; 0.09 leads early then stalls
CURVE = {lr: [min(0.9, 0.1 * i * lr / 0.05) for i in range(1, 10)] for lr in (0.01, 0.02, 0.03, 0.04, 0.06, 0.07, 0.08)}
CURVE[0.05] = [0.1, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98]
CURVE[0.09] = [0.9, 0.91, 0.92, 0.92, 0.92, 0.92, 0.92, 0.92, 0.92]


def train_to_budget(proj):
    """What the runner does: every run whose stage asks for more epochs goes on to its budget."""
    q = load_queue(proj)
    st = stage(q, "h")
    moved = 0
    for i in st.experiments:
        e = q.get(i)
        done_to = len(RunStore(proj).run(i).metrics())
        if done_to < e.target_epochs:
            finish(proj, i, CURVE[e.config.lr][: e.target_epochs])
            moved += 1
    return moved


def test_successive_halving_prunes_by_rung_and_promotes_survivors(tmp_path):
    proj = write(tmp_path, HALVING)
    q = load_queue(proj)
    st = stage(q, "h")
    assert (st.kind, st.rungs, st.epochs_full) == ("halving", [1, 3, 9], 81)
    assert {q.get(i).budget for i in st.experiments} == {1}
    assert train_to_budget(proj) == 9
    q = load_queue(proj)
    st = stage(q, "h")
    alive = [c for c in st.configs if c.pruned_at is None]
    # rung 1 keeps 9 // 3 = 3: the best val Dice after one epoch (0.09: 0.9, 0.08: 0.16, 0.07: 0.14)
    assert sorted(c.values["lr"] for c in alive) == [0.07, 0.08, 0.09]
    assert all(c.pruned_at == 1 for c in st.configs if c not in alive)
    assert {q.get(c.runs[0].id).budget for c in alive} == {3}
    assert [c.runs[0].state for c in alive] == ["pending"] * 3  # promoted: the runner trains them on
    assert st.state == "running" and st.epochs_trained == 9
    assert train_to_budget(proj) == 3
    q = load_queue(proj)
    (last,) = [c for c in stage(q, "h").configs if c.pruned_at is None]
    assert last.values["lr"] == 0.09  # 0.92 after 3 epochs beats 0.08's 0.48
    assert train_to_budget(proj) == 1
    q = load_queue(proj)
    st = stage(q, "h")
    assert st.state == "done" and st.winner == {"lr": 0.09} and st.how == "best"
    assert st.epochs_trained == 6 * 1 + 2 * 3 + 9 == 21  # against 81 for the full grid
    assert stage(q, "next").state == "running"
    assert {q.get(i).config.lr for i in stage(q, "next").experiments} == {0.09}
    # nothing more to train; a pruned run keeps its rung as its budget
    assert train_to_budget(proj) == 0
    assert q.get(next(c for c in st.configs if c.values["lr"] == 0.05).runs[0].id).budget == 1


def test_a_pinned_configuration_survives_every_rung(tmp_path):
    proj = write(tmp_path, HALVING.replace("halving = {", "pin = { lr = 0.01 }\nhalving = {"))
    for _ in range(4):
        train_to_budget(proj)
    q = load_queue(proj)
    st = stage(q, "h")
    assert st.state == "done" and st.winner == {"lr": 0.01} and st.how == "pinned"
    pinned = next(c for c in st.configs if c.values["lr"] == 0.01)
    assert pinned.pruned_at is None and pinned.budget == 9 and pinned.score == pytest.approx(0.18)
    assert "best by score: lr=0.09" in st.why
    assert {q.get(i).config.lr for i in stage(q, "next").experiments} == {0.01}


def test_removing_halving_trains_the_pruned_runs_on_to_full_length(tmp_path):
    proj = write(tmp_path, HALVING)
    for _ in range(4):
        train_to_budget(proj)
    q = load_queue(proj)
    for i in stage(q, "h").experiments:  # what the trainer writes: the definition it trained
        atomic_write_json(RunStore(proj).run(i).file("config.json"), q.get(i).config.to_dict())
    assert stage(q, "h").winner == {"lr": 0.09}
    write(tmp_path, HALVING.replace("halving = { min_epochs = 1, eta = 3 }\n", ""))
    q = load_queue(proj)
    st = stage(q, "h")
    waiting = sorted(q.get(c.runs[0].id).config.lr for c in st.configs if c.runs[0].state == "pending")
    assert waiting == [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08]  # all but the survivor, which has its 9 epochs
    assert st.state == "running" and stage(q, "next").state == "waiting"
    train_to_budget(proj)
    st = stage(load_queue(proj), "h")
    assert st.state == "done" and st.winner == {"lr": 0.05}  # the full grid's best (0.98 after 9 epochs)
