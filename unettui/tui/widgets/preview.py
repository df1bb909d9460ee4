"""PreviewPanel: the selected run's validation preview (input | truth | prediction | overlay, or for a multi-class run
input | truth | prediction | errors with each class in its colour) in half-blocks or ASCII; for a window cut from a
larger image, the whole image shrunk with the window outlined comes first when the terminal is wide enough."""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from rich.text import Text
from textual import work
from textual.binding import BindingType
from textual.events import Resize
from textual.message import Message
from textual.widget import Widget
from textual.worker import get_current_worker

from ...core.runs.store import RunStore
from ...core.show import render, render_preview
from ...core.show.preview import dice_caption, preview_classes, preview_paths, read_preview, sample_context
from ...richtext import segments_text
from ..actions import bindings

TAGS = ("best", "last")
GAP = 2
MAX_ZOOM = 8  # the overlay-only view enlarges small images by whole pixels, at most this much
# the whole-image panel is drawn only when the other panels keep at least this many columns (or the image's width)
MIN_PANEL_COLS = 16
NARROW_NOTE = "whole image left out: too narrow"


# ---------------------------------------------------------------------------
# Geometry: how wide a panel may be so that it fits the rows there are
# ---------------------------------------------------------------------------


@lru_cache(maxsize=65536)
def _rows_for(h: int, w: int, cols: int, colour: bool, zoom: int = 1) -> tuple[int, int]:
    """(text rows, text columns) of an h x w image drawn at most ``cols`` wide (after a whole-pixel zoom)."""
    h, w = h * zoom, w * zoom
    if colour:  # area-resized to exactly min(w, cols) columns; two pixel rows per text row
        out_w = min(w, cols)
        out_h = h if out_w == w else max(1, round(h * out_w / w))
        return math.ceil(out_h / 2), out_w
    step = render.block_step(w, cols)  # ASCII: a character covers step x 2*step pixels
    return math.ceil(h / (2 * step)), math.ceil(w / step)


def fit_width(h: int, w: int, cols: int, rows: int | None, colour: bool) -> int:
    """The widest panel (≤ ``cols``) whose drawing is at most ``rows`` rows tall (None: no limit)."""
    cols = max(1, cols)
    if rows is None:
        return cols
    rows = max(1, rows)
    c = min(cols, w)
    while c > 1 and _rows_for(h, w, c, colour)[0] > rows:
        c -= 1
    return c


def zoom_for(h: int, w: int, cols: int, rows: int | None) -> int:
    """The largest whole-pixel enlargement (≤ MAX_ZOOM) that still fits ``cols`` x ``rows`` (half-block geometry)."""
    z = 1
    while z < MAX_ZOOM and w * (z + 1) <= cols and (rows is None or math.ceil(h * (z + 1) / 2) <= rows):
        z += 1
    return z


def caption(pv: dict[str, Any], i: int, tag: str | None, note: str | None = None) -> str:
    """'sample 2/4  cells_07.png  dice 0.8123  · best, epoch 3' for sample ``i`` of a preview."""
    k = int(pv["truth"].shape[0])
    names = [str(n) for n in np.atleast_1d(pv.get("names", []))]
    epoch = pv.get("epoch")
    ep = f", epoch {int(epoch)}" if epoch is not None and np.ndim(epoch) == 0 else ""
    name = names[i] if i < len(names) else f"#{i + 1}"
    return f"sample {i + 1}/{k}  {name}  {dice_caption(pv, i)}  · {tag}{ep}" + (f" ({note})" if note else "")


def panel_width(h: int, w: int, cols: int, rows: int | None, colour: bool, titles: tuple[str, ...]) -> int:
    """The width of each of ``len(titles)`` panels side by side in ``cols`` columns and ``rows`` rows: a panel is at
    least as wide as its title, and no taller than the rows."""
    n = len(titles)
    pw = max(1, (cols - (n - 1) * GAP) // n)
    while pw > 1 and sum(max(pw, len(t)) for t in titles) + (n - 1) * GAP > cols:
        pw -= 1  # a panel is at least as wide as its title
    return fit_width(h, w, pw, rows, colour)


def draw_preview(pv: dict[str, Any], i: int, *, width: int, height: int, colour: bool, overlay_only: bool,
                 title: str) -> Text:
    """Sample ``i`` for a ``width`` x ``height`` area: ``title``, the drawing and its legend.

    Four panels (input | truth | prediction | overlay; multi-class: input | truth | prediction | errors, each class
    in its colour, or its character in ASCII), or with ``overlay_only`` the overlay (errors) alone, enlarged by whole
    pixels when small. Panels shrink until they fit both the width and the height (a height <= 3 is taken as
    unknown). A sample that is a window of a larger image (the file has its context) gets a fifth panel first, the
    whole image with the window outlined, when the other four keep their width or at least ``MIN_PANEL_COLS`` columns
    that way; else the title says it was left out (on a line of its own when the caption has no room for it).
    Pure: safe to run in a worker thread.
    """
    h, w = pv["truth"][i].shape
    cols = max(1, width)
    context = False
    if overlay_only:
        rows = height - 2 if height > 2 else None  # caption + legend
        z = zoom_for(h, w, cols, rows)
        pw = fit_width(h * z, w * z, cols, rows, colour)
        drawing = render_preview.sample_overlay(pv, i, pw, colour, zoom=z)
    else:
        rows = height - 3 if height > 3 else None  # caption + panel titles + legend
        titles = render.PANEL_TITLES if preview_classes(pv) is None else render.CLASS_PANEL_TITLES
        pw = panel_width(h, w, cols, rows, colour, titles)
        if sample_context(pv, i) is not None:
            with_context = panel_width(h, w, cols, rows, colour, (render_preview.CONTEXT_TITLE, *titles))
            if with_context >= min(w, MIN_PANEL_COLS, pw):  # the others keep their width, or enough of it
                pw, context = with_context, True
            elif len(title) + 4 + len(NARROW_NOTE) <= cols:
                title = f"{title}  · {NARROW_NOTE}"
            else:  # a line of its own (a caption too long for the width would wrap and push the legend off)
                title = f"{title}\n{NARROW_NOTE}"
                pw = panel_width(h, w, cols, rows - 1 if rows and rows > 1 else rows, colour, titles)
        drawing = render_preview.sample_panels(pv, i, pw, GAP, colour, context=context)
    out = Text(title, no_wrap=True, overflow="crop", end="")
    body = segments_text(drawing) if colour else Text("\n".join(drawing), end="")
    legend = render_preview.preview_legend(pv, colour, context=context)
    if context and render.row_width(legend) > cols:  # the window's colour only where the line has room for it
        legend = render_preview.preview_legend(pv, colour)
    out.append("\n")
    out.append_text(body)
    out.append("\n")
    out.append_text(segments_text([legend]) if colour else Text(legend))
    return out


# ---------------------------------------------------------------------------
# The widget
# ---------------------------------------------------------------------------


class PreviewPanel(Widget, can_focus=True):
    """The selected run's validation preview: input | truth | prediction | overlay, or a large overlay alone.

    The parent calls :meth:`show_run` whenever the selection or the run changes. The npz is read in a
    worker thread (again only when its mtime or size changed) and drawn in another, sized to the widget,
    so neither a slow disk nor a large image stalls the UI. Its messages are internal (stopped here).
    """

    DEFAULT_CSS = """
    PreviewPanel { height: 1fr; min-height: 3; }
    """

    BINDINGS: ClassVar[list[BindingType]] = bindings("preview")

    class Loaded(Message):
        """A preview file was read (or found missing/unreadable) for ``run_id``; posted from the loader thread."""

        def __init__(self, run_id: str, tag: str | None, stamp: tuple[int, int] | None,
                     data: dict[str, Any] | None, problem: str | None, note: str | None = None) -> None:
            super().__init__()
            self.run_id, self.tag, self.stamp = run_id, tag, stamp
            self.data, self.problem, self.note = data, problem, note

    class Drawn(Message):
        """The drawing for ``key`` (size, sample, mode) is ready; posted from the drawing thread."""

        def __init__(self, key: tuple[Any, ...], text: Text) -> None:
            super().__init__()
            self.key, self.text = key, text

    def __init__(self, project: Path, *, colour: bool | None = None, name: str | None = None,
                 id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.project = Path(project)
        self.runs_dir = RunStore(self.project).root
        # the TUI always draws on a terminal, so only NO_COLOR / TERM=dumb / FORCE_COLOR decide
        self.colour: bool = render.use_colour(isatty=True) if colour is None else colour
        self.overlay_only = False
        self.tag = "best"  # the preview asked for; the other one is shown when this one does not exist yet
        self.sample = 0
        self.run_id: str | None = None
        self.data: dict[str, Any] | None = None
        self.shown_tag: str | None = None
        self.message = "select an experiment"
        self.note: str | None = None
        self._stamp: tuple[str, tuple[int, int]] | None = None  # (tag, (mtime_ns, size)) of what is shown
        self._drawn: tuple[tuple[Any, ...], Text] | None = None  # (what it shows, the drawing)
        self._pending: tuple[Any, ...] | None = None  # what the drawing thread is drawing now
        self._generation = 0  # counts the previews read, so a drawing of an older file is never taken for new

    # ---- what the parent calls -------------------------------------------------------
    def show_run(self, run_id: str | None) -> None:
        """Show ``run_id``'s preview (None: nothing selected); re-reads the file only when it changed."""
        if run_id is None:
            self.run_id, self.data, self._stamp, self.shown_tag = None, None, None, None
            self.message, self.note = "select an experiment", None
            self.redraw()
            return
        if run_id != self.run_id:
            self.run_id, self.data, self._stamp, self.shown_tag = run_id, None, None, None
            self.sample, self.message, self.note = 0, f"{run_id}: loading the preview…", None
            self.redraw()
        if self.is_mounted:  # before mounting, on_mount starts the reading
            self._load(run_id, self.tag, self._stamp)

    def on_mount(self) -> None:
        if self.run_id is not None:
            self._load(self.run_id, self.tag, None)

    # ---- loading ----------------------------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="preview-load", description="reading previews")
    def _load(self, run_id: str, want: str, known: tuple[str, tuple[int, int]] | None) -> None:
        worker = get_current_worker()
        other = [t for t in TAGS if t != want]
        for tag in (want, *other):
            npz = preview_paths(self.runs_dir / run_id, tag)[1]
            try:
                st = os.stat(npz)
            except OSError:
                continue
            stamp = (st.st_mtime_ns, st.st_size)
            if known == (tag, stamp):
                return  # unchanged since it was read: nothing to do
            data, problem = read_preview(npz)
            note = None if tag == want else f"no {want} preview yet"
            if not worker.is_cancelled:
                self.post_message(self.Loaded(run_id, tag, stamp, data, problem, note))
            return
        if not worker.is_cancelled:
            self.post_message(self.Loaded(run_id, None, None, None,
                                          f"{run_id}: no validation preview yet (written after a validated epoch)"))

    def on_preview_panel_loaded(self, message: Loaded) -> None:
        message.stop()
        if message.run_id != self.run_id:
            return  # an answer for a run no longer selected
        self.data, self.note, self.shown_tag = message.data, message.note, message.tag
        self._generation += 1
        self._stamp = (message.tag, message.stamp) if message.tag and message.stamp else None
        self.message = message.problem or ""
        if self.data is not None:
            self.sample = min(self.sample, self.count - 1)
        self.redraw()

    # ---- keys -------------------------------------------------------------------------
    @property
    def count(self) -> int:
        return int(self.data["truth"].shape[0]) if self.data is not None else 0

    def action_step(self, delta: int) -> None:
        if self.count:
            self.sample = (self.sample + delta) % self.count
            self.redraw()

    def action_toggle_overlay(self) -> None:
        self.overlay_only = not self.overlay_only
        self.redraw()

    def action_toggle_colour(self) -> None:
        self.colour = not self.colour
        self.redraw()

    def action_toggle_tag(self) -> None:
        self.tag = "last" if self.tag == "best" else "best"
        if self.run_id is not None:
            self._load(self.run_id, self.tag, None)  # read again even if unchanged: the caption says which is shown

    def on_resize(self, event: Resize) -> None:
        self.redraw()  # sized to the new width and height

    # ---- drawing ----------------------------------------------------------------------
    def _key(self) -> tuple[Any, ...]:
        return (self.size.width, self.size.height, self._generation, self.sample, self.overlay_only, self.colour,
                self.note, self.shown_tag)

    def redraw(self) -> None:
        """Draw the current sample in a worker thread (large images take a while); the old drawing stays meanwhile."""
        if self.data is None:
            self._drawn = self._pending = None
            self.refresh()
            return
        key = self._key()
        if self._drawn is not None and self._drawn[0] == key:
            self.refresh()
        elif key != self._pending and self.size.width > 0 and self.is_mounted:
            self._pending = key
            self._draw(key, self.data, self.sample, self.colour, self.overlay_only,
                       caption(self.data, self.sample, self.shown_tag, self.note))

    @work(thread=True, exclusive=True, exit_on_error=False, group="preview-draw", description="drawing a preview")
    def _draw(self, key: tuple[Any, ...], pv: dict[str, Any], i: int, colour: bool, overlay_only: bool,
              title: str) -> None:
        try:
            text = draw_preview(pv, i, width=key[0], height=key[1], colour=colour, overlay_only=overlay_only,
                                title=title)
        except Exception as exc:  # noqa: BLE001  (odd arrays that passed preview_problem: say so, keep running)
            text = Text(f"{title}\ncannot draw this sample ({type(exc).__name__}: {exc})", no_wrap=True, end="")
        if not get_current_worker().is_cancelled:
            self.post_message(self.Drawn(key, text))

    def on_preview_panel_drawn(self, message: Drawn) -> None:
        message.stop()
        if message.key == self._pending:
            self._drawn, self._pending = (message.key, message.text), None
            self.refresh()

    def render(self) -> Text:
        if self.data is None:
            return Text(self.message, no_wrap=True, overflow="ellipsis", end="")
        if self._drawn is not None:
            return self._drawn[1]  # the last drawing, until the one for the new size/sample/mode lands
        return Text(caption(self.data, self.sample, self.shown_tag, self.note) + "\ndrawing…", no_wrap=True, end="")
