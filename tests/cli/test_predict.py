"""`unettui predict` and `unettui evaluate`: a trained run applied to new images and scored on labelled ones."""

import json
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from typer.testing import CliRunner

from unettui.cli.app import app
from unettui.core.learn.data import split_with_test
from unettui.core.runs.store import RunStore

RGB_DEFAULTS = """[defaults]
dataset = "data"
image_size = 32
base_channels = 4
depth = 2
epochs = 4
batch_size = 4
lr = 3e-3
test_fraction = 0.2
device = "cpu"
"""


def _pairs(folder, n, rgb=True, size=(40, 32)):
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(n):
        h, w = size
        mask = np.zeros((h, w), np.uint8)
        mask[5 + i % 6:22, 6:20 + i % 5] = 255
        img = (rng.random((h, w, 3) if rgb else (h, w)) * 90).astype(np.uint8)
        img[mask > 0] += 130
        iio.imwrite(folder / "images" / f"p{i:02d}.png", img)
        iio.imwrite(folder / "masks" / f"p{i:02d}.png", mask)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    proj = tmp_path_factory.mktemp("predict") / "p"
    proj.mkdir()
    _pairs(proj / "data", 20, size=(32, 32))  # square at image_size: evaluate's pixels are the ones training counted
    (proj / "experiments.toml").write_text(RGB_DEFAULTS + "[[experiment]]\nid = 'rgb'\n")
    out = CliRunner().invoke(app, ["run", "--headless", "-p", str(proj)])
    assert out.exit_code == 0, out.output
    return proj


def invoke(*args):
    return CliRunner().invoke(app, list(args))


def test_predict_writes_masks_at_every_inputs_own_size(trained, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    rng = np.random.default_rng(5)
    iio.imwrite(inputs / "wide.png", (rng.random((30, 70, 3)) * 255).astype(np.uint8))  # non-square RGB
    iio.imwrite(inputs / "deep.tif", (rng.random((50, 20, 3)) * 4095).astype(np.uint16))  # 16-bit, tall
    iio.imwrite(inputs / "grey.png", (rng.random((32, 32)) * 255).astype(np.uint8))  # grey: replicated to RGB
    (inputs / ".hidden.png").write_bytes(b"not read")
    out = invoke("predict", "rgb", str(inputs), str(tmp_path / "out"), "--probabilities", "-p", str(trained))
    assert out.exit_code == 0, out.output
    assert "rgb: 3 masks from best.pt (epoch" in out.output
    for name, shape in (("wide", (30, 70)), ("deep", (50, 20)), ("grey", (32, 32))):
        mask = iio.imread(tmp_path / "out" / f"{name}.png")
        prob = iio.imread(tmp_path / "out" / f"{name}_prob.png")
        assert mask.shape == shape and prob.shape == shape and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255}
        assert np.array_equal(mask == 255, prob > 127) or np.abs((mask == 255).astype(int) - (prob >= 128)).sum() < 3
    # default output folder, one file, --last
    out = invoke("predict", "rgb", str(inputs / "wide.png"), "--last", "-p", str(trained))
    assert out.exit_code == 0 and (trained / "predictions" / "rgb" / "wide.png").exists(), out.output
    assert "checkpoint.pt (last epoch, 4)" in out.output


def test_a_prediction_reproduces_the_best_epochs_validation_masks(trained, tmp_path):
    """The run's own validation images, predicted from their files, give the masks the best epoch's model gives in
    training: the same Dice as summary.json's best."""
    from unettui.core.learn.metrics import dice_from_counts

    summary = json.loads((trained / "runs" / "rgb" / "summary.json").read_text())
    _, val, _, _ = split_with_test(20, 0.8, 0, 0.2)
    folder = tmp_path / "val"
    folder.mkdir()
    names = sorted(p.name for p in (trained / "data" / "images").iterdir())
    chosen = [names[i] for i in val.tolist()]
    tp = fp = fn = 0
    for name in chosen:  # square at the training size: the files are the training images exactly
        shutil.copy(trained / "data" / "images" / name, folder / name)
    out = invoke("predict", "rgb", str(folder), str(tmp_path / "masks"), "-p", str(trained))
    assert out.exit_code == 0, out.output
    for name in chosen:
        truth = iio.imread(trained / "data" / "masks" / name) > 0
        pred = iio.imread(tmp_path / "masks" / name) > 0
        tp, fp, fn = tp + (pred & truth).sum(), fp + (pred & ~truth).sum(), fn + (~pred & truth).sum()
    assert dice_from_counts(tp, fp, fn) == pytest.approx(summary["best_val_dice"], abs=1e-9)


def test_evaluate_reproduces_the_runs_numbers(trained, tmp_path):
    summary = json.loads((trained / "runs" / "rgb" / "summary.json").read_text())
    out = invoke("evaluate", "rgb", "-p", str(trained))
    assert out.exit_code == 0, out.output
    assert f"Dice {summary['best_val_dice']:.4f}" in out.output and "its own val images" in out.output
    out = invoke("evaluate", "rgb", "--split", "test", "-p", str(trained))
    assert f"Dice {summary['test_dice']:.4f}" in out.output and f"{summary['n_test']} images" in out.output
    # a labelled folder holding exactly the validation pairs gives the same numbers
    _, val, _, _ = split_with_test(20, 0.8, 0, 0.2)
    folder = tmp_path / "labelled"
    names = sorted(p.name for p in (trained / "data" / "images").iterdir())
    for sub in ("images", "masks"):
        (folder / sub).mkdir(parents=True)
        for i in val.tolist():
            shutil.copy(trained / "data" / sub / names[i], folder / sub / names[i])
    out = invoke("evaluate", "rgb", str(folder), "-p", str(trained))
    assert out.exit_code == 0 and f"Dice {summary['best_val_dice']:.4f}" in out.output, out.output


@pytest.mark.parametrize("case, needle", [
    ("no weights", "grey has not been trained yet (no runs/grey/): train it with `unettui run --headless --only grey`"),
    ("grey model, RGB input", "has 3 channels (RGB) but run grey was trained on 1-channel images"),
    ("unreadable", "cannot read"),
    ("not an image", "is not an image file unettui reads"),
    ("empty folder", "no image files in"),
    ("unknown run", "unknown experiment 'nosuch'"),
])
def test_predict_errors_are_one_line(tmp_path, case, needle):
    proj = tmp_path / "p"
    proj.mkdir()
    (proj / "experiments.toml").write_text(RGB_DEFAULTS.replace('dataset = "data"', 'dataset = "grey-data"')
                                           + "[[experiment]]\nid = 'grey'\nepochs = 1\n")
    _pairs(proj / "grey-data", 10, rgb=False, size=(32, 32))
    inputs = tmp_path / "in"
    inputs.mkdir()
    iio.imwrite(inputs / "a.png", np.zeros((32, 32, 3), np.uint8))
    run_id, target = "grey", inputs
    if case != "no weights":
        assert invoke("run", "--headless", "-p", str(proj)).exit_code == 0
    if case == "unreadable":
        (inputs / "a.png").write_bytes(b"garbage")
    elif case == "not an image":
        target = inputs / "notes.txt"
        target.write_text("x")
    elif case == "empty folder":
        target = tmp_path / "empty"
        target.mkdir()
    elif case == "unknown run":
        run_id = "nosuch"
    before = sorted(p.name for p in inputs.iterdir())
    out = invoke("predict", run_id, str(target), str(tmp_path / "out"), "-p", str(proj))
    assert out.exit_code == 2 and "Traceback" not in out.output, out.output
    assert needle in " ".join(out.output.split()), out.output
    assert sorted(p.name for p in inputs.iterdir()) == before
    if case == "no weights":
        assert not RunStore(proj).run("grey").exists()


def _bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_predict_never_overwrites_without_being_asked(trained, tmp_path):
    data = tmp_path / "data"
    _pairs(data, 4)
    images, masks = _bytes(data / "images"), _bytes(data / "masks")
    # the input folder as OUTPUT: the masks would replace the images
    out = invoke("predict", "rgb", str(data / "images"), str(data / "images"), "-p", str(trained))
    assert out.exit_code == 2 and "is one of the inputs: its mask would be written over it" in out.output, out.output
    out = invoke("predict", "rgb", str(data / "images"), str(data / "images"), "--overwrite", "-p", str(trained))
    assert out.exit_code == 2 and "is one of the inputs" in out.output  # never, even with --overwrite
    # the ground-truth masks folder as OUTPUT (docs/predict.md's example shape): refused, naming a file
    out = invoke("predict", "rgb", str(data / "images"), str(data / "masks"), "-p", str(trained))
    assert out.exit_code == 2, out.output
    assert (f"{data / 'masks' / 'p00.png'} exists (and 3 more of the 4 files predict would write): predict never "
            "replaces a file" in " ".join(out.output.split()))
    assert _bytes(data / "images") == images and _bytes(data / "masks") == masks
    # --overwrite replaces them
    out = invoke("predict", "rgb", str(data / "images"), str(data / "masks"), "--overwrite", "-p", str(trained))
    assert out.exit_code == 0 and "rgb: 4 masks" in out.output, out.output
    assert _bytes(data / "masks") != masks and _bytes(data / "images") == images
    # inputs of another format beside their OUTPUT: no file replaced, but the folder is the inputs'
    tifs = tmp_path / "tifs"
    tifs.mkdir()
    iio.imwrite(tifs / "t.tif", np.zeros((32, 32, 3), np.uint8))
    out = invoke("predict", "rgb", str(tifs), str(tifs), "-p", str(trained))
    assert out.exit_code == 2 and "is the folder of the input images" in out.output and not (tifs / "t.png").exists()
    assert invoke("predict", "rgb", str(tifs), str(tifs), "--overwrite", "-p", str(trained)).exit_code == 0
    assert (tifs / "t.png").exists()


def test_predict_refuses_colliding_output_names_before_writing(trained, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("x.png", "x_prob.png"):
        iio.imwrite(inputs / name, np.zeros((32, 32, 3), np.uint8))
    out = invoke("predict", "rgb", str(inputs), str(tmp_path / "out"), "--probabilities", "-p", str(trained))
    assert out.exit_code == 2 and not (tmp_path / "out").exists(), out.output
    assert (f"inputs {inputs / 'x.png'} and {inputs / 'x_prob.png'} would both be written to "
            f"{tmp_path / 'out' / 'x_prob.png'}: rename one of them" in " ".join(out.output.split()))
    iio.imwrite(inputs / "x.tif", np.zeros((32, 32, 3), np.uint8))
    out = invoke("predict", "rgb", str(inputs), str(tmp_path / "out"), "-p", str(trained))
    assert out.exit_code == 2 and "x.png and" in out.output and "x.tif would both be written" in out.output


def test_predict_and_evaluate_json(trained, tmp_path):
    """evaluate counts every pixel of the user's images once, at their own size (here 40 x 32, letterboxed for the
    model), and its counts are those of predict's masks against the mask files."""
    inputs = tmp_path / "in"
    _pairs(tmp_path / "d", 3, size=(40, 32))
    out = invoke("predict", "rgb", str(tmp_path / "d" / "images"), str(inputs), "--json", "-p", str(trained))
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["run"] == "rgb" and doc["weights"]["file"] == "best.pt" and doc["count"] == 3
    tp = fp = fn = 0
    for f in doc["files"]:
        mask = iio.imread(f["mask"])
        assert mask.shape == (f["height"], f["width"]) == (40, 32)
        assert int((mask == 255).sum()) == f["foreground_pixels"] and f["probabilities"] is None
        pred, truth = mask > 0, iio.imread(tmp_path / "d" / "masks" / f"{Path(f['mask']).stem}.png") > 0
        tp, fp, fn = tp + int((pred & truth).sum()), fp + int((pred & ~truth).sum()), fn + int((~pred & truth).sum())
    for args, size in (([], (32, 32)), (["--split", "test"], (32, 32)), ([str(tmp_path / "d")], (40, 32))):
        text = invoke("evaluate", "rgb", *args, "-p", str(trained))
        js = invoke("evaluate", "rgb", *args, "--json", "-p", str(trained))
        assert text.exit_code == 0 and js.exit_code == 0, text.output + js.output
        doc = json.loads(js.output)
        c = doc["counts"]
        assert (f"{doc['images']} image{'s' if doc['images'] != 1 else ''}, Dice {doc['metrics']['dice']:.4f}, "
                f"IoU {doc['metrics']['iou']:.4f} (TP {c['tp']:.0f}, FP {c['fp']:.0f}, FN {c['fn']:.0f}" in text.output)
        assert c["tp"] + c["fp"] + c["fn"] + c["tn"] == c["pixels"] == doc["images"] * size[0] * size[1]
        assert doc["counted_at"]["resolution"] == "native" and doc["counted_at"]["pixels"] == c["pixels"]
        assert (doc["counted_at"]["height"], doc["counted_at"]["width"]) == size
        assert doc["counted_at"]["model_input"] == {"image_size": 32, "letterboxed": True}
        px = doc["images"] * size[0] * size[1]
        assert (f"counted on the images' own pixels: {doc['images']} images, {px / 1e3:.1f} kpx "
                f"({size[1]}x{size[0]} WxH each; the model saw them resized to 32x32 (letterboxed))") in text.output
        assert doc["metrics"]["dice"] == pytest.approx(2 * c["tp"] / (2 * c["tp"] + c["fp"] + c["fn"]))
    assert (c["tp"], c["fp"], c["fn"]) == (tp, fp, fn)  # the labelled folder: predict's masks, counted by hand
    summary = json.loads((trained / "runs" / "rgb" / "summary.json").read_text())
    doc = json.loads(invoke("evaluate", "rgb", "--json", "-p", str(trained)).output)
    assert doc["metrics"]["dice"] == pytest.approx(summary["best_val_dice"], abs=1e-12)
    assert doc["dataset"] == {"spec": "data", "split": "val"} and doc["weights"]["epoch"] == summary["best_epoch"]


def test_predict_on_a_failed_run_names_retry(tmp_path):
    proj = tmp_path / "p"
    proj.mkdir()
    (proj / "experiments.toml").write_text(RGB_DEFAULTS + "[[experiment]]\nid = 'broken'\n")
    (proj / "runs" / "broken").mkdir(parents=True)
    (proj / "runs" / "broken" / "status.json").write_text(json.dumps(
        {"state": "failed", "error": "training diverged: train loss is nan in epoch 1", "epoch": 0}))
    out = invoke("predict", "broken", str(tmp_path), "-p", str(proj))
    assert out.exit_code == 2, out.output
    assert ("it failed (training diverged: train loss is nan in epoch 1); train it again with `unettui retry broken`"
            in " ".join(out.output.split())), out.output
