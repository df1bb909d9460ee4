"""Images read as they are or refused: channels kept unless they are a constant alpha, multi-page TIFFs refused
unless `tiff_pages` says what the pages are, 3-D volumes and animations refused with one line naming the file."""

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from PIL import Image
from typer.testing import CliRunner

from unettui.cli.app import app
from unettui.core.learn.data import DatasetError
from unettui.core.learn.folders import load_folder, read_image_file

TWO_D = "unettui segments 2-D images; export its slices as 2-D files"


def _mask(h=32, w=32, i=0) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[4 + i % 5:20, 6:22 + i % 4] = 255
    return m


def _folder(root: Path, images: list[np.ndarray], ext: str = ".png", write=None) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, img in enumerate(images):
        (write or iio.imwrite)(root / "images" / f"im{i:02d}{ext}", img)
        iio.imwrite(root / "masks" / f"im{i:02d}.png", _mask(*img.shape[:2], i=i) if img.ndim >= 2 else None)
    return root


def _error(fn, *args, **kwargs) -> str:
    with pytest.raises(DatasetError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


def test_a_varying_second_channel_is_data_and_kept(tmp_path):
    rng = np.random.default_rng(0)
    imgs = []
    for i in range(4):
        a = np.zeros((32, 32, 2), np.uint8)
        a[..., 0] = (rng.random((32, 32)) * 100).astype(np.uint8)
        a[..., 1] = _mask(i=i) // 2 + 20  # the second stain carries the structure
        imgs.append(a)
    data = load_folder(_folder(tmp_path / "d", imgs), 32)
    assert data.channels == 2 and data.notes == []
    assert np.allclose(data.images[1, 1].numpy(), imgs[1][..., 1] / 255.0, atol=1e-6)  # not dropped as an alpha
    assert np.allclose(data.images[1, 0].numpy(), imgs[1][..., 0] / 255.0, atol=1e-6)


def test_a_constant_alpha_is_dropped_and_said(tmp_path):
    rng = np.random.default_rng(1)
    rgba = [(rng.random((32, 32, 4)) * 255).astype(np.uint8) for _ in range(3)]
    for a in rgba:
        a[..., 3] = 255
    data = load_folder(_folder(tmp_path / "rgba", rgba), 32)
    assert data.channels == 3 and data.notes == ["3 images had a constant alpha channel (transparency, not data): dropped"]
    assert np.allclose(data.images[2].numpy(), rgba[2][..., :3].transpose(2, 0, 1) / 255.0, atol=1e-6)
    la = [np.stack([(rng.random((32, 32)) * 255).astype(np.uint8), np.full((32, 32), 255, np.uint8)], -1)
          for _ in range(2)]
    assert load_folder(_folder(tmp_path / "la", la), 32).channels == 1


def test_an_alpha_that_varies_in_one_image_is_kept_in_all(tmp_path):
    """An image read before the one whose fourth channel varies had its constant one dropped: it is read again, so
    every image keeps its four channels."""
    rng = np.random.default_rng(2)
    imgs = [(rng.random((32, 32, 4)) * 255).astype(np.uint8) for _ in range(3)]
    imgs[0][..., 3] = 7  # constant in the first image only
    data = load_folder(_folder(tmp_path / "d", imgs), 32)
    assert data.channels == 4 and data.notes == []
    assert np.allclose(data.images[0, 3].numpy(), 7 / 255.0, atol=1e-6)


def test_mixed_channel_counts_are_refused_naming_the_file_and_both_counts(tmp_path):
    rng = np.random.default_rng(3)
    imgs = [(rng.random((32, 32)) * 255).astype(np.uint8) for _ in range(3)]
    odd = (rng.random((32, 32, 2)) * 255).astype(np.uint8)
    root = _folder(tmp_path / "d", imgs + [odd])
    msg = _error(load_folder, root, 32)
    assert msg.startswith(f"{root / 'images' / 'im03.png'} has 2 channels (its last one varies")
    assert "but im00.png and 2 other images have 1: every image of a dataset needs the same channels" in msg
    # grey among RGB is the one mix that is read (replicated, and said)
    rgb = [(rng.random((32, 32, 3)) * 255).astype(np.uint8) for _ in range(2)]
    data = load_folder(_folder(tmp_path / "g", rgb + imgs[:1]), 32)
    assert data.channels == 3 and data.notes == ["1 grey image replicated to RGB to match the other 2"]


def _stack(path: Path, pages: np.ndarray) -> None:
    tifffile.imwrite(path, pages, photometric="minisblack")  # [P, H, W]: P pages


def test_a_multi_page_tiff_is_refused_naming_its_pages_and_read_as_told(tmp_path):
    rng = np.random.default_rng(4)
    pages = (rng.random((3, 32, 32)) * 4000).astype(np.uint16)
    path = tmp_path / "z.tif"
    _stack(path, pages)
    msg = _error(read_image_file, path)
    assert msg.startswith(f"{path} has 3 pages: ") and 'tiff_pages = "channels"' in msg and '"first"' in msg
    assert np.array_equal(read_image_file(path, "channels"), pages.transpose(1, 2, 0))
    assert np.array_equal(read_image_file(path, "first"), pages[0][:, :, None])
    # ImageJ says what its pages are: the message repeats it
    hyper = tmp_path / "h.tif"
    tifffile.imwrite(hyper, np.zeros((2, 3, 16, 16), np.uint8), imagej=True, metadata={"axes": "ZCYX"})
    assert f"{hyper} has 6 pages (2 z-slices x 3 channels)" in _error(read_image_file, hyper)
    # a mask is one label image: pages are not its channels
    assert "is a mask with 3 pages" in _error(read_image_file, path, "channels", mask=True)


def test_tiff_pages_in_a_dataset(tmp_path):
    rng = np.random.default_rng(5)
    stacks = [(rng.random((3, 32, 32)) * 255).astype(np.uint8) for _ in range(3)]
    root = _folder(tmp_path / "d", stacks, ".tif", write=_stack)
    for i in range(len(stacks)):  # the masks follow the pages' own size
        iio.imwrite(root / "masks" / f"im{i:02d}.png", _mask(i=i))
    assert "im00.tif has 3 pages" in _error(load_folder, root, 32)
    data = load_folder(root, 32, "channels")
    assert data.channels == 3 and np.allclose(data.images[1].numpy(), stacks[1] / 255.0, atol=1e-6)
    first = load_folder(root, 32, "first")
    assert first.channels == 1 and np.allclose(first.images[2, 0].numpy(), stacks[2][0] / 255.0, atol=1e-6)


def test_tiffs_as_stored_planar_lzw_and_single_page(tmp_path):
    rng = np.random.default_rng(6)
    planar = (rng.random((3, 20, 30)) * 255).astype(np.uint8)  # one page, three planar samples
    tifffile.imwrite(tmp_path / "planar.tif", planar, photometric="rgb", planarconfig="separate")
    assert np.array_equal(read_image_file(tmp_path / "planar.tif"), planar.transpose(1, 2, 0))
    # LZW: tifffile needs imagecodecs for it, Pillow does not
    grey = (rng.random((20, 30)) * 255).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "lzw.tif", compression="tiff_lzw")
    assert np.array_equal(read_image_file(tmp_path / "lzw.tif"), grey[:, :, None])
    deep = (rng.random((20, 30)) * 4095).astype(np.uint16)
    tifffile.imwrite(tmp_path / "deep.tif", deep)
    assert np.array_equal(read_image_file(tmp_path / "deep.tif"), deep[:, :, None])


def test_volumes_animations_and_3d_arrays_are_refused_with_the_2d_sentence(tmp_path):
    root = tmp_path / "vol"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "images" / "brain.nii.gz").write_bytes(b"\x1f\x8b not really")
    (root / "masks" / "brain.nii.gz").write_bytes(b"\x1f\x8b")
    msg = _error(load_folder, root, 32)
    assert msg == f"{root / 'images' / 'brain.nii.gz'} is a 3-D volume (NIfTI): {TWO_D} (one PNG or TIFF per slice, " \
                  "with the same stem in images/ and masks/) and use that folder"
    for name, kind in (("a.nrrd", "NRRD"), ("b.mha", "MetaImage"), ("c.nii", "NIfTI")):
        (tmp_path / name).write_bytes(b"x")
        assert f"is a 3-D volume ({kind}): {TWO_D}" in _error(read_image_file, tmp_path / name)
    vol = tmp_path / "vol.tif"  # a volume in one TIFF page (SGI volumetric tiles)
    tifffile.imwrite(vol, np.zeros((4, 16, 16), np.uint8), photometric="minisblack", volumetric=True, tile=(4, 16, 16))
    assert f"{vol} is a 3-D volume stored in one TIFF page" in _error(read_image_file, vol)
    gif = tmp_path / "anim.gif"
    iio.imwrite(gif, np.zeros((3, 16, 16, 3), np.uint8) + np.arange(3, dtype=np.uint8)[:, None, None, None] * 60)
    assert _error(read_image_file, gif).startswith(f"{gif} has 3 frames (an animation)")


def test_a_mask_drawn_only_in_its_alpha_is_refused(tmp_path):
    root = _folder(tmp_path / "d", [np.zeros((32, 32), np.uint8) + 40])
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., 3] = _mask()
    iio.imwrite(root / "masks" / "im00.png", rgba)
    assert "is a mask whose foreground is drawn only in its alpha channel" in _error(load_folder, root, 32)


TINY = """[defaults]
dataset = "data"
image_size = 32
base_channels = 4
depth = 2
epochs = 1
batch_size = 4
device = "cpu"

[[experiment]]
id = "two"
"""


def test_a_run_records_and_predict_enforces_its_channels(tmp_path):
    proj = tmp_path / "p"
    rng = np.random.default_rng(7)
    imgs = []
    for i in range(8):
        a = (rng.random((32, 32, 2)) * 60).astype(np.uint8)
        a[..., 1][_mask(i=i) > 0] += 150
        imgs.append(a)
    _folder(proj / "data", imgs)
    (proj / "experiments.toml").write_text(TINY)
    runner = CliRunner()
    out = runner.invoke(app, ["run", "--headless", "-p", str(proj)])
    assert out.exit_code == 0, out.output
    cfg = json.loads((proj / "runs" / "two" / "config.json").read_text())
    assert cfg["in_channels"] == 2 and cfg["tiff_pages"] == "error" and cfg["data_notes"] == []
    inputs = tmp_path / "in"
    inputs.mkdir()
    iio.imwrite(inputs / "grey.png", np.zeros((32, 32), np.uint8))
    out = runner.invoke(app, ["predict", "two", str(inputs), str(tmp_path / "out"), "-p", str(proj)])
    assert out.exit_code == 2 and not (tmp_path / "out" / "grey.png").exists()
    assert (f"{inputs / 'grey.png'} has 1 channel (grey) but run two was trained on 2-channel images; convert it first"
            in " ".join(out.output.split())), out.output
    (inputs / "grey.png").unlink()
    iio.imwrite(inputs / "two.png", imgs[0])
    out = runner.invoke(app, ["predict", "two", str(inputs), str(tmp_path / "out"), "-p", str(proj)])
    assert out.exit_code == 0 and iio.imread(tmp_path / "out" / "two.png").shape == (32, 32), out.output


def test_what_reading_changed_is_in_the_runs_log_and_config(tmp_path):
    proj = tmp_path / "p"
    rng = np.random.default_rng(8)
    imgs = [(rng.random((32, 32, 4)) * 255).astype(np.uint8) for _ in range(8)]
    for a in imgs:
        a[..., 3] = 255
    _folder(proj / "data", imgs)
    (proj / "experiments.toml").write_text(TINY.replace('id = "two"', 'id = "rgba"'))
    out = CliRunner().invoke(app, ["run", "--headless", "-p", str(proj)])
    assert out.exit_code == 0, out.output
    cfg = json.loads((proj / "runs" / "rgba" / "config.json").read_text())
    note = "8 images had a constant alpha channel (transparency, not data): dropped"
    assert cfg["in_channels"] == 3 and cfg["data_notes"] == [note]
    assert f"data: {note}" in (proj / "runs" / "rgba" / "run.log").read_text()
