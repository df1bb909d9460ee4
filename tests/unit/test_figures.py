"""unettui.core.show.figures: pixel-level checks of the line chart, bar chart and image grid, and the PNGs they write."""

import math
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest

from unettui.core.show import figures as F


def _is(img: np.ndarray, colour) -> np.ndarray:
    """Boolean HxW mask of the pixels exactly equal to ``colour``."""
    return np.all(img == np.array(colour, np.uint8), axis=-1)


def _near(img: np.ndarray, x: int, y: int, colour, r: int = 1) -> bool:
    return bool(_is(img[y - r:y + r + 1, x - r:x + r + 1], colour).any())


# ---------------------------------------------------------------- bar chart

def test_bar_heights_are_proportional_to_values_on_a_0_to_1_axis():
    chart = F.render_bar_chart(["a", "b", "c"], [0.4, 0.8, 1.0], "Dice", "dice")
    img, area = chart.image, chart.area
    assert img.shape == (480, 800, 3) and img.dtype == np.uint8
    assert (area.y0, area.y1) == (0.0, 1.0)  # default range 0..max(1, max value)
    heights = []
    for left, top, right, bottom in chart.boxes:
        column = _is(img[:, (left + right) // 2], F.BAR)
        heights.append(int(column.sum()))
        rows = np.flatnonzero(column)
        assert rows.min() == top and rows.max() == bottom - 1  # one unbroken run, where the box says
    h04, h08, h10 = heights
    assert abs(h08 - 2 * h04) <= 2
    assert abs(h10 - (area.bottom - area.top)) <= 1
    assert abs(h08 - 0.8 * (area.bottom - area.top)) <= 1.5
    assert all(abs(b[3] - 1 - area.bottom) <= 1 for b in chart.boxes)  # bars stand on the zero line


def test_highlighted_bar_alone_uses_the_accent_colour():
    chart = F.render_bar_chart(["x", "y", "z"], [0.5, 0.9, 0.7], "t", "dice", highlight=1)
    img = chart.image
    for i, (left, top, right, bottom) in enumerate(chart.boxes):
        inside = img[top:bottom, left:right]
        if i == 1:
            assert _is(inside, F.ACCENT).all()
        else:
            assert _is(inside, F.BAR).all()
            assert not _is(inside, F.ACCENT).any()
    # nowhere else in the plot is a solid accent bar: accent pixels outside bar 1 are only its value label
    accent = _is(img, F.ACCENT)
    left, top, right, bottom = chart.boxes[1]
    accent[top:bottom, left:right] = False
    assert accent.sum() < 60


def test_bar_values_are_printed_above_the_bars():
    chart = F.render_bar_chart(["a", "b"], [0.25, 0.75], "t", "dice")
    img = chart.image
    for left, top, right, bottom in chart.boxes:
        above = img[top - 16:top - 1, left - 5:right + 5]
        assert (above.min(axis=-1) < 128).sum() > 10  # dark ink of the "0.2500" label just above the bar
    again = F.render_bar_chart(np.array(["a", "b"]), np.array([0.25, 0.75]), "t", "dice").image
    assert np.array_equal(img, again)  # deterministic, and numpy inputs work like lists


def test_missing_values_get_a_grey_hatched_stub_not_a_bar():
    chart = F.render_bar_chart(["ok", "none", "nan"], [0.5, None, float("nan")], "t", "dice")
    img = chart.image
    for left, top, right, bottom in chart.boxes[1:]:
        stub = img[top:bottom, left:right]
        assert 5 <= bottom - top <= 14  # a short stub
        assert _is(stub, F.HATCH).any() and _is(stub, F.STUB).any()
        assert not _is(stub, F.BAR).any()
        assert (img[top - 16:top - 1, left - 10:right + 10].min(axis=-1) < 128).sum() > 5  # the "n/a" label
    left, top, right, bottom = chart.boxes[0]
    assert _is(img[top:bottom, left:right], F.BAR).all()


def test_explicit_y_range_and_range_above_one():
    chart = F.render_bar_chart(["a"], [0.75], "t", "dice", ymin=0.5, ymax=1.0)
    _left, top, _right, bottom = chart.boxes[0]
    assert abs((bottom - top) - 0.5 * (chart.area.bottom - chart.area.top)) <= 1
    wide = F.render_bar_chart(["a", "b"], [2.5, 1.0], "t", "loss").area
    assert wide.y0 == 0.0 and 2.5 <= wide.y1 <= 3.0  # extended to a round tick above the maximum


def test_sixty_long_labels_fit_in_the_image():
    labels = [f"stage-2/config-{i:02d}-lr{i}e-4-batch{2 ** (i % 5)}" for i in range(60)]
    values = [None if i % 13 == 0 else (i % 10) / 10 for i in range(60)]
    chart = F.render_bar_chart(labels, values, "sixty", "dice", highlight=9)
    assert len(chart.boxes) == 60
    lefts = [b[0] for b in chart.boxes]
    assert lefts == sorted(lefts) and all(b[2] <= c[0] for b, c in zip(chart.boxes, chart.boxes[1:]))
    assert chart.boxes[-1][2] < chart.image.shape[1]
    assert chart.area.bottom - chart.area.top > 150  # rotated labels leave a usable plot


@pytest.mark.parametrize("kwargs, message", [
    ({"labels": [], "values": []}, "at least one bar"),
    ({"labels": ["a", "b"], "values": [0.1]}, "2 labels but 1 values"),
    ({"labels": ["a"], "values": [0.1], "highlight": 3}, "out of range"),
    ({"labels": ["a"], "values": [0.1], "ymin": 1.0, "ymax": 0.5}, "ymin < ymax"),
])
def test_bar_chart_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        F.render_bar_chart(title="t", ylabel="y", **kwargs)


# ---------------------------------------------------------------- line chart

def test_series_colour_is_drawn_at_the_data_points_and_gaps_are_skipped():
    series = [("train", [1, 2, 3, 4, 5], [1.0, 2.0, None, float("nan"), 3.0]),
              ("val", [1, 2, 3, 4, 5], [4.0, 4.5, 5.0, 5.5, 6.0])]
    chart = F.render_line_chart(series, "loss", "epoch", "loss")
    img, area = chart.image, chart.area
    c0, c1 = F.series_style(0)[0], F.series_style(1)[0]
    assert c0 != c1
    for x, y in [(1, 1.0), (2, 2.0), (5, 3.0)]:
        assert _near(img, *area.to_px(x, y), c0)
    for x, y in [(1, 4.0), (3, 5.0), (5, 6.0)]:
        assert _near(img, *area.to_px(x, y), c1)
    # the None/NaN points are skipped: the line runs straight from (2, 2) to (5, 3)
    assert _near(img, *area.to_px(3.5, 2.5), c0)
    assert not _near(img, *area.to_px(3, 1.0), c0, r=3)
    # the mapping: x/y ticks are round and span the data
    assert area.x0 <= 1 and area.x1 >= 5 and area.y0 <= 1.0 and area.y1 >= 6.0
    assert area.left < area.right < img.shape[1] and area.top < area.bottom < img.shape[0]
    assert area.to_px(area.x0, area.y0) == (area.left, area.bottom)
    assert area.to_px(area.x1, area.y1) == (area.right, area.top)


def test_epoch_axis_uses_integer_round_ticks():
    chart = F.render_line_chart([("a", list(range(1, 41)), [1 / e for e in range(1, 41)])], "t", "epoch", "loss")
    assert (chart.area.x0, chart.area.x1) == (0.0, 40.0)
    assert chart.area.y0 == 0.0 and chart.area.y1 in (1.0, 1.2)
    short = F.render_line_chart([("a", [1, 2], [0.5, 0.4])], "t", "epoch", "loss").area
    assert float(short.x0).is_integer() and float(short.x1).is_integer()


def test_log_y_maps_decades_to_equal_distances():
    chart = F.render_line_chart([("a", [1, 2, 3], [1.0, 10.0, 100.0])], "t", "epoch", "loss", log_y=True)
    area, img = chart.area, chart.image
    assert area.log_y
    d1 = area.y_px(1.0) - area.y_px(10.0)
    d2 = area.y_px(10.0) - area.y_px(100.0)
    assert d1 > 50 and abs(d1 - d2) < 1e-6
    for x, y in [(1, 1.0), (2, 10.0), (3, 100.0)]:
        assert _near(img, *area.to_px(x, y), F.PALETTE[0])
    # None and NaN are skipped before the positivity check
    F.render_line_chart([("a", [1, 2, 3], [0.5, None, float("nan")])], "t", "e", "l", log_y=True)


@pytest.mark.parametrize("bad", [0.0, -0.3])
def test_log_y_rejects_non_positive_values(bad):
    with pytest.raises(ValueError, match="log_y needs positive values"):
        F.render_line_chart([("a", [1, 2], [0.5, bad])], "t", "e", "l", log_y=True)


def test_line_chart_rejects_empty_and_mismatched_input():
    with pytest.raises(ValueError, match="at least one series"):
        F.render_line_chart([], "t", "e", "l")
    with pytest.raises(ValueError, match="3 x values but 2 y values"):
        F.render_line_chart([("a", [1, 2, 3], [1.0, 2.0])], "t", "e", "l")


def test_all_missing_values_still_render():
    chart = F.render_line_chart([("a", [1, 2], [None, float("nan")])], "t", "e", "l")
    assert chart.image.shape == (480, 800, 3)


def test_thirty_series_have_distinct_styles_and_a_legend_beside_the_plot():
    styles = [F.series_style(i) for i in range(32)]
    assert len(set(styles)) == 32
    assert styles[len(F.PALETTE)][0] == styles[0][0] and styles[len(F.PALETTE)][1]  # 2nd cycle: dashed
    series = [(f"stage3-encoder_depth{d}-base_channels{c}", [1, 2, 3], [1 + i, 1.5 + i, 2 + i])
              for i, (d, c) in enumerate((d, c) for d in (3, 4, 5) for c in range(8, 88, 8))]
    chart = F.render_line_chart(series, "thirty", "epoch", "loss")
    img, area = chart.image, chart.area
    assert area.right - area.left > 250  # the plot keeps a readable width
    legend = img[:, area.right + 5:]
    for colour in F.PALETTE:  # every palette colour appears in the legend (right of the plot)
        assert _is(legend, colour).any()
    # each series' first point is drawn in its own colour (dashes start "on"), solid lines are unbroken, dashed not
    for i in (0, 9, 29):
        assert _near(img, *area.to_px(1, 1 + i), F.series_style(i)[0], r=2)
    for i, dashed in ((0, False), (9, True)):
        xs = np.arange(area.to_px(1, 0)[0] + 4, area.to_px(2, 0)[0] - 4)
        on = [_near(img, int(x), round(area.y_px(1 + i + 0.5 * (x - area.x_px(1)) / (area.x_px(2) - area.x_px(1)))),
                    F.series_style(i)[0]) for x in xs]
        assert all(on) != dashed and sum(on) > len(on) / 3


def test_long_labels_are_shortened_with_an_ellipsis():
    font = F._font(11)
    short = F._fit("a-very-long-configuration-name-with-a-suffix-42", font, 80)
    assert "…" in short and F._tw(short, font) <= 80 and short.endswith("42")
    shared = F._fit_all([f"shared-prefix-of-all-labels-{k}" for k in ("alpha", "beta")], font, 60)
    assert shared[0].startswith("…") and "alpha" in shared[0] and "beta" in shared[1]
    assert F._disp("a — b") == "a  -  b"  # glyphs missing from the bundled font get ASCII stand-ins


# ---------------------------------------------------------------- image grid

def test_image_grid_places_exact_tile_pixels():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (20, 24), dtype=np.uint8)
    rgba = rng.integers(0, 256, (10, 10, 4), dtype=np.uint8)
    chart = F.render_image_grid([("rgb", rgb), ("gray", gray), ("rgba", rgba)], "grid", columns=2)
    img = chart.image
    (l0, t0, r0, b0), (l1, t1, r1, b1), (l2, t2, r2, b2) = chart.boxes
    assert np.array_equal(img[t0:b0, l0:r0], rgb)
    assert np.array_equal(img[t1:b1, l1:r1], np.repeat(gray[:, :, None], 3, axis=2))
    assert np.array_equal(img[t2:b2, l2:r2], rgba[:, :, :3])
    # layout: two columns, cells as big as the largest tile, smaller tiles centred in theirs
    assert l1 > r0 and t2 > b0 and abs((l2 + r2) / 2 - (l0 + r0) / 2) <= 1
    assert (l1 + r1) / 2 - (l0 + r0) / 2 >= 50 and (t1 + b1) / 2 == pytest.approx((t0 + b0) / 2, abs=1)
    assert (img[b0 + 2:b0 + 18, l0:r0].min(axis=-1) < 128).any()  # the caption under the first tile
    assert (img[:t0].min(axis=-1) < 128).any()  # the title above the grid
    assert (img[t2 - 2, l2:r2] == 255).all()  # padding around a smaller tile is white


def test_image_grid_default_columns_and_errors():
    tiles = [(f"t{i}", np.full((16, 48), i * 20, np.uint8)) for i in range(6)]
    chart = F.render_image_grid(tiles, "six")
    assert len({b[1] for b in chart.boxes}) >= 2  # wraps onto several rows
    with pytest.raises(ValueError, match="at least one tile"):
        F.render_image_grid([], "none")
    with pytest.raises(ValueError, match="shape"):
        F.render_image_grid([("bad", np.zeros((4, 4, 2), np.uint8))], "bad")


# ---------------------------------------------------------------- files

def test_writers_produce_valid_pngs_identical_to_the_rendered_arrays(tmp_path):
    series = [("a", [1, 2, 3], [0.9, 0.5, 0.3])]
    tiles = [("x", np.zeros((8, 8, 3), np.uint8)), ("y", np.full((12, 6), 200, np.uint8))]
    written = {
        F.line_chart(series, "t", "e", "l", tmp_path / "sub" / "line.png", width=640, height=400):
            F.render_line_chart(series, "t", "e", "l", width=640, height=400).image,
        F.bar_chart(["a", "b"], [0.3, None], "t", "d", tmp_path / "bar.png", highlight=0):
            F.render_bar_chart(["a", "b"], [0.3, None], "t", "d", highlight=0).image,
        F.image_grid(tiles, "g", tmp_path / "grid.png"): F.render_image_grid(tiles, "g").image,
    }
    for path, expected in written.items():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        back = iio.imread(path)
        assert back.shape == expected.shape and back.dtype == np.uint8
        assert np.array_equal(back, expected)
    assert iio.imread(tmp_path / "sub" / "line.png").shape == (400, 640, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bar.png", "grid.png", "sub"]  # no temp files left


def test_figures_imports_no_ui_or_heavy_library():
    code = ("import sys, unettui.core.show.figures; "
            "print(','.join(m for m in ('torch', 'textual', 'typer', 'rich', 'click', 'matplotlib')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"unettui.core.show.figures pulled in {out.stdout.strip()}"


def test_too_small_canvas_is_rejected():
    with pytest.raises(ValueError, match="too small"):
        F.render_line_chart([("a", [1], [1.0])], "t", "e", "l", width=100, height=100)
    assert not math.isnan(F.PlotArea(0, 0, 10, 10, 0, 1, 0, 1).y_px(0.5))
