"""`unettui compare ID...`: overlaid curves in the terminal on hand-made runs (CliRunner): the legend names only the
keys that differ, ASCII mode, repeats as a mean with a band, the log scale, and one-line errors."""

import json

from typer.testing import CliRunner

from tests.helpers import finish
from unettui.cli.app import app
from unettui.core.runs.store import RunStore, atomic_write_json

runner = CliRunner()
ESC = "\x1b"

QUEUE = """
[[experiment]]
id = "a"
lr = 0.01
repeats = 3
[[experiment]]
id = "b"
lr = 0.001
[[experiment]]
id = "c"
lr = 0.001
optimizer = "sgd"
"""


def fake_run(proj, rid, dice, loss=None, config=None):
    finish(proj, rid, best_val_dice=max(dice))
    run = RunStore(proj).run(rid)
    loss = loss or [1 - d for d in dice]
    run.file("metrics.jsonl").write_text("".join(
        json.dumps({"epoch": e, "val_dice": d, "val_loss": v, "train_loss": v}) + "\n"
        for e, (d, v) in enumerate(zip(dice, loss), 1)))
    if config:
        atomic_write_json(run.file("config.json"), config)


def project(make_project):
    proj = make_project(QUEUE)
    fake_run(proj, "a", [0.2, 0.5, 0.7, 0.8])
    fake_run(proj, "a-r2", [0.3, 0.6, 0.8, 0.9])
    fake_run(proj, "a-r3", [0.1, 0.4, 0.6, 0.7])
    fake_run(proj, "b", [0.1, 0.2, 0.3, 0.4], loss=[0.9, 60.0, 0.5, 0.3])  # one diverging epoch
    fake_run(proj, "c", [0.05, 0.1, 0.2, 0.25])
    return proj


def invoke(*args, env=None):
    return runner.invoke(app, ["compare", *args], env=env)


def test_legend_names_only_the_keys_that_differ_in_plain_ascii(make_project):
    proj = project(make_project)
    out = invoke("b", "c", "--ascii", "--width", "72", "-p", str(proj))
    assert out.exit_code == 0, out.output
    text = out.stdout
    assert ESC not in text and text.isascii()
    lines = text.splitlines()
    assert lines[0] == "val_dice of 2 runs; they differ in optimizer"
    assert lines[-2].startswith("  *  optimizer=adam   b  done  best 0.4 at epoch 4")
    assert lines[-1].startswith("  o  optimizer=sgd   c  done  best 0.25 at epoch 4")
    assert "lr=" not in text and "epochs=" not in text and "dataset" not in text
    plot = "\n".join(lines[2:-4])
    assert plot.count("*") >= 10 and plot.count("o") >= 10  # each run drawn with its own character
    assert max(len(line) for line in lines) <= 72


def test_repeats_are_drawn_as_their_mean_with_a_band(make_project):
    proj = project(make_project)
    out = invoke("a", "b", "--ascii", "-p", str(proj))  # 'a' brings its repeats a-r2 and a-r3
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines[0] == "val_dice of 4 runs in 2 configurations; they differ in lr"
    assert "  *  lr=0.01   mean of 3 runs (a, a-r2, a-r3; done)  best 0.8000 +/- 0.1000 (n=3)" in lines
    assert any(line.startswith("  o  lr=0.001   b  done") for line in lines)
    assert sum(line.count(":") for line in lines[2:-5]) > 10  # the band from the lowest to the highest repeat
    assert "':' the spread (min to max)" in lines[-1]
    each = invoke("a", "a-r2", "--each", "--ascii", "-p", str(proj))
    assert each.exit_code == 0 and each.stdout.splitlines()[0] == "val_dice of 2 runs; they differ in seed"


def test_log_scale_colour_and_runs_not_in_the_queue(make_project):
    proj = project(make_project)
    fake_run(proj, "old", [0.3, 0.4], config={"lr": 0.5, "optimizer": "adam", "epochs": 2})
    out = invoke("b", "c", "--metric", "val_loss", "-p", str(proj), env={"NO_COLOR": "1"})
    assert out.exit_code == 0 and ESC not in out.stdout
    assert out.stdout.splitlines()[1] == "val_loss (log scale) per epoch"
    coloured = invoke("b", "old", "-p", str(proj), env={"FORCE_COLOR": "1", "NO_COLOR": ""})
    assert coloured.exit_code == 0, coloured.output
    assert ESC in coloured.stdout and "⠀" <= max(coloured.stdout) and "lr=0.5" in coloured.stdout


def test_unknown_ids_and_metrics_are_one_line_errors(make_project):
    proj = project(make_project)
    for args, message in (
        (["a", "bb"], "error: unknown run 'bb'; did you mean 'b'"),
        (["zz", "yy"], "error: unknown run 'zz' (and 1 more unknown)"),
        (["a", "--metric", "val_dic"], "error: unknown metric 'val_dic'; did you mean 'val_dice'? metrics: val_dice,"),
        (["a", "--group", "--each"], "error: --group and --each contradict each other"),
    ):
        out = invoke(*args, "-p", str(proj))
        assert out.exit_code == 2, out.output
        assert out.stderr.startswith(message) and out.stderr.count("\n") == 1, out.stderr
    assert "Example: unettui compare " in runner.invoke(app, ["compare", "--help"]).stdout
