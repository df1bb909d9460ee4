"""The LR range test: the exponential ramp, the early stop on a blow-up, the smoothing, the suggestions, the plot."""

import math
import subprocess
import sys

import pytest
import torch

from unettui.core.define.config import Config
from unettui.core.learn.lrfind import (
    LRFindResult,
    ascii_plot,
    lr_range_test,
    ramp,
    smooth,
    suggest,
)

TINY = Config(device="cpu", dataset="synthetic:nuclei", num_images=16, image_size=32, base_channels=4, depth=2, batch_size=4)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def blown_up():
    """SGD ramped far past any sane rate: the loss blows up before the end of the ramp."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return lr_range_test(TINY.replace(optimizer="sgd"), start_lr=1e-6, end_lr=1e4, steps=30)
    finally:
        torch.set_num_threads(before)


def test_lrs_are_the_exponential_ramp():
    seen = []
    r = lr_range_test(TINY, start_lr=1e-6, end_lr=1e-1, steps=12, on_step=lambda *a: seen.append(a))
    assert not r.stopped_early and "end of the ramp" in r.reason
    assert r.steps_run == len(r.losses) == len(r.smoothed) == 12 and [a[0] for a in seen] == list(range(12))
    assert r.lrs[0] == 1e-6
    assert r.lrs[-1] == pytest.approx(1e-1, rel=1e-12)
    factor = (1e-1 / 1e-6) ** (1 / 11)
    assert all(b / a == pytest.approx(factor, rel=1e-12) for a, b in zip(r.lrs, r.lrs[1:]))
    assert [a[2] for a in seen] == r.lrs and r.optimizer == "adam" and r.device == "cpu"
    assert ramp(1e-7, 10.0, 9) == pytest.approx([10.0**e for e in range(-7, 2)], rel=1e-12)


def test_a_blow_up_stops_the_test_early(blown_up):
    r = blown_up
    assert r.stopped_early and r.steps_run < 30
    assert "rose above 4 x its minimum" in r.reason or "loss became" in r.reason, r.reason
    best = min(r.smoothed[:-1])
    assert not math.isfinite(r.smoothed[-1]) or r.smoothed[-1] > 4 * best
    assert all(s <= 4 * min(r.smoothed[: i + 1]) for i, s in enumerate(r.smoothed[:-1]))  # nothing stopped it earlier
    assert r.lrs == ramp(1e-6, 1e4, 30)[: r.steps_run]


def test_the_suggestion_lies_strictly_inside_the_range_tried(blown_up):
    r = blown_up
    assert r.suggested == r.steepest is not None
    assert r.lrs[0] < r.suggested < r.lrs[-1]
    i_min = r.smoothed.index(min(r.smoothed))
    assert r.min_div_10 == pytest.approx(r.lrs[i_min] / 10) and r.min_lr == r.lrs[i_min]
    assert r.suggested <= r.lrs[i_min]  # the steepest descent comes before the minimum


def test_smoothing_is_the_bias_corrected_ema():
    # avg = b*avg + (1-b)*loss; smoothed = avg / (1 - b**(i+1)), with b = 0.5
    assert smooth([1.0, 2.0, 3.0], beta=0.5) == pytest.approx([0.5 / 0.5, 1.25 / 0.75, 2.125 / 0.875], rel=1e-15)
    assert smooth([1.0, 2.0, 3.0], beta=0.5) == pytest.approx([1.0, 5 / 3, 17 / 7], rel=1e-15)
    assert smooth([4.0, 1.0], beta=0.0) == [4.0, 1.0]  # no memory
    assert smooth([2.5] * 6) == pytest.approx([2.5] * 6, rel=1e-12)  # the correction removes the start-up bias
    with pytest.raises(ValueError):
        smooth([1.0], beta=1.0)


def test_suggest_on_a_hand_made_curve():
    lrs = [10.0**e for e in range(-6, 3)]  # 9 points, one per decade
    curve = [2.0, 2.0, 1.9, 1.0, 0.8, 0.7, 0.6, 3.0, float("nan")]
    steepest, min_div_10 = suggest(lrs, curve)
    assert steepest == 1e-3  # the largest drop (1.9 -> 1.0 -> 0.8) is centred on 1e-3
    assert min_div_10 == pytest.approx(1e-1)  # minimum 0.6 at 1e0
    assert suggest(lrs[:1], curve[:1]) == (None, 1e-7)
    assert suggest([], []) == (None, None)


def test_same_seed_same_result_on_the_cpu():
    a = lr_range_test(TINY, start_lr=1e-5, end_lr=1.0, steps=10)
    b = lr_range_test(TINY, start_lr=1e-5, end_lr=1.0, steps=10)
    assert (a.lrs, a.losses, a.smoothed, a.suggested) == (b.lrs, b.losses, b.smoothed, b.suggested)
    c = lr_range_test(TINY.replace(seed=1), start_lr=1e-5, end_lr=1.0, steps=10)
    assert c.losses != a.losses


def test_bad_ranges_are_refused_before_training():
    for kw, word in [({"start_lr": 0}, "start"), ({"end_lr": 1e-8}, "end"), ({"steps": 1}, "steps"), ({"diverge": 1.0}, "diverge")]:
        with pytest.raises(ValueError, match=word):
            lr_range_test(TINY, **kw)


def test_ascii_plot_has_fixed_size_axes_and_the_marker(blown_up):
    lines = ascii_plot(blown_up, width=60, height=12)
    assert len(lines) == 12 + 3 and all(len(line) == 60 for line in lines)
    top, plot, axis, ticks = lines[0], lines[1:13], lines[13], lines[14]
    assert top.startswith("loss") and top.count("v") == 1 and "suggested " in top
    edge = plot[0].index("|")
    assert all(row[edge] == "|" for row in plot) and axis[edge] == "+" and set(axis[edge:].rstrip()) <= set("+-")
    assert plot[0][:edge].strip() and plot[-1][:edge].strip()  # highest and lowest loss shown
    col = top.index("v")
    assert [row[col] for row in plot].count("o") == 1  # the suggestion's point, under the marker
    assert sum(row.count("*") for row in plot) > 10
    assert ticks.lstrip().startswith("lr") and "1e-6" in ticks and "1e+0" in ticks
    assert all(line.isascii() for line in lines)
    assert all(len(line) == 40 for line in ascii_plot(blown_up, width=40, height=5))
    with pytest.raises(ValueError):
        ascii_plot(blown_up, width=12)


def test_ascii_plot_of_an_empty_or_flat_curve():
    flat = LRFindResult("adam", [1e-3, 1e-2, 1e-1], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0], False, "end", None, 1e-4, 1e-4)
    lines = ascii_plot(flat, width=50, height=6)
    assert len(lines) == 9 and all(len(x) == 50 for x in lines)
    empty = LRFindResult("sgd", [1e-3], [float("nan")], [float("nan")], True, "nan", None, None, None)
    assert len(ascii_plot(empty, width=50, height=6)) == 9


def test_the_module_imports_no_ui_library_and_torch_only_when_testing():
    code = ("import sys, unettui.core.learn.lrfind; "
            "print(','.join(m for m in ('textual', 'typer', 'rich', 'click', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
