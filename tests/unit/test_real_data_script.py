"""scripts/real_data_native.py's data split on a synthetic 512x512 image (not the experiment): the left tiles and the
right held-out image have the expected shapes, share no pixel, cover the image once, and their masks are 0/255; the
held-out tiles are the held-out image's pixels again, and none of the training pixels."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("real_data_native", ROOT / "scripts" / "real_data_native.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def synthetic(dtype=np.uint16, high: int = 236) -> tuple[np.ndarray, np.ndarray]:
    """A random 512x512 image (values below ``high``) and an instance-label mask of 59 square nuclei."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, high, (512, 512)).astype(dtype)
    labels = np.zeros((512, 512), np.uint16)
    for i in range(1, 60):
        r, c = rng.integers(5, 507, 2)
        labels[r - 5 : r + 5, c - 5 : c + 5] = i
    return image, labels


def test_tiles_shapes_disjoint_and_binary(script, tmp_path):
    image, labels = synthetic()
    written = script.build_dataset(image, labels, tmp_path)

    train = sorted((tmp_path / "train" / "images").glob("*.png"))
    assert [p.name for p in train] == [f"tile_{r:04d}.png" for r in (0, 128, 256, 384)]
    assert sorted(p.name for p in (tmp_path / "train" / "masks").glob("*.png")) == [p.name for p in train]
    assert [p.name for p in (tmp_path / "heldout" / "images").glob("*.png")] == ["right.png"]
    assert [p.name for p in (tmp_path / "heldout" / "masks").glob("*.png")] == ["right.png"]
    assert len(written["heldout_tiles"]) == 4

    covered = np.zeros((512, 512), np.int64)
    train_cover = np.zeros((512, 512), bool)
    tiles_cover = np.zeros((512, 512), np.int64)
    for part, items in written.items():
        for w in items:
            img = iio.imread(tmp_path / part / "images" / f"{w['name']}.png")
            msk = iio.imread(tmp_path / part / "masks" / f"{w['name']}.png")
            rs, cs = slice(*w["rows"]), slice(*w["columns"])
            expected_shape = {"train": (128, 320), "heldout": (512, 192), "heldout_tiles": (128, 192)}[part]
            assert img.shape == msk.shape == expected_shape == tuple(w["shape"])
            assert img.dtype == np.uint8  # values 0..235 fit in 8 bits: written as they are
            np.testing.assert_array_equal(img, image[rs, cs])
            assert set(np.unique(msk)) <= {0, 255}
            np.testing.assert_array_equal(msk == 255, labels[rs, cs] > 0)
            if part == "heldout_tiles":
                tiles_cover[rs, cs] += 1
                continue
            covered[rs, cs] += 1
            if part == "train":
                train_cover[rs, cs] = True
    assert (covered == 1).all()  # every pixel in exactly one file: no overlap, nothing left out
    assert not train_cover[:, 320:].any()  # nothing of the held-out columns is trained or validated on
    assert train_cover[:, :320].all()
    assert (tiles_cover[:, 320:] == 1).all() and not tiles_cover[:, :320].any()


def test_sixteen_bit_values_kept(script, tmp_path):
    image, labels = synthetic(high=4096)
    script.build_dataset(image, labels, tmp_path)
    right = iio.imread(tmp_path / "heldout" / "images" / "right.png")
    assert right.dtype == np.uint16
    np.testing.assert_array_equal(right, image[:, 320:])


def test_bad_geometry_refused(script, tmp_path):
    image, labels = synthetic()
    with pytest.raises(ValueError, match="same size|one size"):
        script.build_dataset(image, labels[:, :500], tmp_path)
    with pytest.raises(ValueError, match="rows"):
        script.build_dataset(image[:500], labels[:500], tmp_path)


def test_experiments_differ_only_in_mode(script):
    toml, runs = script.experiments_toml([0, 1, 2], [128, 64], 64, 40)
    assert [r["id"] for r in runs[:3]] == ["resize128-s0", "resize64-s0", "native64-s0"]
    assert {r["seed"] for r in runs} == {0, 1, 2} and len(runs) == 9
    assert 'dataset = "../train"' in toml and "data_seed = 0" in toml and "train_fraction = 0.75" in toml
