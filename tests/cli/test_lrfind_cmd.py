"""`unettui lr-find` through Typer's CliRunner: two optimizers on a tiny project, and one-line refusals."""

import pytest
import torch
from typer.testing import CliRunner

from unettui.cli.app import app

runner = CliRunner()

TINY = """
[defaults]
dataset = "synthetic:nuclei"
num_images = 16
image_size = 32
base_channels = 4
depth = 2
batch_size = 4

[[experiment]]
id = "adam-1e-3"
lr = 1e-3
"""


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def proj(tmp_path):
    (tmp_path / "experiments.toml").write_text(TINY)
    return tmp_path


def invoke(*args):
    return runner.invoke(app, ["lr-find", *args])


def refused(out, message):
    """A one-line error on stderr, exit code 2, no traceback."""
    assert out.exit_code == 2, out.output
    assert out.stderr.startswith("error: ") and message in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.output


def test_two_optimizers_print_plots_suggestions_and_a_table(proj):
    before = (proj / "experiments.toml").read_text()
    out = invoke("-p", str(proj), "--steps", "30", "--optimizer", "adam", "--optimizer", "sgd")
    assert out.exit_code == 0, out.output
    text = out.stdout
    assert text.count("suggested lr: ") == 2 and text.count("min/10: ") == 2
    assert "lr range test: adam on [defaults]" in text and "lr range test: sgd on [defaults]" in text
    assert text.count("steps run:") == 2 and text.count("stopped:") == 2 and text.count("time:") == 2
    assert text.count("suggested ") >= 4  # the marker line of each plot too
    table = text[text.index("lr range test on [defaults]"):]
    assert "optimizer" in table and "suggested lr" in table and "min/10" in table and "lowest smoothed loss" in table
    rows = [line.split() for line in table.splitlines() if line.split()[:1] in (["adam"], ["sgd"])]
    assert [r[0] for r in rows] == ["adam", "sgd"] and all(len(r) == 4 for r in rows)
    assert (proj / "experiments.toml").read_text() == before and not (proj / "runs").exists()


def test_an_experiment_with_set_overrides(proj):
    out = invoke("adam-1e-3", "-p", str(proj), "--steps", "8", "--start", "1e-4", "--end", "1e-1", "--set", "loss=bce")
    assert out.exit_code == 0, out.output
    assert "lr range test: adam on adam-1e-3" in out.stdout and "steps run:    8 of 8" in out.stdout
    assert "lr range test on" not in out.stdout  # one optimizer: no table


def test_refusals(proj):
    refused(invoke("adam-1e3", "-p", str(proj)), "unknown experiment 'adam-1e3'; did you mean 'adam-1e-3'?")
    refused(invoke("-p", str(proj), "--optimizer", "adamm"), "--optimizer adamm: unknown value 'adamm'; did you mean 'adam'?")
    refused(invoke("-p", str(proj), "--set", "lr=-1"), "lr: must be > 0")
    refused(invoke("-p", str(proj), "--set", "losss=bce"), "did you mean 'loss'?")
    refused(invoke("-p", str(proj), "--start", "1", "--end", "0.1"), "--end must be larger than --start")
    refused(invoke("-p", str(proj), "--steps", "1"), "--steps must be at least 2")
    refused(invoke("-p", str(proj / "nowhere")), "no queue file here")


def test_help_has_an_example():
    out = runner.invoke(app, ["lr-find", "--help"])
    assert out.exit_code == 0 and "Example: unettui lr-find" in out.stdout
