"""The results panel: runs with their varying hyper-parameters and metrics — per configuration (mean ± sd (n) over its
repeats) when runs have repeats — with a filter, sorting, per-value means, marks for the Compare tab and CSV export.
What it shows is computed by tui.results_model: on this thread for a few thousand runs, in a worker beyond."""

from __future__ import annotations

import gc
import threading
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.coordinate import Coordinate
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Label, Static
from textual.widgets.data_table import ColumnKey

from ...core.define.task import VIEWS, label_of
from ...core.runs.export import to_csv
from ...core.runs.groups import configuration_columns
from ...core.runs.store import atomic_write_text
from ...core.show.fmt import value as fmt_value
from ..actions import bindings
from ..filtering import Condition, FilterError, parse_filter
from ..messages import Mark, RunHighlighted, RunSelected
from ..results_model import ResultsModel, Shown, descending_first, no_score_text
from ..results_model import label as column_label
from .chosen import OnChosenRun
from .keyed_table import KeyedTable

ARROWS = {False: " ▲", True: " ▼"}
NO_ARROW = "  "  # same width as an arrow, so a sorted header never needs a wider column
IN_WORKER = 2000  # more runs than this: the rows are computed in a worker thread, never on the UI thread
FREEZE_ROWS = 1000  # rows from which the objects of a table computed anew are moved out of the collector's way


class ResultsTable(KeyedTable):
    """A row-cursor DataTable whose left/right keys pick a current column (the one `s` sorts by)
    and scroll it into view, instead of only scrolling; enter (named in the footer) opens the run in Preview."""

    BINDINGS: ClassVar[list[BindingType]] = bindings("results-table")

    def action_mark(self) -> None:
        if isinstance(self.parent, ResultsPanel):
            self.parent.mark_highlighted()

    def action_cursor_right(self) -> None:
        self._step_column(1)

    def action_cursor_left(self) -> None:
        self._step_column(-1)

    def _step_column(self, step: int) -> None:
        if not self.columns:
            return
        column = max(1, min(len(self.columns) - 1, self.cursor_column + step))  # never the mark column
        self.cursor_coordinate = Coordinate(self.cursor_row, column)
        self.scroll_to_column(column)

    def scroll_to_column(self, index: int) -> None:
        """Scroll horizontally so the column at ``index`` is visible beside the fixed columns."""
        widths = [c.get_render_width(self) for c in self.ordered_columns]
        if not widths:
            return
        x = sum(widths[:index])
        fixed = sum(widths[: self.fixed_columns])
        if index < self.fixed_columns:
            return
        view = self.scrollable_content_region.width
        if x < self.scroll_x + fixed:
            self.scroll_to(x=x - fixed, animate=False)
        elif x + widths[index] > self.scroll_x + view:
            self.scroll_to(x=x + widths[index] - view, animate=False)


class ExportDialog(ModalScreen[str | None]):
    """Asks where to write the CSV; dismisses with the typed path, or None when cancelled."""

    DEFAULT_CSS = """
    ExportDialog { align: center middle; }
    ExportDialog > Vertical {
        width: 70; max-width: 95%; height: auto;
        border: round $accent; background: $surface; padding: 0 1;
    }
    ExportDialog .hint { color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, n_rows: int, default: str, project: Path):
        super().__init__()
        self.n_rows, self.default, self.project = n_rows, default, project

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Export {self.n_rows} shown row{'s' if self.n_rows != 1 else ''} to CSV:")
            yield Input(value=self.default, id="export-path")
            yield Label(f"relative to {self.project} · enter: write · escape: cancel", classes="hint")

    @on(Input.Submitted, "#export-path")
    def _submit(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class Computed(Message):
    """What the table is to show, computed in a worker (``generation``: the request it answers)."""

    def __init__(self, shown: Shown, generation: int) -> None:
        self.shown, self.generation = shown, generation
        super().__init__()


class ResultsPanel(OnChosenRun, Vertical):
    """Runs that trained at least one epoch, one row each (keyed by run id) — or, when some configuration has repeats,
    one row per configuration (keyed by its id) with the mean ± sd (n) of its repeats (``c`` switches) — with the
    hyper-parameters that differ between them and their metrics; a live filter, sorting, per-value means, marks and
    CSV export.

    The parent feeds it with ``update_runs(views)`` (on the UI thread) whenever runs change; rows are added, removed
    and updated in place, and the cursor, sort, filter and grouping are kept. Its keys (from tui.actions) act on the
    row highlighted here: e / d / r ask the app to edit, duplicate and retry that run's experiment (a configuration's:
    its first). Moving the cursor posts RunHighlighted, enter RunSelected (tui.messages).
    """

    DEFAULT_CSS = """
    ResultsPanel { height: 1fr; }
    ResultsPanel > #results-status { height: 1; width: 1fr; color: $text-muted; padding: 0 1; }
    ResultsPanel > #results-status.-error { color: $error; }
    ResultsPanel > #results-table { height: 1fr; }
    ResultsPanel > #results-groups { height: auto; max-height: 12; border-top: solid $primary; }
    """

    BINDINGS: ClassVar[list[BindingType]] = bindings("results")

    def __init__(self, project: Path, *, name: str | None = None, id: str | None = None, classes: str | None = None):
        super().__init__(name=name, id=id, classes=classes)
        self.project = Path(project)
        self.export_path = "results.csv"  # what the export dialog offers; relative to the project
        self.model = ResultsModel()
        self._lock = threading.Lock()  # the model: one thread at a time
        self._views: list = []
        self._conditions: list[Condition] = []
        self.filter_text = ""  # as typed; when it is bad, the last good filter stays applied
        self.filter_error: str | None = None
        self.sort_key: str | None = None
        self.sort_reverse = False
        self.group_key: str | None = None
        self.by_configuration: bool | None = None  # None: per configuration when some configuration has repeats
        self.marked: frozenset[str] = frozenset()
        self.class_columns = False  # a column per class of the multi-class runs (k)
        self.boundary_columns = False  # the end-of-run HD95 and NSD (h; per class too with k)
        self._flipped: set[str] = set()  # runs whose mark changed since the last computation
        self.shown = Shown()
        self._generation = 0
        self._pending = False  # a worker computes what to show
        self._status_text: str | None = None  # what the status line says
        self._group_columns_for: str | None = None
        self._groups: list[tuple] | None = None
        self._labels: dict[str, Text] = {}
        self._highlighted: str | None = None

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter: optimizer=adam val_dice>0.8", id="results-filter", compact=True)
        yield Static("", id="results-status")
        yield ResultsTable(id="results-table", cursor_type="row", zebra_stripes=True, fixed_columns=2, key_column="id")
        groups = DataTable(id="results-groups", show_cursor=False, zebra_stripes=True)
        groups.can_focus = False
        groups.display = False
        yield groups

    def on_mount(self) -> None:
        if self.filter_text:  # set before the panel was mounted
            self.query_one("#results-filter", Input).value = self.filter_text
        self._refresh()

    # ---- data in ---------------------------------------------------------------------------
    def update_runs(self, views: list) -> None:
        """Show these RunViews (those with at least one epoch); call on the UI thread. Views that are the same objects
        as in the last call are not computed again, and nothing is when every row stays the same (the selected run's
        new view with its curves read: each key moving through 10,000 runs did that)."""
        views = list(views)
        if self.is_mounted and not self._pending:
            with self._lock:
                same = self.model.same_rows(views)
            if same:
                self._views = views
                return
        self._views = views
        if self.is_mounted:
            self._refresh()

    def set_marked(self, marked: frozenset[str]) -> None:
        flipped, self.marked = marked ^ self.marked, marked
        if flipped:
            self._flipped |= flipped
            if self.is_mounted:
                self._refresh()

    @property
    def table(self) -> ResultsTable:
        return self.query_one("#results-table", ResultsTable)

    @property
    def varying(self) -> list[str]:
        """The hyper-parameters shown as columns."""
        return self.shown.varying

    @property
    def grouped(self) -> bool:
        """Rows are configurations (their repeats folded), not runs."""
        return self.shown.grouped

    @property
    def shown_ids(self) -> list[str]:
        """Keys of the rows shown, top to bottom (filter and sort applied): run ids, or configurations when grouped."""
        return list(self.shown.keys)

    def shown_rows(self) -> list[dict[str, Any]]:
        """The rows shown, top to bottom, with every export column (a configuration's: its folded row)."""
        return [self.shown.rows[k] for k in self.shown.keys]

    def runs_of(self, key: str) -> list[str]:
        """The runs of a row: a configuration's repeats, or the run itself."""
        return list(self.shown.members.get(key, [key]))

    # ---- filter / sort / group -------------------------------------------------------------
    def set_filter(self, text: str) -> None:
        """Apply a filter (and show it in the filter box); a bad one keeps the last good filter and shows its message."""
        if self.is_mounted:
            box = self.query_one("#results-filter", Input)
            if box.value != text:
                box.value = text  # its Changed message calls back here with the same text
        self.filter_text = text
        try:  # per-class keys name the runs' classes (any name until runs are shown)
            conditions = parse_filter(text, self.shown.classes if self.shown.total else None)
        except FilterError as exc:
            self.filter_error = str(exc)
        else:
            self.filter_error = None
            self._conditions = conditions
        if self.is_mounted:
            self._refresh()

    def sort_by(self, key: str | None, reverse: bool | None = None) -> None:
        """Sort by a column (None: the order runs were given in); ``reverse`` None means the column's
        natural first direction (descending for Dice, ascending otherwise)."""
        self.sort_key = None if key == "mark" else key
        self.sort_reverse = descending_first(key) if reverse is None else reverse
        if self.is_mounted:
            self._refresh()

    def toggle_sort(self, key: str) -> None:
        """Sort by ``key``; when already sorted by it, reverse the direction."""
        if self.sort_key == key:
            self.sort_by(key, not self.sort_reverse)
        else:
            self.sort_by(key)

    def set_group(self, key: str | None) -> None:
        self.group_key = key
        if self.is_mounted:
            self._refresh()

    def set_by_configuration(self, on: bool | None) -> None:
        """Rows per configuration (True), per run (False), or per configuration when there are repeats (None)."""
        self.by_configuration = on
        if self.is_mounted:
            self._refresh()

    def group_rows(self) -> list[tuple[Any, int, float, float | None]]:
        """``(value, n, mean best val dice, mean final val loss)`` of the rows shown, per group value."""
        return list(self.shown.groups) if self.group_key else []

    # ---- computing what to show --------------------------------------------------------------
    def set_class_columns(self, on: bool | None, boundary: bool | None = None) -> None:
        """Show (or hide) a column per class of the multi-class runs: each class's best val Dice and the worst's; and
        ``boundary`` the end-of-run val HD95 and NSD (per class too with the class columns). None: as they are."""
        self.class_columns = self.class_columns if on is None else on
        self.boundary_columns = self.boundary_columns if boundary is None else boundary
        if self.is_mounted:
            self._refresh()

    def _settings(self) -> tuple:
        return (list(self._conditions), self.sort_key, self.sort_reverse, self.by_configuration, self.group_key,
                self.marked, self.class_columns, self.boundary_columns)

    def _refresh(self) -> None:
        """Compute what to show: here for a few thousand runs, else in a worker (the table keeps what it shows)."""
        self._generation += 1
        flipped, self._flipped = self._flipped, set()
        if len(self._views) > IN_WORKER or self._pending:
            self._pending = True
            self._update_status()
            self._compute_in_worker(self._views, self._settings(), flipped, self._generation)
            return
        self._apply(self._compute(self._views, self._settings(), flipped))

    def _compute(self, views: list, settings: tuple, flipped: set[str]) -> Shown:
        with self._lock:
            m = self.model
            (m.conditions, m.sort_key, m.sort_reverse, m.grouped, m.group_key, m.marked, m.class_columns,
             m.boundary_columns) = settings
            m.set_views(views)
            m.mark_changed(flipped)
            return m.shown()

    @work(thread=True, exclusive=True, exit_on_error=False, group="results-compute",
          description="computing the results table")
    def _compute_in_worker(self, views: list, settings: tuple, flipped: set[str], generation: int) -> None:
        shown = self._compute(views, settings, flipped)
        self.post_message(Computed(shown, generation))

    def on_computed(self, msg: Computed) -> None:
        msg.stop()
        if msg.generation == self._generation:
            self._pending = False
            self._apply(msg.shown)

    def _apply(self, shown: Shown) -> None:
        if shown is self.shown:  # nothing changed (ResultsModel.shown): the table stays as it is
            self._update_status()
            return
        table = self.table
        keep_key = self._highlight_key()
        keep_column = self._current_column()
        columns_before = self.shown.columns
        before = self.shown.cells
        self.shown = shown
        if shown.columns != columns_before:
            self._labels.clear()
            table.reset_columns([(key, self._header(key, shown.columns)) for key in shown.columns],
                                [1 if key == "mark" else None for key in shown.columns])
        table.sync([(k, shown.cells[k]) for k in shown.keys], keep=keep_key if keep_key in shown.cells else None)
        anew = sum(shown.cells[k] is not before.get(k) for k in shown.keys) if len(shown.keys) >= FREEZE_ROWS else 0
        if anew >= FREEZE_ROWS:
            # the rows and cells of a large table drawn anew live on: frozen, full collections no longer walk them
            # (with 10,000 runs one took 150 ms, in the middle of the keys moving through the table); replaced ones
            # are freed by their reference counts as before. The young garbage goes first (frozen, it would stay).
            gc.collect(1)
            gc.freeze()
        col = shown.columns.index(keep_column) if keep_column in shown.columns and keep_column != "mark" else 1
        if table.cursor_column != col and table.row_count:
            table.move_cursor(column=col, animate=False)
        self._update_headers()
        self._sync_highlight()
        self._update_status()
        self._update_groups()

    # ---- actions ---------------------------------------------------------------------------
    def _current_column(self) -> str | None:
        columns = self.shown.columns
        if not columns:
            return None
        return columns[min(self.table.cursor_column, len(columns) - 1)]

    def action_sort(self) -> None:
        key = self._current_column()
        if key is not None:
            self.toggle_sort(key)

    def action_reverse_sort(self) -> None:
        if self.sort_key is not None:
            self.sort_by(self.sort_key, not self.sort_reverse)
        elif (key := self._current_column()) is not None:
            self.sort_by(key, not descending_first(key))

    def action_group(self) -> None:
        options = list(self.varying)
        if self.group_key in options:
            at = options.index(self.group_key) + 1
            self.set_group(options[at] if at < len(options) else None)
        else:
            self.set_group(options[0] if options and self.group_key is None else None)

    def action_configurations(self) -> None:
        self.set_by_configuration(not self.grouped)
        self.notify("one row per configuration: mean ± sd (n) over its repeats" if self.by_configuration
                    else "one row per run")

    def action_class_columns(self) -> None:
        if not self.shown.classes and not self.class_columns:
            self.notify("no multi-class runs (num_classes >= 3) here: a binary run's dice is its foreground's")
            return
        self.set_class_columns(not self.class_columns)
        names = ", ".join(self.shown.classes)
        self.notify(f"a column per class ({names}) and the worst's; — : no score" if self.class_columns
                    else "per-class columns hidden")

    def action_boundary_columns(self) -> None:
        self.set_class_columns(None, not self.boundary_columns)
        self.notify("val HD95 (px, lower is better) and NSD on each run's best weights (with k: per class); — : none"
                    if self.boundary_columns else "HD95 and NSD hidden")

    def action_mark_shown(self) -> None:
        """Mark every run of the rows shown (the filter applied); unmark them when all are marked already."""
        ids = [i for k in self.shown.keys for i in self.runs_of(k)]
        if ids:
            self.post_message(Mark(ids, on=not all(i in self.marked for i in ids)))

    def mark_highlighted(self) -> None:
        key = self._highlight_key()
        if key is None:
            self.notify("no run highlighted", severity="warning")
        else:
            self.post_message(Mark(self.runs_of(key)))

    def action_focus_filter(self) -> None:
        self.query_one("#results-filter", Input).focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#results-filter", Input)
        box.value = ""
        self.set_filter("")
        self.table.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "clear_filter":  # let escape go on to the app when there is nothing to clear
            boxes = self.query("#results-filter").results(Input)
            box = next(boxes, None)
            return box is not None and (bool(box.value) or box.has_focus)
        return True

    # the queue's actions that make sense on a result (edit, duplicate, retry: OnChosenRun, whose requests the app
    # performs), on the run highlighted here
    def _chosen(self) -> str | None:
        run_id = self.highlighted_id()
        if run_id is None:
            self.notify("no run highlighted", severity="warning")
        return run_id

    def action_export(self) -> None:
        n = len(self.shown.keys)

        def chosen(path: str | None) -> None:
            if path:
                self.export_path = path
                self.export_csv(path)

        self.app.push_screen(ExportDialog(n, self.export_path, self.project), chosen)

    def export_csv(self, path: str | Path) -> None:
        """Write the rows shown (filter and sort applied, every export column; configurations as `unettui export
        --by-configuration` writes them) to ``path`` (relative paths are under the project) in a worker; notify when
        done or on error."""
        target = Path(path).expanduser()
        if not target.is_absolute():
            target = self.project / target
        rows = self.shown_rows()
        text = to_csv(rows, configuration_columns(rows)) if self.grouped else to_csv(rows)
        self._write_csv(target, text, len(rows))

    @work(thread=True, exclusive=True, exit_on_error=False, group="results-export", description="writing the CSV")
    def _write_csv(self, target: Path, text: str, n: int) -> None:
        try:
            atomic_write_text(target, text)
        except OSError as exc:
            self.app.call_from_thread(self.notify, f"could not write {target}: {exc.strerror or exc}", severity="error")
            return
        self.app.call_from_thread(self.notify, f"wrote {n} row{'s' if n != 1 else ''} to {target}")

    # ---- events ----------------------------------------------------------------------------
    @on(Input.Changed, "#results-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.set_filter(event.value)

    @on(Input.Submitted, "#results-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.table.focus()

    @on(DataTable.HeaderSelected, "#results-table")
    def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        self.table.cursor_coordinate = Coordinate(self.table.cursor_row, event.column_index)
        self.toggle_sort(str(event.column_key.value))

    @on(DataTable.RowHighlighted, "#results-table")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._sync_highlight()
        self._update_headers()  # the current column may have moved
        self._update_status()  # (and with it, the reason of a cell without a score)

    @on(DataTable.RowSelected, "#results-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(RunSelected(self.runs_of(str(event.row_key.value))[0], self))

    @on(DataTable.HeaderSelected, "#results-groups")
    @on(DataTable.RowHighlighted, "#results-groups")
    def _quiet(self, event: Message) -> None:
        event.stop()

    # ---- drawing ---------------------------------------------------------------------------
    def _highlight_key(self) -> str | None:
        """The key of the row under the cursor (a run id, or a configuration when grouped)."""
        return self.table.cursor_key()

    def highlighted_id(self) -> str | None:
        """The run under the cursor (a configuration's first run when grouped; None: no row shown)."""
        key = self._highlight_key()
        return None if key is None else self.runs_of(key)[0]

    def _sync_highlight(self) -> None:
        run_id = self.highlighted_id()
        if run_id is not None and run_id != self._highlighted:
            self._highlighted = run_id
            self.post_message(RunHighlighted(run_id, self))

    def _header(self, key: str, columns: tuple[str, ...] | None = None) -> Text:
        name = column_label(key)
        if key == "mark":
            return Text(name)
        arrow = ARROWS[self.sort_reverse] if key == self.sort_key else NO_ARROW
        current = key == self._current_column() if (columns or self.shown.columns) else False
        return Text.assemble((name, "underline" if current else ""), arrow)

    def _update_headers(self) -> None:
        """Mark the sort column (▲ ascending, ▼ descending) and the current column (underlined)."""
        table = self.table
        labels = {key: self._header(key) for key in self.shown.columns}
        changed = False
        for key, label in labels.items():
            old = self._labels.get(key)
            if old is None or old.plain != label.plain or old.spans != label.spans:
                if ColumnKey(key) in table.columns:
                    table.columns[ColumnKey(key)].label = label
                    changed = True
        self._labels = labels
        if changed:
            table.notify_style_update()  # header cells are cached; this drops the caches
            table.refresh()

    def _update_status(self) -> None:
        status = self.query_one("#results-status", Static)
        shown = self.shown
        parts = [f"filter: {self.filter_error}"] if self.filter_error else []  # first: it must not be cut off
        what = "configurations" if shown.grouped else "runs"
        parts.append(f"{len(shown.keys)} of {shown.total} {what}")
        if shown.grouped:
            folds = " and folds; oof: pooled out-of-fold" if "oof_val_dice" in shown.columns else ""
            parts.append(f"mean ± sd (n) over repeats{folds}; c lists runs")
        elif self.model.has_repeats():
            parts.append("c: per configuration")
        if self.sort_key:
            parts.append(f"sorted by {column_label(self.sort_key)}{ARROWS[self.sort_reverse]}")
        if self.group_key:
            parts.append(f"grouped by {self.group_key}")
        n_marked = len(self.marked)
        if n_marked:
            parts.append(f"{n_marked} marked (5: compare)")
        if self._pending:
            parts.append("computing…")
        why = self.no_score_here()
        if why:
            parts.append(why)
        text = " · ".join(parts)
        if text != self._status_text:  # (one line as wide as the panel whatever it says: no layout)
            self._status_text = text
            status.update(Text(text), layout=False)
        status.set_class(bool(self.filter_error), "-error")

    def no_score_here(self) -> str | None:
        """Why the cell under the cursor has no score (results_model.no_score_text), or None."""
        key = self._highlight_key()
        return no_score_text(self.shown.rows.get(key) if key is not None else None, self._current_column())

    def _update_groups(self) -> None:
        groups_table = self.query_one("#results-groups", DataTable)
        groups_table.display = self.group_key is not None
        if self.group_key is None:
            self._groups = None
            return
        groups = self.group_rows()
        if groups == self._groups and self._group_columns_for == self.group_key:
            return
        self._groups = groups
        if self._group_columns_for != self.group_key:
            groups_table.clear(columns=True)
            for head in (self.group_key, "n", *(f"mean {label_of(k, short=True)}" for k in VIEWS["results-groups"])):
                groups_table.add_column(head, key=head)
            self._group_columns_for = self.group_key
        else:
            groups_table.clear()
        for value, n, *means in groups:
            groups_table.add_row(
                Text(fmt_value(value, missing="") or "(unset)"),
                Text(str(n), justify="right"),
                *(Text("" if m is None else f"{m:.4f}", justify="right") for m in means),
            )
