"""Previews of windows cut from larger images carry the whole image shrunk, the window outlined (issue 25, faces):
native_run.orientation / preview_context, save_preview(context=...), and the TUI's drawing of it."""

import io

import numpy as np
import torch

from unettui.core.learn.native_run import orientation, preview_context, preview_windows
from unettui.core.show import render, render_preview
from unettui.core.show.preview import (
    GAP,
    WINDOW_COLOUR,
    load_preview,
    preview_paths,
    sample_context,
    save_preview,
    strip_png,
)
from unettui.tui.widgets.preview import NARROW_NOTE, draw_preview


def _png(path):
    import imageio.v3 as iio

    return iio.imread(io.BytesIO(path.read_bytes()))


def test_thumbnail_of_a_wide_image_is_letterboxed_and_its_box_scaled():
    image = torch.full((1, 64, 128), 0.8)
    ctx = orientation([image], [(16, 80, 32, 32)], 64)
    thumbs, boxes = ctx["images"], ctx["boxes"]
    assert thumbs.shape == (1, 1, 64, 64) and thumbs.dtype == torch.float32
    assert boxes.dtype == torch.int64
    # shrunk by 64 / 128 to 32 x 64, padded by 16 rows above and below: the window (16, 80, 32, 32) lands at
    # (16 + 16 * 0.5, 80 * 0.5) and is 16 x 16
    assert boxes.tolist() == [[24, 40, 16, 16]]
    assert torch.all(thumbs[0, 0, :16] == 0) and torch.all(thumbs[0, 0, 48:] == 0)
    assert torch.allclose(thumbs[0, 0, 16:48], torch.tensor(0.8))


def test_thumbnail_of_a_tall_rgb_image_pads_its_columns():
    image = torch.rand(3, 96, 48)
    ctx = orientation([image], [(48, 0, 48, 48)], 32)
    assert ctx["images"].shape == (1, 3, 32, 32)
    assert ctx["boxes"].tolist() == [[16, 8, 16, 16]]  # 16 x 32 after shrinking, 8 columns of padding either side
    assert torch.all(ctx["images"][0, :, :, :8] == 0) and torch.all(ctx["images"][0, :, :, 24:] == 0)


def test_preview_context_is_preview_windows_plus_the_orientation():
    image = torch.rand(1, 64, 128)
    mask = torch.zeros(1, 64, 128)
    mask[0, 16:48, 80:112] = 1.0  # foreground centred at (31, 95): the 32 x 32 window at (15, 79)
    x, y, names, ctx = preview_context([image], [mask], ["wide"], side=32)
    wx, wy, wnames = preview_windows([image], [mask], ["wide"], side=32)
    assert torch.equal(x, wx) and torch.equal(y, wy) and names == wnames == ["wide (32x32 at 15,79 of 64x128)"]
    assert ctx is not None and ctx["images"].shape == (1, 1, 32, 32)
    # scaled by 32 / 128 (edges rounded), below 8 rows of letterbox padding
    assert ctx["boxes"].tolist() == [[8 + 4, 20, 8, 8]]
    # every window its whole image: nothing to orient
    assert preview_context([image[:, :32, :32]], [mask[:, :32, :32]], ["small"], side=32)[3] is None


def _sample(k=2, s=16, classes=1):
    rng = np.random.default_rng(0)
    images = rng.random((k, 1, s, s)).astype(np.float32)
    if classes == 1:
        masks = (rng.random((k, 1, s, s)) > 0.5).astype(np.float32)
        probs = rng.random((k, 1, s, s)).astype(np.float32)
    else:
        masks = rng.integers(0, classes, (k, 1, s, s)).astype(np.float32)
        probs = rng.random((k, classes, s, s)).astype(np.float32)
    return images, masks, probs


def _context(k=2, s=16):
    thumbs = np.zeros((k, 1, s, s), np.float32)
    thumbs[:, :, 4:12] = 0.5
    return {"images": torch.from_numpy(thumbs), "boxes": torch.tensor([[4, 8, 4, 4]] * k)}


def test_save_preview_with_a_context_writes_its_arrays_and_a_panel_more(tmp_path):
    images, masks, probs = _sample()
    plain, ctx_dir = tmp_path / "plain", tmp_path / "ctx"
    plain.mkdir(), ctx_dir.mkdir()
    save_preview(plain, "best", epoch=1, images=images, masks=masks, probs=probs, names=["a", "b"])
    save_preview(ctx_dir, "best", epoch=1, images=images, masks=masks, probs=probs, names=["a", "b"],
                 context=_context())
    pv, problem = load_preview(ctx_dir, "best")
    assert problem is None
    assert pv["context_images"].dtype == np.uint8 and pv["context_images"].shape == (2, 16, 16)
    assert pv["context_boxes"].tolist() == [[4, 8, 4, 4]] * 2
    assert pv["context_images"][0, 5, 0] == 128  # the thumbnail as uint8, like the images
    a, b = _png(preview_paths(plain, "best")[0]), _png(preview_paths(ctx_dir, "best")[0])
    scale = max(1, -(-128 // 16))
    assert b.shape[0] == a.shape[0] and b.shape[1] == a.shape[1] + (16 + GAP) * scale
    assert np.array_equal(b[:, (16 + GAP) * scale:], a)  # the rest of the strip as without a context
    # the window's outline in its colour at the box's corner (scaled up with the tile), the inside as it was
    assert tuple(b[4 * scale, 8 * scale]) == WINDOW_COLOUR
    assert tuple(b[5 * scale + 1, 9 * scale + 1]) == (128, 128, 128)


def test_save_preview_without_a_context_writes_what_it_wrote_before(tmp_path):
    images, masks, probs = _sample()
    save_preview(tmp_path, "best", epoch=1, images=images, masks=masks, probs=probs, names=["a", "b"])
    pv, _ = load_preview(tmp_path, "best")
    assert set(pv) == {"images", "truth", "prob", "names", "dice", "epoch"}
    assert sample_context(pv, 0) is None
    png = preview_paths(tmp_path, "best")[0].read_bytes()
    assert png == strip_png(pv["images"], pv["truth"], pv["prob"] >= 128)
    images, masks, probs = _sample(classes=3)
    save_preview(tmp_path, "last", epoch=1, images=images, masks=masks, probs=probs, names=["a", "b"])
    pv, _ = load_preview(tmp_path, "last")
    assert set(pv) == {"images", "truth", "prob", "names", "dice", "epoch", "pred", "class_names"}


def test_multi_class_preview_keeps_its_context(tmp_path):
    images, masks, probs = _sample(classes=3)
    save_preview(tmp_path, "best", epoch=1, images=images, masks=masks, probs=probs, names=["a", "b"],
                 context=_context())
    pv, problem = load_preview(tmp_path, "best")
    assert problem is None and "pred" in pv and pv["context_boxes"].shape == (2, 4)
    lines = render_preview.sample_panels(pv, 0, 16, 2, colour=False, context=True)
    assert lines[0].split() == ["whole", "image", "input", "truth", "prediction", "errors"]


def test_context_of_a_window_that_is_its_whole_image_is_not_drawn():
    pv = {"images": np.zeros((1, 8, 8), np.uint8), "truth": np.zeros((1, 8, 8), np.uint8),
          "prob": np.zeros((1, 8, 8), np.uint8), "context_images": np.zeros((1, 8, 8), np.uint8),
          "context_boxes": np.array([[0, 0, 8, 8]])}
    assert sample_context(pv, 0) is None
    assert render_preview.sample_panels(pv, 0, 8, 2, colour=False, context=True)[0].split()[0] == "input"
    pv["context_boxes"] = np.array([[0, 0, 4, 4, 4]])  # odd arrays: ignored, the rest still draws
    assert sample_context(pv, 0) is None


def test_ascii_and_colour_outline_the_window():
    thumb = np.full((16, 16), 60, np.uint8)
    lines = render_preview.ascii_context(thumb, (4, 4, 8, 8))  # one character per column, two rows per line
    assert lines[2][4:12] == render_preview.WINDOW_MARK * 8 and lines[5][4:12] == render_preview.WINDOW_MARK * 8
    assert lines[3][4] == lines[3][11] == render_preview.WINDOW_MARK and render_preview.WINDOW_MARK not in lines[3][5:11]
    assert render_preview.WINDOW_MARK not in lines[0] + lines[7]
    rows = render_preview.halfblock_context(thumb, (4, 4, 8, 8), width=8)  # shrunk twice: the outline stays one pixel wide
    colours = {c for row in rows for _, fg, bg in row for c in (fg, bg)}
    assert WINDOW_COLOUR in colours and len(rows) == 4


def _context_preview(tmp_path, s=32):
    rng = np.random.default_rng(1)
    images = rng.random((1, 1, s, s)).astype(np.float32)
    masks = (rng.random((1, 1, s, s)) > 0.7).astype(np.float32)
    ctx = {"images": torch.rand(1, 1, s, s), "boxes": torch.tensor([[8, 12, 10, 10]])}
    save_preview(tmp_path, "best", epoch=3, images=images, masks=masks, probs=masks * 0.9,
                 names=["n1 (32x32 at 20,30 of 96x128)"], context=ctx)
    return load_preview(tmp_path, "best")[0]


def test_tui_draws_the_whole_image_first_when_there_is_room(tmp_path):
    pv = _context_preview(tmp_path)
    for colour in (False, True):
        text = draw_preview(pv, 0, width=150, height=40, colour=colour, overlay_only=False, title="t").plain
        lines = text.split("\n")
        assert lines[1].split() == ["whole", "image", "input", "truth", "prediction", "overlay"]
        assert "the window shown" in lines[-1]
        assert NARROW_NOTE not in text
    # ASCII: the outline's character in the first panel
    lines = draw_preview(pv, 0, width=150, height=40, colour=False, overlay_only=False, title="t").plain.split("\n")
    assert any(render_preview.WINDOW_MARK in line[:32] for line in lines[2:-1])
    # the overlay alone: no whole image
    text = draw_preview(pv, 0, width=150, height=40, colour=False, overlay_only=True, title="t").plain
    assert "whole image" not in text and NARROW_NOTE not in text


def test_tui_leaves_the_whole_image_out_when_too_narrow_and_says_so(tmp_path):
    pv = _context_preview(tmp_path)
    text = draw_preview(pv, 0, width=80, height=40, colour=False, overlay_only=False, title="t").plain
    lines = text.split("\n")
    assert lines[0] == f"t  · {NARROW_NOTE}"
    assert lines[1].split() == ["input", "truth", "prediction", "overlay"]
    assert "window shown" not in lines[-1]
    # a caption with no room for the note: the note on a line of its own
    long = "x" * 78
    lines = draw_preview(pv, 0, width=80, height=40, colour=True, overlay_only=False, title=long).plain.split("\n")
    assert lines[:2] == [long, NARROW_NOTE] and lines[2].split()[0] == "input"


def test_tui_draws_a_preview_without_context_as_before(tmp_path):
    images, masks, probs = _sample(k=1, s=32)
    save_preview(tmp_path, "best", epoch=1, images=images, masks=masks, probs=probs, names=["a"])
    pv, _ = load_preview(tmp_path, "best")
    for width in (80, 150):
        text = draw_preview(pv, 0, width=width, height=40, colour=False, overlay_only=False, title="t")
        assert text.plain.split("\n")[0] == "t" and "whole image" not in text.plain
        assert text.plain.split("\n")[-1] == render.ASCII_PANELS_LEGEND
