"""predict and evaluate on the user's own pixels (issue 25), in both kinds of runs: a native run (patch_size) predicts
every image as it is by sliding window, a resize run letterboxes it as training did and resizes its region of the
output back; masks have the input's own size whatever its aspect ratio, and evaluate counts every pixel once."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from unettui.cli.app import app
from unettui.core.define.config import Config
from unettui.core.learn.data import equalize_histogram, split_with_test
from unettui.core.learn.folders import load_folder
from unettui.core.learn.model import UNet
from unettui.core.learn.predict import (
    TrainedModel,
    image_logits,
    label_map,
    labelled_folder,
    letterbox,
    load_model,
    predict,
    prepare,
    run_split,
    score,
)
from unettui.core.learn.resize import letterbox_shape
from unettui.core.learn.task import task_of
from unettui.core.runs.store import RunStore

pytestmark = pytest.mark.usefixtures("one_thread")

NATIVE = """[defaults]
dataset = "synthetic:nuclei"
num_images = 12
image_size = 64
patch_size = 32
base_channels = 4
depth = 2
epochs = 2
batch_size = 4
preview_count = 0
device = "cpu"

[[experiment]]
id = "nat"
"""


class Bright(nn.Module):
    """A pointwise 'model': the logit is 20 * (first channel - 0.5), so bright pixels are foreground. Any window of an
    image gives the same logit for a pixel, which makes exact expectations possible."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x[:, :1] - 0.5) * 20.0


def trained_model(model: nn.Module, **cfg) -> TrainedModel:
    config = Config(**{"base_channels": 4, "depth": 2, "batch_size": 4, "device": "cpu", **cfg})
    return TrainedModel("t", model.eval(), config, 1, 1, "best.pt (epoch 1)", torch.device("cpu"), None,
                        task_of(config))


def unet(seed: int = 0) -> UNet:
    torch.manual_seed(seed)
    return UNet(1, 1, 4, 2)


def bands(h: int, w: int, edge: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """A grey h x w image (uint8) bright in its leftmost and rightmost ``edge`` columns, and its mask (0/255)."""
    mask = np.zeros((h, w), np.uint8)
    mask[:, :edge] = mask[:, -edge:] = 255
    img = np.where(mask > 0, 230, 20).astype(np.uint8)
    return img, mask


def write_pairs(folder: Path, pairs: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    for sub in ("images", "masks"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for name, (img, mask) in pairs.items():
        iio.imwrite(folder / "images" / f"{name}.png", img)
        iio.imwrite(folder / "masks" / f"{name}.png", mask)
    return folder


def blobs(h: int, w: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Bright discs on a dark noisy field, h x w, like synthetic:nuclei."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    mask = np.zeros((h, w), bool)
    for _ in range(max(2, h * w // 600)):
        cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(3, 7)
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    img = np.clip(rng.normal(40, 15, (h, w)) + mask * 150, 0, 255).astype(np.uint8)
    return img, (mask * 255).astype(np.uint8)


# ---- the mechanics, on models built here (no training) ------------------------------------------------------------

@pytest.mark.parametrize("histeq", [False, True])
def test_sliding_window_prediction_equals_a_whole_image_forward_where_the_image_fits_one_window(histeq):
    tm = trained_model(unet(), patch_size=32, augment_histeq=histeq)
    chw = torch.rand(1, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = tm.model(equalize_histogram(chw[None]) if histeq else chw[None])[0]
    got = image_logits(tm, chw)
    assert got.shape == (1, 32, 32) and got.dtype == torch.float32
    assert torch.allclose(got, whole, rtol=0, atol=1e-6)


def test_resize_mode_of_an_image_size_square_image_is_the_models_own_output():
    tm = trained_model(unet(), image_size=32, augment_histeq=True)
    chw = torch.rand(1, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(image_logits(tm, chw), tm.model(equalize_histogram(chw[None]))[0])


def test_resize_mode_letterboxes_exactly_as_the_folder_loader_does_for_training(tmp_path):
    img, mask = bands(48, 80)
    folder = write_pairs(tmp_path / "d", {"wide": (img, mask)})
    trained_on = load_folder(folder, 32).images[0]  # what a resize run's training saw of this image
    tm = trained_model(unet(), image_size=32)
    square, region = letterbox(prepare(iio.imread(folder / "images" / "wide.png")[..., None], Path("wide.png"), tm),
                               32)
    assert torch.equal(square, trained_on)
    assert letterbox_shape(48, 80, 32) == (19, 32) and region == (6, 0, 19, 32)  # (32 - 19) // 2 rows above


def test_resize_mode_predicts_the_whole_of_a_48x80_image_at_its_own_size(tmp_path):
    """Nothing cropped or stretched: both bright edge bands of a wide image are found, at 48 x 80."""
    img, mask = bands(48, 80)
    (tmp_path / "in").mkdir()
    iio.imwrite(tmp_path / "in" / "wide.png", img)
    tm = trained_model(Bright(), image_size=32)
    [record] = predict(tm, [tmp_path / "in" / "wide.png"], tmp_path / "out", with_probabilities=True)
    got = iio.imread(tmp_path / "out" / "wide.png")
    prob = iio.imread(tmp_path / "out" / "wide_prob.png")
    assert got.shape == prob.shape == (48, 80) and (record["height"], record["width"]) == (48, 80)
    assert (got[:, :8] == 255).all() and (got[:, -8:] == 255).all()  # the left and right parts are predicted
    assert (got[:, 18:62] == 0).all()
    assert np.abs((got > 0).astype(int) - (mask > 0)).sum() <= 2 * 48 * 2  # at most a pixel or two off per edge
    # against the pipeline written out by hand: letterbox, forward, the region, bilinear back to 48 x 80
    chw = torch.from_numpy(img[None].astype(np.float32) / 255)
    square, (top, left, h, w) = letterbox(chw, 32)
    with torch.no_grad():
        region = tm.model(square[None])[:, :, top:top + h, left:left + w]
    back = torch.nn.functional.interpolate(region, size=(48, 80), mode="bilinear", align_corners=False)[0]
    assert torch.equal(image_logits(tm, chw), back)


@pytest.mark.parametrize("mode", [dict(image_size=32), dict(patch_size=32)], ids=["resize", "native"])
def test_counts_on_a_non_square_image_count_every_pixel_once(tmp_path, mode):
    img, mask = blobs(48, 80, seed=3)
    folder = write_pairs(tmp_path / "d", {"wide": (img, mask)})
    tm = trained_model(unet(4), **mode)
    images, masks = labelled_folder(tm, folder)
    assert [tuple(im.shape) for im in images] == [(1, 48, 80)] and tuple(masks[0].shape) == (1, 48, 80)
    s = score(tm, images, masks)
    assert s.images == 1 and s.pixels == 48 * 80 and s.sizes == [(48, 80)]
    assert s.tp + s.fp + s.fn + s.tn == 48 * 80
    pred = label_map(tm, image_logits(tm, images[0])) > 0  # predict's mask, counted by hand
    truth = mask > 0
    assert (s.tp, s.fp, s.fn) == ((pred & truth).sum(), (pred & ~truth).sum(), (~pred & truth).sum())


def test_native_mode_has_no_seams_on_an_image_of_any_size():
    """A pointwise model by sliding window over a 300 x 200 image (no multiple of the patch or its step): every
    pixel's logit is the model's own, whichever windows covered it."""
    tm = trained_model(Bright(), patch_size=32, overlap=0.5)
    chw = torch.rand(1, 300, 200, generator=torch.Generator().manual_seed(5))
    got = image_logits(tm, chw)
    assert got.shape == (1, 300, 200)
    assert torch.allclose(got, (chw - 0.5) * 20, rtol=0, atol=1e-4)


# ---- a native run, trained here ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def native_run(tmp_path_factory):
    proj = tmp_path_factory.mktemp("native") / "p"
    proj.mkdir()
    (proj / "experiments.toml").write_text(NATIVE)
    out = CliRunner().invoke(app, ["run", "--headless", "-p", str(proj)])
    assert out.exit_code == 0, out.output
    summary = json.loads(RunStore(proj).run("nat").file("summary.json").read_text())
    return proj, summary


def invoke(*args):
    return CliRunner().invoke(app, list(args))


def test_a_native_run_evaluated_on_its_val_split_gives_its_recorded_best_val_dice(native_run):
    proj, summary = native_run
    tm = load_model(RunStore(proj).run("nat"), device="cpu")
    assert tm.native and tm.epoch == summary["best_epoch"]
    images, masks = run_split(tm, proj, "val")
    _, val, _, _ = split_with_test(12, 0.8, 0, 0.0)
    assert len(images) == len(val) and all(tuple(im.shape) == (1, 64, 64) for im in images)
    s = score(tm, images, masks)
    assert abs(s.dice - summary["best_val_dice"]) <= 1e-6
    assert s.pixels == len(val) * 64 * 64 == s.tp + s.fp + s.fn + s.tn
    doc = json.loads(invoke("evaluate", "nat", "--json", "-p", str(proj)).output)
    assert abs(doc["metrics"]["dice"] - summary["best_val_dice"]) <= 1e-6
    assert doc["counted_at"]["model_input"] == {"patch_size": 32, "overlap": 0.5}


def test_a_native_run_predicts_a_300x200_image_to_a_300x200_mask(native_run, tmp_path):
    proj, _ = native_run
    (tmp_path / "in").mkdir()
    img, _ = blobs(300, 200, seed=6)
    iio.imwrite(tmp_path / "in" / "big.png", img)
    out = invoke("predict", "nat", str(tmp_path / "in"), str(tmp_path / "out"), "--probabilities", "--json",
                 "-p", str(proj))
    assert out.exit_code == 0, out.output
    [record] = json.loads(out.output)["files"]
    mask = iio.imread(tmp_path / "out" / "big.png")
    assert mask.shape == iio.imread(tmp_path / "out" / "big_prob.png").shape == (300, 200)
    assert (record["height"], record["width"]) == (300, 200)
    assert record["foreground_pixels"] == int((mask == 255).sum())


def test_evaluate_json_counts_a_native_runs_images_on_their_own_pixels(native_run, tmp_path):
    proj, _ = native_run
    sizes = {"wide": (48, 80), "tall": (300, 200), "square": (64, 64)}
    folder = write_pairs(tmp_path / "d", {n: blobs(*hw, seed=i) for i, (n, hw) in enumerate(sizes.items())})
    js = invoke("evaluate", "nat", str(folder), "--json", "-p", str(proj))
    text = invoke("evaluate", "nat", str(folder), "-p", str(proj))
    assert js.exit_code == 0 and text.exit_code == 0, js.output + text.output
    doc = json.loads(js.output)
    c = doc["counts"]
    total = sum(h * w for h, w in sizes.values())
    assert doc["images"] == 3 and c["pixels"] == total == c["tp"] + c["fp"] + c["fn"] + c["tn"]
    at = doc["counted_at"]
    assert at["resolution"] == "native" and at["height"] is None and at["width"] is None
    assert at["smallest"] == {"height": 48, "width": 80} and at["largest"] == {"height": 300, "width": 200}
    assert (f"counted on the images' own pixels: 3 images, {total / 1e3:.1f} kpx (80x48 to 200x300 WxH; the model "
            "saw them as 32x32 patches by sliding window)") in text.output
    assert doc["metrics"]["dice"] == pytest.approx(2 * c["tp"] / (2 * c["tp"] + c["fp"] + c["fn"]))


def test_a_native_runs_boundary_metrics_on_evaluate_are_its_end_of_run_ones(native_run):
    """HD95 and NSD on the val images' own pixels: evaluate gives what the run recorded at its end."""
    proj, summary = native_run
    doc = json.loads(invoke("evaluate", "nat", "--json", "-p", str(proj)).output)
    for key in ("hd95", "nsd"):
        assert doc["boundary"][key] == pytest.approx(summary[f"val_{key}"], abs=1e-9), key
