"""The corpus of mistakes users make: each gets a one-line error naming the file/line, key or run, what is
wrong and what is valid; a non-zero exit; no traceback; and no change to any file."""

import re
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from typer.testing import CliRunner

from unettui.cli.app import app

BASE = """# my study
[defaults]
dataset = "synthetic:nuclei"
num_images = 16
image_size = 32
base_channels = 4
depth = 2
epochs = 1
batch_size = 4
"""


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root and its bytes; empty lock files (the editors' and runners' locks) don't count."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.endswith(".lock")}


def pairs(root: Path, names_img, names_mask, size=(32, 32), mask_size=None):
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for n in names_img:
        iio.imwrite(root / "images" / f"{n}.png", np.full(size, 100, np.uint8))
    for n in names_mask:
        m = np.zeros(mask_size or size, np.uint8)
        m[:4, :4] = 255
        iio.imwrite(root / "masks" / f"{n}.png", m)
    return root


def folder(kind: str, proj: Path) -> str:
    """Make a broken (or fine) dataset folder inside the project; return its name."""
    d = proj / kind
    if kind == "no_masks":
        pairs(d, ["a", "b", "c"], ["a"])
    elif kind == "no_images":
        pairs(d, ["a"], ["a", "ghost1", "ghost2"])
    elif kind == "sizes":
        pairs(d, ["a", "b"], ["a"])
        pairs(d, [], ["b"], mask_size=(40, 40))
    elif kind == "unreadable":
        pairs(d, ["a", "b"], ["a", "b"])
        (d / "images" / "b.png").write_bytes(b"this is not a png at all")
    elif kind == "empty_file":
        pairs(d, ["a", "b"], ["a", "b"])
        (d / "masks" / "b.png").write_bytes(b"")
    elif kind == "one_image":
        pairs(d, ["only"], ["only"])
    elif kind == "empty_folder":
        (d / "images").mkdir(parents=True)
        (d / "masks").mkdir()
    elif kind == "empty_masks":
        pairs(d, ["a", "b", "c"], [])
        for n in "abc":
            iio.imwrite(d / "masks" / f"{n}.png", np.zeros((32, 32), np.uint8))
    return kind


# name, entry written after BASE (FOLDER is replaced by a broken folder's name), needles in the message
DEFINITIONS = [
    ("unknown key", "optimiser = 'adam'", ["optimiser", "did you mean 'optimizer'", "(line 12)"]),
    ("wrong type", "lr = 'fast'", ["lr", "must be a number", "'fast'"]),
    ("lr zero", "lr = 0", ["lr", "must be > 0"]),
    ("lr negative", "lr = -1e-3", ["lr", "must be > 0"]),
    ("train_fraction zero", "train_fraction = 0", ["train_fraction", "(0, 1]"]),
    ("train_fraction above one", "train_fraction = 1.5", ["train_fraction", "(0, 1]"]),
    ("dropout one", "dropout = 1.0", ["dropout", "[0, 1)"]),
    ("image_size for depth", "image_size = 100\ndepth = 4", ["image_size", "use 96 or 112"]),
    ("image_size too small", "image_size = 8\ndepth = 4", ["image_size", "smaller than 2**4"]),
    ("unknown optimizer", "optimizer = 'adamm'", ["optimizer", "did you mean 'adam'", "adagrad"]),
    ("unknown scheduler", "scheduler = 'cosin'", ["scheduler", "valid: none, step, plateau, cosine, onecycle"]),
    ("unknown loss", "loss = 'focal'", ["loss", "valid: bce, dice, dice_bce, inv_dice_bce, switching"]),
    ("fp16 on the cpu", "amp = 'fp16'\ndevice = 'cpu'", ["amp", "fp16 needs a CUDA device"]),
    ("bad device", "device = 'gpu'", ["device", "auto, cpu, cuda or cuda:N"]),
    ("unknown built-in dataset", "dataset = 'synthetic:brain'", ["dataset", "synthetic:ventricle, synthetic:nuclei"]),
    ("unsafe id", "id = 'my run/1'", ["id", "not filesystem-safe", "'my-run-1'"]),
    ("duplicate id", "id = 'twin'\n[[experiment]]\nid = 'twin'", ["duplicate id 'twin'"]),
    ("missing dataset folder", "dataset = 'data/nowhere'", ["data/nowhere"]),
    ("images without masks", "dataset = 'FOLDER:no_masks'", ["2 image(s) without a mask (b, c)", "no_masks"]),
    ("masks without images", "dataset = 'FOLDER:no_images'", ["2 mask(s) without an image (ghost1, ghost2)", "no_images"]),
    ("mismatched sizes", "dataset = 'FOLDER:sizes'", ["b.png", "32", "40"]),
    ("unreadable file", "dataset = 'FOLDER:unreadable'", ["b.png"]),
    ("empty file", "dataset = 'FOLDER:empty_file'", ["b.png", "empty"]),
    ("empty folder", "dataset = 'FOLDER:empty_folder'", ["no image files found", "empty_folder/images"]),
    ("too small for the split", "dataset = 'FOLDER:one_image'", ["train_fraction", "1"]),
    ("too small for the batch", "batch_size = 16", ["batch_size: 16 is larger than the 13 training images"]),
    ("every mask empty", "dataset = 'FOLDER:empty_masks'", ["empty_masks", "every mask in masks/ is empty"]),
    ("lr beyond any optimizer", "lr = 1e300", ["lr", "must be <= 100"]),
    ("lr_min above lr for cosine", "scheduler = 'cosine'\nlr = 1e-3\nlr_min = 0.01", ["lr_min", "above lr 0.001"]),
    ("lr_min above lr for plateau", "scheduler = 'plateau'\nlr = 1e-4\nlr_min = 1e-3", ["lr_min", "floor of plateau"]),
    ("seed beyond 64 bits", "seed = 9223372036854775807", ["seed", "must be in [0, 9223372036854775806]"]),
    ("momentum of one", "momentum = 1.0", ["momentum", "[0, 1)"]),
    ("rotation beyond 180 degrees", "augment.rotate = 400", ["augment.rotate", "[0, 180]"]),
    ("synthetic images too small", "image_size = 8\ndepth = 2", ["dataset", "synthetic images need image_size >= 16"]),
    ("batch norm on one value in the last batch", "image_size = 16\ndepth = 4",
     ["batch_size: 4: the last training batch holds 1 image (13 training images)", "bottleneck is 1x1 pixel",
      "use batch_size 5, image_size 32 or depth 3"]),
    ("batch norm on one value in every batch", "image_size = 16\ndepth = 4\nbatch_size = 1",
     ["batch_size: 1: every training batch holds 1 image"]),
    ("memory that cannot exist (width)", "base_channels = 4096",
     ["base_channels: 4096: training needs about", "lower base_channels or depth"]),
    ("memory that cannot exist (images)", "num_images = 1000000000", ["num_images: 1000000000: training needs about"]),
    ("memory that cannot exist (batch)", "image_size = 4096\nbatch_size = 12",
     ["training needs about", "lower batch_size, image_size or base_channels"]),
]


@pytest.mark.parametrize("name, entry, needles", DEFINITIONS, ids=[d[0] for d in DEFINITIONS])
def test_check_reports_each_mistake_and_changes_nothing(tmp_path, name, entry, needles):
    proj = tmp_path / "p"
    proj.mkdir()
    if "FOLDER:" in entry:
        kind = entry.split("FOLDER:")[1].rstrip("'")
        entry = entry.replace(f"FOLDER:{kind}", folder(kind, proj))
    (proj / "experiments.toml").write_text(BASE + "\n[[experiment]]\n" + entry + "\n")
    before = snapshot(proj)
    out = CliRunner().invoke(app, ["check", "-p", str(proj)])
    assert out.exit_code == 1, out.output
    assert "Traceback" not in out.output
    problem = next((line for line in out.output.splitlines() if all(n in line for n in needles)), None)
    assert problem is not None, f"{name}: no single line holds {needles}:\n{out.output}"
    assert "experiments.toml" in problem
    assert snapshot(proj) == before


def test_run_skips_an_invalid_definition_and_trains_the_rest(tmp_path):
    proj = tmp_path / "p"
    proj.mkdir()
    (proj / "experiments.toml").write_text(BASE + "[[experiment]]\nid = 'bad'\nlr = 'fast'\n[[experiment]]\nid = 'good'\n")
    before = (proj / "experiments.toml").read_bytes()
    out = CliRunner().invoke(app, ["run", "--headless", "-p", str(proj)])
    assert out.exit_code == 1
    assert "skipping bad: experiments.toml [[experiment]] 'bad' (line 12): lr: must be a number, got 'fast'" in out.output
    assert "Traceback" not in out.output
    assert not (proj / "runs" / "bad").exists() and (proj / "runs" / "good" / "summary.json").exists()
    assert (proj / "experiments.toml").read_bytes() == before


@pytest.mark.parametrize("args, code, needles", [
    (["check"], 1, ["not valid TOML", "line 3"]),  # check lists problems: exit 1
    (["ls"], 2, ["not valid TOML", "line 3"]),
    (["run", "--headless"], 2, ["not valid TOML", "line 3"]),
    (["add", "--set", "lr=1e-3"], 2, ["not valid TOML"]),
], ids=["check", "ls", "run", "add"])
def test_malformed_toml_is_one_line_for_every_command(tmp_path, args, code, needles):
    proj = tmp_path / "p"
    proj.mkdir()
    (proj / "experiments.toml").write_text("[defaults]\nepochs = 3\nlr = \n")
    before = snapshot(proj)
    out = CliRunner().invoke(app, [*args, "-p", str(proj)])
    assert out.exit_code == code, out.output
    lines = [line for line in out.output.splitlines() if line.strip() and not line.startswith("1 problem")]
    assert len(lines) == 1 and all(n in lines[0] for n in needles) and "experiments.toml" in lines[0], out.output
    assert snapshot(proj) == before


@pytest.mark.parametrize("args, needles", [
    (["add", "--set", "optimiser=adam"], ["optimiser", "did you mean 'optimizer'"]),
    (["add", "--set", "lr=fast"], ["lr", "must be a number"]),
    (["add", "--set", "lr"], ["lr", "="]),
    (["add", "--set", "train_fraction=0"], ["train_fraction", "(0, 1]"]),
    (["add", "--id", "base", "--set", "lr=0.1"], ["base", "already"]),
    (["sweep", "--set", "lr=1e-4,1e-3", "--set", "optimizer=adam,rmsprob"], ["rmsprob", "did you mean 'rmsprop'"]),
    (["sweep", "--set", "lr="], ["lr"]),
    (["sweep", "--set", "lr=1e-5..1e-1:log200", "--set", "optimizer=adam,sgd,adagrad"], ["600", "--yes"]),
    (["sweep", "--set", "lr=1e-1..1e-5:logx"], ["lr", "START..STOP"]),
    (["rm", "nosuch"], ["nosuch"]),
    (["retry", "nosuch"], ["nosuch"]),
    (["show", "bse"], ["bse", "base"]),
    (["logs", "nosuch"], ["nosuch"]),
    (["results", "--sort", "val_dise"], ["val_dise", "did you mean"]),
    (["run", "--headless", "--device", "gpu"], ["gpu", "cuda:N"]),
    (["run", "--headless", "--devices", "cuda:0,tpu"], ["tpu", "cuda:N"]),
    (["run", "--headless", "--only", "bsae"], ["--only bsae", "did you mean 'base'"]),
    (["sweep", "--set", "lr=1e-4..1e-1:log1000000"], ["1000000 values", "at most 10000"]),
    (["sweep", "--set", "lr=1e-5..1e-1:log1000", "--set", "seed=0..999:1000", "--yes"],
     ["1,000,000 experiments", "at most 100,000"]),
    (["add", "--set", "lr=1e300"], ["lr", "must be <= 100"]),
    (["lr-find", "--set", "base_channels=4096", "--steps", "5"], ["base_channels: 4096: training needs about"]),
], ids=lambda v: " ".join(v) if isinstance(v, list) and v and v[0] in ("add", "sweep", "rm", "retry", "show", "logs", "results", "run", "lr-find") else None)
def test_command_line_mistakes(tmp_path, args, needles):
    proj = tmp_path / "p"
    proj.mkdir()
    (proj / "experiments.toml").write_text(BASE + "\n[[experiment]]\nid = 'base'\n")
    before = snapshot(proj)
    out = CliRunner().invoke(app, [*args, "-p", str(proj)], input="")
    assert out.exit_code != 0, out.output
    assert "Traceback" not in out.output
    text = " ".join(out.output.split())
    assert all(n in text for n in needles), out.output
    assert snapshot(proj) == before


def test_cuda_out_of_memory_is_recorded_with_what_to_do():
    import torch

    from unettui.core.define.config import Config
    from unettui.core.define.experiment import Experiment
    from unettui.runner import _describe_failure

    exp = Experiment(id="big", origin="[[experiment]] 'big'", config=Config(batch_size=64, image_size=256))
    msg = _describe_failure(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), exp)
    assert msg == ("CUDA out of memory (batch_size 64, image_size 256); "
                   "lower batch_size, image_size or base_channels")


# ---- damaged run files: every face reports them and keeps working --------------------------------------

DAMAGE = [
    ("status.json", b"[]", "runs/good/status.json holds a list, not a JSON object"),
    ("status.json", b'"running"', "runs/good/status.json holds a string, not a JSON object"),
    ("status.json", b"\xff\xfe{}", "runs/good/status.json is not UTF-8 text"),
    ("summary.json", b"42", "runs/good/summary.json holds a number, not a JSON object"),
    ("summary.json", b"{torn", "runs/good/summary.json is not valid JSON (torn or hand-edited)"),
    ("config.json", b"null", "runs/good/config.json holds null, not a JSON object"),
    ("metrics.jsonl", b'{"epoch": 1, "val_dice": 0.5}\n\xff\xfe\n[1, 2]\n', "runs/good/metrics.jsonl: 2 unreadable lines skipped"),
]
COMMANDS = [("ls",), ("results",), ("export",), ("show", "good"), ("run", "--headless")]


@pytest.fixture(scope="module")
def trained_pair(tmp_path_factory):
    """A project with two finished runs ('good' and 'other') and a pending one, trained once for the module."""
    proj = tmp_path_factory.mktemp("damage") / "p"
    proj.mkdir()
    (proj / "experiments.toml").write_text(BASE + "\n[[experiment]]\nid = 'good'\n[[experiment]]\nid = 'other'\n")
    out = CliRunner().invoke(app, ["run", "--headless", "-p", str(proj)])
    assert out.exit_code == 0, out.output
    return proj


@pytest.mark.parametrize("name, content, needle", DAMAGE, ids=[f"{d[0]}={d[1][:8]!r}" for d in DAMAGE])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_damaged_run_files_are_named_and_nothing_else_stops(trained_pair, tmp_path, name, content, needle, command):
    import shutil

    proj = tmp_path / "p"
    shutil.copytree(trained_pair, proj)
    with open(proj / "experiments.toml", "a") as fh:
        fh.write("[[experiment]]\nid = 'later'\nepochs = 1\n")
    (proj / "runs" / "good" / name).write_bytes(content)
    before = snapshot(proj)
    out = CliRunner().invoke(app, [*command, "-p", str(proj)])
    assert "Traceback" not in out.output and (out.exception is None or isinstance(out.exception, SystemExit)), out.output
    text = " ".join(out.output.split())
    status_damaged = name == "status.json"
    if command[0] == "run":
        assert out.exit_code == (1 if status_damaged else 0), out.output
        assert (proj / "runs" / "later" / "summary.json").exists()  # the rest of the queue trained
        if status_damaged:
            assert f"good: skipped: damaged: {needle}; `unettui retry good` archives it and trains it again" in text
        after = snapshot(proj)
        assert {k: v for k, v in after.items() if k.startswith("runs/good/")} == \
               {k: v for k, v in before.items() if k.startswith("runs/good/")}  # the damaged run is left alone
        return
    assert out.exit_code == 0, out.output
    assert snapshot(proj) == before  # readers change nothing
    if command[0] == "results" and not status_damaged:
        return  # the table shows numbers, not notes; the row is there
    if command[0] == "export" and name == "metrics.jsonl":
        assert "runs/good/metrics.jsonl: 2 unreadable lines skipped" not in text  # done runs read summary.json
        return
    if command[0] == "results":
        assert re.search(r"^\s*good\s+damaged\s", out.output, re.M), out.output
        return
    if command[0] == "ls":
        row = next(line for line in out.output.splitlines() if line.startswith("good "))
        assert row.split()[1] == ("damaged" if status_damaged else "done"), out.output
        if name != "metrics.jsonl":  # a done run's curve is not read by ls: its summary is
            assert f"runs/good/{name}" in row, out.output
        return
    assert needle in text, out.output


def test_retry_archives_a_damaged_run_and_it_trains_again(trained_pair, tmp_path):
    import shutil

    proj = tmp_path / "p"
    shutil.copytree(trained_pair, proj)
    (proj / "runs" / "good" / "status.json").write_bytes(b"[]")
    out = CliRunner().invoke(app, ["retry", "good", "-p", str(proj)])
    assert out.exit_code == 0, out.output
    kept = proj / "runs" / "good" / "attempts" / "1"
    assert (kept / "status.json").read_bytes() == b"[]" and (kept / "metrics.jsonl").exists()
    out = CliRunner().invoke(app, ["run", "--headless", "-p", str(proj)])
    assert out.exit_code == 0 and "good: started on" in out.output, out.output
