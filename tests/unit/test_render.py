"""core/render: sparklines, colour half-blocks, ASCII panels and the colour decision, with exact expected output."""

import math

import numpy as np
import pytest

from unettui.core.show.render import (
    ASCII_PANELS_LEGEND,
    FN_COLOUR,
    FP_COLOUR,
    TP_COLOUR,
    area_resize,
    ascii_grey,
    ascii_mask,
    ascii_panels,
    colour_panels,
    halfblock_grey,
    halfblock_mask,
    halfblock_overlay,
    pred_from_prob,
    side_by_side,
    sparkline,
    use_colour,
)

W, K = (255, 255, 255), (0, 0, 0)


def grey(v):
    return (v, v, v)


# ---- sparklines ---------------------------------------------------------------------------------


def test_sparkline_levels():
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert sparkline([7, 6, 5, 4, 3, 2, 1, 0]) == "█▇▆▅▄▃▂▁"
    assert sparkline([1.0, 0.5, 0.0]) == "█▅▁"  # 0.5 of the range: level 3.5 rounds half up
    assert sparkline([]) == ""


def test_sparkline_constant_missing_and_nonfinite():
    assert sparkline([3, 3, 3]) == "▄▄▄"
    assert sparkline([0, None, math.nan, 7, math.inf]) == "▁  █ "
    assert sparkline([None, math.nan]) == "  "


def test_sparkline_resamples_to_width_and_fixed_scale():
    assert sparkline(range(16), width=8) == "▁▂▃▄▅▆▇█"  # pairs averaged: 0.5, 2.5, ..., 14.5
    assert len(sparkline(range(100), width=10)) == 10
    assert sparkline([1, 2], width=8) == "▁█"  # shorter series are not stretched
    assert sparkline([0.5, 0.5], lo=0.0, hi=1.0) == "▅▅"
    assert sparkline([0.0, 1.0, 2.0], lo=0.0, hi=1.0) == "▁██"  # clipped to the fixed scale


# ---- colour half-blocks ---------------------------------------------------------------------------


def test_halfblock_grey_4x2_exact_segments():
    img = np.array([[0, 255],
                    [10, 20],
                    [30, 30],
                    [40, 40]], np.uint8)
    assert halfblock_grey(img) == [
        [("▀", grey(0), grey(10)), ("▀", grey(255), grey(20))],
        [("▀▀", grey(30), grey(40))],  # identical neighbouring cells merge into one segment
    ]


def test_halfblock_odd_height_leaves_default_background():
    img = np.array([[1, 2], [3, 4], [5, 6]], np.uint8)
    rows = halfblock_grey(img)
    assert rows[1] == [("▀", grey(5), None), ("▀", grey(6), None)]


def test_halfblock_rgb_image_keeps_colours():
    img = np.zeros((2, 1, 3), np.uint8)
    img[0, 0] = (200, 10, 20)
    img[1, 0] = (1, 2, 3)
    assert halfblock_grey(img) == [[("▀", (200, 10, 20), (1, 2, 3))]]


def test_halfblock_downsamples_by_area():
    img = np.array([[0, 100, 200, 200],
                    [100, 200, 200, 200],
                    [0, 0, 50, 50],
                    [0, 0, 50, 50]], np.uint8)
    # width 2 -> 2x2 blocks -> a 2x2 image -> one text row
    assert halfblock_grey(img, width=2) == [[("▀", grey(100), grey(0)), ("▀", grey(200), grey(50))]]


def test_halfblock_fractional_area_downsampling():
    img = np.array([[0, 30, 60],
                    [0, 30, 60],
                    [90, 90, 90],
                    [90, 90, 90],
                    [0, 0, 0],
                    [0, 0, 0]], np.uint8)
    # 3 -> 2 columns and 6 -> 4 rows: every output pixel averages 1.5 x 1.5 input pixels by their overlap
    assert np.allclose(area_resize(img, 2), [[10, 50],  # (0 * 1 + 30 * 0.5) / 1.5, (30 * 0.5 + 60) / 1.5
                                             [(10 * 0.5 + 90) / 1.5, (50 * 0.5 + 90) / 1.5],
                                             [60, 60],  # (90 * 1 + 0 * 0.5) / 1.5
                                             [0, 0]])
    assert halfblock_grey(img, width=2) == [[("▀", grey(10), grey(63)), ("▀", grey(50), grey(77))],
                                            [("▀▀", grey(60), grey(0))]]
    assert halfblock_grey(img, width=10) == halfblock_grey(img)  # never enlarged


def test_halfblock_mask_and_overlay_colours():
    truth = np.array([[1, 1], [0, 0]], np.uint8)
    pred = np.array([[1, 0], [1, 0]], np.uint8)
    assert halfblock_mask(truth, W) == [[("▀▀", W, K)]]
    image = np.full((2, 2), 77, np.uint8)
    # (0,0) hit, (0,1) missed, (1,0) false positive, (1,1) background (the image, grey)
    assert halfblock_overlay(image, truth, pred) == [[("▀", TP_COLOUR, FP_COLOUR), ("▀", FN_COLOUR, grey(77))]]


def test_colour_panels_titles_and_gaps():
    image = np.array([[0, 255], [255, 0]], np.uint8)
    truth = np.array([[1, 0], [0, 0]], np.uint8)
    pred = np.array([[1, 0], [0, 1]], np.uint8)
    rows = colour_panels(image, truth, pred)
    assert rows[0] == [("input  truth  prediction  overlay", None, None)]
    assert rows[1] == [
        # each panel is padded to its title's width, then the 2-space gap follows
        ("▀", grey(0), grey(255)), ("▀", grey(255), grey(0)), (" " * (3 + 2), None, None),  # input
        ("▀", W, K), ("▀", K, K), (" " * (3 + 2), None, None),  # truth
        ("▀", W, K), ("▀", K, W), (" " * (8 + 2), None, None),  # prediction
        ("▀", TP_COLOUR, grey(255)), ("▀", grey(255), FP_COLOUR),  # overlay; no trailing padding
    ]


def test_side_by_side_pads_shorter_panels():
    a = [[("▀", K, K)], [("▀", W, W)]]
    b = [[("▀▀", W, K)]]
    assert side_by_side([a, b], gap=1) == [
        [("▀", K, K), (" ", None, None), ("▀▀", W, K)],
        [("▀", W, W)],
    ]
    assert side_by_side([["ab", "c"], ["xyz"]], gap=2) == ["ab  xyz", "c"]


# ---- ASCII --------------------------------------------------------------------------------------

IMAGE = np.array([[0, 0, 255, 255],
                  [0, 0, 255, 255],
                  [128, 128, 64, 64],
                  [128, 128, 64, 64]], np.uint8)
TRUTH = np.array([[1, 1, 0, 0],
                  [1, 1, 0, 0],
                  [0, 0, 0, 0],
                  [0, 0, 1, 1]], np.uint8)
PRED = np.array([[1, 0, 1, 0],
                 [0, 0, 0, 0],
                 [0, 0, 0, 0],
                 [0, 0, 1, 1]], np.uint8)


def test_ascii_mask_exact():
    mask = np.array([[0, 1, 0, 0, 0, 0],
                     [0, 0, 0, 0, 0, 0],
                     [0, 0, 0, 0, 1, 1],
                     [0, 0, 0, 0, 1, 1],
                     [1, 1, 1, 1, 1, 1],
                     [0, 0, 0, 0, 0, 0]], bool)
    # one character = 1 column x 2 rows; a cell is marked when any pixel is
    assert ascii_mask(mask) == [".#....",
                                "....##",
                                "######"]
    # width 3 -> 2 columns x 4 rows per character
    assert ascii_mask(mask, width=3) == ["#.#",
                                         "###"]


def test_ascii_grey_ramp():
    assert ascii_grey(IMAGE) == ["  @@",
                                 "++::"]


def test_ascii_panels_exact():
    assert ascii_panels(IMAGE, TRUTH, PRED) == [
        "input  truth  prediction  overlay",
        "  @@   ##..   +.+.        @#+.",
        "++::   ..##   ..++        ..@@",
        ASCII_PANELS_LEGEND,
    ]
    assert ascii_panels(IMAGE, TRUTH, PRED, titles=False, legend=False) == [
        "  @@  ##..  +.+.  @#+.",
        "++::  ..##  ..++  ..@@",
    ]


def test_pred_from_prob_thresholds_at_half():
    assert pred_from_prob(np.array([0, 127, 128, 255], np.uint8)).tolist() == [False, False, True, True]
    assert pred_from_prob(np.array([0.2, 0.5, 0.51])).tolist() == [False, False, True]


# ---- colour or not ------------------------------------------------------------------------------


@pytest.mark.parametrize("env, tty, expected", [
    ({}, True, True),
    ({}, False, False),
    ({"NO_COLOR": "1"}, True, False),
    ({"NO_COLOR": "anything"}, True, False),
    ({"NO_COLOR": ""}, True, True),  # no-color.org: set *and not empty*
    ({"TERM": "dumb"}, True, False),
    ({"FORCE_COLOR": "1"}, False, True),
    ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, True, False),
])
def test_use_colour(env, tty, expected):
    assert use_colour(env, isatty=tty) is expected
    assert use_colour(env, isatty=lambda: tty) is expected
