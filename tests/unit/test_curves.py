"""unettui.core.show.curves and compare: overlaid curves for a terminal (braille and ASCII), the log scale, repeats
as a mean with a band, and legends that name only the keys that differ."""

import pytest

from unettui.core.runs.status import Row, State
from unettui.core.show.compare import compare, describe, group
from unettui.core.show.curves import (
    ASCII_MARKERS,
    MARKERS,
    PALETTE,
    Series,
    group_curve,
    plain,
    render_curves,
    wants_log,
)

ESC = "\x1b"


def test_wants_log_only_when_positive_values_span_decades():
    assert wants_log([0.3, 0.5, 40.0]) and wants_log([1e-4, 1e-2])
    assert not wants_log([0.3, 0.5, 0.9]) and not wants_log([0.0, 0.5, 90.0]) and not wants_log([])
    assert wants_log([0.2, None, float("nan"), float("inf"), 20.0])  # missing and non-finite values are skipped


def test_group_curve_is_the_mean_with_a_min_max_band():
    mean, band = group_curve([[(1, 1.0), (2, 0.5)], [(1, 3.0), (2, 0.7), (3, 0.2)], [(1, float("nan"))]])
    assert mean == [(1.0, 2.0), (2.0, pytest.approx(0.6)), (3.0, 0.2)]
    assert band == [(1.0, 1.0, 3.0), (2.0, 0.5, 0.7), (3.0, 0.2, 0.2)]


def test_ascii_mode_is_plain_ascii_with_a_distinct_character_per_series():
    series = [Series(f"lr={lr}", [(e, lr * e) for e in range(1, 9)]) for lr in (0.1, 0.2, 0.3)]
    rows = render_curves(series, width=60, height=10, ascii=True, ylabel="val_dice")
    assert all(fg is None and bg is None for row in rows for _, fg, bg in row)
    lines = plain(rows)
    text = "\n".join(lines)
    assert text.isascii() and ESC not in text
    assert max(len(line) for line in lines) <= 60
    plot = "\n".join(lines[1:11])
    for i in range(3):
        assert plot.count(ASCII_MARKERS[i]) >= 5, plot  # every curve drawn with its own character
    assert lines[-3:] == [f"  {ASCII_MARKERS[i]}  lr={lr}" for i, lr in enumerate((0.1, 0.2, 0.3))]


def test_colour_mode_uses_braille_markers_and_the_palette():
    rows = render_curves([Series("a", [(1, 0.1), (2, 0.5), (3, 0.9)]), Series("b", [(1, 0.9), (2, 0.2)])],
                         width=50, height=8)
    cells = [(s, fg) for row in rows[1:9] for s, fg, _ in row]
    assert any(0x2800 <= ord(ch) <= 0x28FF for s, _ in cells for ch in s)  # braille dots
    assert (MARKERS[0], PALETTE[0]) in cells and (MARKERS[1], PALETTE[1]) in cells  # a marker at the data points
    legend = rows[-2:]
    assert legend[0][1] == (MARKERS[0] + "⠒", PALETTE[0], None) and legend[1][2][0] == " b"


def test_log_scale_kicks_in_when_a_loss_spans_decades_and_keeps_the_rest_readable():
    calm = [(e, 0.9 * 0.85 ** (e - 1)) for e in range(1, 11)]
    diverged = Series("diverged", [(1, 0.6), (2, 80.0), (3, 0.4)] + [(e, 0.3) for e in range(4, 11)])
    lines = plain(render_curves([Series("calm", calm), diverged], width=70, height=12, ascii=True, ylabel="val_loss"))
    assert lines[0] == "val_loss (log scale) per epoch"
    labels = [line.split("|")[0].strip() for line in lines[1:13]]
    assert {"0.1", "1", "10", "100"} <= set(labels)
    rows_of_calm = {i for i, line in enumerate(lines[1:13]) if "*" in line}
    assert len(rows_of_calm) >= 2  # on a linear axis up to 80 the calm curve would be one flat row
    linear = plain(render_curves([Series("calm", calm)], width=70, height=12, ascii=True, ylabel="val_loss"))
    assert linear[0] == "val_loss per epoch"
    with pytest.raises(ValueError, match="positive"):
        render_curves([Series("z", [(1, 0.0), (2, 1.0)])], log_y=True)


def test_band_is_drawn_and_explained():
    mean, band = group_curve([[(e, 0.2 + 0.05 * e) for e in range(1, 9)], [(e, 0.4 + 0.05 * e) for e in range(1, 9)]])
    lines = plain(render_curves([Series("lr=0.1", mean, band)], width=60, height=12, ascii=True))
    assert sum(line.count(":") for line in lines[1:13]) > 20
    assert "':' the spread (min to max)" in lines[-1]
    colour = render_curves([Series("lr=0.1", mean, band)], width=60, height=12)
    assert any(bg is not None for row in colour for _, _, bg in row)  # a tinted band behind the mean


def test_empty_and_tiny_input():
    assert plain(render_curves([Series("none", [])], width=40, height=4))[0] == "per epoch"
    with pytest.raises(ValueError, match="too small"):
        render_curves([Series("a", [(1, 1.0)])], width=12)


def row(rid, configuration=None, **config):
    metrics = [{"epoch": e, "val_dice": config.get("lr", 0.1) * e, "val_loss": 1 / e} for e in range(1, 4)]
    return Row(id=rid, state=State.DONE, configuration=configuration or rid,
               config={"optimizer": "adam", "epochs": 3, "seed": 0, **config}, metrics=metrics)


def test_compare_labels_only_the_differing_keys():
    c = compare([row("a", lr=0.1), row("b", lr=0.01), row("c", lr=0.01, optimizer="sgd")], "val_dice")
    assert c.varied == ["optimizer", "lr"] or c.varied == ["lr", "optimizer"]
    labels = [s.label for s in c.series]
    assert all("epochs" not in lab and "seed" not in lab for lab in labels)
    assert len(set(labels)) == 3 and "optimizer=sgd" in labels[2] and "lr=0.01" in labels[2]
    assert c.series[0].note.startswith("a  done  best 0.3 at epoch 3")
    assert describe(c).startswith("val_dice of 3 runs; they differ in ")
    same = compare([row("x", lr=0.1), row("y", lr=0.1)], "val_loss")
    assert [s.label for s in same.series] == ["x", "y"] and same.series[0].note.endswith("best 0.3333 at epoch 3")


def test_repeats_are_one_series_with_mean_and_band():
    rows = [row("a", lr=0.1, seed=0), row("a-r2", "a", lr=0.1, seed=1000), row("a-r3", "a", lr=0.2, seed=2000),
            row("b", lr=0.01)]
    rows[2].config["lr"] = 0.1  # a repeat differs only in its seed
    rows[2].metrics = [{"epoch": e, "val_dice": 0.2 * e} for e in range(1, 4)]
    c = compare(rows, "val_dice")
    assert [len(g) for g in c.groups] == [3, 1] and c.varied == ["lr"]  # the seed is not what they differ in
    s = c.series[0]
    assert s.label == "lr=0.1" and s.band and s.band[2] == (3.0, pytest.approx(0.3), pytest.approx(0.6))
    assert s.points[2] == (3.0, pytest.approx(0.4)) and "mean of 3 runs (a, a-r2, a-r3; done)" in s.note
    assert "± " in s.note and "(n=3)" in s.note
    each = compare(rows, "val_dice", by="none")
    assert len(each.series) == 4 and "seed" in each.varied
    hand = [row("p", lr=0.1, seed=1), row("q", lr=0.1, seed=2)]  # not declared as repeats
    assert len(group(hand, "configuration")) == 2 and len(group(hand, "seed")) == 1
    with pytest.raises(ValueError, match="unknown metric"):
        compare(rows, "dice")
