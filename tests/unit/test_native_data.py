"""Datasets at their native resolution: NativeData (sizes, subsets, from a SegData), folders read with every image at
its own size (channels and masks by the same rules, the size mismatch named), the memory check from the files'
headers, Pillow's decompression-bomb limit lifted, load_dataset(native=True), and the decoded-image cache (a second
load decodes nothing; another fingerprint is another entry; a damaged entry is rebuilt)."""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from unettui.core.define.task import Classes
from unettui.core.learn import dataset_id, folders, native
from unettui.core.learn.data import DatasetError, SegData
from unettui.core.learn.datasets import load_dataset, native_fingerprint
from unettui.core.learn.folders import image_to_float, load_folder
from unettui.core.learn.native import NativeData, cached_native, check_memory, decoded_bytes, file_shape, from_segdata
from unettui.core.runs.store import RunStore

THREE_IDX = Classes(("background", "cavity", "ring"), (0, 1, 2))


def make(root: Path, items: dict[str, tuple[np.ndarray, np.ndarray]], ext: str = "png") -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for stem, (img, msk) in items.items():
        iio.imwrite(root / "images" / f"{stem}.{ext}", img)
        iio.imwrite(root / "masks" / f"{stem}.png", msk)
    return root


def block(h: int, w: int, value: int = 255) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[h // 4 : h // 2, w // 4 : w // 2] = value
    return m


def ramp(h: int, w: int) -> np.ndarray:
    return (np.arange(h * w) % 251).astype(np.uint8).reshape(h, w)


@pytest.fixture()
def sizes_folder(tmp_path) -> Path:
    return make(tmp_path / "ds", {"a": (ramp(30, 70), block(30, 70)), "b": (ramp(64, 16), block(64, 16)),
                                  "c": (ramp(20, 20), np.zeros((20, 20), np.uint8))})


# ---- NativeData ---------------------------------------------------------------------------------------------------


def test_native_folder_keeps_every_image_at_its_own_size(sizes_folder):
    data = load_folder(sizes_folder, 8, native=True)
    assert isinstance(data, NativeData)
    assert data.names == ["a", "b", "c"] and len(data) == 3 and data.channels == 1
    assert data.sizes == [(30, 70), (64, 16), (20, 20)]
    assert data.pixels == 30 * 70 + 64 * 16 + 400
    assert data.source == str(sizes_folder) and data.notes == []  # nothing letterboxed
    for img, msk, (h, w), stem in zip(data.images, data.masks, data.sizes, data.names):
        assert img.dtype == msk.dtype == torch.float32
        assert img.shape == (1, h, w) and msk.shape == (1, h, w)
        expected = image_to_float(iio.imread(sizes_folder / "images" / f"{stem}.png")[:, :, None], Path(stem))
        assert torch.equal(img, torch.from_numpy(expected))
        assert torch.equal(msk[0], torch.from_numpy(block(h, w) > 0).float() if stem != "c" else torch.zeros(h, w))


def test_subset_by_list_and_tensor(sizes_folder):
    data = load_folder(sizes_folder, 8, native=True)
    sub = data.subset([2, 0])
    assert sub.names == ["c", "a"] and sub.sizes == [(20, 20), (30, 70)]
    assert sub.images[1] is data.images[0]
    assert data.subset(torch.tensor([1])).names == ["b"]


def test_from_segdata_splits_into_views():
    seg = SegData(torch.rand(3, 2, 8, 8), torch.randint(0, 2, (3, 1, 8, 8)).float(), ["x", "y", "z"], "s", ["n"])
    nat = from_segdata(seg)
    assert nat.sizes == [(8, 8)] * 3 and nat.channels == 2 and nat.names == ["x", "y", "z"] and nat.notes == ["n"]
    assert all(torch.equal(nat.images[i], seg.images[i]) and torch.equal(nat.masks[i], seg.masks[i]) for i in range(3))
    assert nat.images[1].data_ptr() == seg.images[1].data_ptr()  # a view, not a copy


def test_native_channels_as_at_image_size(tmp_path):
    rgb = np.zeros((12, 18, 3), np.uint8)
    rgb[..., 0] = 200
    rgba = np.dstack([np.full((10, 10, 3), 40, np.uint8), np.full((10, 10), 255, np.uint8)])
    root = make(tmp_path / "d", {"a": (rgb, block(12, 18)), "b": (ramp(9, 5), block(9, 5)),
                                 "c": (rgba, block(10, 10))})
    data = load_folder(root, 8, native=True)
    assert data.channels == 3 and data.sizes == [(12, 18), (9, 5), (10, 10)]
    assert all(t.shape[0] == 3 for t in data.images)
    assert torch.equal(data.images[1][0], data.images[1][2])  # grey replicated
    assert any("alpha" in n for n in data.notes) and any("replicated to RGB" in n for n in data.notes)
    ds = load_folder(root, 8)  # the same rules at image_size
    assert ds.notes[:2] == data.notes[:2]


def test_native_size_mismatch_names_the_pair_and_both_sizes(tmp_path):
    root = make(tmp_path / "d", {"a": (ramp(10, 12), block(10, 12))})
    iio.imwrite(root / "masks" / "a.png", block(10, 13))
    with pytest.raises(DatasetError, match=r"size mismatch: image .*a\.png is 12x10 \(WxH\) but mask .*a\.png is "
                       r"13x10"):
        load_folder(root, 8, native=True)


def test_native_label_maps_and_empty_masks(tmp_path):
    lab = np.zeros((6, 11), np.uint8)
    lab[:, 5:] = 1
    data = load_folder(make(tmp_path / "l", {"a": (ramp(6, 11), lab)}), 4, classes=THREE_IDX, native=True)
    assert torch.equal(data.masks[0][0], torch.from_numpy(lab).float())
    assert data.notes == ["class 'ring' (value 2) occurs in no mask of the dataset"]
    empty = make(tmp_path / "e", {"a": (ramp(5, 7), np.zeros((5, 7), np.uint8))})
    with pytest.raises(DatasetError, match="every mask in masks/ is empty"):
        load_folder(empty, 4, native=True)


# ---- memory ---------------------------------------------------------------------------------------------------------


def test_file_shapes_from_headers(tmp_path):
    iio.imwrite(tmp_path / "g.png", ramp(7, 9))
    iio.imwrite(tmp_path / "c.png", np.zeros((4, 5, 3), np.uint8))
    tifffile.imwrite(tmp_path / "d.tif", np.zeros((6, 8), np.uint16))
    tifffile.imwrite(tmp_path / "p.tif", np.zeros((3, 6, 8), np.uint8), photometric="minisblack")  # three pages
    with tifffile.TiffFile(tmp_path / "p.tif") as tif:
        assert len(tif.pages) == 3
    Image.fromarray(ramp(5, 6)).convert("P").save(tmp_path / "pal.png")
    assert file_shape(tmp_path / "g.png") == (7, 9, 1, 1)
    assert file_shape(tmp_path / "c.png") == (4, 5, 3, 1)
    assert file_shape(tmp_path / "d.tif") == (6, 8, 1, 2)
    assert file_shape(tmp_path / "p.tif", "channels") == (6, 8, 3, 1)
    assert file_shape(tmp_path / "pal.png") == (5, 6, 3, 1)  # decoded as RGB
    (tmp_path / "bad.png").write_bytes(b"not a png")
    assert file_shape(tmp_path / "bad.png") is None
    # float32 image + mask, and the largest image's decoding (8-bit: its bytes twice)
    assert decoded_bytes([(10, 10, 1, 1), (20, 10, 3, 1)]) == 100 * 2 * 4 + 200 * 4 * 4 + 200 * 3 * 2
    assert decoded_bytes([(10, 10, 1, 2)]) == 100 * 2 * 4 + 100 * (4 + 8)


def test_a_dataset_too_large_for_memory_is_refused_before_decoding(sizes_folder, monkeypatch):
    monkeypatch.setattr(native, "available_memory", lambda: 20_000)
    monkeypatch.setattr(folders, "read_image_file", lambda *a, **k: pytest.fail("decoded"))
    with pytest.raises(DatasetError) as exc:
        load_folder(sizes_folder, 8, native=True)
    msg = str(exc.value)
    assert "\n" not in msg
    assert "3 images at their own size would take about 32.4 KB of memory once decoded" in msg
    assert f"the largest, {sizes_folder / 'images' / 'a.png'}, is 70x30 WxH" in msg
    assert "80% of the 20.0 KB available is 16.0 KB" in msg and "tile the large ones" in msg
    assert check_memory([sizes_folder / "images" / "a.png"], memory=10**9) == 30 * 70 * 8 + 30 * 70 * 2


def test_available_memory_is_known_here():
    assert (native.available_memory() or 0) > 10**8


def test_pillow_bomb_limit_does_not_refuse_large_images(tmp_path, monkeypatch):
    """Pillow refuses images over twice MAX_IMAGE_PIXELS (179 Mpx by default): lowered here so that a small image is
    one, read in both modes; the limit is Pillow's again afterwards."""
    root = make(tmp_path / "d", {"a": (ramp(60, 50), block(60, 50))})
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(root / "images" / "a.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        assert load_folder(root, 16, native=True).sizes == [(60, 50)]
        assert load_folder(root, 16).images.shape == (1, 1, 16, 16)
    assert Image.MAX_IMAGE_PIXELS == 1000


@pytest.mark.slow
def test_a_20000_pixel_square_png_loads_natively(tmp_path):
    """400 Mpx (over Pillow's bomb limit), 3.2 GB as float32 image and mask; about 8 s here (2 cores)."""
    s = 20000
    root = tmp_path / "big"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    Image.fromarray(block(s, s, 200)).save(root / "images" / "x.png", compress_level=1)
    Image.fromarray(block(s, s)).save(root / "masks" / "x.png", compress_level=1)
    t = time.perf_counter()
    data = load_folder(root, 64, native=True)
    assert time.perf_counter() - t < 60
    assert data.sizes == [(s, s)]
    assert data.images[0][0, s // 4, s // 4].item() == pytest.approx(200 / 255)
    assert float(data.masks[0].sum()) == (s // 4) ** 2


# ---- load_dataset -----------------------------------------------------------------------------------------------


def test_load_dataset_native_folder_and_synthetic(sizes_folder):
    data = load_dataset("ds", 8, 0, 0, base_dir=sizes_folder.parent, native=True)
    assert isinstance(data, NativeData) and data.source == "ds" and data.sizes[0] == (30, 70)
    syn = load_dataset("synthetic:ventricle", 32, 4, 3, native=True)
    seg = load_dataset("synthetic:ventricle", 32, 4, 3)
    assert isinstance(syn, NativeData) and syn.sizes == [(32, 32)] * 4 and syn.names == seg.names
    assert all(torch.equal(a, b) for a, b in zip(syn.images, seg.images))
    assert all(torch.equal(a, b) for a, b in zip(syn.masks, seg.masks))


# ---- the decoded-image cache --------------------------------------------------------------------------------------


def no_decoding(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a file was decoded")

    monkeypatch.setattr(folders, "read_image_file", refuse)
    monkeypatch.setattr(folders, "read_label_map", refuse)


def same(a: NativeData, b: NativeData) -> bool:
    return (a.names == b.names and a.notes == b.notes and a.source == b.source
            and all(torch.equal(x, y) for x, y in zip(a.images, b.images))
            and all(torch.equal(x, y) for x, y in zip(a.masks, b.masks)))


def test_a_second_load_reads_the_cache_and_decodes_nothing(sizes_folder, tmp_path, monkeypatch):
    cache = tmp_path / "runs" / ".cache" / "decoded"
    calls = []

    def load():
        calls.append(1)
        return load_folder(sizes_folder, 8, native=True)

    first = cached_native(load, cache, "abc")
    entry = cache / "abc"
    assert (entry / "index.json").is_file() and len(list(entry.glob("*.npy"))) == 6
    assert np.load(entry / "000000.mask.npy").dtype == np.uint8
    assert [p.name for p in cache.iterdir()] == ["abc"]  # no temporary folder left
    no_decoding(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's "not writable" warning among them
        second = cached_native(load, cache, "abc")
    assert calls == [1] and same(first, second)
    assert all(t.dtype == torch.float32 for t in second.images + second.masks)
    assert isinstance(second.images[0].numpy(), np.memmap) or second.images[0].numpy().base is not None
    assert list(RunStore(tmp_path).runs()) == []  # runs/.cache is not taken for a run


def test_another_fingerprint_is_another_entry_and_a_damaged_entry_is_rebuilt(sizes_folder, tmp_path):
    cache = tmp_path / "cache"
    calls = []

    def load():
        calls.append(1)
        return load_folder(sizes_folder, 8, native=True)

    ref = cached_native(load, cache, "one")
    # (the test damages the files in place, which unettui never does: the tensors mapped from them would change)
    ref = NativeData([t.clone() for t in ref.images], [t.clone() for t in ref.masks], ref.names, ref.source, ref.notes)
    cached_native(load, cache, "two")
    assert len(calls) == 2 and sorted(p.name for p in cache.iterdir()) == ["one", "two"]
    image = cache / "one" / "000001.image.npy"
    image.write_bytes(image.read_bytes()[:-4])  # truncated
    assert same(cached_native(load, cache, "one"), ref) and len(calls) == 3
    (cache / "one" / "000002.mask.npy").unlink()
    assert same(cached_native(load, cache, "one"), ref) and len(calls) == 4
    index = cache / "one" / "index.json"
    meta = json.loads(index.read_text())
    meta["entries"][0]["shape"] = [1, 70, 30]
    index.write_text(json.dumps(meta))
    assert same(cached_native(load, cache, "one"), ref) and len(calls) == 5
    index.write_text("{torn")
    assert same(cached_native(load, cache, "one"), ref) and len(calls) == 6
    assert same(cached_native(load, cache, "one"), ref) and len(calls) == 6


def test_load_dataset_caches_native_folders_by_content(sizes_folder, tmp_path, monkeypatch):
    cache = tmp_path / "proj" / "runs" / ".cache" / "decoded"
    first = load_dataset(str(sizes_folder), 8, 0, 0, native=True, cache_dir=cache)
    key = native_fingerprint(str(sizes_folder), None)
    assert key and (cache / key / "index.json").is_file()
    assert native_fingerprint(str(sizes_folder), None, "first") != key  # read otherwise: another entry
    assert native_fingerprint(str(sizes_folder), None, classes=THREE_IDX) != key
    with monkeypatch.context() as m:
        no_decoding(m)
        again = load_dataset(str(sizes_folder), 8, 0, 0, native=True, cache_dir=cache)
    assert same(first, again) and again.source == str(sizes_folder)
    iio.imwrite(sizes_folder / "images" / "c.png", ramp(20, 20)[::-1].copy())  # the content changed: decoded again
    os.utime(sizes_folder / "images" / "c.png", (1, 1))  # (the same size: its time tells)
    dataset_id._folder_cache.clear()  # (data_id reuses a fingerprint for 5 s while the listings are unchanged)
    assert native_fingerprint(str(sizes_folder), None) != key
    changed = load_dataset(str(sizes_folder), 8, 0, 0, native=True, cache_dir=cache)
    assert torch.equal(changed.images[2][0], first.images[2][0].flip(0))
