"""The CLI through Typer's CliRunner: run, results, export and bench on tiny real projects."""

import io
import re

import pandas as pd
import pytest
from typer.testing import CliRunner

from unettui.cli.app import app
from unettui.core.define.config import KEYS

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def trained(make_project):
    proj = make_project(
        "[[sweep]]\nid = 'opt'\noptimizer = ['adam', 'sgd']\n"
        "[[experiment]]\nid = 'full'\ntrain_fraction = 1.0\n"
        "[[experiment]]\nid = 'later'\nepochs = 1\n"
    )
    out = invoke("run", "--headless", "-p", str(proj), "--only", "opt-adam", "--only", "opt-sgd", "--only", "full")
    assert out.exit_code == 0, out.output
    assert "finished: 3 done, 0 failed" in out.output
    return proj


def test_run_prints_progress_lines(trained):
    log = (trained / "runs" / "opt-adam" / "run.log").read_text()
    assert "epoch 2/2" in log and "done" in log


def test_results_sorted_table(trained):
    out = invoke("results", "-p", str(trained), "--sort", "best_val_dice", "--desc")
    assert out.exit_code == 0, out.output
    ids = re.findall(r"^\s*(\S+)\s+(?:done|pending)\s", out.output, re.M)
    assert set(ids) == {"opt-adam", "opt-sgd", "full", "later"}
    assert ids[-1] == "later"  # never trained: no value, sorted last
    assert "validate on their training images" in out.output
    top = invoke("results", "-p", str(trained), "--top", "1", "--sort", "id", "--asc")
    assert "full" in top.output and "opt-sgd" not in top.output


def test_results_unknown_sort_key(trained):
    out = runner.invoke(app, ["results", "-p", str(trained), "--sort", "val_dise"])
    assert out.exit_code == 2
    assert "unknown column" in out.output and "val_dice" in out.output


def test_export_csv_loads_in_pandas(trained, tmp_path):
    out = invoke("export", "-p", str(trained))
    assert out.exit_code == 0
    df = pd.read_csv(io.StringIO(out.stdout))
    assert list(df["id"]) == ["opt-adam", "opt-sgd", "full", "later"]
    for col in ("id", "status", *KEYS, "best_val_dice", "best_epoch", "final_train_loss", "final_train_dice",
                "final_val_loss", "final_val_dice", "epochs_done", "seconds"):
        assert col in df.columns, col
    adam = df.set_index("id").loc["opt-adam"]
    assert adam["status"] == "done" and adam["optimizer"] == "adam" and adam["epochs_done"] == 2
    assert 0 <= adam["best_val_dice"] <= 1 and adam["lr"] == pytest.approx(1e-3)
    assert df.set_index("id").loc["full", "val_on_train"] == True  # noqa: E712
    assert df["best_val_dice"].dtype.kind == "f" and df["epochs_done"].dtype.kind in "fi"
    later = df.set_index("id").loc["later"]
    assert later["status"] == "pending" and pd.isna(later["best_val_dice"])

    path = tmp_path / "results.csv"
    out = invoke("export", str(path), "-p", str(trained))
    assert out.exit_code == 0 and pd.read_csv(path).shape == df.shape


def test_export_markdown(trained):
    out = invoke("export", "-p", str(trained), "--format", "md")
    lines = out.stdout.splitlines()
    assert lines[0].startswith("| id | status | in_queue | attempt | configuration | repeat | dataset")
    assert len(lines) == 2 + 4


def test_missing_queue_file_is_one_line_error(tmp_path):
    out = runner.invoke(app, ["run", "--headless", "-p", str(tmp_path)])
    assert out.exit_code == 2
    assert out.output.strip().count("\n") == 0 and "no queue file" in out.output


def test_bad_device_option(make_project):
    out = runner.invoke(app, ["run", "--headless", "-p", str(make_project()), "--device", "gpu"])
    assert out.exit_code == 2 and "cuda:N" in out.output


def test_bench_prints_ratio_last():
    out = invoke("bench", "--steps", "2", "--rounds", "1", "--image-size", "32", "--base-channels", "4",
                 "--batch-size", "4")
    assert out.exit_code == 0, out.output
    lines = out.output.strip().splitlines()
    assert lines[0].startswith("bench: UNet base 4")
    m = re.fullmatch(r"ratio = trainer / reference = (\d+\.\d+)", lines[-1])
    assert m and float(m.group(1)) > 0  # the figure itself is the benchmark's business, not a timed test's
    # on the CPU one fp32 line; on CUDA an fp32 line, an AMP line and the AMP speed-up
    assert any(re.fullmatch(r"(fp32: )?trainer \d+\.\d images/s, reference \d+\.\d images/s(, ratio \d\.\d+)?", x)
               for x in lines[1:-1]), lines
