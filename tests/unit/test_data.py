"""Tests for unettui.core.learn.data: synthetic generators, folder datasets, splits, histogram equalisation."""

from __future__ import annotations

import math
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from unettui.core.define.task import SYNTHETIC_DATASETS
from unettui.core.learn.data import DatasetError, SegData, equalize_histogram, split_indices
from unettui.core.learn.datasets import load_dataset
from unettui.core.learn.folders import load_folder
from unettui.core.learn.synthetic import synthetic_nuclei, synthetic_ventricle

GENERATORS = {"ventricle": synthetic_ventricle, "nuclei": synthetic_nuclei}
# the binary built-in datasets (synthetic:heart's classes: tests/unit/test_multiclass_data.py)
SYNTHETIC_KINDS = tuple(k for k, names in SYNTHETIC_DATASETS.items() if len(names) == 2)

# writing TIFFs in the tests goes through imageio's vendored tifffile, which warns about itself
pytestmark = pytest.mark.filterwarnings("ignore:ImageIO's vendored tifffile:DeprecationWarning")


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def count_components(mask: np.ndarray) -> int:
    """Number of 4-connected foreground components (vectorised label propagation)."""
    h, w = mask.shape
    big = h * w + 10
    lab = np.where(mask, np.arange(h * w).reshape(h, w) + 1, 0)
    while True:
        cur = np.where(mask, lab, big)
        nb = cur.copy()
        nb[1:, :] = np.minimum(nb[1:, :], cur[:-1, :])
        nb[:-1, :] = np.minimum(nb[:-1, :], cur[1:, :])
        nb[:, 1:] = np.minimum(nb[:, 1:], cur[:, :-1])
        nb[:, :-1] = np.minimum(nb[:, :-1], cur[:, 1:])
        new = np.where(mask, nb, 0)
        if np.array_equal(new, lab):
            return len(np.unique(lab[mask]))
        lab = new


def best_threshold_dice(images: np.ndarray, masks: np.ndarray) -> float:
    """Best Dice any single global intensity threshold reaches on the whole set."""
    best = 0.0
    for t in np.linspace(0.05, 0.95, 46):
        pred = images > t
        dice = 2.0 * np.logical_and(pred, masks).sum() / (pred.sum() + masks.sum())
        best = max(best, float(dice))
    return best


@pytest.fixture(scope="module")
def ventricle64():
    return synthetic_ventricle(120, 64, 0)


@pytest.fixture(scope="module")
def nuclei64():
    return synthetic_nuclei(60, 64, 0)


# ---------------------------------------------------------------------------
# synthetic generators
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SYNTHETIC_KINDS)
@pytest.mark.parametrize("size", [32, 48, 96])
def test_generator_shapes_dtypes_range(kind, size):
    images, masks = GENERATORS[kind](6, size, 3)
    assert images.shape == (6, size, size) and images.dtype == np.float32
    assert masks.shape == (6, size, size) and masks.dtype == np.bool_
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    assert np.isfinite(images).all()
    # normalised per image: each one uses (nearly) the whole range
    assert (images.reshape(6, -1).max(axis=1) == 1.0).all()
    assert (images.reshape(6, -1).min(axis=1) == 0.0).all()
    assert masks.reshape(6, -1).any(axis=1).all()  # no empty mask


@pytest.mark.parametrize("kind", SYNTHETIC_KINDS)
def test_generator_deterministic_in_seed(kind):
    gen = GENERATORS[kind]
    a_img, a_msk = gen(8, 32, 7)
    b_img, b_msk = gen(8, 32, 7)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_msk, b_msk)
    c_img, c_msk = gen(8, 32, 8)
    assert not np.array_equal(a_img, c_img)
    assert not np.array_equal(a_msk, c_msk)
    # image i depends only on (seed, i): a longer dataset extends a shorter one
    d_img, d_msk = gen(3, 32, 7)
    assert np.array_equal(d_img, a_img[:3]) and np.array_equal(d_msk, a_msk[:3])
    # images within one dataset differ from each other
    assert not np.array_equal(a_img[0], a_img[1])


def test_ventricle_same_scene_at_every_size():
    """Geometry is resolution independent: the masks at 32 and 64 px agree when downsampled.

    (Nuclei deliberately differ: their count grows with the image size.)
    """
    _, m32 = synthetic_ventricle(4, 32, 1)
    _, m64 = synthetic_ventricle(4, 64, 1)
    down = m64.reshape(4, 32, 2, 32, 2).mean(axis=(2, 4)) >= 0.5
    agree = (down == m32).mean()
    assert agree > 0.97


def test_generator_rejects_bad_arguments():
    with pytest.raises(DatasetError):
        synthetic_ventricle(4, 8, 0)
    with pytest.raises(DatasetError):
        synthetic_nuclei(-1, 32, 0)
    images, masks = synthetic_nuclei(0, 32, 0)
    assert images.shape == (0, 32, 32) and masks.shape == (0, 32, 32)


def test_ventricle_foreground_fraction_varies(ventricle64):
    _, masks = ventricle64
    frac = masks.reshape(len(masks), -1).mean(axis=1)
    assert frac.min() >= 0.005 and frac.max() <= 0.15
    assert 0.03 <= float(np.median(frac)) <= 0.07
    assert frac.std() > 0.015           # small and large targets both occur
    assert (frac < 0.03).sum() >= 5 and (frac > 0.08).sum() >= 5


def test_ventricle_target_is_one_crescent(ventricle64):
    _, masks = ventricle64
    components = [count_components(m) for m in masks[:60]]
    assert sum(c == 1 for c in components) >= 57
    # a crescent, not a disk: its convex-ish bounding box is far from full
    fill = [m.sum() / (np.ptp(np.nonzero(m)[0]) + 1) / (np.ptp(np.nonzero(m)[1]) + 1) for m in masks[:60]]
    assert np.median(fill) < 0.6


def test_ventricle_not_solvable_by_intensity(ventricle64):
    images, masks = ventricle64
    # the LV pool and distractors share the RV's grey level
    assert best_threshold_dice(images, masks) < 0.75
    # ... but the target is bright on average: there is signal to learn
    inside = images[masks].mean()
    outside = images[~masks].mean()
    assert inside > outside + 0.2


def test_nuclei_many_objects(nuclei64):
    images, masks = nuclei64
    frac = masks.reshape(len(masks), -1).mean(axis=1)
    assert 0.03 <= frac.mean() <= 0.3
    components = np.array([count_components(m) for m in masks[:30]])
    assert np.median(components) >= 6
    assert components.min() >= 2
    assert best_threshold_dice(images, masks) < 0.9


def test_nuclei_count_grows_with_size():
    _, small = synthetic_nuclei(10, 32, 0)
    _, large = synthetic_nuclei(10, 96, 0)
    c_small = np.mean([count_components(m) for m in small])
    c_large = np.mean([count_components(m) for m in large])
    assert c_large > c_small


# ---------------------------------------------------------------------------
# load_dataset (synthetic) and SegData
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SYNTHETIC_KINDS)
def test_load_dataset_synthetic(kind):
    data = load_dataset(f"synthetic:{kind}", image_size=32, num_images=10, data_seed=2)
    assert isinstance(data, SegData)
    assert data.images.shape == (10, 1, 32, 32) and data.images.dtype == torch.float32
    assert data.masks.shape == (10, 1, 32, 32) and data.masks.dtype == torch.float32
    assert set(torch.unique(data.masks).tolist()) <= {0.0, 1.0}
    assert float(data.images.min()) >= 0.0 and float(data.images.max()) <= 1.0
    assert data.channels == 1 and len(data) == 10
    assert data.names[0] == f"{kind}-0000" and data.names[9] == f"{kind}-0009"
    assert data.source == f"synthetic:{kind}"
    # same numbers as the generator
    images, masks = GENERATORS[kind](10, 32, 2)
    assert np.array_equal(data.images[:, 0].numpy(), images)
    assert np.array_equal(data.masks[:, 0].numpy() > 0.5, masks)


def test_load_dataset_bad_specs(tmp_path):
    with pytest.raises(DatasetError, match="synthetic:ventricle"):
        load_dataset("synthetic:lung", 32, 10, 0)
    with pytest.raises(DatasetError, match="num_images"):
        load_dataset("synthetic:nuclei", 32, 0, 0)
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("no_such_folder", 32, 10, 0, base_dir=tmp_path)


def test_segdata_subset_and_to():
    data = load_dataset("synthetic:nuclei", 32, 6, 0)
    sub = data.subset([4, 1])
    assert sub.names == ["nuclei-0004", "nuclei-0001"]
    assert torch.equal(sub.images[0], data.images[4]) and torch.equal(sub.masks[1], data.masks[1])
    sub2 = data.subset(torch.tensor([0, 5]))
    assert sub2.names == ["nuclei-0000", "nuclei-0005"] and len(sub2) == 2
    moved = data.to("cpu")
    assert moved.images.device.type == "cpu" and torch.equal(moved.masks, data.masks)
    assert moved.source == data.source and moved.names == data.names


# ---------------------------------------------------------------------------
# folder datasets
# ---------------------------------------------------------------------------


def make_layout(root: Path) -> tuple[Path, Path]:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    return root / "images", root / "masks"


def left_half_mask(h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[:, : w // 2] = 255
    return m


@pytest.fixture()
def mixed_folder(tmp_path):
    """Grey PNG (non-square), RGB PNG, 16-bit TIFF and JPEG images; masks in PNG/TIFF."""
    root = tmp_path / "ds"
    img_dir, msk_dir = make_layout(root)
    # a: grey PNG 48 rows x 64 cols, horizontal ramp; mask: left half of the full width
    ramp = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (48, 1))
    iio.imwrite(img_dir / "a_grey.png", ramp)
    iio.imwrite(msk_dir / "a_grey.png", left_half_mask(48, 64))
    # b: RGB PNG 32x32, pure colours; mask is an RGB image with only the red channel set
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[..., 0] = 200
    rgb[..., 2] = 50
    iio.imwrite(img_dir / "b_rgb.png", rgb)
    rmask = np.zeros((32, 32, 3), np.uint8)
    rmask[:10, :, 0] = 255
    iio.imwrite(msk_dir / "b_rgb.png", rmask)
    # c: 16-bit TIFF 32x32 with known values; mask as TIFF (stem matched across extensions)
    deep = np.zeros((32, 32), np.uint16)
    deep[0, 0] = 4095  # a 12-bit camera: only part of the 16-bit range is used
    deep[0, 1] = 2048
    iio.imwrite(img_dir / "c_deep.tif", deep)
    m = np.zeros((32, 32), np.uint8)
    m[5:9, 5:9] = 1  # 0/1 masks work as well as 0/255
    iio.imwrite(msk_dir / "c_deep.tif", m)
    # d: JPEG, constant grey; mask PNG
    iio.imwrite(img_dir / "d_photo.jpg", np.full((32, 32), 128, np.uint8))
    iio.imwrite(msk_dir / "d_photo.png", left_half_mask(32, 32))
    # junk that must be skipped
    (img_dir / "Thumbs.db").write_bytes(b"\x00\x01junk")
    (img_dir / "README.txt").write_text("notes")
    (img_dir / ".hidden.png").write_bytes(b"")
    (msk_dir / ".DS_Store").write_bytes(b"\x00")
    return root


def test_load_folder_mixed_formats(mixed_folder):
    data = load_folder(mixed_folder, 32)
    assert data.names == ["a_grey", "b_rgb", "c_deep", "d_photo"]
    assert data.images.shape == (4, 3, 32, 32) and data.images.dtype == torch.float32
    assert data.masks.shape == (4, 1, 32, 32) and data.masks.dtype == torch.float32
    assert set(torch.unique(data.masks[1:]).tolist()) == {0.0, 1.0}
    assert set(torch.unique(data.masks[0]).tolist()) == {-1.0, 0.0, 1.0}  # -1: the letterbox's padding
    assert data.channels == 3
    assert data.source == str(mixed_folder)
    assert data.notes[-1] == ("1 non-square image scaled on its long side to 32 and padded (padding is ignored by "
                              "losses and metrics)")
    imgs, msks = data.images, data.masks[:, 0]

    # grey images are replicated to 3 identical channels
    for i in (0, 2, 3):
        assert torch.equal(imgs[i, 0], imgs[i, 1]) and torch.equal(imgs[i, 0], imgs[i, 2])
    # RGB kept as colour: uint8 / 255
    assert torch.allclose(imgs[1, 0], torch.full((32, 32), 200 / 255))
    assert torch.allclose(imgs[1, 1], torch.zeros(32, 32))
    assert torch.allclose(imgs[1, 2], torch.full((32, 32), 50 / 255))
    # 16-bit: min-max per image (no resize at 32 px, so exact)
    assert imgs[2, 0, 0, 0].item() == pytest.approx(1.0)
    assert imgs[2, 0, 0, 1].item() == pytest.approx(2048 / 4095)
    assert imgs[2, 0, 5, 5].item() == 0.0
    # JPEG constant 128 stays ~0.5
    assert imgs[3].mean().item() == pytest.approx(128 / 255, abs=0.01)

    # non-square 48x64: letterboxed, nothing cropped: 64 -> 32 columns, 48 -> 24 rows, padded with 4 rows above and
    # 4 below (image 0.0, mask -1). The whole ramp stays a ramp (0 to 1), the mask (columns < 32 of 64) becomes
    # columns < 16 of 32 in rows 4..27.
    row = imgs[0, 0, 10]
    assert bool((row[1:] >= row[:-1] - 1e-6).all())
    assert row[0].item() == pytest.approx(0.0, abs=0.02) and row[-1].item() == pytest.approx(1.0, abs=0.02)
    assert bool((imgs[0][:, :4] == 0).all()) and bool((imgs[0][:, 28:] == 0).all())
    assert bool((msks[0][:4] == -1).all()) and bool((msks[0][28:] == -1).all())
    assert bool((msks[0][4:28, :16] == 1).all()) and bool((msks[0][4:28, 16:] == 0).all())
    # RGB mask: foreground where any channel > 0
    assert bool((msks[1][:10] == 1).all()) and bool((msks[1][10:] == 0).all())
    # 0/1 mask values work
    assert msks[2].sum().item() == 16 and bool((msks[2][5:9, 5:9] == 1).all())
    assert bool((msks[3][:, :16] == 1).all()) and bool((msks[3][:, 16:] == 0).all())


def test_load_folder_grey_only_is_one_channel_and_upsampling(tmp_path):
    img_dir, msk_dir = make_layout(tmp_path / "g")
    iio.imwrite(img_dir / "x.png", np.tile(np.linspace(0, 255, 16).astype(np.uint8), (16, 1)))
    iio.imwrite(msk_dir / "x.png", left_half_mask(16, 16))
    float_img = np.linspace(-3.0, 5.0, 256, dtype=np.float32).reshape(16, 16)
    iio.imwrite(img_dir / "y.tif", float_img)  # float: min-max normalised per image
    iio.imwrite(msk_dir / "y.png", np.zeros((16, 16), np.uint8))
    data = load_folder(tmp_path / "g", 40)
    assert data.images.shape == (2, 1, 40, 40) and data.channels == 1
    m = data.masks[0, 0]
    assert bool((m[:, :20] == 1).all()) and bool((m[:, 20:] == 0).all())
    assert data.masks[1].sum().item() == 0
    y = data.images[1, 0]
    assert y.min().item() == pytest.approx(0.0, abs=0.02) and y.max().item() == pytest.approx(1.0, abs=0.02)


def test_load_dataset_relative_folder(mixed_folder):
    data = load_dataset("ds", image_size=16, num_images=999, data_seed=0, base_dir=mixed_folder.parent)
    assert len(data) == 4 and data.images.shape[-1] == 16
    assert data.source == "ds"


# --- folder errors ----------------------------------------------------------


def one_line_error(fn, *args) -> str:
    with pytest.raises(DatasetError) as info:
        fn(*args)
    msg = str(info.value)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


def test_error_folder_missing(tmp_path):
    msg = one_line_error(load_folder, tmp_path / "nope", 32)
    assert str(tmp_path / "nope") in msg and "images/" in msg and "masks/" in msg


def test_error_subfolder_missing(tmp_path):
    (tmp_path / "d" / "images").mkdir(parents=True)
    msg = one_line_error(load_folder, tmp_path / "d", 32)
    assert "masks/" in msg and str(tmp_path / "d") in msg
    (tmp_path / "e").mkdir()
    msg = one_line_error(load_folder, tmp_path / "e", 32)
    assert "images/" in msg and "masks/" in msg


def test_error_no_images(tmp_path):
    img_dir, _ = make_layout(tmp_path / "d")
    (img_dir / "notes.txt").write_text("x")
    msg = one_line_error(load_folder, tmp_path / "d", 32)
    assert "no image files" in msg and str(img_dir) in msg


def test_error_unpaired_files(tmp_path):
    img_dir, msk_dir = make_layout(tmp_path / "d")
    tiny = np.zeros((8, 8), np.uint8)
    for i in range(7):
        iio.imwrite(img_dir / f"img{i}.png", tiny)
    iio.imwrite(msk_dir / "orphan.png", tiny)
    msg = one_line_error(load_folder, tmp_path / "d", 8)
    assert "7 image(s) without a mask" in msg
    assert "img0, img1, img2, img3, img4 and 2 more" in msg
    assert "img5" not in msg
    assert "1 mask(s) without an image (orphan)" in msg


def test_error_duplicate_stem(tmp_path):
    img_dir, msk_dir = make_layout(tmp_path / "d")
    tiny = np.zeros((8, 8), np.uint8)
    iio.imwrite(img_dir / "a.png", tiny)
    iio.imwrite(img_dir / "a.tif", tiny)
    iio.imwrite(msk_dir / "a.png", tiny)
    msg = one_line_error(load_folder, tmp_path / "d", 8)
    assert "a.png" in msg and "a.tif" in msg and "'a'" in msg


def test_error_unreadable_and_empty_files(tmp_path):
    img_dir, msk_dir = make_layout(tmp_path / "d")
    iio.imwrite(img_dir / "ok.png", np.zeros((8, 8), np.uint8))
    iio.imwrite(msk_dir / "ok.png", np.zeros((8, 8), np.uint8))
    (img_dir / "broken.png").write_bytes(b"this is not a png")
    iio.imwrite(msk_dir / "broken.png", np.zeros((8, 8), np.uint8))
    msg = one_line_error(load_folder, tmp_path / "d", 8)
    assert str(img_dir / "broken.png") in msg and "cannot read" in msg

    (img_dir / "broken.png").unlink()
    (msk_dir / "broken.png").unlink()
    iio.imwrite(img_dir / "zero.png", np.zeros((8, 8), np.uint8))
    (msk_dir / "zero.png").write_bytes(b"")
    msg = one_line_error(load_folder, tmp_path / "d", 8)
    assert str(msk_dir / "zero.png") in msg and "empty" in msg


def test_error_size_mismatch(tmp_path):
    img_dir, msk_dir = make_layout(tmp_path / "d")
    iio.imwrite(img_dir / "p.png", np.zeros((20, 30), np.uint8))
    iio.imwrite(msk_dir / "p.tif", np.zeros((20, 31), np.uint8))
    msg = one_line_error(load_folder, tmp_path / "d", 16)
    assert str(img_dir / "p.png") in msg and str(msk_dir / "p.tif") in msg
    assert "30x20" in msg and "31x20" in msg


# ---------------------------------------------------------------------------
# split_indices
# ---------------------------------------------------------------------------


def test_split_reproducible_disjoint_sorted():
    train, val, on_train = split_indices(50, 0.8, seed=3)
    assert on_train is False
    assert train.dtype == torch.long and val.dtype == torch.long
    assert len(train) == 40 and len(val) == 10
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert sorted(train.tolist() + val.tolist()) == list(range(50))
    assert torch.equal(train, torch.sort(train).values) and torch.equal(val, torch.sort(val).values)
    train2, val2, _ = split_indices(50, 0.8, seed=3)
    assert torch.equal(train, train2) and torch.equal(val, val2)
    train3, _, _ = split_indices(50, 0.8, seed=4)
    assert not torch.equal(train, train3)
    assert train.tolist() != list(range(40))  # shuffled, not a prefix


@pytest.mark.parametrize(
    "n, f, n_train",
    [(10, 0.7, 7), (5, 0.5, 3), (10, 0.01, 1), (10, 0.99, 9), (2, 0.5, 1), (3, 0.9, 2), (200, 0.25, 50)],
)
def test_split_sizes(n, f, n_train):
    train, val, on_train = split_indices(n, f, seed=0)
    assert len(train) == n_train and len(val) == n - n_train and not on_train


def test_split_full_fraction_validates_on_train():
    train, val, on_train = split_indices(7, 1.0, seed=0)
    assert on_train is True
    assert train.tolist() == list(range(7)) and val.tolist() == list(range(7))
    train, val, on_train = split_indices(1, 1.0, seed=0)
    assert on_train and train.tolist() == [0] and val.tolist() == [0]


@pytest.mark.parametrize("f", [0.0, -0.2, 1.5, math.nan])
def test_split_bad_fraction(f):
    with pytest.raises(DatasetError, match="train_fraction"):
        split_indices(10, f, seed=0)


def test_split_too_few_images():
    with pytest.raises(DatasetError, match="at least 2"):
        split_indices(1, 0.8, seed=0)


# ---------------------------------------------------------------------------
# equalize_histogram
# ---------------------------------------------------------------------------


def test_equalize_range_monotone_and_stretches():
    g = torch.Generator().manual_seed(0)
    x = 0.4 + 0.1 * torch.rand(3, 2, 24, 24, generator=g)  # low contrast: values in [0.4, 0.5]
    y = equalize_histogram(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    for i in range(3):
        for c in range(2):
            xi, yi = x[i, c].flatten(), y[i, c].flatten()
            order = torch.argsort(xi)
            assert bool((yi[order][1:] >= yi[order][:-1]).all())  # monotone non-decreasing
            assert yi.std() > 2.5 * xi.std()
            assert yi.min().item() == 0.0 and yi.max().item() == 1.0
    # roughly uniform output for a continuous input
    assert abs(y.mean().item() - 0.5) < 0.05


def test_equalize_per_image_and_channel_independent():
    g = torch.Generator().manual_seed(1)
    dark = 0.2 * torch.rand(1, 1, 16, 16, generator=g)
    bright = 0.6 + 0.4 * torch.rand(1, 1, 16, 16, generator=g)
    batch = torch.cat([dark, bright])
    out = equalize_histogram(batch)
    assert torch.allclose(out[0:1], equalize_histogram(dark))
    assert torch.allclose(out[1:2], equalize_histogram(bright))
    both = torch.cat([dark, bright], dim=1)  # one image, two channels
    out2 = equalize_histogram(both)
    assert torch.allclose(out2[:, 0:1], equalize_histogram(dark))
    assert torch.allclose(out2[:, 1:2], equalize_histogram(bright))


def test_equalize_constant_and_bins():
    const = torch.full((2, 1, 8, 8), 0.3)
    assert torch.equal(equalize_histogram(const), const)
    x = torch.linspace(0, 1, 64).reshape(1, 1, 8, 8)
    y4 = equalize_histogram(x, bins=4)
    assert len(torch.unique(y4)) == 4
    assert torch.allclose(equalize_histogram(x, bins=64), x, atol=1.5 / 64)
    half = equalize_histogram(x.half())
    assert half.dtype == torch.float16


def test_equalize_on_synthetic_batch():
    data = load_dataset("synthetic:ventricle", 32, 8, 0)
    out = equalize_histogram(data.images)
    assert out.shape == data.images.shape
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_jpeg_masks_are_thresholded_at_half_so_compression_noise_is_not_foreground(tmp_path):
    """A JPEG mask's background is full of small non-zero values; > 0 would make nearly everything foreground."""
    from unettui.core.learn.folders import load_folder

    truth = np.zeros((64, 64), np.uint8)
    truth[10:40, 20:50] = 255
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    iio.imwrite(tmp_path / "images" / "a.png", (np.arange(64 * 64).reshape(64, 64) % 251).astype(np.uint8))
    iio.imwrite(tmp_path / "masks" / "a.jpg", truth, quality=60)
    noisy = iio.imread(tmp_path / "masks" / "a.jpg")
    assert (noisy[truth == 0] > 0).sum() > 50  # the noise is really there
    mask = load_folder(tmp_path, 64).masks[0, 0].numpy()
    assert (mask == (truth > 0)).mean() > 0.99


def test_a_folder_whose_masks_are_all_empty_is_refused(tmp_path):
    from unettui.core.learn.data import DatasetError
    from unettui.core.learn.folders import load_folder

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for n in "ab":
        iio.imwrite(tmp_path / "images" / f"{n}.png", np.full((16, 16), 90, np.uint8))
        iio.imwrite(tmp_path / "masks" / f"{n}.png", np.zeros((16, 16), np.uint8))
    with pytest.raises(DatasetError, match="every mask in masks/ is empty"):
        load_folder(tmp_path, 16)
