"""In-place edits of experiments.toml: update_experiment, move, duplicate, experiment_values — byte-exact elsewhere."""

import pytest

from unettui.core.define import edit, setvalues
from unettui.core.define.config import ConfigError
from unettui.core.define.edit import EditError
from unettui.core.plan import load_queue
from unettui.core.runs.store import RunStore

from .test_edit import QUEUE

A = '# about a: the reference\n[[experiment]]\nid = "a"\nlr = 1e-3    # inline comment\n# tried 1e-2 too\n'
SWEEP = ('# about the sweep\n[[sweep]]\nid = "opt"\noptimizer = [\n  "adam",   # first\n  "sgd",\n]\n'
         'augment.rotate = 10\n')
LAST = '[[experiment]]\noptimizer = "sgd"\nlr = 1e-2\n[experiment.augment]\nhflip = 0.5\n'
assert A in QUEUE and SWEEP in QUEUE and LAST in QUEUE


@pytest.fixture
def proj(tmp_path):
    (tmp_path / "experiments.toml").write_text(QUEUE)
    return tmp_path


def text(proj):
    return (proj / "experiments.toml").read_text()


def ids(proj):
    return [e.id for e in load_queue(proj).experiments]


# ---- experiment_values --------------------------------------------------------------------


def test_experiment_values_are_the_entrys_own_keys(proj):
    assert edit.experiment_values(proj, "a") == {"lr": 1e-3}  # not [defaults]' epochs and optimizer
    assert edit.experiment_values(proj, "sgd-lr0.01-hflip0.5") == {"optimizer": "sgd", "lr": 1e-2, "augment.hflip": 0.5}
    with pytest.raises(EditError, match=r"'opt-sgd' is item 2 of 2 of \[\[sweep\]\] 'opt'"):
        edit.experiment_values(proj, "opt-sgd")
    with pytest.raises(EditError, match="unknown id 'b'"):
        edit.experiment_values(proj, "b")


# ---- update_experiment --------------------------------------------------------------------


def test_update_in_place_keeps_comment_and_every_other_byte(proj):
    assert edit.update_experiment(proj, "a", {"lr": 2e-3, "epochs": 5}) == "a"
    new_a = '# about a: the reference\n[[experiment]]\nid = "a"\nlr = 0.002   # inline comment\nepochs = 5\n# tried 1e-2 too\n'
    assert text(proj) == QUEUE.replace(A, new_a)  # the comment keeps its column
    assert load_queue(proj).get("a").config.epochs == 5


def test_update_removes_keys_and_empty_sub_tables(proj):
    # no id of its own: the id is generated from the keys, so it changes with them
    new = edit.update_experiment(proj, "sgd-lr0.01-hflip0.5", {"lr": None, "augment.hflip": None, "augment.vflip": 0.3})
    assert new == "sgd-vflip0.3"
    assert text(proj) == QUEUE.replace(LAST, '[[experiment]]\noptimizer = "sgd"\n[experiment.augment]\nvflip = 0.3\n')
    assert edit.update_experiment(proj, new, {"augment.vflip": None, "momentum": 0.5}) == "sgd-momentum0.5"
    assert text(proj) == QUEUE.replace(LAST, '[[experiment]]\noptimizer = "sgd"\nmomentum = 0.5\n')
    assert edit.update_experiment(proj, "a", {"lr": None}) == "a"  # back to [defaults]
    assert text(proj) == QUEUE.replace(LAST, '[[experiment]]\noptimizer = "sgd"\nmomentum = 0.5\n').replace(
        "lr = 1e-3    # inline comment\n", "")
    assert load_queue(proj).get("a").config.lr == 1e-3


def test_update_renames(proj):
    assert edit.update_experiment(proj, "a", {}, new_id="ref") == "ref"
    assert text(proj) == QUEUE.replace('id = "a"', 'id = "ref"')
    assert edit.update_experiment(proj, "sgd-lr0.01-hflip0.5", {"lr": 0.02}, new_id="sgd") == "sgd"
    assert text(proj).endswith('[[experiment]]\nid = "sgd"\noptimizer = "sgd"\nlr = 0.02\n[experiment.augment]\nhflip = 0.5\n'
                               "\n# trailing example, commented out:\n# [[sweep]]\n# lr = [1e-4, 1e-3]\n")
    assert ids(proj) == ["ref", "opt-adam", "opt-sgd", "sgd"]


def test_update_inline_tables_multiline_values_and_crlf(tmp_path):
    before = ('[defaults]\r\nepochs = 2\r\n\r\n[[experiment]]\r\nid = "x"   # mine\r\n'
              'augment = { rotate = 10, hflip = 0.5 }  # aug\r\ndataset = """synthetic:nuclei"""\r\n'
              'seed = [\r\n  1,\r\n] # odd\r\n\r\n[[experiment]]\r\nid="y"\r\n"lr" = 0.1')
    (tmp_path / "experiments.toml").write_bytes(before.encode())
    assert edit.update_experiment(tmp_path, "x", {"augment.rotate": None, "augment.vflip": 1, "seed": 3}) == "x"
    assert (tmp_path / "experiments.toml").read_bytes().decode() == before.replace(
        "{ rotate = 10, hflip = 0.5 }  # aug", "{hflip = 0.5, vflip = 1}      # aug").replace(
        "seed = [\r\n  1,\r\n] # odd", "seed = 3 # odd") + "\r\n"
    edit.update_experiment(tmp_path, "y", {"lr": 0.2}, "z")
    assert (tmp_path / "experiments.toml").read_bytes().decode().endswith('[[experiment]]\r\nid="z"\r\n"lr" = 0.2\r\n')
    assert load_queue(tmp_path).get("x").config.augment_vflip == 1.0


@pytest.mark.parametrize("exp_id, values, new_id, error, message", [
    ("opt-sgd", {"lr": 0.1}, None, EditError,
     "'opt-sgd' is item 2 of 2 of [[sweep]] 'opt'; edit the sweep's lists in experiments.toml"),
    ("opt", {"lr": 0.1}, None, EditError, "'opt' is a [[sweep]] of 2 experiments"),
    ("nope", {"lr": 0.1}, None, EditError, "unknown id 'nope'"),
    ("a", {"lr": -1}, None, ConfigError, "lr: must be > 0"),
    ("a", {"image_size": 100}, None, ConfigError, "image_size: 100 is not divisible by 2**4"),
    ("a", {"optimiser": "sgd"}, None, ConfigError, "did you mean 'optimizer'"),
    ("a", {"id": "b"}, None, ConfigError, "the id is not a hyper-parameter"),
    ("a", {}, "opt-sgd", EditError, "id 'opt-sgd' is already used by [[sweep]] 'opt' (one of its experiments)"),
    ("a", {}, "a b", ConfigError, "not filesystem-safe"),
    ("sgd-lr0.01-hflip0.5", {"lr": None, "augment.hflip": None, "optimizer": "adam"}, None, EditError,
     "id 'adam' is already used by [[experiment]] 'adam'"),
])
def test_update_refusals_leave_the_file_alone(proj, exp_id, values, new_id, error, message):
    if "adam" in message:
        (proj / "experiments.toml").write_text(QUEUE + '\n[[experiment]]\nid = "adam"\n')
    before = text(proj)
    with pytest.raises(error) as err:
        edit.update_experiment(proj, exp_id, values, new_id)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert text(proj) == before


def test_update_can_fix_a_misspelt_key(proj):
    (proj / "experiments.toml").write_text(QUEUE + '\n[[experiment]]\nid = "typo"\noptimiser = "sgd"\n')
    assert not load_queue(proj).get("typo").valid
    assert edit.update_experiment(proj, "typo", {"optimiser": None, "optimizer": "sgd"}) == "typo"
    assert text(proj) == QUEUE + '\n[[experiment]]\nid = "typo"\noptimizer = "sgd"\n'
    assert load_queue(proj).get("typo").valid


# ---- move ---------------------------------------------------------------------------------


def test_move_swaps_with_the_neighbour_and_reorders_the_queue(proj):
    assert edit.move(proj, "a", 1) is True
    expected = QUEUE.replace(A, "\0").replace(SWEEP, A).replace("\0", SWEEP)  # the free-standing note stays put
    assert text(proj) == expected
    assert ids(proj) == ["opt-adam", "opt-sgd", "a", "sgd-lr0.01-hflip0.5"]
    assert edit.move(proj, "a", 1) is True  # past the last [[experiment]]: the array's order changes too
    assert ids(proj) == ["opt-adam", "opt-sgd", "sgd-lr0.01-hflip0.5", "a"]
    assert text(proj).endswith(A + "\n# trailing example, commented out:\n# [[sweep]]\n# lr = [1e-4, 1e-3]\n")
    assert edit.move(proj, "a", 1) is False  # already last: nothing written
    assert edit.move(proj, "opt-sgd", -1) is False  # a sweep's experiment moves its whole sweep: already first
    assert edit.move(proj, "a", -1) and edit.move(proj, "a", -1)
    assert text(proj) == QUEUE
    assert edit.move(proj, "opt", -5) is True  # several places at once, stopping at the top
    assert ids(proj) == ["opt-adam", "opt-sgd", "a", "sgd-lr0.01-hflip0.5"]
    assert edit.move(proj, "opt", 1) is True
    assert text(proj) == QUEUE


def test_move_without_blank_lines_or_final_newline(tmp_path):
    (tmp_path / "experiments.toml").write_text('[defaults]\nepochs = 2\n[[experiment]]\nid = "a"\n[[experiment]]\nid = "b"')
    assert edit.move(tmp_path, "b", -1)
    assert text(tmp_path) == '[defaults]\nepochs = 2\n[[experiment]]\nid = "b"\n[[experiment]]\nid = "a"\n'
    assert ids(tmp_path) == ["b", "a"]


def test_move_refusals(proj):
    with pytest.raises(EditError, match="unknown id 'x'"):
        edit.move(proj, "x", 1)
    with pytest.raises(TypeError):
        edit.move(proj, "a", "up")
    assert text(proj) == QUEUE


# ---- duplicate ----------------------------------------------------------------------------


def test_duplicate_appends_copies_with_free_ids(proj):
    assert edit.duplicate(proj, "a") == "a-copy"
    assert text(proj) == QUEUE + '\n[[experiment]]\nid = "a-copy"\nlr = 0.001\n'
    RunStore(proj).run("a-copy2").path.mkdir(parents=True)  # a run folder of an earlier, removed copy
    assert edit.duplicate(proj, "a") == "a-copy3"
    assert edit.duplicate(proj, "opt-sgd") == "opt-sgd-copy"  # a sweep's experiment becomes an [[experiment]]
    assert text(proj).endswith('\n[[experiment]]\nid = "opt-sgd-copy"\naugment.rotate = 10\noptimizer = "sgd"\n')
    assert edit.duplicate(proj, "opt") == "opt-copy"  # a sweep's own id copies the sweep
    assert text(proj).endswith('\n[[sweep]]\nid = "opt-copy"\noptimizer = ["adam", "sgd"]\naugment.rotate = 10\n')
    assert edit.duplicate(proj, "sgd-lr0.01-hflip0.5") == "sgd-lr0.01-hflip0.5-copy"
    q = load_queue(proj)
    assert not q.problems
    assert q.get("sgd-lr0.01-hflip0.5-copy").overrides == {"optimizer": "sgd", "lr": 0.01, "augment.hflip": 0.5}
    assert text(proj).startswith(QUEUE)


def test_duplicate_refusals(proj):
    with pytest.raises(EditError, match="unknown id 'b'"):
        edit.duplicate(proj, "b")
    assert text(proj) == QUEUE


# ---- parse_setting and check_id (the form's validators) ----------------------------------


def test_parse_setting_reads_like_the_cli():
    assert setvalues.parse_setting("lr", "1e-4", "form") == 1e-4
    assert setvalues.parse_setting("dataset", "2024", "form") == "2024"
    assert setvalues.parse_setting("augment.histeq", "True", "form") is True
    with pytest.raises(ConfigError) as err:
        setvalues.parse_setting("lr", "fast", "form")
    assert str(err.value) == "form: lr: must be a number, got 'fast'"
    with pytest.raises(ConfigError, match="not filesystem-safe"):
        edit.check_id("a b")
    assert edit.check_id("a-b") == "a-b"
