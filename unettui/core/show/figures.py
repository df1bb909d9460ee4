"""PNG charts for study reports (line chart, bar chart, image grid), drawn with numpy and Pillow only.

Every chart has a ``render_*`` function returning a :class:`Chart` (the uint8 HxWx3 pixels plus the geometry
needed to check them: the plot area with its data->pixel mapping, and one box per bar or tile) and a writer
(``line_chart``, ``bar_chart``, ``image_grid``) that renders and writes the PNG atomically, returning its path.
"""

from __future__ import annotations

import io
import itertools
import math
import os
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..runs.store import atomic_write_bytes

# Okabe-Ito colour-blind-safe palette (yellow darkened so it reads on white); series cycle through it.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 114, 178), (213, 94, 0), (0, 158, 115), (204, 121, 167),
    (230, 159, 0), (86, 180, 233), (0, 0, 0), (170, 150, 0))
STYLES = ("solid", "dashed", "solid+marker", "dashed+marker")  # one per pass through the palette
BAR = (86, 140, 190)        # ordinary bars
ACCENT = (213, 94, 0)       # the highlighted bar (the winner)
WHITE, INK, AXIS, GRID = (255, 255, 255), (40, 40, 40), (90, 90, 90), (228, 228, 228)
STUB, HATCH = (225, 225, 225), (150, 150, 150)
Box = tuple[int, int, int, int]  # left, top, right, bottom; right/bottom exclusive: image[top:bottom, left:right]


@dataclass(frozen=True)
class PlotArea:
    """The plot rectangle in pixels (inclusive edges) and the data range it shows."""
    left: int
    top: int
    right: int
    bottom: int
    x0: float
    x1: float
    y0: float
    y1: float
    log_y: bool = False

    def x_px(self, x: float) -> float:
        return self.left + (x - self.x0) / (self.x1 - self.x0) * (self.right - self.left)

    def y_px(self, y: float) -> float:
        t = (lambda v: math.log10(v)) if self.log_y else (lambda v: v)
        return self.bottom - (t(y) - t(self.y0)) / (t(self.y1) - t(self.y0)) * (self.bottom - self.top)

    def to_px(self, x: float, y: float) -> tuple[int, int]:
        """The pixel (column, row) where the data point (x, y) is drawn."""
        return round(self.x_px(x)), round(self.y_px(y))


@dataclass
class Chart:
    """A rendered chart: ``image`` (uint8 HxWx3), its plot ``area`` and one ``boxes`` entry per bar or tile."""
    image: np.ndarray
    area: PlotArea | None = None
    boxes: list[Box] = field(default_factory=list)


@cache
def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one fixed-size bitmap font
        return ImageFont.load_default()


def _line_h(font) -> int:
    a, d = font.getmetrics()
    return a + d


_SUBST = {"\u2014": "-", "\u2013": "-", "\u00d7": "x", "\u00b5": "u", "\u2264": "<=", "\u2265": ">="}


@lru_cache(maxsize=4096)
def _glyph(ch: str) -> str:
    """``ch`` if the default font draws it, else an ASCII stand-in (the bundled font is a small subset)."""
    try:  # a missing glyph draws the same box as a private-use character
        drawn = ch.isascii() or bytes(_font(12).getmask(ch)) != bytes(_font(12).getmask("\ue000"))
    except (OSError, TypeError, ValueError):  # the bitmap fallback font (old Pillow) cannot encode it
        drawn = False
    if drawn:
        return ch
    plain = "".join(c for c in unicodedata.normalize("NFKD", ch) if c.isascii())
    return _SUBST.get(ch, plain or "?")


def _disp(text: str) -> str:
    """The text as drawn: unsupported characters replaced, spaces doubled (the font's space is 2-3 px)."""
    return "".join(_glyph(c) for c in text).replace(" ", "  ")


def _tw(text: str, font) -> int:
    return math.ceil(font.getlength(_disp(text)))


def _fit(text: str, font, max_w: float) -> str:
    """``text``, or its head and tail joined by an ellipsis, so that it is at most ``max_w`` pixels wide."""
    if _tw(text, font) <= max_w:
        return text
    for keep in range(len(text) - 1, 0, -1):
        head = (keep + 1) // 2
        short = text[:head] + "…" + text[len(text) - (keep - head):]
        if _tw(short, font) <= max_w:
            return short
    return "…" if _tw("…", font) <= max_w else ""


def _fit_all(labels: Sequence[str], font, max_w: float) -> list[str]:
    """:func:`_fit` each label; when some are too wide, first drop the prefix they all share (up to a separator)."""
    labels = [str(lab) for lab in labels]
    if len(labels) > 1 and any(_tw(lab, font) > max_w for lab in labels):
        pre = os.path.commonprefix(labels)
        cut = max(pre.rfind(c) for c in "-_ =,/:;|") + 1
        if cut > 3:
            labels = ["…" + lab[cut:] for lab in labels]
    return [_fit(lab, font, max_w) for lab in labels]


def _text(img: Image.Image, x: float, y: float, text: str, font, fill=INK, anchor: str = "lt",
          angle: int = 0) -> None:
    """Draw ``text`` rotated by ``angle`` degrees; ``anchor`` (h in l/m/r, v in t/m/b) refers to the rotated box."""
    if not text:
        return
    mask = Image.new("L", (_tw(text, font) + 1, _line_h(font)), 0)
    ImageDraw.Draw(mask).text((0, 0), _disp(text), font=font, fill=255)
    if angle:
        mask = mask.rotate(angle, expand=True)
    w, h = mask.size
    x0 = x - {"l": 0, "m": w / 2, "r": w}[anchor[0]]
    y0 = y - {"t": 0, "m": h / 2, "b": h}[anchor[1]]
    img.paste(fill, (round(x0), round(y0)), mask)


def _nice_ticks(lo: float, hi: float, target: int = 6, integer: bool = False) -> tuple[list[float], float]:
    """Round tick values (steps of 1, 2, 5 x 10^k) covering [lo, hi]; returns (ticks, step)."""
    if not hi > lo:
        pad = max(abs(lo) * 0.1, 1e-3 if not integer else 1.0)
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / target
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw * 0.999)
    if integer:
        step = max(1.0, round(step))
    start, end = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(k * step, 12) for k in range(start, end + 1)], step


def _log_ticks(lo: float, hi: float) -> tuple[list[float], float, float]:
    """(ticks, y0, y1) for a log axis: the data range padded by 5% (in decades), ticks at 1 / 1,2,5 / 1..9 x 10^k
    (the coarsest set giving at least 3 ticks inside the range)."""
    a, b = math.log10(lo), math.log10(hi)
    pad = max(0.05 * (b - a), 0.1)
    y0, y1 = 10 ** (a - pad), 10 ** (b + pad)
    for mantissas in ((1,), (1, 2, 5), tuple(range(1, 10))):
        ticks = [t for t in sorted(float(f"{m}e{d}") for d in range(math.floor(a) - 1, math.ceil(b) + 2)
                                   for m in mantissas) if y0 <= t <= y1]
        if len(ticks) >= 3:
            break
    if mantissas == (1,):
        ticks = ticks[:: math.ceil(len(ticks) / 10)]
    return ticks, y0, y1


def _fmt_tick(v: float, step: float | None) -> str:
    if step is None or abs(v) >= 1e6 or (v != 0 and abs(v) < 1e-4):
        return f"{v:g}"
    return f"{v:.{max(0, -math.floor(math.log10(step) + 1e-9))}f}"


def _frame(img: Image.Image, area: PlotArea, yticks: Sequence[float], ystep: float | None,
           xticks: Sequence[float] = (), xstep: float | None = None, grid_x: bool = False) -> None:
    """Grid lines, the axes' frame and the tick labels."""
    d, f = ImageDraw.Draw(img), _font(11)
    for t in yticks:
        y = round(area.y_px(t))
        d.line([(area.left, y), (area.right, y)], fill=GRID)
        d.line([(area.left - 4, y), (area.left, y)], fill=AXIS)
        _text(img, area.left - 6, y, _fmt_tick(t, ystep), f, anchor="rm")
    for t in xticks:
        x = round(area.x_px(t))
        if grid_x:
            d.line([(x, area.top), (x, area.bottom)], fill=GRID)
        d.line([(x, area.bottom), (x, area.bottom + 4)], fill=AXIS)
        _text(img, x, area.bottom + 6, _fmt_tick(t, xstep), f, anchor="mt")


def _axes_lines(img: Image.Image, area: PlotArea) -> None:
    ImageDraw.Draw(img).line([(area.left, area.top), (area.left, area.bottom), (area.right, area.bottom)],
                             fill=AXIS)


def _titles(img: Image.Image, title: str, ylabel: str, area: PlotArea, xlabel: str = "") -> None:
    w, h = img.size
    _text(img, w / 2, 6, _fit(title, _font(15), w - 16), _font(15), anchor="mt")
    lf = _font(12)
    _text(img, 6, (area.top + area.bottom) / 2, _fit(ylabel, lf, area.bottom - area.top), lf, anchor="lm", angle=90)
    if xlabel:
        _text(img, (area.left + area.right) / 2, h - 6, _fit(xlabel, lf, area.right - area.left), lf, anchor="mb")


def _polyline(d: ImageDraw.ImageDraw, pts: list[tuple[int, int]], colour, dashed: bool, width: int = 2) -> None:
    """A polyline, solid or dashed (8 on, 5 off, with the pattern carried across vertices)."""
    if not dashed:
        d.line(pts, fill=colour, width=width, joint="curve")
        return
    phase = 0.0
    for (xa, ya), (xb, yb) in itertools.pairwise(pts):
        seg = math.hypot(xb - xa, yb - ya)
        pos = 0.0
        while pos < seg:
            left_in = (8 - phase) if phase < 8 else (13 - phase)
            run = min(left_in, seg - pos)
            if phase < 8:
                p, q = pos / seg, (pos + run) / seg
                d.line([(xa + (xb - xa) * p, ya + (yb - ya) * p), (xa + (xb - xa) * q, ya + (yb - ya) * q)],
                       fill=colour, width=width)
            pos += run
            phase = (phase + run) % 13


def _marker(d: ImageDraw.ImageDraw, x: int, y: int, colour, r: int = 3) -> None:
    d.ellipse([x - r, y - r, x + r, y + r], fill=colour)


def series_style(i: int) -> tuple[tuple[int, int, int], bool, bool]:
    """(colour, dashed, markers) of the i-th series: palette colour, then a new line style per palette cycle."""
    style = STYLES[(i // len(PALETTE)) % len(STYLES)]
    return PALETTE[i % len(PALETTE)], style.startswith("dashed"), style.endswith("marker")


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(float(v))


def _check_size(width: int, height: int) -> None:
    if width < 240 or height < 180:
        raise ValueError(f"chart size {width}x{height} is too small (at least 240x180)")


def render_line_chart(series: Sequence[tuple[str, Sequence, Sequence]], title: str, xlabel: str, ylabel: str,
                      log_y: bool = False, width: int = 800, height: int = 480) -> Chart:
    """Lines of (label, xs, ys) per series; points with a None/NaN x or y are skipped, the rest joined."""
    if len(series) == 0:
        raise ValueError("line_chart needs at least one series, got none")
    _check_size(width, height)
    clean: list[tuple[str, list[tuple[float, float]]]] = []
    for label, xs, ys in series:
        if len(xs) != len(ys):
            raise ValueError(f"series {label!r}: {len(xs)} x values but {len(ys)} y values")
        clean.append((str(label), [(float(x), float(y)) for x, y in zip(xs, ys) if _finite(x) and _finite(y)]))
    allx = [x for _, pts in clean for x, _ in pts]
    ally = [y for _, pts in clean for _, y in pts]
    if log_y and any(y <= 0 for y in ally):
        raise ValueError(f"log_y needs positive values; got {min(ally)!r}")
    xticks, xstep = _nice_ticks(min(allx, default=0.0), max(allx, default=1.0), 8,
                                integer=all(float(x).is_integer() for x in allx))
    if log_y:
        (yticks, y0, y1), ystep = _log_ticks(min(ally, default=0.1), max(ally, default=1.0)), None
    else:
        yticks, ystep = _nice_ticks(min(ally, default=0.0), max(ally, default=1.0), 6)
        y0, y1 = yticks[0], yticks[-1]

    tf = lf = _font(11)
    top, bottom = 6 + _line_h(_font(15)) + 10, height - (6 + _line_h(_font(12)) + 6 + _line_h(tf) + 8)
    left = 6 + _line_h(_font(12)) + 6 + max(_tw(_fmt_tick(t, ystep), tf) for t in yticks) + 8
    row_h = _line_h(lf) + 2
    rows = max(1, (bottom - top) // row_h)
    ncols = math.ceil(len(clean) / rows)
    rows = math.ceil(len(clean) / ncols)
    want = 30 + min(170, max(_tw(lab, lf) for lab, _ in clean)) + 12
    colw = max(60, min(want, int(width * 0.45) // ncols))
    right = width - 8 - ncols * colw - 10
    shown = _fit_all([lab for lab, _ in clean], lf, colw - 34)
    area = PlotArea(left, top, right, bottom, xticks[0], xticks[-1], y0, y1, log_y)

    img = Image.new("RGB", (width, height), WHITE)
    d = ImageDraw.Draw(img)
    _frame(img, area, yticks, ystep, xticks, xstep, grid_x=True)
    _axes_lines(img, area)
    for i, ((_, pts), label) in enumerate(zip(clean, shown)):
        colour, dashed, markers = series_style(i)
        px = [area.to_px(x, y) for x, y in pts]
        if len(px) > 1:
            _polyline(d, px, colour, dashed)
        every = max(1, math.ceil(len(px) / 12))  # at most ~12 markers a series, staggered between series
        for x, y in (px[i % every::every] if markers else px if len(px) == 1 else ()):
            _marker(d, x, y, colour)
        lx, ly = right + 18 + (i // rows) * colw, top + (i % rows) * row_h + row_h // 2
        _polyline(d, [(lx, ly), (lx + 22, ly)], colour, dashed)
        if markers:
            _marker(d, lx + 11, ly, colour)
        _text(img, lx + 28, ly, label, lf, anchor="lm")
    if not allx:
        _text(img, (left + right) / 2, (top + bottom) / 2, "no data", _font(12), fill=AXIS, anchor="mm")
    _titles(img, title, ylabel, area, xlabel)
    return Chart(np.asarray(img), area)


def render_bar_chart(labels: Sequence[str], values: Sequence[float | None], title: str, ylabel: str,
                     highlight: int | None = None, width: int = 800, height: int = 480,
                     ymin: float | None = None, ymax: float | None = None) -> Chart:
    """One bar per label with its value (4 decimals) above it; None/NaN values get a hatched grey 'n/a' stub."""
    if len(labels) == 0:
        raise ValueError("bar_chart needs at least one bar, got no labels")
    if len(labels) != len(values):
        raise ValueError(f"bar_chart got {len(labels)} labels but {len(values)} values")
    if highlight is not None and not 0 <= highlight < len(labels):
        raise ValueError(f"highlight index {highlight} is out of range for {len(labels)} bars")
    _check_size(width, height)
    vals = [float(v) if _finite(v) else None for v in values]
    known = [v for v in vals if v is not None]
    lo = min([0.0] + known) if ymin is None else float(ymin)
    hi = max([1.0] + known) if ymax is None else float(ymax)
    if not hi > lo:
        raise ValueError(f"bar_chart needs ymin < ymax, got {lo} and {hi}")
    yticks, ystep = _nice_ticks(lo, hi, 5)
    if ymin is None and ymax is None:
        lo, hi = yticks[0], yticks[-1]
    yticks = [t for t in yticks if lo - 1e-9 <= t <= hi + 1e-9]

    n, tf = len(labels), _font(11)
    left = 6 + _line_h(_font(12)) + 6 + max(_tw(_fmt_tick(t, ystep), tf) for t in yticks) + 8
    right = width - 12
    slot = (right - left) / n
    vf = _font(int(min(11, max(8, slot - 2))))
    texts = [f"{v:.4f}" if v is not None else "n/a" for v in vals]
    v_rot = max(_tw(t, vf) for t in texts) > slot - 2
    v_band = (max(_tw(t, vf) for t in texts) if v_rot else _line_h(vf)) + 6
    l_rot = max(_tw(str(lab), vf) for lab in labels) > slot - 4
    max_l = min(140, int(height * 0.28))
    shown = _fit_all(labels, vf, max_l if l_rot else slot - 4)
    l_band = (max(_tw(s, vf) for s in shown) if l_rot else _line_h(vf)) + 10
    top = 6 + _line_h(_font(15)) + 6 + v_band
    bottom = height - l_band
    area = PlotArea(left, top, round(right), bottom, 0.0, float(n), lo, hi)

    img = Image.new("RGB", (width, height), WHITE)
    d = ImageDraw.Draw(img)
    _frame(img, area, yticks, ystep)
    base = round(area.y_px(min(max(0.0, lo), hi)))
    bw = max(1, round(slot * 0.7))
    boxes: list[Box] = []
    for i, (v, text, lab) in enumerate(zip(vals, texts, shown)):
        cx = area.x_px(i + 0.5)
        x0 = round(cx - bw / 2)
        if v is None:
            y_end = base - min(12, base - top)
            stub = Image.new("RGB", (bw, base - y_end + 1), STUB)
            sd = ImageDraw.Draw(stub)
            for k in range(-stub.height, bw, 4):
                sd.line([(k, stub.height - 1), (k + stub.height, 0)], fill=HATCH)
            sd.rectangle([0, 0, bw - 1, stub.height - 1], outline=HATCH)
            img.paste(stub, (x0, y_end))
            boxes.append((x0, y_end, x0 + bw, base + 1))
        else:
            y_end = round(area.y_px(min(max(v, lo), hi)))
            ya, yb = min(y_end, base), max(y_end, base)
            if yb > ya:
                d.rectangle([x0, ya, x0 + bw - 1, yb - 1], fill=ACCENT if i == highlight else BAR)
            boxes.append((x0, ya, x0 + bw, yb))
        _text(img, cx, min(y_end, base) - 3, text, vf, fill=ACCENT if i == highlight else INK,
              anchor="mb", angle=90 if v_rot else 0)
        _text(img, cx, bottom + 5, lab, vf, anchor="mt", angle=90 if l_rot else 0)
    d.line([(left, base), (right, base)], fill=AXIS)
    d.line([(left, top), (left, bottom)], fill=AXIS)
    _titles(img, title, ylabel, area)
    return Chart(np.asarray(img), area, boxes)


def _as_rgb(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif np.issubdtype(a.dtype, np.floating):
        a = np.rint(np.clip(np.nan_to_num(a), 0.0, 1.0) * 255)
    a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 2:
        return np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim == 3 and a.shape[2] in (1, 3, 4):
        return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a[:, :, :3]
    raise ValueError(f"a tile must be HxW or HxWx(1|3|4), got shape {a.shape}")


def render_image_grid(tiles: Sequence[tuple[str, np.ndarray]], title: str, columns: int | None = None) -> Chart:
    """Tiles in a grid of equal cells (each tile centred in a cell as big as the largest), caption below each."""
    if len(tiles) == 0:
        raise ValueError("image_grid needs at least one tile, got none")
    if columns is not None and columns < 1:
        raise ValueError(f"columns must be at least 1, got {columns}")
    arrays = [_as_rgb(a) for _, a in tiles]
    n, gap, cf, tfont = len(arrays), 10, _font(12), _font(15)
    th, tw = max(a.shape[0] for a in arrays), max(a.shape[1] for a in arrays)
    cell_w, cell_h = max(tw, 60), th + 4 + _line_h(cf)
    if columns is None:  # the grid closest to a 4:3 landscape, counting each empty cell in the last row against it
        columns = min(range(1, n + 1), key=lambda c: abs(math.log(c * cell_w / (math.ceil(n / c) * cell_h) * 0.75))
                      + (math.ceil(n / c) * c - n) / c)
    columns = min(columns, n)
    rows = math.ceil(n / columns)
    grid_w = columns * cell_w + (columns - 1) * gap
    width = max(grid_w, min(_tw(title, tfont), 1200)) + 2 * gap
    top = 6 + _line_h(tfont) + 8
    height = top + rows * cell_h + (rows - 1) * gap + gap
    canvas = np.full((height, width, 3), 255, np.uint8)
    gx = (width - grid_w) // 2
    boxes: list[Box] = []
    for i, a in enumerate(arrays):
        r, c = divmod(i, columns)
        cx, cy = gx + c * (cell_w + gap), top + r * (cell_h + gap)
        x0, y0 = cx + (cell_w - a.shape[1]) // 2, cy + (th - a.shape[0]) // 2
        canvas[y0:y0 + a.shape[0], x0:x0 + a.shape[1]] = a
        boxes.append((x0, y0, x0 + a.shape[1], y0 + a.shape[0]))
    img = Image.fromarray(canvas)
    _text(img, width / 2, 6, _fit(title, tfont, width - 16), tfont, anchor="mt")
    for i, (caption, _) in enumerate(tiles):
        r, c = divmod(i, columns)
        cx, cy = gx + c * (cell_w + gap), top + r * (cell_h + gap)
        _text(img, cx + cell_w / 2, cy + th + 3, _fit(str(caption), cf, cell_w), cf, anchor="mt")
    return Chart(np.asarray(img), None, boxes)


def save_png(image: np.ndarray, path: Path) -> Path:
    """Encode a uint8 HxWx3 array as PNG and write it atomically (creating the folder); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return path


def line_chart(series: Sequence[tuple[str, Sequence, Sequence]], title: str, xlabel: str, ylabel: str,
               path: Path, log_y: bool = False, width: int = 800, height: int = 480) -> Path:
    """Render :func:`render_line_chart` and write it to ``path`` as PNG."""
    return save_png(render_line_chart(series, title, xlabel, ylabel, log_y, width, height).image, path)


def bar_chart(labels: Sequence[str], values: Sequence[float | None], title: str, ylabel: str, path: Path,
              highlight: int | None = None, width: int = 800, height: int = 480,
              ymin: float | None = None, ymax: float | None = None) -> Path:
    """Render :func:`render_bar_chart` and write it to ``path`` as PNG."""
    chart = render_bar_chart(labels, values, title, ylabel, highlight, width, height, ymin, ymax)
    return save_png(chart.image, path)


def image_grid(tiles: Sequence[tuple[str, np.ndarray]], title: str, path: Path,
               columns: int | None = None) -> Path:
    """Render :func:`render_image_grid` and write it to ``path`` as PNG."""
    return save_png(render_image_grid(tiles, title, columns).image, path)
