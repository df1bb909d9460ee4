"""Curves and mask previews as plain strings and colour segments: one renderer for the TUI, `unettui show` and logs.

Nothing here imports a UI library. Colour output is a list of rows, each a list of segments
``(text, fg, bg)`` where ``fg``/``bg`` are ``(r, g, b)`` tuples of ints 0..255 or ``None`` (the
terminal's default); the CLI turns them into rich ``Text``, the TUI into its own styles.

Two pixel geometries are used, both for terminal cells about twice as tall as they are wide:

- colour half-blocks: every character is ``'▀'`` with the upper pixel as foreground and the lower
  pixel as background, so one character covers one pixel column and two pixel rows and pixels stay
  square;
- ASCII: one character covers ``step`` pixel columns and ``2 * step`` pixel rows (the layout of
  :func:`unettui.core.show.preview.ascii_overlay`).

Downsampling to a target width: colour panels are shrunk by area averaging to exactly that width (the
overlay averages the colours of its pixels, so a cell with a few missed pixels gets a tint of the missed
colour); ASCII panels use a whole-number block factor ``step = ceil(W / width)``, the grey ramp
averaging each block and masks marking a cell when any pixel in it is set (thin structures do not vanish).
Images are never enlarged.

Overlay colours (Okabe–Ito palette, chosen to stay distinguishable under the common colour-vision
deficiencies; the ASCII characters carry the same information): true positive bluish green,
false positive vermillion, false negative (missed) sky blue; every other pixel is the input image in grey.

Multi-class previews (class indices, K >= 3 classes, background first) draw input | truth | prediction | errors:
every class in its own colour (``preview.CLASS_PALETTE``: background black, then the Okabe–Ito colours), and with colour
off its own character (:func:`class_marks`: background '.', then ``# o + x * = % & $ ~ a b ...``). The errors panel
draws the pixels the prediction got right in their class's colour dimmed (ASCII: their class's character) and every
pixel where the prediction differs from the truth in white (ASCII: ``!``). One error colour rather than the predicted
class's colour: a missed pixel is predicted background, which is black and would vanish on the dark panel; white is
the one colour no class has, and it stands out from every dimmed class by brightness alone, which every kind of
colour vision sees. Which class the prediction chose there is what the prediction panel beside it shows.

A preview's sample as the faces draw it — the panels side by side, the overlay alone, the legend, and the whole
image around a window of a larger image — is render_preview.py's, built on these primitives.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .preview import (
    ERROR_COLOUR,
    RIGHT_DIM,
    ascii_overlay,
    class_colours,
    class_indices,
    class_rgb,
)

RGB = tuple[int, int, int]
Segment = tuple[str, RGB | None, RGB | None]
Row = list[Segment]

BLOCKS = "▁▂▃▄▅▆▇█"
HALF = "▀"
GREY_RAMP = " .:-=+*#%@"  # dark to bright

TP_COLOUR: RGB = (0, 158, 115)  # bluish green: predicted and true (hit)
FP_COLOUR: RGB = (213, 94, 0)  # vermillion: predicted, not true (false positive)
FN_COLOUR: RGB = (86, 180, 233)  # sky blue: true, not predicted (missed)
TRUTH_COLOUR: RGB = (255, 255, 255)
PRED_COLOUR: RGB = (255, 255, 255)
MASK_BACKGROUND: RGB = (0, 0, 0)

ASCII_MARKS = {"truth": "#", "pred": "+", "background": "."}
PANEL_TITLES = ("input", "truth", "prediction", "overlay")

# the characters of foreground classes 1, 2, ... (background '.'): shapes first, then letters and digits (no second
# 'o' or 'x'); repeated past the 68th class
CLASS_MARKS = "#o+x*=%&$~" + "abcdefghijklmnpqrstuvwyz" + "0123456789" + "ABCDEFGHIJKLMNPQRSTUVWYZ"
ERROR_MARK = "!"
CLASS_PANEL_TITLES = ("input", "truth", "prediction", "errors")
ASCII_PANELS_LEGEND = "overlay: . background  # missed (truth only)  + false positive  @ hit (both)"


# ---------------------------------------------------------------------------
# Sparklines
# ---------------------------------------------------------------------------


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def sparkline(values: Iterable[Any], width: int | None = None, lo: float | None = None, hi: float | None = None) -> str:
    """A one-line chart of ``values`` with the eight blocks ▁▂▃▄▅▆▇█ (lowest to highest).

    Longer series are resampled to ``width`` characters (each character is the mean of the finite
    values in its share of the series). None, NaN and infinities (a diverged loss) draw as a space. The
    scale runs from the smallest to the largest finite value unless ``lo``/``hi`` fix it (e.g. 0 and 1
    for Dice); a constant series draws at the middle level ('▄').
    """
    vals = [_finite(v) for v in values]
    if width is not None and width >= 1 and len(vals) > width:
        n = len(vals)
        out: list[float | None] = []
        for i in range(width):
            chunk = [v for v in vals[i * n // width : (i + 1) * n // width] if v is not None]
            out.append(sum(chunk) / len(chunk) if chunk else None)
        vals = out
    finite = [v for v in vals if v is not None]
    if not finite:
        return " " * len(vals)
    low = min(finite) if lo is None else lo
    high = max(finite) if hi is None else hi
    top = len(BLOCKS) - 1
    chars = []
    for v in vals:
        if v is None:
            chars.append(" ")
        elif high <= low:
            chars.append(BLOCKS[top // 2])
        else:
            level = int(math.floor((min(max(v, low), high) - low) / (high - low) * top + 0.5))
            chars.append(BLOCKS[level])
    return "".join(chars)


# ---------------------------------------------------------------------------
# Array helpers
# ---------------------------------------------------------------------------


def block_step(width_px: int, width: int | None) -> int:
    """The whole-number downsampling factor that fits ``width_px`` pixel columns into ``width`` characters."""
    if not width or width < 1:
        return 1
    return max(1, -(-int(width_px) // int(width)))


def _block_reduce(a: np.ndarray, sy: int, sx: int, how: str = "mean") -> np.ndarray:
    """Reduce the first two axes of ``a`` over sy x sx blocks (edge blocks may be partial): 'mean' or 'any'."""
    h, w = a.shape[:2]
    if sy == 1 and sx == 1:
        return a.astype(np.float64) if how == "mean" else a.astype(bool)
    ys, xs = np.arange(0, h, sy), np.arange(0, w, sx)
    if how == "any":
        b = a.astype(np.uint8)
        return np.maximum.reduceat(np.maximum.reduceat(b, ys, axis=0), xs, axis=1).astype(bool)
    s = np.add.reduceat(np.add.reduceat(a.astype(np.float64), ys, axis=0), xs, axis=1)
    cy = np.minimum(ys + sy, h) - ys
    cx = np.minimum(xs + sx, w) - xs
    counts = (cy[:, None] * cx[None, :]).astype(np.float64)
    return s / counts.reshape(counts.shape + (1,) * (s.ndim - 2))


def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] matrix averaging each output pixel's share of the input pixels (exact area overlap)."""
    edges = np.arange(n_out + 1) * (n_in / n_out)
    lo, hi = edges[:-1, None], edges[1:, None]
    px = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, px + 1) - np.maximum(lo, px), 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def area_resize(a: np.ndarray, width: int | None) -> np.ndarray:
    """Shrink [H,W] or [H,W,C] to ``width`` columns (height in proportion) by area averaging; never enlarges."""
    a = np.asarray(a, dtype=np.float64)
    h, w = a.shape[:2]
    if not width or width >= w:
        return a
    out_w = max(1, int(width))
    out_h = max(1, int(round(h * out_w / w)))
    ry, rx = _area_weights(h, out_h), _area_weights(w, out_w)
    return np.einsum("yh,hw...,xw->yx...", ry, a, rx, optimize=True)


def _grey(image: np.ndarray) -> np.ndarray:
    """uint8 [H,W] or [H,W,3] (or [H,W,1]) -> float [H,W] in 0..255 (RGB by luma)."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 3:
        a = a[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    if a.ndim != 2:
        raise ValueError(f"expected an image [H, W] or [H, W, 3], got shape {np.asarray(image).shape}")
    if a.dtype == np.bool_:
        a = a.astype(np.float64) * 255.0
    return a.astype(np.float64)


def as_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 [H,W] or [H,W,3] -> float [H,W,3] in 0..255."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        a = _grey(a)
        return np.repeat(a[..., None], 3, axis=2)
    if a.ndim == 3 and a.shape[2] >= 3:
        return a[..., :3].astype(np.float64)
    raise ValueError(f"expected an image [H, W] or [H, W, 3], got shape {a.shape}")


def as_mask(a: np.ndarray) -> np.ndarray:
    """A boolean mask from bool, 0/1 or 0/255 arrays (anything > 0 is foreground)."""
    return np.asarray(a) > 0


def pred_from_prob(prob: np.ndarray) -> np.ndarray:
    """The hard prediction (threshold 0.5) from a probability map: uint8 0..255 (as in the preview npz) or float 0..1."""
    p = np.asarray(prob)
    if np.issubdtype(p.dtype, np.integer):
        return p >= 128
    return p > 0.5


# ---------------------------------------------------------------------------
# Colour half-blocks
# ---------------------------------------------------------------------------


def _colour(px: np.ndarray) -> RGB:
    return (int(round(px[0])), int(round(px[1])), int(round(px[2])))


def halfblock_rgb(rgb: np.ndarray, width: int | None = None) -> list[Row]:
    """Rows of '▀' segments for an RGB array [H,W,3] (0..255): fg = upper pixel, bg = lower pixel.

    Wider images are shrunk by area averaging to exactly ``width`` characters (height in proportion, pixels
    stay square); an odd last pixel row leaves bg = None. Runs of identical cells merge into one segment.
    """
    a = np.clip(np.rint(area_resize(rgb, width)), 0, 255)
    rows: list[Row] = []
    for y in range(0, a.shape[0], 2):
        row: Row = []
        for x in range(a.shape[1]):
            fg = _colour(a[y, x])
            bg = _colour(a[y + 1, x]) if y + 1 < a.shape[0] else None
            if row and row[-1][1] == fg and row[-1][2] == bg:
                row[-1] = (row[-1][0] + HALF, fg, bg)
            else:
                row.append((HALF, fg, bg))
        rows.append(row)
    return rows


def halfblock_grey(image: np.ndarray, width: int | None = None) -> list[Row]:
    """An image (uint8 [H,W] grey or [H,W,3] RGB) as half-block rows; grey stays grey, RGB keeps its colours."""
    return halfblock_rgb(as_rgb(image), width)


def halfblock_mask(mask: np.ndarray, colour: RGB = TRUTH_COLOUR, width: int | None = None,
                   background: RGB = MASK_BACKGROUND) -> list[Row]:
    """A binary mask as half-block rows: foreground in ``colour``, background in ``background``."""
    m = as_mask(mask)[..., None]
    rgb = np.where(m, np.array(colour, np.float64), np.array(background, np.float64))
    return halfblock_rgb(rgb, width)


def overlay_rgb(image: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """[H,W,3] float: the image in grey, true positives, false positives and misses in their colours."""
    g = _grey(image)
    t, p = as_mask(truth), as_mask(pred)
    out = np.repeat(g[..., None], 3, axis=2)
    out[t & p] = TP_COLOUR
    out[~t & p] = FP_COLOUR
    out[t & ~p] = FN_COLOUR
    return out


def halfblock_overlay(image: np.ndarray, truth: np.ndarray, pred: np.ndarray, width: int | None = None) -> list[Row]:
    """The image in grey with hits (TP_COLOUR), false positives (FP_COLOUR) and misses (FN_COLOUR) on top."""
    return halfblock_rgb(overlay_rgb(image, truth, pred), width)


def overlay_legend() -> Row:
    """One row of segments explaining the overlay colours."""
    return [("overlay: ", None, None), ("██", TP_COLOUR, None), (" hit  ", None, None),
            ("██", FP_COLOUR, None), (" false positive  ", None, None),
            ("██", FN_COLOUR, None), (" missed (false negative)", None, None)]


def row_width(row: Row | str) -> int:
    return len(row) if isinstance(row, str) else sum(len(seg[0]) for seg in row)


def side_by_side(panels: Sequence[Sequence[Row]] | Sequence[Sequence[str]], gap: int = 2,
                 titles: Sequence[str] | None = None) -> list[Any]:
    """Put panels next to each other, ``gap`` spaces apart; shorter panels are padded with blank rows.

    Panels are either lists of segment rows (colour) or lists of strings (ASCII); the result has the same
    kind. With ``titles`` a first row names each panel (a panel narrower than its title is padded to it).
    """
    panels = [list(p) for p in panels]
    if not panels:
        return []
    text_mode = any(isinstance(r, str) for p in panels for r in p)
    widths = [max((row_width(r) for r in p), default=0) for p in panels]
    if titles is not None:
        widths = [max(w, len(str(t))) for w, t in zip(widths, titles)]
    height = max(len(p) for p in panels)
    lines: list[list[Row | str]] = []
    if titles is not None:
        lines.append([str(t).ljust(w) for t, w in zip(titles, widths)])
        if not text_mode:
            lines[-1] = [[(s, None, None)] if s else [] for s in lines[-1]]
    for y in range(height):
        cells: list[Row | str] = []
        for p, w in zip(panels, widths):
            r = p[y] if y < len(p) else ("" if text_mode else [])
            pad = w - row_width(r)
            if text_mode:
                cells.append(r + " " * pad)
            else:
                cells.append(list(r) + ([(" " * pad, None, None)] if pad else []))
        lines.append(cells)
    out: list[Any] = []
    for cells in lines:
        if text_mode:
            out.append((" " * gap).join(cells).rstrip())
        else:
            row: Row = []
            for i, c in enumerate(cells):
                if i and gap:
                    row.append((" " * gap, None, None))
                row.extend(c)
            row = _merge(row)
            while row and row[-1][2] is None and not row[-1][0].strip():  # no trailing blank padding
                row.pop()
            out.append(row)
    return out


def _merge(row: Row) -> Row:
    """Merge neighbouring segments with the same colours; drop empty ones."""
    out: Row = []
    for text, fg, bg in row:
        if not text:
            continue
        if out and out[-1][1] == fg and out[-1][2] == bg:
            out[-1] = (out[-1][0] + text, fg, bg)
        else:
            out.append((text, fg, bg))
    return out


def colour_panels(image: np.ndarray, truth: np.ndarray, pred: np.ndarray, width: int | None = None,
                  gap: int = 2, titles: bool = True) -> list[Row]:
    """input | truth | prediction | overlay as half-block rows, each panel at most ``width`` characters wide."""
    return side_by_side(colour_panel_list(image, truth, pred, width), gap, PANEL_TITLES if titles else None)


def colour_panel_list(image: np.ndarray, truth: np.ndarray, pred: np.ndarray, width: int | None) -> list[list[Row]]:
    return [halfblock_grey(image, width), halfblock_mask(truth, TRUTH_COLOUR, width),
            halfblock_mask(pred, PRED_COLOUR, width), halfblock_overlay(image, truth, pred, width)]


# ---------------------------------------------------------------------------
# ASCII
# ---------------------------------------------------------------------------


def ascii_grey(image: np.ndarray, width: int | None = None, ramp: str = GREY_RAMP) -> list[str]:
    """An image as characters of ``ramp`` (dark to bright), each covering step x 2*step pixels (area mean)."""
    g = _grey(image)
    step = block_step(g.shape[1], width)
    a = _block_reduce(g, 2 * step, step, "mean")
    idx = np.clip(np.floor(a / 256.0 * len(ramp)), 0, len(ramp) - 1).astype(int)
    return ["".join(ramp[i] for i in row) for row in idx]


def ascii_mask(mask: np.ndarray, width: int | None = None, mark: str = "#", background: str = ".") -> list[str]:
    """A mask as ``mark`` / ``background`` characters; a cell is marked when any of its pixels is set."""
    m = as_mask(mask)
    step = block_step(m.shape[1], width)
    a = _block_reduce(m, 2 * step, step, "any")
    return ["".join(mark if v else background for v in row) for row in a]


def ascii_panels(image: np.ndarray, truth: np.ndarray, pred: np.ndarray, width: int | None = None,
                 gap: int = 2, titles: bool = True, legend: bool = True) -> list[str]:
    """input | truth | prediction | overlay as plain ASCII lines, each panel at most ``width`` characters wide.

    input: the grey ramp " .:-=+*#%@"; truth: '#'; prediction: '+'; overlay (the two together): '.'
    background, '#' truth only (missed), '+' prediction only (false positive), '@' both (hit). The last
    line is the legend (``legend=False`` leaves it out).
    """
    lines = side_by_side(ascii_panel_list(image, truth, pred, width), gap, PANEL_TITLES if titles else None)
    if legend:
        lines.append(ASCII_PANELS_LEGEND)
    return lines


def ascii_panel_list(image: np.ndarray, truth: np.ndarray, pred: np.ndarray, width: int | None) -> list[list[str]]:
    t, p = as_mask(truth), as_mask(pred)
    return [ascii_grey(image, width), ascii_mask(t, width, ASCII_MARKS["truth"]),
            ascii_mask(p, width, ASCII_MARKS["pred"]), ascii_overlay(t, p, width)]


# ---------------------------------------------------------------------------
# Multi-class label maps
# ---------------------------------------------------------------------------


def class_marks(k: int) -> str:
    """The character of each of ``k`` classes: '.' for the background, then :data:`CLASS_MARKS` (repeated past its
    end)."""
    return "." + "".join(CLASS_MARKS[(c - 1) % len(CLASS_MARKS)] for c in range(1, k))


def class_resize(labels: np.ndarray, k: int, width: int | None = None, order: Sequence[int] | None = None,
                 present: float = 0.25) -> np.ndarray:
    """A label map shrunk to ``width`` columns (height in proportion, as :func:`area_resize`) without mixing
    classes: each output pixel takes, of the classes covering at least ``present`` of its area, the first of
    ``order`` (default: the rarest in ``labels``, see :func:`class_order`), else the class covering most of it. So a
    thin class survives shrinking (a 2-pixel ring shrunk 3 times still shows), and a boundary between two classes
    never shows as a third colour, which averaging their colours would draw. Never enlarges."""
    t = class_indices(labels, k)
    if not width or width >= t.shape[1]:
        return t
    frac = area_resize((t[..., None] == np.arange(k)).astype(np.float64), width)  # [h, w, k] area of each class
    out = frac.argmax(axis=-1)
    for c in reversed(list(class_order(k, t) if order is None else order)):  # the first of order wins
        out[frac[..., c] >= present] = c
    return out


def halfblock_classes(labels: np.ndarray, k: int, width: int | None = None,
                      order: Sequence[int] | None = None) -> list[Row]:
    """A label map as half-block rows, each class in its colour (shrunk by :func:`class_resize`)."""
    return halfblock_rgb(class_rgb(class_resize(labels, k, width, order), k))


def halfblock_errors(truth: np.ndarray, pred: np.ndarray, k: int, width: int | None = None,
                     order: Sequence[int] | None = None) -> list[Row]:
    """The errors of a label map as half-block rows (see ``preview.errors_rgb``); shrunk, the truth's classes by
    :func:`class_resize` and the errors by area, so a cell with a few wrong pixels gets a white tint."""
    t, p = class_indices(truth, k), class_indices(pred, k)
    right = np.rint(np.asarray(class_colours(k), np.float64) * RIGHT_DIM)[class_resize(t, k, width, order)]
    wrong = area_resize((t != p).astype(np.float64), width)[..., None]
    return halfblock_rgb(right * (1.0 - wrong) + np.asarray(ERROR_COLOUR, np.float64) * wrong)


def class_order(k: int, *label_maps: np.ndarray) -> list[int]:
    """The foreground classes, the rarest in ``label_maps`` first (the lowest index on a tie): the order in which a
    text cell holding several classes picks the one it shows."""
    counts = np.zeros(k, np.int64)
    for labels in label_maps:
        counts += np.bincount(class_indices(labels, k).ravel(), minlength=k)[:k]
    return sorted(range(1, k), key=lambda c: (counts[c], c))


def _cell_classes(labels: np.ndarray, k: int, step: int, order: Sequence[int] | None) -> np.ndarray:
    """The class of each step x 2*step cell: of the classes with a pixel in it, the first of ``order`` (default: the
    rarest in ``labels``), background only when the cell is all background. As a binary mask's cell is marked when
    any pixel in it is, a thin or small class never vanishes when the map is shrunk."""
    t = class_indices(labels, k)
    out = np.zeros(_block_reduce(t, 2 * step, step, "any").shape, np.intp)
    for c in reversed(list(class_order(k, t) if order is None else order)):
        out[_block_reduce(t == c, 2 * step, step, "any")] = c
    return out


def ascii_classes(labels: np.ndarray, k: int, width: int | None = None, order: Sequence[int] | None = None) -> list[str]:
    """A label map as characters of :func:`class_marks`, each covering step x 2*step pixels (a cell of several
    classes shows the first of ``order`` in it: see :func:`class_order`)."""
    marks = class_marks(k)
    cells = _cell_classes(labels, k, block_step(np.shape(labels)[1], width), order)
    return ["".join(marks[c] for c in row) for row in cells]


def ascii_errors(truth: np.ndarray, pred: np.ndarray, k: int, width: int | None = None,
                 order: Sequence[int] | None = None) -> list[str]:
    """The errors of a label map: :data:`ERROR_MARK` where any pixel of the cell is wrong, else the truth's
    character (so a cell of a thin missed structure is never hidden)."""
    marks = class_marks(k)
    step = block_step(np.shape(truth)[1], width)
    cells = _cell_classes(truth, k, step, class_order(k, truth, pred) if order is None else order)
    wrong = _block_reduce(class_indices(truth, k) != class_indices(pred, k), 2 * step, step, "any")
    return ["".join(ERROR_MARK if e else marks[c] for c, e in zip(row, erow)) for row, erow in zip(cells, wrong)]


def class_legend(names: Sequence[str]) -> Row:
    """One row of segments naming each class's colour and the errors' (multi-class colour drawings)."""
    row: Row = [("classes: ", None, None)]
    for name, rgb in list(zip(names, class_colours(len(names))))[1:]:
        row += [("██", rgb, None), (f" {name}  ", None, None)]
    row += [(f"({names[0]} black)   errors: ", None, None), ("██", ERROR_COLOUR, None),
            (" prediction ≠ truth (right pixels dimmed)", None, None)]  # a black block would not show on the screen
    return row


def ascii_class_legend(names: Sequence[str]) -> str:
    """The characters of each class and of the errors (multi-class ASCII drawings), one line."""
    marks = class_marks(len(names))
    return ("classes: " + "  ".join(f"{m} {n}" for m, n in zip(marks, names))
            + f"   errors: {ERROR_MARK} prediction ≠ truth")


def class_colour_panels(image: np.ndarray, truth: np.ndarray, pred: np.ndarray, k: int, width: int | None = None,
                        gap: int = 2, titles: bool = True) -> list[Row]:
    """input | truth | prediction | errors of a label map as half-block rows, each at most ``width`` wide."""
    panels = class_colour_panel_list(image, truth, pred, k, width)
    return side_by_side(panels, gap, CLASS_PANEL_TITLES if titles else None)


def class_colour_panel_list(image: np.ndarray, truth: np.ndarray, pred: np.ndarray, k: int,
                       width: int | None) -> list[list[Row]]:
    order = class_order(k, truth, pred)  # the same choice in every panel
    return [halfblock_grey(image, width), halfblock_classes(truth, k, width, order),
            halfblock_classes(pred, k, width, order), halfblock_errors(truth, pred, k, width, order)]


def class_ascii_panels(image: np.ndarray, truth: np.ndarray, pred: np.ndarray, names: Sequence[str],
                       width: int | None = None, gap: int = 2, titles: bool = True, legend: bool = True) -> list[str]:
    """input | truth | prediction | errors of a label map as plain ASCII lines (each class its character, errors
    ``!``); the last line is the legend naming the classes (``legend=False`` leaves it out)."""
    lines = side_by_side(class_ascii_panel_list(image, truth, pred, len(names), width), gap,
                         CLASS_PANEL_TITLES if titles else None)
    if legend:
        lines.append(ascii_class_legend(names))
    return lines


def class_ascii_panel_list(image: np.ndarray, truth: np.ndarray, pred: np.ndarray, k: int,
                      width: int | None) -> list[list[str]]:
    order = class_order(k, truth, pred)  # the same choice in every panel
    return [ascii_grey(image, width), ascii_classes(truth, k, width, order), ascii_classes(pred, k, width, order),
            ascii_errors(truth, pred, k, width, order)]


# ---------------------------------------------------------------------------
# The whole image around a preview's window
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Colour or not
# ---------------------------------------------------------------------------


def use_colour(env: Mapping[str, str] | None = None, isatty: bool | Callable[[], bool] | None = None) -> bool:
    """Whether to draw in colour: never with NO_COLOR set to a non-empty value (no-color.org) or TERM=dumb;
    always with FORCE_COLOR set to a non-empty value; otherwise only on a terminal (``isatty``: a bool, a
    callable, or None for ``sys.stdout.isatty()``)."""
    env = os.environ if env is None else env
    if env.get("NO_COLOR", ""):
        return False
    if env.get("TERM", "") == "dumb":
        return False
    if env.get("FORCE_COLOR", ""):
        return True
    if isatty is None:
        try:
            return bool(sys.stdout.isatty())
        except (AttributeError, ValueError):
            return False
    return bool(isatty() if callable(isatty) else isatty)
