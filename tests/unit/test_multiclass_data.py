"""Multi-class label maps: reading them from real files (8/16-bit grey, palette, TIFF), refusing what is not a label
map (colour, lossy, values that are no class), resizing by majority, rotating one-hot, `unettui check` naming a bad
file, and the built-in synthetic:heart set."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from typer.testing import CliRunner

from unettui.core.define.config import Config
from unettui.core.define.task import Classes, classes_of
from unettui.core.learn.augment import AugmentSpec, augment_batch, rotate_batch
from unettui.core.learn.data import DatasetError
from unettui.core.learn.dataset_id import count_images, data_id
from unettui.core.learn.datasets import absent_classes, load_dataset
from unettui.core.learn.folders import class_indices, load_folder, read_label_map, resize_labels
from unettui.core.learn.synthetic import synthetic_heart

THREE = Classes(("background", "cavity", "ring"), (0, 128, 255))
THREE_IDX = Classes(("background", "cavity", "ring"), (0, 1, 2))


def label_map(h: int = 16, w: int = 16) -> np.ndarray:
    """A 3-class index map (0 background, 1 a block, 2 a stripe)."""
    lab = np.zeros((h, w), np.uint8)
    lab[2:10, 2:10] = 1
    lab[12:14, :] = 2
    return lab


def folder(root: Path, masks: dict[str, np.ndarray | Image.Image], ext: str = "png") -> Path:
    """root/images/<stem>.png (grey ramp) and root/masks/<stem>.<ext> for each mask given."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for stem, m in masks.items():
        h, w = (m.size[1], m.size[0]) if isinstance(m, Image.Image) else m.shape[:2]
        iio.imwrite(root / "images" / f"{stem}.png", (np.arange(h * w) % 251).astype(np.uint8).reshape(h, w))
        path = root / "masks" / f"{stem}.{ext}"
        if isinstance(m, Image.Image):
            m.save(path)
        elif ext in ("tif", "tiff"):
            tifffile.imwrite(path, m)
        else:
            Image.fromarray(m).save(path)
    return root


# ---------------------------------------------------------------------------
# reading label maps
# ---------------------------------------------------------------------------


def test_8bit_png_label_map_values_read_as_class_indices(tmp_path):
    lab = label_map()
    values = np.array([0, 128, 255], np.uint8)[lab]
    data = load_folder(folder(tmp_path, {"a": values}), 16, classes=THREE)
    assert data.masks.shape == (1, 1, 16, 16) and data.masks.dtype == torch.float32
    assert np.array_equal(data.masks[0, 0].numpy(), lab.astype(np.float32))
    assert data.notes == []


def test_16bit_tiff_label_map(tmp_path):
    lab = label_map()
    classes = Classes(("background", "a", "b"), (0, 1000, 40000))
    values = np.array([0, 1000, 40000], np.uint16)[lab]
    data = load_folder(folder(tmp_path, {"a": values}, ext="tif"), 16, classes=classes)
    assert np.array_equal(data.masks[0, 0].numpy(), lab.astype(np.float32))


def test_16bit_png_label_map(tmp_path):
    lab = label_map()
    values = np.array([0, 300, 7000], np.uint16)[lab]
    iio_root = folder(tmp_path, {})
    iio.imwrite(iio_root / "masks" / "a.png", values)
    iio.imwrite(iio_root / "images" / "a.png", np.zeros((16, 16), np.uint8))
    data = load_folder(iio_root, 16, classes=Classes(("background", "a", "b"), (0, 300, 7000)))
    assert np.array_equal(data.masks[0, 0].numpy(), lab.astype(np.float32))


def test_palette_png_read_as_its_indices(tmp_path):
    lab = label_map()
    pal = Image.new("P", (16, 16))
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))  # red and green: not grey
    pal.putdata(lab.reshape(-1).tolist())
    root = folder(tmp_path, {"a": pal})
    assert Image.open(root / "masks" / "a.png").mode == "P"
    assert iio.imread(root / "masks" / "a.png").ndim == 3  # imageio alone would see colours
    assert np.array_equal(read_label_map(root / "masks" / "a.png"), lab)
    data = load_folder(root, 16, classes=THREE_IDX)
    assert np.array_equal(data.masks[0, 0].numpy(), lab.astype(np.float32))


def test_rgb_mask_with_equal_channels_is_grey(tmp_path):
    lab = label_map()
    grey = np.array([0, 128, 255], np.uint8)[lab]
    rgba = np.dstack([grey, grey, grey, np.full_like(grey, 255)])
    data = load_folder(folder(tmp_path, {"a": rgba}), 16, classes=THREE)
    assert np.array_equal(data.masks[0, 0].numpy(), lab.astype(np.float32))


def test_rgb_colour_label_map_refused(tmp_path):
    lab = label_map()
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[lab == 1] = (255, 0, 0)
    rgb[lab == 2] = (0, 255, 0)
    with pytest.raises(DatasetError) as err:
        load_folder(folder(tmp_path, {"a": rgb}), 16, classes=THREE_IDX)
    msg = str(err.value)
    assert "\n" not in msg and "a.png" in msg and "colour" in msg
    assert "single-channel (grey or palette)" in msg


@pytest.mark.parametrize("ext", ["jpg", "webp"])
def test_lossy_label_map_refused(tmp_path, ext):
    root = folder(tmp_path, {"a": label_map() * 100}, ext=ext)
    with pytest.raises(DatasetError) as err:
        load_folder(root, 16, classes=THREE_IDX)
    msg = str(err.value)
    assert "\n" not in msg and f"a.{ext}" in msg and "lossy" in msg and "PNG or TIFF" in msg


def test_value_that_is_no_class_refused_naming_file_value_and_count(tmp_path):
    lab = np.array([0, 128, 255], np.uint8)[label_map()]
    lab[0, :7] = 7
    lab[1, :3] = 9
    ok = np.array([0, 128, 255], np.uint8)[label_map()]
    root = folder(tmp_path, {"img1": ok, "img3": lab})
    with pytest.raises(DatasetError) as err:
        load_folder(root, 16, classes=THREE)
    msg = str(err.value)
    assert "\n" not in msg
    assert str(root / "masks" / "img3.png") in msg
    assert "7 pixels of value 7" in msg and "3 pixels of value 9" in msg
    assert msg.index("value 7") < msg.index("value 9")  # most frequent first
    assert "mask_values = [0, 128, 255]" in msg and "add them to mask_values" in msg


def test_one_bad_value_message():
    arr = np.array([[0, 1, 2], [7, 7, 0]], np.uint8)
    with pytest.raises(DatasetError, match=r"has 2 pixels of value 7, which is not a class \(mask_values = \[0, 1, "
                                           r"2\]\): fix the mask, or make it a class"):
        class_indices(arr, Path("m.png"), THREE_IDX)
    many = np.arange(20, dtype=np.int32).reshape(4, 5)
    with pytest.raises(DatasetError, match="and 14 more value"):
        class_indices(many, Path("m.tif"), THREE_IDX)
    with pytest.raises(DatasetError, match="1 pixel of value -3"):
        class_indices(np.array([[0, -3]], np.int32), Path("m.tif"), THREE_IDX)


def test_float_label_map_must_hold_whole_numbers(tmp_path):
    lab = label_map().astype(np.float32)
    root = folder(tmp_path, {"a": lab}, ext="tif")
    data = load_folder(root, 16, classes=THREE_IDX)
    assert np.array_equal(data.masks[0, 0].numpy(), lab)
    tifffile.imwrite(root / "masks" / "a.tif", lab + 0.5)
    with pytest.raises(DatasetError, match="not whole numbers"):
        load_folder(root, 16, classes=THREE_IDX)


def test_all_background_refused_and_absent_class_noted(tmp_path):
    with pytest.raises(DatasetError, match="all background"):
        load_folder(folder(tmp_path / "a", {"x": np.zeros((16, 16), np.uint8)}), 16, classes=THREE_IDX)
    lab = label_map()
    lab[lab == 2] = 0
    data = load_folder(folder(tmp_path / "b", {"x": lab}), 16, classes=THREE_IDX)
    assert data.notes == ["class 'ring' (value 2) occurs in no mask of the dataset"]
    assert absent_classes(data.masks, 3) == [2]
    assert absent_classes(torch.tensor([[0.0, 1.0, 2.0]]), 3) == []
    # present in the files, gone at image_size: said so
    thin = np.zeros((64, 64), np.uint8)
    thin[10:40, 10:40] = 1
    thin[50, :] = 2
    data = load_folder(folder(tmp_path / "c", {"x": thin}), 16, classes=THREE_IDX)
    assert len(data.notes) == 1 and "in the mask files but in no mask once resized" in data.notes[0]


def test_binary_dataset_bit_identical_with_binary_classes(tmp_path):
    rng = np.random.default_rng(0)
    masks = {f"m{i}": (rng.random((40, 52)) > 0.6).astype(np.uint8) * 255 for i in range(3)}
    masks["inst"] = rng.integers(0, 5, (40, 52)).astype(np.uint8)  # instance labels: > 0 is foreground
    root = folder(tmp_path, masks)
    before = load_folder(root, 24)
    binary = classes_of(Config())
    assert binary.binary and binary.values is None
    after = load_folder(root, 24, classes=binary)
    assert torch.equal(before.masks, after.masks) and torch.equal(before.images, after.images)
    assert before.notes == after.notes
    via = load_dataset(str(root), 24, 0, 0, classes=binary)
    assert torch.equal(via.masks, before.masks)
    # two classes with explicit values map value -> class (instance labels are then refused), resized as binary
    # masks are: 0/255 masks read the same
    (root / "masks" / "inst.png").unlink()
    (root / "images" / "inst.png").unlink()
    explicit = load_folder(root, 24, classes=Classes(("background", "foreground"), (0, 255)))
    assert before.names[0] == "inst" and torch.equal(explicit.masks, before.masks[1:])


def test_explicit_two_class_values_refuse_other_values(tmp_path):
    root = folder(tmp_path, {"a": np.array([[0, 255], [3, 255]], np.uint8)})
    with pytest.raises(DatasetError, match="1 pixel of value 3"):
        load_folder(root, 2, classes=Classes(("background", "foreground"), (0, 255)))


# ---------------------------------------------------------------------------
# resizing label maps
# ---------------------------------------------------------------------------


def test_downsampled_label_map_is_a_majority_vote_with_ties_to_the_lower_class():
    lab = torch.tensor([
        [0, 0, 1, 1],
        [0, 2, 1, 2],
        [2, 2, 1, 0],
        [2, 1, 0, 2],
    ])
    out = resize_labels(lab, 2, 3)
    # top-left 2x2: 0,0,0,2 -> 0; top-right: 1,1,1,2 -> 1; bottom-left: 2,2,2,1 -> 2; bottom-right: 1,0,0,2 -> 0
    assert out.tolist() == [[0.0, 1.0], [2.0, 0.0]]
    tie = torch.tensor([[2, 1], [1, 2]])  # 1 and 2 twice each: the lower class
    assert resize_labels(tie, 1, 3).tolist() == [[1.0]]
    assert resize_labels(torch.tensor([[0, 2], [2, 0]]), 1, 3).tolist() == [[0.0]]


def test_upsampled_label_map_is_nearest_and_same_size_unchanged():
    lab = torch.tensor([[0, 1], [2, 0]])
    up = resize_labels(lab, 4, 3)
    assert up.tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 0, 0], [2, 2, 0, 0]]
    assert resize_labels(lab, 2, 3).dtype == torch.float32


def test_folder_label_maps_letterboxed_and_resized(tmp_path):
    lab = np.zeros((12, 16), np.uint8)  # non-square: nothing cropped; 16 -> 8 columns, 12 -> 6 rows, 1 row of padding
    lab[:, 2:8] = 1  # above and 1 below (-1: not in the image)
    lab[:, 8:14] = 2
    data = load_folder(folder(tmp_path, {"a": lab}), 8, classes=THREE_IDX)
    assert data.masks[0, 0].tolist() == [[-1] * 8] + [[0, 1, 1, 1, 2, 2, 2, 0]] * 6 + [[-1] * 8]


# ---------------------------------------------------------------------------
# augmentation
# ---------------------------------------------------------------------------


def batch3(b: int = 4, s: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    images = torch.rand(b, 2, s, s, generator=g)
    masks = torch.randint(0, 3, (b, 1, s, s), generator=g).to(torch.float32)
    masks[:, :, 4:14, 4:14] = 1.0
    masks[:, :, 16:20, :] = 2.0
    return images, masks


def test_rotate_label_maps_keeps_valid_indices_and_angle_zero_is_identity():
    images, masks = batch3()
    same_i, same_m = rotate_batch(images, masks, torch.zeros(4), num_classes=3)
    assert torch.equal(same_m, masks)
    bin_i, _ = rotate_batch(images, (masks > 0).float(), torch.zeros(4))
    assert torch.equal(same_i, bin_i)  # images sampled as the binary path samples them
    out_i, out_m = rotate_batch(images, masks, torch.tensor([30.0, -45.0, 90.0, 12.5]), num_classes=3)
    assert out_m.shape == masks.shape and out_m.dtype == masks.dtype
    assert set(out_m.unique().tolist()) <= {0.0, 1.0, 2.0}
    assert set(out_m[1].unique().tolist()) == {0.0, 1.0, 2.0}
    assert out_m[1, 0, 0, 0] == 0.0  # a corner rotated in from outside the image: background
    turned = torch.rot90(masks[2], 1, dims=(-2, -1))  # 90 degrees: exactly rot90
    assert torch.equal(out_m[2], turned)
    ref_i, _ = rotate_batch(images, (masks > 0).float(), torch.tensor([30.0, -45.0, 90.0, 12.5]))
    assert torch.equal(out_i, ref_i)


def test_rotate_many_classes_in_chunks_matches_one_hot_argmax():
    g = torch.Generator().manual_seed(1)
    k = 40
    masks = torch.randint(0, k, (2, 1, 20, 20), generator=g).to(torch.float32)
    images = torch.rand(2, 1, 20, 20, generator=g)
    grid_angles = torch.tensor([17.0, -33.0])
    _, out = rotate_batch(images, masks, grid_angles, num_classes=k)
    # reference: the whole one-hot at once, background = 1 - foreground
    import math

    import torch.nn.functional as F
    rad = grid_angles.double() * math.pi / 180
    cos, sin, zero = rad.cos(), rad.sin(), torch.zeros(2, dtype=torch.float64)
    theta = torch.stack([torch.stack([cos, -sin, zero], -1), torch.stack([sin, cos, zero], -1)], 1).float()
    grid = F.affine_grid(theta, [2, 1, 20, 20], align_corners=False)
    onehot = F.one_hot(masks[:, 0].long(), k).permute(0, 3, 1, 2).float()
    fg = F.grid_sample(onehot[:, 1:], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    shares = torch.cat([1.0 - fg.sum(1, keepdim=True), fg], 1)
    assert (out[:, 0] == shares.argmax(1).float()).float().mean() > 0.999


def test_flips_identical_and_draws_unchanged():
    images, masks = batch3()
    spec = AugmentSpec(hflip=0.5, vflip=0.5)
    a_i, a_m = augment_batch(images, masks, spec, torch.Generator().manual_seed(3), num_classes=3)
    b_i, b_m = augment_batch(images, masks, spec, torch.Generator().manual_seed(3))
    assert torch.equal(a_i, b_i) and torch.equal(a_m, b_m)
    spec = AugmentSpec(rotate=30, hflip=0.5)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    augment_batch(images, masks, spec, g1, num_classes=3)
    augment_batch(images, (masks > 0).float(), spec, g2)
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))  # 3*B draws either way
    g = torch.Generator().manual_seed(5)
    _, out = augment_batch(images, masks, spec, g, num_classes=3)
    assert set(out.unique().tolist()) <= {0.0, 1.0, 2.0}


# ---------------------------------------------------------------------------
# synthetic:heart
# ---------------------------------------------------------------------------


def test_heart_three_classes_thin_ring_deterministic():
    images, masks = synthetic_heart(40, 64, 0)
    assert images.shape == (40, 64, 64) and images.dtype == np.float32
    assert masks.shape == (40, 64, 64) and masks.dtype == np.uint8
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert set(np.unique(masks).tolist()) == {0, 1, 2}
    assert all({0, 1, 2} <= set(np.unique(m).tolist()) for m in masks)  # every image has every class
    ring = (masks == 2).mean(axis=(1, 2))
    cavity = (masks == 1).mean(axis=(1, 2))
    assert 0.03 <= ring.mean() <= 0.06 and ring.max() < 0.10
    assert cavity.mean() > 1.5 * ring.mean()
    # thin: per image, ring area / its length (about the cavity's perimeter) is 1.5-4.5 px
    for m in masks[:10]:
        cav = m == 1
        perimeter = (cav[1:, :] != cav[:-1, :]).sum() + (cav[:, 1:] != cav[:, :-1]).sum()
        assert 1.0 <= (m == 2).sum() / (perimeter / 1.27) <= 3.5  # 4-neighbour edges overcount a circle by 4/pi
    # the ring is much darker than the cavity and, blurred between the cavity and the tissue, about as grey as the
    # background on average: only its shape and the faint edge outside it tell it apart
    assert images[masks == 1].mean() > images[masks == 2].mean() + 0.25
    assert abs(images[masks == 0].mean() - images[masks == 2].mean()) < 0.1
    a = synthetic_heart(6, 64, 0)
    assert np.array_equal(a[0], images[:6]) and np.array_equal(a[1], masks[:6])
    b = synthetic_heart(6, 64, 1)
    assert not np.array_equal(b[1], masks[:6])


def test_heart_through_load_dataset_and_dataset_id():
    classes = classes_of(Config(dataset="synthetic:heart", num_classes=3))
    assert classes.names == ("background", "cavity", "myocardium") and classes.values == (0, 1, 2)
    data = load_dataset("synthetic:heart", 32, 8, 4, classes=classes)
    assert data.masks.shape == (8, 1, 32, 32) and set(data.masks.unique().tolist()) == {0.0, 1.0, 2.0}
    assert data.names[0] == "heart-0000" and data.notes == []
    _, masks = synthetic_heart(8, 32, 4)
    assert np.array_equal(data.masks[:, 0].numpy(), masks.astype(np.float32))
    assert count_images("synthetic:heart", 8) == 8
    assert data_id("synthetic:heart", 8, 32, 4) != data_id("synthetic:ventricle", 8, 32, 4)


def test_heart_is_fast():
    import time

    synthetic_heart(4, 64, 0)
    t = time.perf_counter()
    synthetic_heart(100, 64, 0)
    assert (time.perf_counter() - t) / 100 < 0.02  # a few ms per image at most


# ---------------------------------------------------------------------------
# unettui check
# ---------------------------------------------------------------------------


def test_check_reports_a_bad_label_value_naming_the_file(tmp_path):
    from unettui.cli.app import app

    proj = tmp_path / "p"
    proj.mkdir()
    good = np.array([0, 128, 255], np.uint8)[label_map(32, 32)]
    bad = good.copy()
    bad[:2, :] = 7
    folder(proj / "data", {f"g{i}": good for i in range(5)} | {"img3": bad})
    (proj / "experiments.toml").write_text(
        '[defaults]\ndataset = "data"\nimage_size = 32\nbase_channels = 4\ndepth = 2\nepochs = 1\nbatch_size = 2\n'
        "num_classes = 3\nmask_values = [0, 128, 255]\n\n[[experiment]]\nid = \"a\"\n")
    out = CliRunner().invoke(app, ["check", "-p", str(proj)])
    assert out.exit_code == 1, out.output
    assert "Traceback" not in out.output
    line = next(ln for ln in out.output.splitlines() if "img3.png" in ln)
    assert "64 pixels of value 7" in line and "experiments.toml" in line and "mask_values = [0, 128, 255]" in line
    # fixed: ok; the binary default reads the same folder as foreground/background
    Image.fromarray(good).save(proj / "data" / "masks" / "img3.png")
    out = CliRunner().invoke(app, ["check", "-p", str(proj)])
    assert out.exit_code == 0, out.output
    (proj / "experiments.toml").write_text(
        '[defaults]\ndataset = "data"\nimage_size = 32\nbase_channels = 4\ndepth = 2\nepochs = 1\nbatch_size = 2\n'
        '\n[[experiment]]\nid = "a"\n')
    Image.fromarray(bad).save(proj / "data" / "masks" / "img3.png")
    out = CliRunner().invoke(app, ["check", "-p", str(proj)])
    assert out.exit_code == 0, out.output
