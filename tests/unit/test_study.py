"""Staged studies ([[study]]): parsing, validation messages, stage-by-stage expansion, winners, id reuse."""

import pytest

from tests.helpers import finish
from unettui.core.define.queue import parse_queue
from unettui.core.define.study import base_hash, experiment_id
from unettui.core.plan import load_queue

HEAD = """
[defaults]
epochs = 2
optimizer = "sgd"
"""

OPT = """
[[study]]
id = "opt"
train_fraction = [0.4, 0.8]
optimizer = "adam"
[[study.stage]]
name = "lr"
lr = [1e-4, 1e-3, 1e-2]
[[study.stage]]
name = "scheduler"
scheduler = ["none", "step"]
epochs = 3
"""


def write(proj, body, head=HEAD):
    proj.mkdir(exist_ok=True)
    (proj / "experiments.toml").write_text(head + body)
    return proj


def finish_lr(proj, scores, state=None):
    """scores: {(lr, fraction): best_val_dice}; None = failed without a summary."""
    for (lr, f), v in scores.items():
        rid = experiment_id("opt", "lr", {"lr": lr}, None, f)
        if v is None:
            finish(proj, rid, state="failed")
        else:
            finish(proj, rid, best_val_dice=v, final_val_dice=v, final_val_loss=1 - v)


def stage(q, name, study="opt"):
    s = next(s for s in q.studies if s.id == study)
    return next(st for st in s.stages if st.name == name)


# ---- parsing ------------------------------------------------------------------------------------------
def test_parse_expands_stage_one_at_its_file_position(tmp_path):
    q = load_queue(write(tmp_path, "[[experiment]]\nid = 'first'\n" + OPT + "\n[[experiment]]\nid = 'last'\n"))
    assert q.problems == []
    ids = [e.id for e in q.experiments]
    assert ids == ["first", "opt-lr-lr0.0001-f0.4", "opt-lr-lr0.0001-f0.8", "opt-lr-lr0.001-f0.4",
                   "opt-lr-lr0.001-f0.8", "opt-lr-lr0.01-f0.4", "opt-lr-lr0.01-f0.8", "last"]
    e = q.get("opt-lr-lr0.001-f0.8")
    assert e.origin == "[[study]] 'opt' stage 'lr' (item 4 of 6)"
    assert (e.config.optimizer, e.config.lr, e.config.train_fraction, e.config.epochs) == ("adam", 0.001, 0.8, 2)
    (s,) = q.studies
    assert (s.study.metric, s.study.direction, s.study.fractions) == ("best_val_dice", "max", [0.4, 0.8])
    assert [(st.name, st.state, st.planned, len(st.experiments)) for st in s.stages] == [
        ("lr", "running", 6, 6), ("scheduler", "waiting", 4, 0)]


def test_parse_queue_without_store_expands_only_stage_one(tmp_path):
    from unettui.core.define.queue import tomllib

    proj = write(tmp_path, OPT)
    finish_lr(proj, {(lr, f): 0.5 for lr in (1e-4, 1e-3, 1e-2) for f in (0.4, 0.8)})
    text = (proj / "experiments.toml").read_text()
    q = parse_queue(tomllib.loads(text), proj / "experiments.toml", text)
    assert len(q.experiments) == 6 and stage(q, "scheduler").state == "waiting"
    assert len(load_queue(proj).experiments) == 10  # with the store: stage 2 too


def test_reading_is_pure_and_planning_reads_the_runs(tmp_path):
    """Reading experiments.toml touches nothing of runs/ (here a plain file), and `check` works there; planning with
    the runs expands stage 2 once stage 1 is finished, in the read model's words (pending, not queued)."""
    from typer.testing import CliRunner

    from unettui.cli.app import app
    from unettui.core.define.queue import read_queue
    from unettui.core.plan import StoreLookup, plan
    from unettui.core.runs.store import RunStore

    proj = write(tmp_path / "p", OPT)
    finish_lr(proj, {(lr, f): 0.5 + lr for lr in (1e-4, 1e-3, 1e-2) for f in (0.4, 0.8)})
    read = read_queue(proj)
    assert len(read.experiments) == 6 and stage(read, "scheduler").state == "waiting"
    assert {r.state for c in stage(read, "lr").configs for r in c.runs} == {"pending"}  # no run known: pending
    planned = plan(read, StoreLookup(RunStore(proj)))
    assert len(planned.experiments) == 10 and stage(planned, "lr").winner == {"lr": 0.01}
    assert {r.state for c in stage(planned, "scheduler").configs for r in c.runs} == {"pending"}
    assert len(read.experiments) == 6  # (planning leaves the queue it planned as it was)

    flat = write(tmp_path / "flat", OPT + "\n[[experiment]]\nid = 'plain'\n")
    (flat / "runs").write_text("runs/ is a plain file here")
    assert [e.id for e in read_queue(flat).experiments][-1] == "plain"
    out = CliRunner().invoke(app, ["check", "-p", str(flat)])
    assert out.exit_code == 0 and "experiments.toml: 7 experiments, 1 dataset checked" in out.output, out.output


def test_loss_metric_defaults_to_min(tmp_path):
    q = load_queue(write(tmp_path, "[[study]]\nid='s'\nmetric='final_val_loss'\n[[study.stage]]\nname='a'\nlr=[1e-3]\n"))
    assert q.studies[0].study.direction == "min"
    assert [e.id for e in q.experiments] == ["s-a-lr0.001"]


@pytest.mark.parametrize("body, where, key, needle", [
    ("[[study]]\n[[study.stage]]\nname='a'\nlr=[1e-3]\n", "[[study]] #1 (line 5)", "id", "required"),
    ("[[study]]\nid='a b'\n[[study.stage]]\nname='a'\nlr=[1e-3]\n", "[[study]] #1", "id", "not filesystem-safe"),
    ("[[study]]\nid='s'\nmetrik='x'\n[[study.stage]]\nname='a'\nlr=[1e-3]\n", "[[study]] 's'", "metrik", "did you mean 'metric'?"),
    ("[[study]]\nid='s'\nmetric='val_dice'\n[[study.stage]]\nname='a'\nlr=[1e-3]\n", "[[study]] 's'", "metric", "valid (summary.json keys): best_val_dice"),
    ("[[study]]\nid='s'\ndirection='up'\n[[study.stage]]\nname='a'\nlr=[1e-3]\n", "[[study]] 's'", "direction", "must be max or min"),
    ("[[study]]\nid='s'\nlr=[1e-3, 1e-2]\n[[study.stage]]\nname='a'\nlr=[1e-3]\n", "[[study]] 's'", "lr", "belong in a [[study.stage]]"),
    ("[[study]]\nid='s'\n", "[[study]] 's'", "stage", "at least one [[study.stage]]"),
    ("[[study]]\nid='s'\n[[study.stage]]\nname='a'\nlrr=[1e-3]\n", "[[study]] 's' (line 5) stage 'a'", "lrr", "did you mean 'lr'?"),
    ("[[study]]\nid='s'\n[[study.stage]]\nname='a'\nlr=1e-3\n", "[[study]] 's' (line 5) stage 'a'", None, "at least one key with a list"),
    ("[[study]]\nid='s'\n[[study.stage]]\nname='a'\nlr=[]\n", "stage 'a'", "lr", "empty list"),
    ("[[study]]\nid='s'\n[[study.stage]]\nlr=[1e-3]\n", "stage #1", "name", "required"),
    ("[[study]]\nid='s'\n[[study.stage]]\nname='a'\nlr=[1e-3]\n[[study.stage]]\nname='a'\nlr=[1e-2]\n",
     "stage 'a'", "name", "duplicate stage name 'a'"),
    ("[[study]]\nid='s'\n[[study.stage]]\nname='a'\nscheduler=['none','step']\npin={scheduler='plateau'}\n",
     "stage 'a'", "pin.scheduler", "'plateau' is not in the stage's grid; valid: none, step".replace("'plateau'", "plateau")),
    ("[[study]]\nid='s'\n[[study.stage]]\nname='a'\nscheduler=['none','step']\npin={lr=1e-3}\n",
     "stage 'a'", "pin.lr", "does not vary 'lr'; varied keys: scheduler"),
    ("[[study]]\nid='s'\n[[study.stage]]\nname='a'\noptimizer=['adam','adamm']\n", "stage 'a'", "optimizer", "did you mean 'adam'?"),
    ("[[study]]\nid='s'\n[[study.stage]]\nname='a'\ntrain_fraction=[0.4,0.4]\nlr=[1e-3,1e-2]\n",
     "stage 'a'", "train_fraction", "repeats a fraction"),
    ("[[study]]\nid='s'\n[[study.stage]]\nname='a'\ntrain_fraction=[0.4,0.8]\n",
     "stage 'a'", None, "at least one key with a list of values"),
])
def test_validation_problems(tmp_path, body, where, key, needle):
    q = load_queue(write(tmp_path, body))
    assert q.studies == []
    msgs = [str(p) for p in q.problems]
    hit = [p for p in q.problems if where in p.where and p.key == key and needle in p.message]
    assert hit, msgs
    assert hit[0].where.startswith("experiments.toml [[study]]")
    bad = [e for e in q.experiments if not e.valid]
    assert [e.id for e in bad] == ["invalid-study-1"]  # the runner reports it and trains nothing of it


def test_every_problem_is_listed(tmp_path):
    q = load_queue(write(tmp_path, "[[study]]\nid='s'\nmetrik=1\n[[study.stage]]\nname='a'\nlrr=[1]\n"
                                   "[[study.stage]]\nname='a'\nlr=[1e-3]\npin={lr=1}\n"))
    assert sorted(p.key or "" for p in q.problems) == ["lrr", "metrik", "name", "pin.lr"]


# ---- expansion and winners --------------------------------------------------------------------------
def test_stage_two_waits_then_stands_on_the_winner(tmp_path):
    proj = write(tmp_path, OPT)
    # stage 1 half finished: stage 2 waits, the leader so far is shown
    finish_lr(proj, {(1e-3, 0.4): 0.7, (1e-3, 0.8): 0.9})
    q = load_queue(proj)
    lr = stage(q, "lr")
    assert (lr.state, lr.finished, lr.winner, stage(q, "scheduler").state) == ("running", 2, {"lr": 0.001}, "waiting")
    assert len(q.experiments) == 6
    # one run not started yet: the stage is still running
    finish_lr(proj, {(1e-4, 0.4): 0.5, (1e-4, 0.8): 0.6, (1e-2, 0.4): 0.8})
    assert stage(load_queue(proj), "lr").state == "running"
    finish_lr(proj, {(1e-2, 0.8): 0.7})
    q = load_queue(proj)
    lr = stage(q, "lr")
    scores = {c.values["lr"]: round(c.score, 9) for c in lr.configs}
    assert scores == {0.0001: 0.55, 0.001: 0.8, 0.01: 0.75}
    assert (lr.state, lr.winner, lr.how) == ("done", {"lr": 0.001}, "best")
    sched = stage(q, "scheduler")
    assert sched.state == "running" and sched.carried == {"lr": 0.001}
    h = base_hash({"lr": 0.001})
    assert sched.experiments == [f"opt-scheduler-none-b{h}-f0.4", f"opt-scheduler-none-b{h}-f0.8",
                                 f"opt-scheduler-step-b{h}-f0.4", f"opt-scheduler-step-b{h}-f0.8"]
    cfg = q.get(f"opt-scheduler-step-b{h}-f0.8").config
    # precedence: [defaults] < study base < carried winner < stage scalars < grid value < fraction
    assert (cfg.optimizer, cfg.lr, cfg.scheduler, cfg.epochs, cfg.train_fraction) == ("adam", 0.001, "step", 3, 0.8)
    assert q.studies[0].final() == {"optimizer": "adam", "lr": 0.001}
    assert not q.studies[0].done


def test_tie_broken_by_smaller_spread_then_grid_order(tmp_path):
    proj = write(tmp_path, OPT)
    # means: 1e-4 -> 0.675; 1e-3 -> (0.6 + 0.8) / 2 = 0.7 (spread 0.2); 1e-2 -> (0.7 + 0.7) / 2 = 0.7 (spread 0)
    finish_lr(proj, {(1e-4, 0.4): 0.65, (1e-4, 0.8): 0.7, (1e-3, 0.4): 0.6, (1e-3, 0.8): 0.8,
                     (1e-2, 0.4): 0.7, (1e-2, 0.8): 0.7})
    lr = stage(load_queue(proj), "lr")
    assert lr.winner == {"lr": 0.01} and lr.how == "tie-break"
    assert "smallest spread" in lr.why
    spreads = {c.values["lr"]: round(c.spread, 9) for c in lr.configs}
    assert spreads == {0.0001: 0.05, 0.001: 0.2, 0.01: 0.0}
    # same score and same spread: the first in grid order
    finish_lr(proj, {(1e-3, 0.4): 0.7, (1e-3, 0.8): 0.7})
    lr = stage(load_queue(proj), "lr")
    assert lr.winner == {"lr": 0.001} and lr.how == "tie-break" and "grid order" in lr.why


def test_failed_run_cannot_win_unless_all_are_missing(tmp_path):
    proj = write(tmp_path, OPT)
    finish_lr(proj, {(1e-4, 0.4): 0.5, (1e-4, 0.8): 0.5, (1e-3, 0.4): 0.99, (1e-3, 0.8): None,
                     (1e-2, 0.4): 0.6, (1e-2, 0.8): 0.6})
    q = load_queue(proj)
    lr = stage(q, "lr")
    assert lr.state == "done" and lr.winner == {"lr": 0.01} and lr.how == "best"
    assert next(c for c in lr.configs if c.values["lr"] == 0.001).score is None
    assert stage(q, "scheduler").state == "running"
    # a done run without the metric counts as missing too; all missing: the first in grid order, said so
    proj2 = write(tmp_path / "p2", OPT)
    for lr_ in (1e-4, 1e-3, 1e-2):
        finish_lr(proj2, {(lr_, 0.4): None})
        finish(proj2, experiment_id("opt", "lr", {"lr": lr_}, None, 0.8), final_val_dice=0.5)  # no best_val_dice
    lr = stage(load_queue(proj2), "lr")
    assert lr.winner == {"lr": 0.0001} and lr.how == "no-score"


def test_min_direction(tmp_path):
    proj = write(tmp_path, OPT.replace('id = "opt"', 'id = "opt"\nmetric = "final_val_loss"'))
    finish_lr(proj, {(1e-4, 0.4): 0.5, (1e-4, 0.8): 0.5, (1e-3, 0.4): 0.9, (1e-3, 0.8): 0.9,
                     (1e-2, 0.4): 0.6, (1e-2, 0.8): 0.6})  # val loss = 1 - dice
    lr = stage(load_queue(proj), "lr")
    assert lr.winner == {"lr": 0.001} and round(lr.configs[1].score, 9) == 0.1


def test_ids_stable_and_runs_reused_but_a_new_pin_gives_new_stage_two_runs(tmp_path):
    proj = write(tmp_path, OPT)
    finish_lr(proj, {(1e-4, 0.4): 0.5, (1e-4, 0.8): 0.5, (1e-3, 0.4): 0.9, (1e-3, 0.8): 0.9,
                     (1e-2, 0.4): 0.6, (1e-2, 0.8): 0.6})
    ids1 = [e.id for e in load_queue(proj).experiments]
    assert ids1 == [e.id for e in load_queue(proj).experiments]  # re-parse: same ids, finished runs reused
    assert len(ids1) == 10
    # pin stage 1 to another lr: stage 1 keeps its ids (its runs are reused), stage 2 gets new ones
    write(proj, OPT.replace("lr = [1e-4, 1e-3, 1e-2]", "lr = [1e-4, 1e-3, 1e-2]\npin = { lr = 1e-2 }"))
    q = load_queue(proj)
    lr = stage(q, "lr")
    assert (lr.winner, lr.how) == ({"lr": 0.01}, "pinned") and "best by score: lr=0.001" in lr.why
    ids2 = [e.id for e in q.experiments]
    assert ids2[:6] == ids1[:6]
    assert set(ids2[6:]).isdisjoint(ids1[6:]) and all(f"-b{base_hash({'lr': 0.01})}-" in i for i in ids2[6:])
    assert q.get(ids2[6]).config.lr == 0.01


def test_pin_names_some_varied_keys_best_among_matching(tmp_path):
    proj = write(tmp_path, "[[study]]\nid='s'\n[[study.stage]]\nname='os'\noptimizer=['adam','sgd']\n"
                           "scheduler=['none','step']\npin={scheduler='step'}\n[[study.stage]]\nname='wd'\nweight_decay=[0.0, 1e-4]\n")
    vals = {("adam", "none"): 0.9, ("adam", "step"): 0.6, ("sgd", "none"): 0.5, ("sgd", "step"): 0.7}
    for (o, s), v in vals.items():
        finish(proj, experiment_id("s", "os", {"optimizer": o, "scheduler": s}, None, None), best_val_dice=v)
    q = load_queue(proj)
    st = stage(q, "os", "s")
    assert st.winner == {"optimizer": "sgd", "scheduler": "step"} and st.how == "pinned"
    assert [e.id for e in q.experiments][:4] == ["s-os-adam-none", "s-os-adam-step", "s-os-sgd-none", "s-os-sgd-step"]
    assert q.get(stage(q, "wd", "s").experiments[0]).config.optimizer == "sgd"


def test_long_ids_keep_their_hash_and_fraction(tmp_path):
    rid = experiment_id("s" * 70, "stage", {"lr": 0.001}, {"lr": 0.1}, 0.4)
    assert len(rid) <= 80 and rid.endswith(f"-b{base_hash({'lr': 0.1})}-f0.4")


def test_an_invalid_experiment_keeps_its_stage_from_finishing(tmp_path):
    proj = write(tmp_path, "[[study]]\nid='s'\n[[study.stage]]\nname='size'\nimage_size=[32, 30]\n"
                           "[[study.stage]]\nname='lr'\nlr=[1e-3, 1e-2]\n", head="[defaults]\ndepth = 2\n")
    finish(proj, "s-size-image_size32", best_val_dice=0.5)
    q = load_queue(proj)
    assert [e.id for e in q.experiments] == ["s-size-image_size32", "s-size-image_size30"]
    assert "use 28 or 32" in str(q.get("s-size-image_size30").error)
    st = stage(q, "size", "s")
    assert (st.state, st.finished, st.winner) == ("running", 1, {"image_size": 32})
    assert stage(q, "lr", "s").state == "waiting"


WORST = """
[[study]]
id = "w"
metric = "{metric}"
[[study.stage]]
name = "lr"
lr = [1e-3, 1e-2]
[[study.stage]]
name = "scheduler"
scheduler = ["none", "step"]
"""


@pytest.mark.parametrize("metric, winner", [("best_val_dice", 1e-3), ("best_val_dice_min", 1e-2)])
def test_the_metric_a_study_names_chooses_its_winner_when_the_mean_and_the_worst_class_disagree(tmp_path, metric,
                                                                                                   winner):
    """lr 1e-3: the better mean (cavity 0.99, ring 0.81); lr 1e-2: the better worst class (0.93 and 0.85)."""
    proj = write(tmp_path, WORST.format(metric=metric))
    runs = {1e-3: (0.99, 0.81), 1e-2: (0.93, 0.85)}
    for lr, (cavity, ring) in runs.items():
        finish(proj, experiment_id("w", "lr", {"lr": lr}, None, None), best_val_dice=(cavity + ring) / 2,
               best_val_dice_cavity=cavity, best_val_dice_ring=ring, best_val_dice_min=min(cavity, ring),
               classes={"names": ["background", "cavity", "ring"], "values": [0, 1, 2]})
    q = load_queue(proj)
    (study,) = q.studies
    assert study.study.metric == metric and study.study.direction == "max"
    lr = stage(q, "lr", "w")
    assert lr.winner == {"lr": winner}
    assert {c.values["lr"]: c.score for c in lr.configs} == (
        {1e-3: 0.9, 1e-2: 0.89} if metric == "best_val_dice" else {1e-3: 0.81, 1e-2: 0.85})
    later = [e for e in q.experiments if e.id.startswith("w-scheduler")]
    assert later and all(e.config.lr == winner for e in later)  # the next stage stands on it
    from typer.testing import CliRunner

    from unettui.cli.app import app

    shown = CliRunner().invoke(app, ["study", "show", "w", "-p", str(proj)])
    assert shown.exit_code == 0 and metric in shown.output, shown.output


def test_a_binary_runs_worst_class_is_its_foreground(tmp_path):
    proj = write(tmp_path, WORST.format(metric="best_val_dice_min"))
    for lr, v in ((1e-3, 0.7), (1e-2, 0.8)):
        finish(proj, experiment_id("w", "lr", {"lr": lr}, None, None), best_val_dice=v)
    lr = stage(load_queue(proj), "lr", "w")
    assert lr.winner == {"lr": 1e-2} and {c.values["lr"]: c.score for c in lr.configs} == {1e-3: 0.7, 1e-2: 0.8}


def test_halving_reads_the_worst_class_at_a_rung_from_the_epochs_records():
    from unettui.core.define.study import metric_at

    multi = [{"epoch": 1, "val_dice": 0.80, "val_dice_min": 0.60, "val_dice_ring": 0.60},
             {"epoch": 2, "val_dice": 0.85, "val_dice_min": 0.50, "val_dice_ring": 0.50},
             {"epoch": 3, "val_dice": 0.84, "val_dice_min": 0.70, "val_dice_ring": 0.70}]
    assert metric_at(multi, "best_val_dice_min", 1) == 0.60
    assert metric_at(multi, "best_val_dice_min", 3) == 0.50  # the worst class at the best (mean) epoch: epoch 2
    assert metric_at(multi, "final_val_dice_min", 3) == 0.70
    binary = [{"epoch": 1, "val_dice": 0.6}, {"epoch": 2, "val_dice": 0.7}]
    assert metric_at(binary, "best_val_dice_min", 2) == 0.7
