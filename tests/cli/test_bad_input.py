"""The corpus of mistakes users make: each gets a one-line error naming the file/line, key or run, what is
wrong and what is valid; a non-zero exit; no traceback; and no change to any file."""

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
], ids=lambda v: " ".join(v) if isinstance(v, list) and v and v[0] in ("add", "sweep", "rm", "retry", "show", "logs", "results", "run") else None)
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

    from unettui.core.config import Config
    from unettui.core.queue import Experiment
    from unettui.runner import _describe_failure

    exp = Experiment(id="big", origin="[[experiment]] 'big'", config=Config(batch_size=64, image_size=256))
    msg = _describe_failure(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), exp)
    assert msg == ("CUDA out of memory (batch_size 64, image_size 256); "
                   "lower batch_size, image_size or base_channels")
