"""A preview's sample as the faces draw it (`unettui show`, the TUI's Preview tab): its panels side by side (input,
truth, prediction, and the overlay or, for label maps, the errors), the overlay alone, the legend, and for a window
of a larger image (native resolution) the whole image shrunk with the window outlined. The drawing primitives are
render.py's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .preview import WINDOW_COLOUR, ascii_overlay, outline_box, preview_classes, preview_masks, sample_context
from .render import (
    ASCII_PANELS_LEGEND,
    CLASS_PANEL_TITLES,
    PANEL_TITLES,
    Row,
    area_resize,
    as_rgb,
    ascii_class_legend,
    ascii_errors,
    ascii_grey,
    ascii_panel_list,
    block_step,
    class_ascii_panel_list,
    class_colour_panel_list,
    class_legend,
    class_order,
    colour_panel_list,
    halfblock_errors,
    halfblock_overlay,
    halfblock_rgb,
    overlay_legend,
    side_by_side,
)

__all__ = ["CONTEXT_TITLE", "WINDOW_MARK", "halfblock_context", "ascii_context", "sample_panels", "sample_overlay",
           "preview_legend"]

CONTEXT_TITLE = "whole image"
WINDOW_MARK = "X"  # the window's outline on the whole image in ASCII (in neither the grey ramp nor the masks' marks)


def _scale_span(start: int, length: int, size: int, out: int) -> tuple[int, int]:
    """(start, length) of a span of an axis of ``size`` pixels on that axis shrunk to ``out``: at least one long."""
    a0 = min(int(start * out // size), out - 1)
    a1 = min(max(-(-(start + length) * out // size), a0 + 1), out)
    return a0, a1 - a0


def halfblock_context(thumb: np.ndarray, box: Sequence[int], width: int | None = None) -> list[Row]:
    """A whole-image thumbnail (uint8 [S,S] or [S,S,3]) as half-block rows, shrunk to ``width`` by area, the window
    ``box`` (top, left, height, width in the thumbnail's pixels) outlined one pixel wide in ``WINDOW_COLOUR``."""
    a = area_resize(as_rgb(thumb), width)
    h, w = np.shape(thumb)[:2]
    oh, ow = a.shape[:2]
    top, left, bh, bw = (int(v) for v in box)
    y0, ys = _scale_span(top, bh, h, oh)
    x0, xs = _scale_span(left, bw, w, ow)
    return halfblock_rgb(outline_box(a, (y0, x0, ys, xs), WINDOW_COLOUR, 1))


def ascii_context(thumb: np.ndarray, box: Sequence[int], width: int | None = None) -> list[str]:
    """A whole-image thumbnail on the grey ramp (as :func:`ascii_grey`), the cells on the window's edges
    :data:`WINDOW_MARK`."""
    lines = [list(r) for r in ascii_grey(thumb, width)]
    if not lines:
        return []
    step = block_step(np.shape(thumb)[1], width)
    top, left, bh, bw = (int(v) for v in box)
    r0, r1 = top // (2 * step), (top + max(bh, 1) - 1) // (2 * step)
    c0, c1 = left // step, (left + max(bw, 1) - 1) // step
    r0, r1 = min(max(r0, 0), len(lines) - 1), min(max(r1, 0), len(lines) - 1)
    c0, c1 = min(max(c0, 0), len(lines[0]) - 1), min(max(c1, 0), len(lines[0]) - 1)
    for r in range(r0, r1 + 1):
        for c in range(c0, c1 + 1):
            if r in (r0, r1) or c in (c0, c1):
                lines[r][c] = WINDOW_MARK
    return ["".join(r) for r in lines]


# ---------------------------------------------------------------------------
# A preview's sample, binary or multi-class (what `show` and the TUI draw)
# ---------------------------------------------------------------------------


def sample_panels(pv: Mapping[str, Any], i: int, width: int | None = None, gap: int = 2, colour: bool = True,
                  titles: bool = True, context: bool = False) -> list[Any]:
    """Sample ``i`` of a preview (as ``read_preview`` returns it) as four panels: segment rows (``colour``) or
    ASCII lines, without a legend (:func:`preview_legend`). With ``context`` and a whole image around the sample's
    window in the file (``preview.sample_context``), five: the whole image, its window outlined, first."""
    names = preview_classes(pv)
    truth, pred = preview_masks(pv, i)
    image = pv["images"][i]
    if names is None:
        panels = colour_panel_list(image, truth, pred, width) if colour else ascii_panel_list(image, truth, pred, width)
        heads: tuple[str, ...] = PANEL_TITLES
    else:
        k = len(names)
        panels = (class_colour_panel_list(image, truth, pred, k, width) if colour
                  else class_ascii_panel_list(image, truth, pred, k, width))
        heads = CLASS_PANEL_TITLES
    ctx = sample_context(pv, i) if context else None
    if ctx is not None:
        thumb, box = ctx
        panels = [halfblock_context(thumb, box, width) if colour else ascii_context(thumb, box, width), *panels]
        heads = (CONTEXT_TITLE, *heads)
    return side_by_side(panels, gap, heads if titles else None)


def sample_overlay(pv: Mapping[str, Any], i: int, width: int | None = None, colour: bool = True,
                   zoom: int = 1) -> list[Any]:
    """Sample ``i``'s overlay alone (binary: hits, false positives, misses; multi-class: the errors panel), enlarged
    ``zoom`` times by whole pixels: segment rows (``colour``) or ASCII lines."""
    names = preview_classes(pv)
    truth, pred = preview_masks(pv, i)
    z = (lambda a: a) if zoom == 1 else (lambda a: np.repeat(np.repeat(np.asarray(a), zoom, axis=0), zoom, axis=1))
    truth, pred = z(truth), z(pred)
    if names is None:
        if colour:
            return halfblock_overlay(z(pv["images"][i]), truth, pred, width)
        return ascii_overlay(truth, pred, width)
    order = class_order(len(names), truth, pred)
    if colour:
        return halfblock_errors(truth, pred, len(names), width, order)
    return ascii_errors(truth, pred, len(names), width, order)


def preview_legend(pv: Mapping[str, Any], colour: bool = True, context: bool = False) -> Row | str:
    """The legend of a preview's drawings: a segment row (``colour``) or an ASCII line; with ``context`` (the whole
    image is drawn) it ends with the colour (character) of the window's outline."""
    names = preview_classes(pv)
    if names is None:
        legend = overlay_legend() if colour else ASCII_PANELS_LEGEND
    else:
        legend = class_legend(names) if colour else ascii_class_legend(names)
    if not context:
        return legend
    if colour:
        return [*legend, ("   whole image: ", None, None), ("██", WINDOW_COLOUR, None),
                (" the window shown", None, None)]
    return f"{legend}   whole image: {WINDOW_MARK} the window shown"
