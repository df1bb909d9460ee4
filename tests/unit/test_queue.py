"""experiments.toml parsing: defaults, experiments, sweeps, ids, and the messages for bad definitions."""

import re

import pytest

from unettui.core.define.config import DEFAULTS, ConfigError, build_config
from unettui.core.define.names import safe_id
from unettui.core.define.queue import QueueError
from unettui.core.plan import load_queue


def write(tmp_path, text):
    (tmp_path / "experiments.toml").write_text(text)
    return tmp_path


def test_defaults_experiments_and_sweep_expand_in_file_order(tmp_path):
    q = load_queue(write(tmp_path, """
[defaults]
epochs = 3
lr = 1e-3
augment.rotate = 10

[[sweep]]
id = "opt"
optimizer = ["adam", "sgd"]
lr = [1e-4, 1e-2]

[[experiment]]
id = "baseline"

[[experiment]]
optimizer = "rmsprop"
lr = 5e-4
"""))
    ids = [e.id for e in q.experiments]
    assert ids == ["opt-adam-lr0.0001", "opt-adam-lr0.01", "opt-sgd-lr0.0001", "opt-sgd-lr0.01",
                   "baseline", "rmsprop-lr0.0005"]
    assert all(e.valid for e in q.experiments)
    sgd = q.get("opt-sgd-lr0.01").config
    assert (sgd.optimizer, sgd.lr, sgd.epochs, sgd.augment_rotate) == ("sgd", 0.01, 3, 10.0)
    assert q.get("baseline").config.optimizer == DEFAULTS.optimizer
    assert q.get("baseline").config.epochs == 3


def test_ids_are_stable_when_entries_are_added(tmp_path):
    q1 = load_queue(write(tmp_path, "[[experiment]]\noptimizer='sgd'\n"))
    q2 = load_queue(write(tmp_path, "[[experiment]]\noptimizer='adam'\n[[experiment]]\noptimizer='sgd'\n"))
    assert q1.experiments[0].id == q2.experiments[1].id == "sgd"


@pytest.mark.parametrize("body, key, needle", [
    ("optimiser = 'adam'", "optimiser", "did you mean 'optimizer'"),
    ("lr = 'fast'", "lr", "must be a number"),
    ("lr = 0", "lr", "must be > 0"),
    ("train_fraction = 0", "train_fraction", "(0, 1]"),
    ("train_fraction = 1.5", "train_fraction", "(0, 1]"),
    ("dropout = 1.0", "dropout", "[0, 1)"),
    ("optimizer = 'adamm'", "optimizer", "did you mean 'adam'"),
    ("scheduler = 'cosin'", "scheduler", "valid: none, step, plateau, cosine, onecycle"),
    ("loss = 'focal'", "loss", "valid: bce, dice, dice_bce, inv_dice_bce, switching"),
    ("image_size = 100", "image_size", "use 96 or 112"),
    ("epochs = 2.5", "epochs", "must be an integer"),
    ("augment.hflip = 2", "augment.hflip", "probability"),
    ("dataset = 'synthetic:brain'", "dataset", "synthetic:ventricle, synthetic:nuclei"),
])
def test_bad_values_name_the_experiment_key_and_fix(tmp_path, body, key, needle):
    q = load_queue(write(tmp_path, f"[[experiment]]\nid = 'x'\n{body}\n[[experiment]]\nid = 'ok'\n"))
    bad, ok = q.experiments
    assert ok.valid and not bad.valid
    msg = str(bad.error)
    assert "experiments.toml" in msg and "'x'" in msg and key in msg and needle in msg, msg


def test_duplicate_ids_mark_the_second(tmp_path):
    q = load_queue(write(tmp_path, "[[experiment]]\nid='a'\n[[experiment]]\nid='a'\nlr=0.1\n"))
    assert q.experiments[0].valid and not q.experiments[1].valid
    assert "duplicate id 'a'" in str(q.experiments[1].error)


def test_empty_sweep_list_and_unsafe_id(tmp_path):
    q = load_queue(write(tmp_path, "[[sweep]]\nlr = []\n[[experiment]]\nid = 'a b/c'\n"))
    assert "empty list" in str(q.experiments[0].error)
    assert "not filesystem-safe" in str(q.experiments[1].error) and "'a-b-c'" in str(q.experiments[1].error)


def test_malformed_toml_and_missing_file(tmp_path):
    with pytest.raises(QueueError, match="no queue file"):
        load_queue(tmp_path)
    with pytest.raises(QueueError, match=r"experiments.toml: not valid TOML.*line 2"):
        load_queue(write(tmp_path, "[defaults]\nlr = \n"))
    with pytest.raises(QueueError, match="defaults.*optimiser"):
        load_queue(write(tmp_path, "[defaults]\noptimiser = 'adam'\n"))


def test_fingerprint_ignores_device_only():
    a = build_config({}, "t")
    assert a.fingerprint() == build_config({"device": "cpu"}, "t").fingerprint()
    assert a.fingerprint() != build_config({"lr": 0.5}, "t").fingerprint()


def test_safe_id():
    assert safe_id("lr=1e-4, adam") == "lr-1e-4-adam"
    assert safe_id("../x") == "x"
    assert safe_id("///") == "experiment"


def test_a_value_accepted_once_is_accepted_again_as_given_and_a_refused_one_refused_again():
    """coerce remembers the values it accepted (a queue of 10,000 experiments repeats a few per key)."""
    from unettui.core.define.config import coerce

    for _ in range(2):  # the first time checked, the second remembered: the same answers
        assert repr(coerce("weight_decay", -0.0, "t")) == "-0.0" and repr(coerce("weight_decay", 0.0, "t")) == "0.0"
        assert coerce("dropout", 0, "t") == 0.0 and type(coerce("dropout", 0, "t")) is float
        assert coerce("seed", 1, "t") == 1 and type(coerce("seed", 1, "t")) is int
        for key, value, needle in (("seed", True, "must be an integer, got True"),  # (True == 1, hash(True) == 1)
                                   ("seed", 1.0, "must be an integer, got 1.0"),
                                   ("augment.hflip", True, "must be a number, got True"),
                                   ("dropout", 1, "must be in [0, 1), got 1.0"),  # accepted for weight_decay
                                   ("weight_decay", -1e-9, "must be >= 0"),
                                   ("lr", [0.1], "must be a number"),  # (unhashable)
                                   ("lr", float("nan"), "finite"),
                                   ("lr", 101, "must be <= 100")):
            coerce("weight_decay", 1, "t")
            with pytest.raises(ConfigError, match=re.escape(needle)):
                coerce(key, value, "t")


def test_config_error_format():
    with pytest.raises(ConfigError) as err:
        build_config({"batch_size": 0}, "f.toml [defaults]")
    assert str(err.value) == "f.toml [defaults]: batch_size: must be >= 1, got 0"


def test_the_shipped_default_job_is_valid():
    from pathlib import Path

    q = load_queue(Path(__file__).resolve().parents[2])
    assert [e.id for e in q.experiments] == ["adam-1e-3", "opt-at-1e-4-adam", "opt-at-1e-4-sgd", "opt-at-1e-4-adagrad"]
    assert all(e.valid for e in q.experiments) and not q.problems
    assert {e.config.dataset for e in q.experiments} == {"synthetic:ventricle"}


def test_archive_attempt_keeps_the_log_and_clears_the_run(tmp_path):
    from unettui.core.runs.store import RunStore

    run = RunStore(tmp_path).run("x")
    run.path.mkdir(parents=True)
    run.write_status(state="failed", error="boom")
    run.log("first try")
    (run.path / "checkpoint.pt").write_bytes(b"x")
    (run.path / "preview_best.png").write_bytes(b"x")
    dest = run.archive_attempt()
    assert dest == run.path / "attempts" / "1"
    assert "first try" in (dest / "run.log").read_text() and '"boom"' in (dest / "status.json").read_text()
    assert run.state() == "queued" and sorted(p.name for p in run.path.iterdir()) == ["attempts"]
    run.write_status(state="failed")
    assert run.archive_attempt().name == "2" and len(run.attempts()) == 2


def test_generated_ids_of_large_and_small_floats_differ_and_say_their_value(tmp_path):
    proj = tmp_path
    (proj / "experiments.toml").write_text(
        "[[experiment]]\nlr = 1e-6\n[[experiment]]\nweight_decay = 1e6\n[[experiment]]\nweight_decay = 1e-6\n"
        "[[experiment]]\nweight_decay = 1e20\n[[experiment]]\nlr = 0.5\n")
    ids = [e.id for e in load_queue(proj).experiments]
    assert ids == ["lr1e-06", "weight_decay1e6", "weight_decay1e-06", "weight_decay1e20", "lr0.5"]
