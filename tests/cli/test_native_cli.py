"""Native resolution from the command line (issue 25): `check` reads a folder at its own sizes, a native run trains
headless and says its mode in its log and in `show`, `bench --data` compares the loader with the training step."""

import json

import imageio.v3 as iio
import numpy as np
import pytest
from typer.testing import CliRunner

from unettui.cli.app import app
from unettui.core.runs.store import RunStore

QUEUE = """[defaults]
dataset = "data"
base_channels = 4
depth = 2
epochs = 1
batch_size = 4
device = "cpu"
preview_count = 1

[[experiment]]
id = "nat"
patch_size = 16
"""

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def project(tmp_path):
    rng = np.random.default_rng(0)
    for sub in ("images", "masks"):
        (tmp_path / "data" / sub).mkdir(parents=True)
    for i, (h, w) in enumerate([(40, 72), (56, 24), (33, 47), (64, 64)]):
        mask = np.zeros((h, w), np.uint8)
        mask[h // 4: h // 2, w // 4: w // 2] = 255
        img = (rng.random((h, w)) * 80).astype(np.uint8) + (mask > 0) * 120
        iio.imwrite(tmp_path / "data" / "images" / f"a{i}.png", img.astype(np.uint8))
        iio.imwrite(tmp_path / "data" / "masks" / f"a{i}.png", mask)
    (tmp_path / "experiments.toml").write_text(QUEUE)
    return tmp_path


def test_check_reads_a_native_folder_at_its_own_sizes(project):
    out = CliRunner().invoke(app, ["check", "-p", str(project)])
    assert out.exit_code == 0, out.output
    assert "data: 4 images at their own sizes (24x56 to 64x64 WxH, 9.9 kpx)" in out.output


def test_a_native_run_says_its_mode_and_bench_data_compares_loader_and_step(project):
    runner = CliRunner()
    out = runner.invoke(app, ["run", "--headless", "--plain", "-p", str(project)])
    assert out.exit_code == 0, out.output
    assert "patches of 16 at the images' own resolution" in out.output
    config = json.loads(RunStore(project).run("nat").file("config.json").read_text())
    assert config["mode"] == "patches of 16" and config["samples_per_epoch"] >= 1
    split = json.loads(RunStore(project).run("nat").file("split.json").read_text())  # file names in images/
    assert sorted(split["train"] + split["val"]) == ["a0.png", "a1.png", "a2.png", "a3.png"] and split["test"] == []
    shown = runner.invoke(app, ["show", "nat", "-p", str(project)])
    assert "patches of 16" in shown.output
    bench = runner.invoke(app, ["bench", "--data", "--experiment", "nat", "--steps", "2", "--rounds", "1",
                                "-p", str(project), "--device", "cpu"])
    assert bench.exit_code == 0, bench.output
    lines = bench.output.strip().splitlines()
    assert lines[0].startswith("bench --data: data, 3 training images") and "patches of 16x16" in lines[0]
    assert any(line.startswith("loader: ") for line in lines) and any(line.startswith("step: ") for line in lines)
    ratio = float(lines[-1].rsplit("=", 1)[1])
    assert ratio > 0


def test_patch_size_beside_image_size_on_a_folder_is_refused_naming_both(project):
    (project / "experiments.toml").write_text(QUEUE + "image_size = 128\n")
    out = CliRunner().invoke(app, ["check", "-p", str(project)])
    assert out.exit_code != 0
    assert "image_size: 128 is set together with patch_size 16" in out.output and "keep one" in out.output
