"""Curves of several runs overlaid on shared axes, drawn for a terminal: braille dots in colour with a marker glyph
per series at its data points, or pure ASCII with a distinct marker character per series.

Pure: series in, rows out. A row is a list of segments ``(text, fg, bg)`` with ``(r, g, b)`` colours or None (the
form of :mod:`unettui.core.show.render`), so `unettui compare` prints them through rich and the TUI's compare view
redraws them on each update. A series may carry a band (the spread of a configuration's repeats), drawn as a tinted
background in colour and with ``:`` in ASCII. The y axis turns logarithmic by itself when the values span decades
(:func:`wants_log`, also used by the report's figures), so one diverging epoch does not flatten the rest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

RGB = tuple[int, int, int]
Segment = tuple[str, RGB | None, RGB | None]
Row = list[Segment]

# Okabe-Ito's colour-blind-safe palette (its yellow darkened so it reads on white), then tab10's other colours
PALETTE: tuple[RGB, ...] = (
    (0, 114, 178), (213, 94, 0), (0, 158, 115), (204, 121, 167), (230, 159, 0), (86, 180, 233), (170, 150, 0),
    (148, 103, 189), (140, 86, 75), (127, 127, 127), (23, 190, 207), (0, 0, 0))
MARKERS = "●■▲◆▼○□△◇▽"  # colour mode: drawn at each data point when there is room
ASCII_MARKERS = "*o+x#@%&=$"  # ASCII mode: the curve itself is drawn with the series' character
BAND_ASCII = ":"
NOTE_COLOUR: RGB = (140, 140, 140)
LOG_RATIO = 30.0  # a log scale once the largest positive value is 30x the smallest (about 1.5 decades)
_DOT = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))  # braille dot bit at [row][column] of a 2x4 cell


def finite(v: Any) -> float | None:
    """``v`` as a float when it is a finite number (not a bool), else None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def wants_log(values: Iterable[Any], ratio: float = LOG_RATIO) -> bool:
    """Whether values are best read on a log scale: all finite ones positive and spanning at least ``ratio``."""
    ys = [f for f in (finite(v) for v in values) if f is not None]
    return bool(ys) and min(ys) > 0 and max(ys) / min(ys) >= ratio


def hex_colour(rgb: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


@dataclass(frozen=True)
class Series:
    """One curve: ``points`` (x, y) — for a group of repeats its mean — and optionally ``band`` (x, lo, hi), the spread
    of the group's runs; ``note`` is shown after the label in the legend."""

    label: str
    points: Sequence[tuple[float, float]]
    band: Sequence[tuple[float, float, float]] = ()
    note: str = ""
    colour: RGB | None = None


def group_curve(histories: Sequence[Sequence[tuple[float, float]]]) -> tuple[list[tuple[float, float]],
                                                                            list[tuple[float, float, float]]]:
    """The mean curve of several runs and their min-max band, per x over the runs that have a finite value there (a
    run still training contributes the epochs it has)."""
    at: dict[float, list[float]] = {}
    for pts in histories:
        for x, y in pts:
            fx, fy = finite(x), finite(y)
            if fx is not None and fy is not None:
                at.setdefault(fx, []).append(fy)
    xs = sorted(at)
    return ([(x, sum(at[x]) / len(at[x])) for x in xs], [(x, min(at[x]), max(at[x])) for x in xs])


@dataclass
class _Axis:
    lo: float
    hi: float
    log: bool = False

    def t(self, v: float) -> float:
        return math.log10(v) if self.log else v

    def frac(self, v: float) -> float:
        a, b = self.t(self.lo), self.t(self.hi)
        return 0.5 if b <= a else (self.t(v) - a) / (b - a)


def _nice_step(span: float, count: int) -> float:
    raw = span / max(1, count)
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    return next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw * 0.999)


def _nice_range(ax: _Axis, rows: int) -> _Axis:
    """The axis widened to round ticks (whole decades on a log scale), so that its ends are labelled."""
    if ax.hi <= ax.lo:
        return ax
    if ax.log:
        return _Axis(10.0 ** math.floor(math.log10(ax.lo) + 1e-9), 10.0 ** math.ceil(math.log10(ax.hi) - 1e-9), True)
    step = _nice_step(ax.hi - ax.lo, max(2, min(5, rows // 3)))
    return _Axis(math.floor(ax.lo / step + 1e-9) * step, math.ceil(ax.hi / step - 1e-9) * step)


def _y_ticks(ax: _Axis, rows: int) -> list[float]:
    if ax.hi <= ax.lo:
        return [ax.lo]
    if ax.log:
        ticks = [10.0 ** k for k in range(math.ceil(math.log10(ax.lo) - 1e-9), math.floor(math.log10(ax.hi) + 1e-9) + 1)]
        return ticks if len(ticks) >= 2 else [ax.lo, ax.hi]
    step = _nice_step(ax.hi - ax.lo, max(2, min(5, rows // 3)))
    first = math.ceil(ax.lo / step - 1e-9)
    return [round(k * step, 12) for k in range(first, math.floor(ax.hi / step + 1e-9) + 1)]


def _fmt(v: float) -> str:
    return f"{v:.3g}" if v != 0 else "0"


@dataclass
class _Canvas:
    """The plot's cells: braille dot bits with a count per series, a marker, a band owner."""

    w: int
    h: int
    bits: list[list[int]] = field(default_factory=list)
    counts: list[list[dict[int, int]]] = field(default_factory=list)
    mark: dict[tuple[int, int], int] = field(default_factory=dict)
    band: dict[tuple[int, int], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.bits = [[0] * self.w for _ in range(self.h)]
        self.counts = [[{} for _ in range(self.w)] for _ in range(self.h)]

    def dot(self, dx: int, dy: int, s: int) -> None:
        cx, cy = dx // 2, dy // 4
        if 0 <= cx < self.w and 0 <= cy < self.h:
            self.bits[cy][cx] |= _DOT[dy % 4][dx % 2]
            self.counts[cy][cx][s] = self.counts[cy][cx].get(s, 0) + 1


def _line(x0: int, y0: int, x1: int, y1: int) -> Iterable[tuple[int, int]]:
    """Bresenham's line from (x0, y0) to (x1, y1), both ends included."""
    dx, dy = abs(x1 - x0), -abs(y1 - y0)
    sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
    err = dx + dy
    while True:
        yield x0, y0
        if x0 == x1 and y0 == y1:
            return
        e2 = 2 * err
        if e2 >= dy:
            err += dy
            x0 += sx
        if e2 <= dx:
            err += dx
            y0 += sy


def _tint(rgb: RGB, alpha: float = 0.3) -> RGB:
    return (round(rgb[0] * alpha), round(rgb[1] * alpha), round(rgb[2] * alpha))


def render_curves(series: Sequence[Series], width: int = 80, height: int = 16, *, ascii: bool = False,
                  log_y: bool | None = None, ylabel: str = "", xlabel: str = "epoch", legend: bool = True) -> list[Row]:
    """The series on shared axes in ``width`` columns: a title row (``ylabel`` per ``xlabel``), ``height`` plot rows,
    the x axis and its tick labels, then (``legend``) one legend row per series. ``log_y`` None: log when :func:`wants_log`
    says so for every value shown. ``ascii``: pure ASCII, no colour, each series drawn with its own character."""
    if height < 3:
        raise ValueError(f"height must be at least 3 rows, got {height}")
    pts = [[(float(x), float(y)) for x, y in s.points if finite(x) is not None and finite(y) is not None]
           for s in series]
    bands = [[(float(x), float(lo), float(hi)) for x, lo, hi in s.band
              if finite(x) is not None and finite(lo) is not None and finite(hi) is not None] for s in series]
    ys = [y for p in pts for _, y in p] + [v for b in bands for _, lo, hi in b for v in (lo, hi)]
    xs = [x for p in pts for x, _ in p] + [x for b in bands for x, _, _ in b]
    log = wants_log(ys) if log_y is None else bool(log_y)
    if log and any(y <= 0 for y in ys):
        raise ValueError(f"a log scale needs positive values; got {min(ys)!r}")
    yax = _nice_range(_Axis(min(ys, default=0.0), max(ys, default=1.0), log), height)
    xax = _Axis(min(xs, default=0.0), max(xs, default=1.0))
    yticks = _y_ticks(yax, height)
    gutter = max(len(_fmt(t)) for t in yticks) + 1
    plot_w = width - gutter - 1
    if plot_w < 10:
        raise ValueError(f"width {width} is too small for the plot; use at least {gutter + 11}")
    colours = [s.colour or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)]
    canvas = _Canvas(plot_w, height)
    dw, dh = plot_w * (1 if ascii else 2), height * (1 if ascii else 4)

    def dx(x: float) -> int:
        return min(dw - 1, max(0, round(xax.frac(x) * (dw - 1))))

    def dy(y: float) -> int:
        return min(dh - 1, max(0, round((1 - yax.frac(y)) * (dh - 1))))

    for i, band in enumerate(bands):
        for (xa, loa, hia), (xb, lob, hib) in zip(band, band[1:] or band):
            for c in range(dx(xa), dx(xb) + 1):  # cell columns between two epochs: the band interpolated
                t = 0.0 if dx(xb) == dx(xa) else (c - dx(xa)) / (dx(xb) - dx(xa))
                top, bot = dy(hia + (hib - hia) * t), dy(loa + (lob - loa) * t)
                for r in range(top, bot + 1):
                    key = (c // (1 if ascii else 2), r // (1 if ascii else 4))
                    canvas.band.setdefault(key, i)
    def put(x: int, y: int, i: int) -> None:
        if ascii:
            canvas.mark[(x, y)] = i
        else:
            canvas.dot(x, y, i)

    for i, p in enumerate(pts):
        cells = [(dx(x), dy(y)) for x, y in p]
        for (xa, ya), (xb, yb) in zip(cells, cells[1:]):
            for x, y in _line(xa, ya, xb, yb):
                put(x, y, i)
        if len(cells) == 1:
            put(*cells[0], i)
        if not ascii and len(p) > 0 and plot_w / max(1, len(p)) >= 3:  # room for a marker at every data point
            for x, y in cells:
                canvas.mark[(x // 2, y // 4)] = i

    def cell(cx: int, cy: int) -> Segment:
        if ascii:
            if (cx, cy) in canvas.mark:
                return ASCII_MARKERS[canvas.mark[(cx, cy)] % len(ASCII_MARKERS)], None, None
            return (BAND_ASCII if (cx, cy) in canvas.band else " "), None, None
        bg = _tint(colours[canvas.band[(cx, cy)]]) if (cx, cy) in canvas.band else None
        if (cx, cy) in canvas.mark:
            i = canvas.mark[(cx, cy)]
            return MARKERS[i % len(MARKERS)], colours[i], bg
        bits = canvas.bits[cy][cx]
        if not bits:
            return " ", None, bg
        counts = canvas.counts[cy][cx]
        owner = max(counts, key=lambda s: (counts[s], s))  # the series with most dots here; later ones on top
        return chr(0x2800 + bits), colours[owner], bg

    tick_rows = {}
    for t in yticks:
        tick_rows.setdefault(min(height - 1, max(0, round((1 - yax.frac(t)) * (height - 1)))), _fmt(t))
    vbar, corner, hbar, xtick = ("|", "+", "-", "+") if ascii else ("┤", "└", "─", "┬")
    title = " ".join(x for x in (ylabel + (" (log scale)" if log else ""), f"per {xlabel}" if xlabel else "") if x)
    out: list[Row] = [[(to_ascii(title) if ascii else title, None, None)]]
    for cy in range(height):
        label = tick_rows.get(cy, "")
        row: Row = [(label.rjust(gutter - 1) + " " + (vbar if label else ("|" if ascii else "│")), None, None)]
        for cx in range(plot_w):
            seg = cell(cx, cy)
            if row and row[-1][1:] == seg[1:] and len(row) > 1:
                row[-1] = (row[-1][0] + seg[0], seg[1], seg[2])
            else:
                row.append(seg)
        out.append(row)
    xticks = _x_ticks(xax, plot_w)
    axis = [hbar] * plot_w
    labels = [" "] * width
    for t in xticks:
        c = min(plot_w - 1, max(0, round(xax.frac(t) * (plot_w - 1))))
        axis[c] = xtick
        text = _fmt(t)
        start = gutter + 1 + max(0, min(c - len(text) // 2, plot_w - len(text)))
        if all(ch == " " for ch in labels[max(0, start - 1):start + len(text) + 1]):
            labels[start:start + len(text)] = list(text)
    out.append([(" " * gutter + corner + "".join(axis), None, None)])
    out.append([("".join(labels).rstrip(), None, None)])
    if legend:
        out += legend_rows(series, ascii=ascii, banded=any(bands))
    return out


def _x_ticks(ax: _Axis, cols: int) -> list[float]:
    if ax.hi <= ax.lo:
        return [ax.lo]
    width = max(len(_fmt(ax.lo)), len(_fmt(ax.hi))) + 2
    step = _nice_step(ax.hi - ax.lo, max(1, cols // max(4, width)))
    if float(ax.lo).is_integer() and float(ax.hi).is_integer():
        step = max(1.0, round(step))
    first = math.ceil(ax.lo / step - 1e-9)
    return [round(k * step, 12) for k in range(first, math.floor(ax.hi / step + 1e-9) + 1)]


_TO_ASCII = {"±": "+/-", "…": "...", "×": "x", "–": "-", "—": "-", "µ": "u", "≤": "<=", "≥": ">="}


def to_ascii(text: str) -> str:
    """``text`` with the few non-ASCII characters labels use spelled in ASCII (any other one as '?')."""
    return "".join(c if c.isascii() else _TO_ASCII.get(c, "?") for c in text)


def legend_rows(series: Sequence[Series], *, ascii: bool = False, banded: bool = False) -> list[Row]:
    """One row per series: its marker (in its colour), its label and its note; a last row explaining the band."""
    out: list[Row] = []
    for i, s in enumerate(series):
        colour = s.colour or PALETTE[i % len(PALETTE)]
        if ascii:
            text = f"  {ASCII_MARKERS[i % len(ASCII_MARKERS)]}  {s.label}" + (f"   {s.note}" if s.note else "")
            row: Row = [(to_ascii(text), None, None)]
        else:
            row = [("  ", None, None), (MARKERS[i % len(MARKERS)] + "⠒", colour, None), (f" {s.label}", None, None)]
            if s.note:
                row.append((f"   {s.note}", NOTE_COLOUR, None))
        out.append(row)
    if banded:
        what = "':' the" if ascii else "shaded: the"
        out.append([(f"  {what} spread (min to max) of a configuration's repeats (and folds) around their mean", None,
                      None)])
    return out


def plain(rows: Sequence[Row]) -> list[str]:
    """The rows' text without colours (trailing spaces removed)."""
    return ["".join(s for s, _, _ in row).rstrip() for row in rows]
