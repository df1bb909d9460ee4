"""`unettui study new --template quick|seed`: the templates, appended to experiments.toml as a user would."""

import shutil
from pathlib import Path

from typer.testing import CliRunner

from unettui.cli.app import app
from unettui.core.plan import load_queue

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


def invoke(*args):
    return runner.invoke(app, list(args))


def study(proj, sid):
    return next(s for s in load_queue(proj).studies if s.id == sid)


def test_quick_in_an_empty_folder_then_refused_twice(tmp_path):
    proj = tmp_path / "new"
    out = invoke("study", "new", "--template", "quick", "-p", str(proj))
    assert out.exit_code == 0, out.output
    assert "created" in out.output and "next: unettui run --headless" in out.output
    s = study(proj, "quick")
    assert [(st.name, st.kind, st.state) for st in s.stages] == [
        ("lr", "lr-search", "running"), ("opt-sched", "halving", "waiting"), ("loss", "grid", "waiting")]
    assert s.stages[0].planned == 2 * (3 + 1) and len(s.stages[0].experiments) == 6
    again = invoke("study", "new", "--template", "quick", "-p", str(proj))
    assert again.exit_code == 2 and "already defined; pick another id with --id" in again.stderr
    assert again.stderr.count("\n") == 1
    out = invoke("study", "new", "-t", "quick", "--id", "q2", "-p", str(proj))
    assert out.exit_code == 0 and [s.id for s in load_queue(proj).studies] == ["quick", "q2"]


def test_added_to_an_existing_queue_keeps_its_text(tmp_path):
    shutil.copy(REPO / "experiments.toml", tmp_path / "experiments.toml")
    before = (tmp_path / "experiments.toml").read_text()
    out = invoke("study", "new", "--template", "seed", "-p", str(tmp_path))
    assert out.exit_code == 0, out.output
    after = (tmp_path / "experiments.toml").read_text()
    assert after.startswith(before) and '[[study]]\nid = "seed"' in after
    q = load_queue(tmp_path)
    assert q.problems == [] and len(q.experiments) == 4 + 6 * 4  # the default job, then stage 1 of seed: 6 x 4 powers
    s = study(tmp_path, "seed")
    assert [st.name for st in s.stages] == ["lr", "opt-sched", "weight-decay", "dropout", "loss", "augment"]
    assert [st.planned for st in s.stages] == [6 * (4 + 2), 18, 9, 9, 5 * 3, 4 * 3]  # loss and augment: 3 repeats each
    assert [st.kind for st in s.stages] == ["lr-search", "grid", "grid", "grid", "halving", "grid"]
    lr_stage = s.stages[0]
    optimizers = {q.get(i).config.optimizer for i in lr_stage.experiments}
    assert optimizers == {"adam", "adamw", "sgd", "rmsprop", "adagrad", "adamax"}
    assert {q.get(i).config.image_size for i in lr_stage.experiments} == {64}  # the template's own sizes


def test_print_and_bad_input(tmp_path):
    out = invoke("study", "new", "--template", "quick", "--print", "-p", str(tmp_path))
    assert out.exit_code == 0 and out.output.startswith('# Study "quick"') and not (tmp_path / "experiments.toml").exists()
    out = invoke("study", "new", "--template", "huge", "-p", str(tmp_path))
    assert out.exit_code == 2 and "'huge' is not one of" in out.output
    out = invoke("study", "new", "--template", "quick", "--id", "my study", "-p", str(tmp_path))
    assert out.exit_code == 2 and "not filesystem-safe" in out.stderr and not (tmp_path / "experiments.toml").exists()
    (tmp_path / "experiments.toml").write_text("[defaults\n")
    out = invoke("study", "new", "--template", "quick", "-p", str(tmp_path))
    assert out.exit_code == 2 and "not valid TOML" in out.stderr
    assert (tmp_path / "experiments.toml").read_text() == "[defaults\n"
