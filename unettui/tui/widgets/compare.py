"""The Compare tab: the marked runs' train loss, val loss and val Dice curves overlaid on shared axes, labelled by what
differs between them, a configuration's repeats as their mean with their spread; redrawn (in a worker) as epochs
arrive. Drawn by core.show.curves — the renderer of `unettui compare` — in colour, or in ASCII (NO_COLOR, or c)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Static

from ...core.define.task import VIEWS, label_of, split_class_key
from ...core.show import render
from ...core.show.compare import Comparison, class_metrics, compare
from ...core.show.curves import Row as Segments
from ...core.show.curves import legend_rows, plain, render_curves, to_ascii
from ...richtext import segments_text
from ..actions import bindings
from ..filtering import has_epochs
from ..messages import Mark

METRICS = VIEWS["compare-tab"]  # core.define.task: the curves drawn together, and their words
MODES = ("all", *METRICS)  # m steps through them, then each class's val Dice and the worst's (multi-class runs)
WIDE = 140  # columns from which val Dice takes the left half and the losses share the right
MIN_PLOT = 4  # plot rows below which a metric is not drawn beside the others (m shows it alone)
NO_MARKS = ("Nothing is marked. Mark runs with space — in Queue, in Results (M marks every run the filter shows) or in a "
            "study stage's configurations — and their train loss, val loss and val Dice curves overlay here, "
            "a configuration's repeats as their mean and spread.")


@dataclass
class Drawing:
    """What the tab shows: a title line, the plots of the left and right column, the legend (segment rows)."""

    title: str = ""
    left: list[Segments] = field(default_factory=list)
    right: list[Segments] = field(default_factory=list)
    legend: list[Segments] = field(default_factory=list)
    metrics: tuple[str, ...] = ()
    comparison: Comparison | None = None  # of the first metric drawn: its labels, what varies
    note: str = ""


def layout(width: int, height: int, legend: int, mode: str) -> tuple[list[tuple[str, int, int]], int]:
    """Which metrics go where: ``[(metric, column 0/1, plot rows)]`` and the column width, for a ``width`` x ``height``
    area that also holds a title line and ``legend`` rows. A plot takes its rows plus three (title, axis, ticks)."""
    room = height - 1 - legend
    if mode != "all":
        return [(mode, 0, max(3, room - 3))], width
    first, *others = METRICS
    if width >= WIDE and (room - 3 * len(others)) // len(others) >= MIN_PLOT:
        half = (width - 1) // 2
        return [(first, 0, max(3, room - 3)), *((m, 1, (room - 3 * len(others)) // len(others)) for m in others)], half
    if (room - 3 * len(METRICS)) // len(METRICS) >= MIN_PLOT:
        return [(m, 0, (room - 3 * len(METRICS)) // len(METRICS)) for m in METRICS], width
    return [(first, 0, max(3, room - 4))], width  # and a line saying m shows the others


def draw(rows: list[Any], width: int, height: int, *, ascii: bool, each: bool, mode: str) -> Drawing:
    """The drawing of ``rows`` (read-model rows with their metrics) in ``width`` x ``height`` cells (pure)."""
    by = "none" if each else "configuration"
    first = compare(rows, METRICS[0] if mode == "all" else mode, by)
    banded = any(s.band for s in first.series)
    legend = legend_rows(first.series, ascii=ascii, banded=banded)
    places, col_width = layout(width, height, len(legend), mode)
    out = Drawing(legend=legend, comparison=first, metrics=tuple(m for m, _, _ in places))
    runs, confs = len(rows), len(first.groups)
    head = f"{runs} run{'s' if runs != 1 else ''}" + (f" in {confs} configurations" if confs != runs else "")
    out.title = head + ("; they differ in " + ", ".join(first.varied) if first.varied else "; no key differs")
    if mode == "all" and len(places) == 1:
        out.note = "m: one metric at a time (the window is too small for all three)"
    for metric, column, rows_high in places:
        c = first if metric == first.metric else compare(rows, metric, by)
        try:
            drawn = render_curves(c.series, width=col_width, height=rows_high, ascii=ascii, ylabel=label_of(metric),
                                  legend=False)
        except ValueError as exc:  # too narrow: say so where the plot would be
            drawn = [[(f"{label_of(metric)}: {exc}", None, None)]]
        (out.left if column == 0 else out.right).extend(drawn)
    return out


class CompareView(Vertical):
    """The Compare tab. The parent hands it the marked runs' views with ``show_runs`` (on each change of one of them);
    drawing happens in a worker and lands through ``Drawn``."""

    DEFAULT_CSS = """
    CompareView { height: 1fr; padding: 0 1; }
    CompareView Static { text-wrap: nowrap; text-overflow: ellipsis; }
    CompareView > #compare-title { height: 1; text-style: bold; }
    CompareView > #compare-hint { color: $text-muted; padding: 1 1; text-wrap: wrap; }
    CompareView > #compare-plots { height: auto; }
    CompareView #compare-left { width: auto; }
    CompareView #compare-right { width: auto; margin-left: 1; }
    CompareView > #compare-legend { height: auto; }
    CompareView > #compare-note { height: auto; color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = bindings("compare")

    class Drawn(Message):
        def __init__(self, drawing: Drawing, generation: int) -> None:
            self.drawing, self.generation = drawing, generation
            super().__init__()

    can_focus = True

    def __init__(self, *, id: str | None = None, colour: bool | None = None) -> None:
        super().__init__(id=id)
        self.rows: list[Any] = []
        self.colour = render.use_colour(isatty=True) if colour is None else colour
        self.each = False
        self.mode = "all"
        self.drawing: Drawing | None = None
        self._generation = 0
        self._drawn_key: tuple | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="compare-title", markup=False)
        yield Static(NO_MARKS, id="compare-hint", markup=False)
        with Horizontal(id="compare-plots"):
            yield Static("", id="compare-left", markup=False)
            yield Static("", id="compare-right", markup=False)
        yield Static("", id="compare-legend", markup=False)
        yield Static("", id="compare-note", markup=False)

    def on_mount(self) -> None:
        self._show()

    def on_resize(self) -> None:
        self.redraw()

    # ---- what the parent calls -------------------------------------------------------
    def show_runs(self, rows: list[Any]) -> None:
        """The marked runs' views (mark order); redrawn when they or their metrics changed."""
        self.rows = list(rows)
        self.redraw()

    def waiting(self) -> list[str]:
        """Marked runs whose curves have not been read yet (a finished run's metrics are read when it is wanted)."""
        return [r.id for r in self.rows if has_epochs(r) and not r.metrics]

    # ---- drawing ----------------------------------------------------------------------
    def redraw(self) -> None:
        if not self.is_mounted:
            return
        width, height = self.content_size.width, self.content_size.height
        key = (tuple(id(r) for r in self.rows), width, height, self.colour, self.each, self.mode)
        if key == self._drawn_key or width <= 0:
            return
        self._drawn_key = key
        self._generation += 1
        if not self.rows:
            self.drawing = None
            self._show()
            return
        self._draw(list(self.rows), width, height, self.colour, self.each, self.mode, self._generation)

    @work(thread=True, exclusive=True, exit_on_error=False, group="compare-draw", description="drawing the comparison")
    def _draw(self, rows: list[Any], width: int, height: int, colour: bool, each: bool, mode: str, gen: int) -> None:
        self.post_message(self.Drawn(draw(rows, width, height, ascii=not colour, each=each, mode=mode), gen))

    def on_compare_view_drawn(self, msg: Drawn) -> None:
        msg.stop()
        if msg.generation == self._generation:
            self.drawing = msg.drawing
            self._show()

    def _text(self, rows: list[Segments]) -> Text:
        return segments_text(rows) if self.colour else Text("\n".join(plain(rows)), no_wrap=True, overflow="crop")

    def _show(self) -> None:
        d = self.drawing
        hint = self.query_one("#compare-hint", Static)
        hint.display = d is None
        for wid in ("#compare-title", "#compare-plots", "#compare-legend", "#compare-note"):
            self.query_one(wid).display = d is not None
        if d is None:
            return
        waiting = self.waiting()
        title = d.title + (f" · reading the curves of {len(waiting)} run{'s' if len(waiting) != 1 else ''}…"
                           if waiting else "")
        self.query_one("#compare-title", Static).update(title if self.colour else to_ascii(title))
        self.query_one("#compare-left", Static).update(self._text(d.left))
        right = self.query_one("#compare-right", Static)
        right.display = bool(d.right)
        right.update(self._text(d.right))
        self.query_one("#compare-legend", Static).update(self._text(d.legend))
        note = self.query_one("#compare-note", Static)
        note.display = bool(d.note)
        note.update(d.note)

    # ---- actions (keys from actions.ACTIONS) ------------------------------------------------
    def action_toggle_colour(self) -> None:
        self.colour = not self.colour
        self.redraw()

    def action_toggle_each(self) -> None:
        self.each = not self.each
        self.notify("every run its own curve" if self.each else "repeats of a configuration: their mean and spread")
        self.redraw()

    def modes(self) -> tuple[str, ...]:
        """What m steps through: all, each metric of the tab alone, then (marked multi-class runs) each class's val
        Dice and the worst class's."""
        return (*MODES, *(m for m in class_metrics(self.rows) if split_class_key(m, METRICS)))

    def action_step_metric(self) -> None:
        modes = self.modes()
        self.mode = modes[(modes.index(self.mode) + 1) % len(modes)] if self.mode in modes else "all"
        self.redraw()

    def action_clear_marks(self) -> None:
        if self.rows:
            self.post_message(Mark([r.id for r in self.rows], on=False))

