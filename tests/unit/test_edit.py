"""Edits of experiments.toml: --set parsing, ranges, add/sweep/rm/retry/init, byte-exact layout, refusals, concurrency."""

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from unettui.core.define import edit, init, setvalues, tomltext
from unettui.core.define.config import ConfigError
from unettui.core.define.edit import EditError, LargeSweep
from unettui.core.plan import load_queue
from unettui.core.runs import retry as retry_mod
from unettui.core.runs.store import HOST, RunStore

QUEUE = """\
# my study -- a header comment
# second line

[defaults]                      # shared by all
epochs = 2   # short
optimizer = "adam"

# about a: the reference
[[experiment]]
id = "a"
lr = 1e-3    # inline comment
# tried 1e-2 too

# a free-standing note about nothing in particular

# about the sweep
[[sweep]]
id = "opt"
optimizer = [
  "adam",   # first
  "sgd",
]
augment.rotate = 10

[[experiment]]
optimizer = "sgd"
lr = 1e-2
[experiment.augment]
hflip = 0.5

# trailing example, commented out:
# [[sweep]]
# lr = [1e-4, 1e-3]
"""


@pytest.fixture
def proj(tmp_path):
    (tmp_path / "experiments.toml").write_text(QUEUE)
    return tmp_path


def text(proj):
    return (proj / "experiments.toml").read_text()


def ids(proj):
    return [e.id for e in load_queue(proj).experiments]


# ---- --set values ---------------------------------------------------------------------------


@pytest.mark.parametrize("raw, value", [
    ("1e-4", 1e-4), ("20", 20), ("true", True), ('"adam"', "adam"), ("adam", "adam"), ("'sgd'", "sgd"),
    ("0.5", 0.5), ("1.", 1.0), (".5", 0.5), ("-3", -3), ("1_000", 1000), ("data/scans", "data/scans"),
    ("2024-05-01", "2024-05-01"), ("[1, 2]", [1, 2]), (" adam ", "adam"), ("", ""),
])
def test_parse_value(raw, value):
    got = setvalues.parse_value(raw)
    assert got == value and type(got) is type(value)


def test_parse_assignments():
    got = setvalues.parse_assignments(["lr=1e-4", "optimizer=adam", "augment.histeq=True", "dataset=2024", "epochs = 5"])
    assert got == {"lr": 1e-4, "optimizer": "adam", "augment.histeq": True, "dataset": "2024", "epochs": 5}
    assert type(got["epochs"]) is int


@pytest.mark.parametrize("item, message", [
    ("lr", "'lr' is not key=value"),
    ("=3", "has no key before '='"),
    ("optimiser=adam", "optimiser: unknown key; did you mean 'optimizer'?"),
    ("id=x", "give it with --id"),
    ("lr=-1", "lr: must be > 0"),
    ("lr=1e-3,1e-2", "several values make a sweep"),
    ("optimizer=adamm", "did you mean 'adam'"),
])
def test_parse_assignments_errors(item, message):
    with pytest.raises(ConfigError) as err:
        setvalues.parse_assignments([item])
    assert str(err.value).startswith("--set: ") and message in str(err.value) and "\n" not in str(err.value)


def test_parse_assignments_twice():
    with pytest.raises(ConfigError, match="lr: given twice"):
        setvalues.parse_assignments(["lr=1", "lr=2"])


@pytest.mark.parametrize("raw, values", [
    ("1e-4..1e-1:log4", [1e-4, 1e-3, 1e-2, 1e-1]),
    ("1e-5..1e-3:log5", [1e-5, 3.16227766017e-05, 1e-4, 3.16227766017e-4, 1e-3]),
    ("1..5:5", [1, 2, 3, 4, 5]),
    ("0..10:3", [0, 5, 10]),
    ("0..10:4", [0.0, 3.33333333333, 6.66666666667, 10.0]),
    ("0..0.5:6", [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]),
    ("0.1..0.3:3", [0.1, 0.2, 0.3]),
    ("4..64:log5", [4, 8, 16, 32, 64]),
    ("1..1000:log4", [1, 10, 100, 1000]),
    ("-1..1:3", [-1, 0, 1]),
    (" 1 .. 2 : 2 ", [1, 2]),
])
def test_expand_range(raw, values):
    got = setvalues.expand_range(raw, "x")
    assert got == values
    assert [type(v) for v in got] == [type(v) for v in values]


@pytest.mark.parametrize("raw, message", [
    ("1e-4..1e-1", "bad range '1e-4..1e-1'"),
    ("1..5:1", "N >= 2"),
    ("1..x:3", "START..STOP:N"),
    ("0..1:log3", "a log range needs START > 0"),
])
def test_expand_range_errors(raw, message):
    with pytest.raises(ConfigError) as err:
        setvalues.parse_sweep_value("lr", raw)
    assert str(err.value).startswith("--set: lr: ") and message in str(err.value)
    assert "START..STOP:logN" in str(err.value) or "log range" in str(err.value)


def test_sweep_values():
    got = setvalues.parse_sweep_assignments(["optimizer=adam,sgd", "lr=1e-4..1e-2:log3", "epochs=5",
                                        "augment.hflip=[0, 0.5]", "dropout=0,0.1..0.3:3", "dataset=a,b"])
    assert got == {"optimizer": ["adam", "sgd"], "lr": [1e-4, 1e-3, 1e-2], "epochs": 5, "augment.hflip": [0, 0.5],
                   "dropout": [0, 0.1, 0.2, 0.3], "dataset": ["a", "b"]}
    assert setvalues.sweep_size(got) == 2 * 3 * 2 * 4 * 2
    with pytest.raises(ConfigError, match="value 0.001 appears twice"):
        setvalues.parse_sweep_value("lr", "1e-3,0.001")
    with pytest.raises(ConfigError, match="empty value"):
        setvalues.parse_sweep_value("lr", "1e-3,")
    with pytest.raises(ConfigError, match="unknown value 'adamm'"):
        setvalues.parse_sweep_value("optimizer", "adam,adamm")


def test_format_value():
    assert [setvalues.format_value(v) for v in (1e-4, 2.5e-5, 0.001, 0.5, 20.0, 1e6, 3, True, "a\"b", [1e-4, "x"])] == [
        "1e-4", "2.5e-5", "0.001", "0.5", "20.0", "1e6", "3", "true", '"a\\"b"', '[1e-4, "x"]']


# ---- add / sweep ---------------------------------------------------------------------------


def test_add_appends_and_keeps_every_byte(proj):
    new_id = edit.add_experiment(proj, {"optimizer": "rmsprop", "lr": 5e-4, "augment.rotate": 20})
    assert new_id == "rmsprop-lr0.0005-rotate20"
    assert text(proj) == QUEUE + '\n[[experiment]]\noptimizer = "rmsprop"\nlr = 5e-4\naugment.rotate = 20\n'
    assert edit.add_experiment(proj, {"epochs": 3}, "mine") == "mine"
    assert text(proj).endswith('augment.rotate = 20\n\n[[experiment]]\nid = "mine"\nepochs = 3\n')
    q = load_queue(proj)
    assert q.get("mine").config.epochs == 3 and q.get("rmsprop-lr0.0005-rotate20").config.augment_rotate == 20
    assert ids(proj)[-2:] == ["rmsprop-lr0.0005-rotate20", "mine"]


def test_add_to_file_without_final_newline_and_crlf(tmp_path):
    (tmp_path / "experiments.toml").write_bytes(b"[defaults]\r\nepochs = 2\r\n")
    edit.add_experiment(tmp_path, {"lr": 0.01})
    assert (tmp_path / "experiments.toml").read_bytes() == b"[defaults]\r\nepochs = 2\r\n\r\n[[experiment]]\r\nlr = 0.01\r\n"
    (tmp_path / "experiments.toml").write_text("[defaults]\nepochs = 2")
    edit.add_experiment(tmp_path, {}, "b")
    assert text(tmp_path) == '[defaults]\nepochs = 2\n\n[[experiment]]\nid = "b"\n'


@pytest.mark.parametrize("values, exp_id, message", [
    ({"lr": 1e-2}, "a", "id 'a' is already used by [[experiment]] 'a'"),
    ({"lr": 1e-2}, "opt", "id 'opt' is already used by [[sweep]] 'opt'"),
    ({"lr": 1e-2}, "opt-sgd", "(one of its experiments)"),
    ({"lr": 1e-2}, "a b", "not filesystem-safe"),
    ({"optimizer": "sgd", "lr": 1e-2, "augment.hflip": 0.5}, None, "duplicate id 'sgd-lr0.01-hflip0.5'"),
    ({"image_size": 100}, None, "image_size: 100 is not divisible by 2**4"),
    ({"optimiser": "sgd"}, None, "did you mean 'optimizer'"),
])
def test_add_refusals_leave_the_file_alone(proj, values, exp_id, message):
    with pytest.raises(ValueError) as err:
        edit.add_experiment(proj, values, exp_id)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert text(proj) == QUEUE


def test_add_ignores_problems_elsewhere(tmp_path):
    broken = '[[experiment]]\nid = "bad"\noptimiser = "adam"\n'
    (tmp_path / "experiments.toml").write_text(broken)
    assert edit.add_experiment(tmp_path, {"lr": 0.1}) == "lr0.1"
    assert text(tmp_path) == broken + "\n[[experiment]]\nlr = 0.1\n"


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(EditError, match="no queue file here; run `unettui init` first"):
        edit.add_experiment(tmp_path, {"lr": 0.1})
    with pytest.raises(EditError, match="run `unettui init` first"):
        edit.add_sweep(tmp_path, {"lr": [0.1, 0.2]})
    assert not (tmp_path / "experiments.toml").exists()
    (tmp_path / "experiments.toml").write_text("[defaults\n")
    with pytest.raises(EditError, match="not valid TOML"):
        edit.add_experiment(tmp_path, {"lr": 0.1})
    (tmp_path / "experiments.toml").write_text("[defaults]\nepochs = 0\n")
    with pytest.raises(EditError, match="epochs: must be >= 1.*fix experiments.toml before adding"):
        edit.add_experiment(tmp_path, {"lr": 0.1})


def test_sweep_appends_and_returns_ids(proj):
    grid = {"optimizer": ["adam", "sgd"], "lr": [1e-4, 1e-3], "epochs": 3}
    preview = edit.expand_preview(proj, grid, "grid")
    assert text(proj) == QUEUE  # a preview writes nothing
    assert preview == [("grid-adam-lr0.0001", {"epochs": 3, "optimizer": "adam", "lr": 1e-4}),
                       ("grid-adam-lr0.001", {"epochs": 3, "optimizer": "adam", "lr": 1e-3}),
                       ("grid-sgd-lr0.0001", {"epochs": 3, "optimizer": "sgd", "lr": 1e-4}),
                       ("grid-sgd-lr0.001", {"epochs": 3, "optimizer": "sgd", "lr": 1e-3})]
    assert edit.add_sweep(proj, grid, "grid") == [i for i, _ in preview]
    assert text(proj) == QUEUE + '\n[[sweep]]\nid = "grid"\noptimizer = ["adam", "sgd"]\nlr = [1e-4, 0.001]\nepochs = 3\n'
    assert ids(proj)[-4:] == [i for i, _ in preview]
    assert edit.add_sweep(proj, {"seed": [1, 2]}) == ["sweep-seed-seed1", "sweep-seed-seed2"]


def test_sweep_refusals(proj):
    big = {"seed": list(range(101))}
    with pytest.raises(LargeSweep) as err:
        edit.add_sweep(proj, big)
    assert err.value.count == 101
    for grid, sweep_id, message in [
        ({}, None, "at least one key"),
        ({"lr": 1e-3}, None, "a sweep needs at least one key with a list"),
        ({"optimizer": ["adam", "sgd"]}, "opt", "id 'opt' is already used by [[sweep]] 'opt'"),
        ({"lr": [1e-3, -1.0]}, None, "lr: must be > 0"),
        ({"lr": []}, None, "empty list"),
    ]:
        with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("*", r"\*")):
            edit.add_sweep(proj, grid, sweep_id)
    assert text(proj) == QUEUE
    assert len(edit.add_sweep(proj, big, confirm_large=True)) == 101


# ---- remove -------------------------------------------------------------------------------


def test_remove_experiment_with_its_comments_only(proj):
    assert edit.remove(proj, ["a"]) == ["a"]
    expected = QUEUE.replace('# about a: the reference\n[[experiment]]\nid = "a"\nlr = 1e-3    # inline comment\n'
                             '# tried 1e-2 too\n\n', "")
    assert text(proj) == expected
    assert ids(proj) == ["opt-adam", "opt-sgd", "sgd-lr0.01-hflip0.5"]


def test_remove_sweep_and_last_entry(proj):
    assert edit.remove(proj, ["opt", "sgd-lr0.01-hflip0.5"]) == ["opt", "sgd-lr0.01-hflip0.5"]
    expected = QUEUE.replace('# about the sweep\n[[sweep]]\nid = "opt"\noptimizer = [\n  "adam",   # first\n  "sgd",\n]\n'
                             'augment.rotate = 10\n\n[[experiment]]\noptimizer = "sgd"\nlr = 1e-2\n[experiment.augment]\n'
                             'hflip = 0.5\n\n', "")
    assert text(proj) == expected
    assert "# a free-standing note" in expected and "# trailing example" in expected
    assert ids(proj) == ["a"]
    edit.remove(proj, ["a"])
    assert load_queue(proj).experiments == []
    assert text(proj).startswith("# my study") and text(proj).endswith("# lr = [1e-4, 1e-3]\n")


def test_remove_what_was_added_restores_the_file(proj):
    edit.add_experiment(proj, {"lr": 0.1}, "x")
    edit.add_sweep(proj, {"lr": [0.1, 0.2]}, "y")
    edit.remove(proj, ["x", "y"])
    assert text(proj) == QUEUE


@pytest.mark.parametrize("wanted, message", [
    (["opt-sgd"], "'opt-sgd' is item 2 of 2 of [[sweep]] 'opt'; remove the whole sweep (`unettui rm opt`)"),
    (["a", "nope"], "unknown id 'nope'"),
    (["ap"], "did you mean 'a'"),
    ([], "name the experiments"),
])
def test_remove_refusals_leave_the_file_alone(proj, wanted, message):
    with pytest.raises(EditError) as err:
        edit.remove(proj, wanted)
    assert message in str(err.value)
    assert text(proj) == QUEUE


def test_scanner_is_not_fooled_by_multiline_values():
    lines = ('[[experiment]]\nid = "x"\nnote = """\n[[sweep]]\n# not a comment\n"""\nv = [\n  [1, 2],\n  "]",\n]\n'
             '# own\n\n# free\n\n[defaults]\n').splitlines(keepends=True)
    kinds = [k.kind for k in tomltext.scan(lines)]
    assert kinds == ["header", "content", "content", "content", "content", "content", "content", "content", "content",
                     "content", "comment", "blank", "comment", "blank", "header"]
    assert tomltext.spans(tomltext.scan(lines)) == {"experiment": [(0, 11)], "sweep": [], "study": []}


# ---- retry --------------------------------------------------------------------------------


def make_run(proj, run_id, state, **fields):
    run = RunStore(proj).run(run_id)
    run.path.mkdir(parents=True, exist_ok=True)
    run.write_status(state=state, host=HOST, pid=os.getpid(), heartbeat=time.time(), **fields)
    run.log(f"attempt ended {state}")
    (run.path / "checkpoint.pt").write_bytes(b"x")
    return run


def test_retry_archives_failed_and_named_runs(proj):
    failed = make_run(proj, "opt-sgd", "failed", error="diverged")
    done = make_run(proj, "a", "done")
    interrupted = make_run(proj, "opt-adam", "interrupted")
    assert retry_mod.retry(proj, failed=True) == ["opt-sgd"]
    assert failed.state() == "queued" and not (failed.path / "checkpoint.pt").exists()
    log = (failed.path / "attempts" / "1" / "run.log").read_text()
    assert "attempt ended failed\n" in log and log.endswith("archived as attempt 1: retried by `unettui retry`\n")
    assert failed.attempts()[0].joinpath("status.json").exists()
    assert done.state() == "done" and interrupted.state() == "interrupted"  # --failed picks failed runs only
    assert retry_mod.retry(proj, ["a", "opt-adam"]) == ["a", "opt-adam"]
    assert done.state() == "queued" and interrupted.state() == "queued"
    assert retry_mod.retry(proj, failed=True) == []
    assert text(proj) == QUEUE


@pytest.mark.parametrize("wanted, message", [
    (["opt-sgd", "running"], "is running on host"),
    (["opt-sgd", "a"], "'a' has not run yet"),
    (["opt-sgd", "gone"], "'gone' is not in the queue (its run folder stays"),
    (["opt-sgd", "opt-sdg"], "unknown id 'opt-sdg'; did you mean 'opt-sgd'"),
    ([], "name the experiments to retry"),
])
def test_retry_refusals_change_nothing(proj, wanted, message):
    (proj / "experiments.toml").write_text(QUEUE + '\n[[experiment]]\nid = "running"\n')
    failed = make_run(proj, "opt-sgd", "failed")
    make_run(proj, "running", "running")
    make_run(proj, "gone", "failed")
    with pytest.raises(EditError) as err:
        retry_mod.retry(proj, wanted)
    assert message in str(err.value)
    assert failed.state() == "failed" and failed.attempts() == []


def test_retry_before_any_run_leaves_no_runs_folder(proj):
    assert retry_mod.retry(proj, failed=True) == []
    with pytest.raises(EditError, match="has not run yet"):
        retry_mod.retry(proj, ["a"])
    assert not (proj / "runs").exists()


# ---- init ---------------------------------------------------------------------------------


def test_init_writes_a_valid_commented_queue_and_never_overwrites(tmp_path):
    path = init.init_project(tmp_path / "new" / "study")
    q = load_queue(path.parent)
    assert [e.id for e in q.experiments] == ["baseline"] and not q.problems
    assert "# [[sweep]]" in path.read_text() and path.read_text().startswith("# unettui queue")
    path.write_text("mine")
    with pytest.raises(EditError, match="experiments.toml already exists"):
        init.init_project(path.parent)
    assert path.read_text() == "mine"
    with pytest.raises(EditError, match="is a file, not a folder"):
        init.init_project(path)


def test_init_replaces_the_empty_file_a_killed_init_left(tmp_path):
    """The starter is written whole (temp file + rename); an empty or blank experiments.toml holds nothing of the
    user's and is replaced instead of refused."""
    (tmp_path / "experiments.toml").write_text("")
    path = init.init_project(tmp_path)
    assert [e.id for e in load_queue(tmp_path).experiments] == ["baseline"]
    path.write_text("  \n")
    init.init_project(tmp_path)
    assert path.read_text().startswith("# unettui queue")
    assert not list(tmp_path.glob(".experiments.toml.*.tmp"))


def test_edit_keeps_file_mode(proj):
    os.chmod(proj / "experiments.toml", 0o640)
    edit.add_experiment(proj, {"lr": 0.1})
    assert stat.S_IMODE((proj / "experiments.toml").stat().st_mode) == 0o640


# ---- concurrency --------------------------------------------------------------------------

WORKER = """
import sys
from unettui.core.define.edit import add_experiment
proj, name = sys.argv[1], sys.argv[2]
for i in range(10):
    add_experiment(proj, {"seed": i}, f"{name}-{i}")
"""


def test_concurrent_adds_lose_nothing(proj):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")]))}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(proj), f"p{n}"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    got = ids(proj)
    assert sorted(x for x in got if x.startswith("p")) == sorted(f"p{n}-{i}" for n in range(3) for i in range(10))
    assert text(proj).startswith(QUEUE)  # every comment and the layout before the new entries
    for n in range(3):  # each process's entries in its own order
        mine = [x for x in got if x.startswith(f"p{n}-")]
        assert mine == [f"p{n}-{i}" for i in range(10)]
    assert not load_queue(proj).problems


def test_edit_imports_no_ui_library_nor_torch():
    code = ("import sys, unettui.core.define.edit; "
            "print(','.join(m for m in ('textual', 'typer', 'rich', 'click', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
