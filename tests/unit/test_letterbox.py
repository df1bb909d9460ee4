"""Non-square images at image_size are letterboxed, never cropped or stretched: scaled so their long side is
image_size, padded on the short side (evenly, images 0.0, masks -1: ignored); square images as before; the notes
say how many; padding is no foreground and no class. The resize helpers work on any H x W."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from unettui.core.define.task import Classes
from unettui.core.learn.data import IGNORE_INDEX, DatasetError
from unettui.core.learn.folders import absent_classes, load_folder
from unettui.core.learn.resize import letterbox_shape, pad_square, resize_image, resize_labels, resize_mask

THREE_IDX = Classes(("background", "cavity", "ring"), (0, 1, 2))


def pairs(root: Path, items: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for stem, (img, msk) in items.items():
        iio.imwrite(root / "images" / f"{stem}.png", img)
        iio.imwrite(root / "masks" / f"{stem}.png", msk)
    return root


# ---- the geometry -----------------------------------------------------------------------------------------------


def test_letterbox_shape_scales_the_long_side():
    assert letterbox_shape(64, 256, 64) == (16, 64)
    assert letterbox_shape(256, 64, 64) == (64, 16)
    assert letterbox_shape(10, 20, 64) == (32, 64)  # upsampling too
    assert letterbox_shape(50, 50, 32) == (32, 32)
    assert letterbox_shape(3, 10, 4) == (1, 4)  # round(1.2)
    assert letterbox_shape(1, 1000, 64) == (1, 64)  # never 0 rows


def test_pad_square_splits_the_padding_evenly_missing_half_before():
    t = torch.ones(2, 3, 8)
    out = pad_square(t, 8, -1.0)
    assert out.shape == (2, 8, 8)
    assert bool((out[:, :2] == -1).all()) and bool((out[:, 2:5] == 1).all()) and bool((out[:, 5:] == -1).all())
    wide = pad_square(torch.ones(8, 4), 8, 0.0)
    assert wide[:, :2].sum() == 0 and wide[:, 2:6].sum() == 32 and wide[:, 6:].sum() == 0
    same = torch.ones(1, 5, 5)
    assert pad_square(same, 5, 0.0) is same


def test_resize_helpers_take_any_height_and_width():
    img = torch.rand(3, 40, 80)
    assert resize_image(img, (10, 20)).shape == (3, 10, 20)
    assert resize_image(img, (40, 80)) is img
    mask = torch.zeros(40, 80)
    mask[:, :40] = 1
    small = resize_mask(mask, (10, 20))
    assert small.shape == (10, 20) and bool((small[:, :10] == 1).all()) and bool((small[:, 10:] == 0).all())
    assert set(resize_mask(mask, (60, 120)).unique().tolist()) == {0.0, 1.0}
    lab = torch.zeros(4, 8, dtype=torch.uint8)
    lab[:, 4:] = 2
    assert resize_labels(lab, (2, 4), 3).tolist() == [[0, 0, 2, 2]] * 2
    assert resize_labels(lab, (8, 16), 3)[:, 8:].eq(2).all()
    # a side shrunk while the other grows: voted down, then grown (no value between classes)
    mixed = resize_labels(lab, (8, 4), 3)
    assert mixed.shape == (8, 4) and mixed.tolist() == [[0, 0, 2, 2]] * 8
    assert resize_mask(mask, (80, 20)).shape == (80, 20)


# ---- folders at image_size --------------------------------------------------------------------------------------


def test_a_wide_image_is_letterboxed_and_nothing_is_cropped(tmp_path):
    img = np.zeros((64, 256), np.uint8)
    img[:, 240:] = 255  # at the far right: a centre crop lost it
    msk = np.zeros((64, 256), np.uint8)
    msk[:, 240:] = 255
    data = load_folder(pairs(tmp_path / "d", {"wide": (img, msk)}), 64)
    assert data.images.shape == (1, 1, 64, 64)
    im, m = data.images[0, 0], data.masks[0, 0]
    assert bool((im[:24] == 0).all()) and bool((im[40:] == 0).all())  # 16 rows of content, 24 above, 24 below
    assert bool((m[:24] == IGNORE_INDEX).all()) and bool((m[40:] == IGNORE_INDEX).all())
    assert bool((m[24:40, 60:] == 1).all()) and bool((m[24:40, :60] == 0).all())  # columns 240.. of 256 -> 60.. of 64
    assert im[24:40, 60:].mean().item() > 0.9 and im[24:40, 63].min().item() == pytest.approx(1.0)
    assert data.notes == ["1 non-square image scaled on its long side to 64 and padded (padding is ignored by losses "
                          "and metrics)"]


def test_a_tall_image_is_padded_left_and_right_and_upsampled(tmp_path):
    img = np.full((20, 10), 100, np.uint8)
    msk = np.zeros((20, 10), np.uint8)
    msk[:10] = 255
    tall = pairs(tmp_path / "d", {"tall": (img, msk), "sq": (np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8))})
    data = load_folder(tall, 40)
    assert data.names == ["sq", "tall"]
    im, m = data.images[1, 0], data.masks[1, 0]
    assert bool((im[:, :10] == 0).all()) and bool((im[:, 30:] == 0).all())
    assert torch.allclose(im[:, 10:30], torch.full((40, 20), 100 / 255))
    assert bool((m[:, :10] == -1).all()) and bool((m[:, 30:] == -1).all())
    assert bool((m[:20, 10:30] == 1).all()) and bool((m[20:, 10:30] == 0).all())
    assert data.masks[0].unique().tolist() == [0.0]  # the square one has no padding
    assert data.notes[-1].startswith("1 non-square image scaled on its long side to 40 and padded")


def test_notes_count_every_letterboxed_image(tmp_path):
    items = {f"i{n}": (np.full((12, 30), 50, np.uint8), np.full((12, 30), 255, np.uint8)) for n in range(3)}
    data = load_folder(pairs(tmp_path / "d", items), 16)
    assert data.notes == ["3 non-square images scaled on their long side to 16 and padded (padding is ignored by "
                          "losses and metrics)"]


def test_padding_is_no_foreground_every_empty_mask_is_still_refused(tmp_path):
    root = pairs(tmp_path / "d", {"a": (np.full((10, 30), 9, np.uint8), np.zeros((10, 30), np.uint8))})
    with pytest.raises(DatasetError, match="every mask in masks/ is empty"):
        load_folder(root, 16)


def test_label_maps_letterboxed_padding_is_no_class(tmp_path):
    lab = np.zeros((16, 32), np.uint8)
    lab[:, 16:] = 1  # no class 2 anywhere
    root = pairs(tmp_path / "d", {"a": ((np.arange(512) % 200).astype(np.uint8).reshape(16, 32), lab)})
    data = load_folder(root, 8, classes=THREE_IDX)
    m = data.masks[0, 0]
    assert m.tolist() == [[-1] * 8] * 2 + [[0] * 4 + [1] * 4] * 4 + [[-1] * 8] * 2
    assert absent_classes(data.masks, 3) == [2]
    assert "class 'ring' (value 2) occurs in no mask of the dataset" in data.notes


def test_absent_classes_skips_the_padding():
    masks = torch.tensor([[-1.0, 0.0], [1.0, -1.0]])
    assert absent_classes(masks, 3) == [2]
    assert absent_classes(torch.tensor([-1.0, -1.0]), 2) == [0, 1]


def test_square_images_are_resized_exactly_as_before(tmp_path):
    rng = np.random.default_rng(1)
    img = (rng.random((50, 50, 3)) * 255).astype(np.uint8)
    msk = ((rng.random((50, 50)) > 0.5) * 255).astype(np.uint8)
    data = load_folder(pairs(tmp_path / "d", {"a": (img, msk)}), 32)
    chw = torch.from_numpy(np.ascontiguousarray((img.astype(np.float32) / 255.0).transpose(2, 0, 1)))
    expected = torch.nn.functional.interpolate(chw[None], size=(32, 32), mode="bilinear", align_corners=False,
                                               antialias=True)[0].clamp_(0, 1)
    assert torch.equal(data.images[0], expected)
    area = torch.nn.functional.interpolate(torch.from_numpy(msk > 0).float()[None, None], size=(32, 32), mode="area")
    assert torch.equal(data.masks[0, 0], (area[0, 0] >= 0.5).float())
    assert data.notes == []
