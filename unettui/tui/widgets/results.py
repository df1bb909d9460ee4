"""The results panel: runs with their varying hyper-parameters and metrics; filter, sort, group by and export to CSV."""

from __future__ import annotations

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

from ...core.runs.export import to_csv
from ...core.runs.store import atomic_write_text
from ...core.show.fmt import duration
from ...core.show.fmt import value as fmt_value
from .. import edits
from ..actions import bindings
from ..filtering import (
    Condition,
    FilterError,
    group_means,
    has_epochs,
    matches,
    parse_filter,
    row_of,
    sort_rows,
    varying_keys,
)

# (row key, header label) of the metric columns, after id, status and the varying hyper-parameters
METRIC_COLUMNS = (
    ("best_val_dice", "best dice"),
    ("best_epoch", "best ep"),
    ("final_val_dice", "final dice"),
    ("final_val_loss", "final loss"),
    ("epochs_done", "epochs"),
    ("seconds", "time"),
)
# higher is better: the first sort by these is descending
DESCENDING_FIRST = frozenset({"best_val_dice", "final_val_dice", "final_train_dice", "final_val_iou"})
STATE_STYLES = {"running": "yellow", "done": "green", "failed": "red", "interrupted": "magenta"}
ARROWS = {False: " ▲", True: " ▼"}
NO_ARROW = "  "  # same width as an arrow, so a sorted header never needs a wider column

Cell = tuple[str, str, bool]  # text, rich style, right-justified


def _metric(value: Any) -> str:
    return "" if value is None else f"{value:.4f}"


def _cells(row: dict[str, Any], columns: tuple[str, ...]) -> tuple[Cell, ...]:
    out: list[Cell] = []
    for col in columns:
        value = row.get(col)
        if col == "id":
            out.append((str(value), "bold", False))
        elif col == "status":
            out.append((str(value), STATE_STYLES.get(str(value), ""), False))
        elif col in ("best_val_dice", "final_val_dice", "final_val_loss"):
            out.append((_metric(value), "", True))
        elif col == "best_epoch":
            out.append(("" if value is None else str(value), "", True))
        elif col == "epochs_done":
            done, total = value or 0, row.get("epochs")
            out.append((f"{done}/{total}" if total else str(done), "", True))
        elif col == "seconds":
            out.append(("" if value is None else duration(value), "", True))
        else:
            out.append((fmt_value(value, missing=""), "", isinstance(value, (int, float)) and not isinstance(value, bool)))
    return tuple(out)


def _text(cell: Cell) -> Text:
    text, style, right = cell
    return Text(text, style=style, justify="right" if right else "left")


class ResultsTable(DataTable):
    """A row-cursor DataTable whose left/right keys pick a current column (the one `s` sorts by)
    and scroll it into view, instead of only scrolling; enter (named in the footer) opens the run in Preview."""

    BINDINGS: ClassVar[list[BindingType]] = bindings("results-table")

    def action_cursor_right(self) -> None:
        self._step_column(1)

    def action_cursor_left(self) -> None:
        self._step_column(-1)

    def _step_column(self, step: int) -> None:
        if not self.columns:
            return
        column = max(0, min(len(self.columns) - 1, self.cursor_column + step))
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


class ResultsPanel(Vertical):
    """Runs that trained at least one epoch, one row each (keyed by run id), with the hyper-parameters
    that differ between them and their metrics; a live filter, sorting, per-value means and CSV export.

    The parent feeds it with ``update_runs(views)`` (on the UI thread) whenever runs change; rows are
    added, removed and updated in place, and the cursor, sort, filter and grouping are kept. Its keys (from
    tui.actions) act on the run highlighted here: e / d / r edit, duplicate and retry that run's experiment.
    """

    DEFAULT_CSS = """
    ResultsPanel { height: 1fr; }
    ResultsPanel > #results-status { height: 1; color: $text-muted; padding: 0 1; }
    ResultsPanel > #results-status.-error { color: $error; }
    ResultsPanel > #results-table { height: 1fr; }
    ResultsPanel > #results-groups { height: auto; max-height: 12; border-top: solid $primary; }
    """

    BINDINGS: ClassVar[list[BindingType]] = bindings("results")

    class RunHighlighted(Message):
        """The cursor moved to another run's row."""

        def __init__(self, panel: ResultsPanel, run_id: str):
            self.panel, self.run_id = panel, run_id
            super().__init__()

        @property
        def control(self) -> ResultsPanel:
            return self.panel

    class RunSelected(Message):
        """Enter was pressed (or a row clicked twice) on a run's row."""

        def __init__(self, panel: ResultsPanel, run_id: str):
            self.panel, self.run_id = panel, run_id
            super().__init__()

        @property
        def control(self) -> ResultsPanel:
            return self.panel

    def __init__(self, project: Path, *, name: str | None = None, id: str | None = None, classes: str | None = None):
        super().__init__(name=name, id=id, classes=classes)
        self.project = Path(project)
        self.export_path = "results.csv"  # what the export dialog offers; relative to the project
        self._rows: dict[str, dict[str, Any]] = {}  # runs with >= 1 epoch, in the order given
        self._conditions: list[Condition] = []
        self.filter_text = ""  # as typed; when it is bad, the last good filter stays applied
        self.filter_error: str | None = None
        self.sort_key: str | None = None
        self.sort_reverse = False
        self.group_key: str | None = None
        self.varying: list[str] = []  # hyper-parameters shown as columns
        self._columns: tuple[str, ...] = ()
        self._cells: dict[str, tuple[Cell, ...]] = {}
        self._labels: dict[str, Text] = {}
        self._shown: list[str] = []
        self._groups: list[tuple] | None = None
        self._group_columns_for: str | None = None
        self._highlighted: str | None = None

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter: optimizer=adam val_dice>0.8", id="results-filter", compact=True)
        yield Static("", id="results-status")
        yield ResultsTable(id="results-table", cursor_type="row", zebra_stripes=True, fixed_columns=1)
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
        """Show these RunViews (those with at least one epoch); call on the UI thread."""
        self._rows = {v.id: row_of(v) for v in views if has_epochs(v)}
        if self.is_mounted:
            self._refresh()

    @property
    def table(self) -> ResultsTable:
        return self.query_one("#results-table", ResultsTable)

    @property
    def shown_ids(self) -> list[str]:
        """Ids of the rows shown, top to bottom (filter and sort applied)."""
        return list(self._shown)

    def shown_rows(self) -> list[dict[str, Any]]:
        """The rows shown, top to bottom, with every export column."""
        return [self._rows[i] for i in self._shown]

    # ---- filter / sort / group -------------------------------------------------------------
    def set_filter(self, text: str) -> None:
        """Apply a filter (and show it in the filter box); a bad one keeps the last good filter and shows its message."""
        if self.is_mounted:
            box = self.query_one("#results-filter", Input)
            if box.value != text:
                box.value = text  # its Changed message calls back here with the same text
        self.filter_text = text
        try:
            conditions = parse_filter(text)
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
        self.sort_key = key
        self.sort_reverse = (key in DESCENDING_FIRST) if reverse is None else reverse
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

    def group_rows(self) -> list[tuple[Any, int, float, float | None]]:
        """``(value, n, mean best val dice, mean final val loss)`` of the rows shown, per group value."""
        return group_means(self.shown_rows(), self.group_key) if self.group_key else []

    # ---- actions ---------------------------------------------------------------------------
    def _current_column(self) -> str | None:
        table = self.table
        if not self._columns:
            return None
        return self._columns[min(table.cursor_column, len(self._columns) - 1)]

    def action_sort(self) -> None:
        key = self._current_column()
        if key is not None:
            self.toggle_sort(key)

    def action_reverse_sort(self) -> None:
        if self.sort_key is not None:
            self.sort_by(self.sort_key, not self.sort_reverse)
        elif (key := self._current_column()) is not None:
            self.sort_by(key, key not in DESCENDING_FIRST)

    def action_group(self) -> None:
        options = list(self.varying)
        if self.group_key in options:
            at = options.index(self.group_key) + 1
            self.set_group(options[at] if at < len(options) else None)
        else:
            self.set_group(options[0] if options and self.group_key is None else None)

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

    # the queue's actions that make sense on a result: on the run highlighted here (none: nothing happens)
    def _chosen(self) -> str | None:
        run_id = self.highlighted_id()
        if run_id is None:
            self.notify("no run highlighted", severity="warning")
        return run_id

    def action_edit(self) -> None:
        if run_id := self._chosen():
            edits.edit(self.app, run_id)

    def action_duplicate(self) -> None:
        if run_id := self._chosen():
            edits.duplicate(self.app, run_id)

    def action_retry(self) -> None:
        if run_id := self._chosen():
            edits.retry(self.app, run_id)

    def action_export(self) -> None:
        n = len(self._shown)

        def chosen(path: str | None) -> None:
            if path:
                self.export_path = path
                self.export_csv(path)

        self.app.push_screen(ExportDialog(n, self.export_path, self.project), chosen)

    def export_csv(self, path: str | Path) -> None:
        """Write the rows shown (filter and sort applied, every export column) to ``path`` (relative
        paths are under the project) in a worker; notify when done or on error."""
        target = Path(path).expanduser()
        if not target.is_absolute():
            target = self.project / target
        rows = self.shown_rows()
        self._write_csv(target, to_csv(rows), len(rows))

    @work(thread=True, exclusive=True, exit_on_error=False, group="results-export")
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

    @on(DataTable.RowSelected, "#results-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.RunSelected(self, str(event.row_key.value)))

    @on(DataTable.HeaderSelected, "#results-groups")
    @on(DataTable.RowHighlighted, "#results-groups")
    def _quiet(self, event: Message) -> None:
        event.stop()

    # ---- drawing ---------------------------------------------------------------------------
    def highlighted_id(self) -> str | None:
        """The id of the run under the cursor (None: no row shown)."""
        table = self.table
        if table.row_count == 0:
            return None
        row_key, _ = table.coordinate_to_cell_key(Coordinate(min(table.cursor_row, table.row_count - 1), 0))
        return str(row_key.value)

    def _sync_highlight(self) -> None:
        run_id = self.highlighted_id()
        if run_id is not None and run_id != self._highlighted:
            self._highlighted = run_id
            self.post_message(self.RunHighlighted(self, run_id))

    def _refresh(self) -> None:
        rows = list(self._rows.values())
        self.varying = varying_keys(rows)
        columns = ("id", "status", *self.varying, *(key for key, _ in METRIC_COLUMNS))
        visible = [r for r in rows if matches(r, self._conditions)]
        if self.sort_key is not None:
            visible = sort_rows(visible, self.sort_key, self.sort_reverse)
        self._shown = [r["id"] for r in visible]

        table = self.table
        keep_run = self._highlighted
        keep_column = self._current_column()
        if columns != self._columns:
            # the set of varying hyper-parameters changed (runs with new settings streamed in): the
            # only time the table is rebuilt
            table.clear(columns=True)
            self._labels.clear()
            for key in columns:
                table.add_column(self._header(key), key=key)
            self._columns = columns
            self._cells = {}
            for row in visible:
                self._cells[row["id"]] = cells = _cells(row, columns)
                table.add_row(*map(_text, cells), key=row["id"])
        else:
            shown = set(self._shown)
            for run_id in [i for i in self._cells if i not in shown]:
                table.remove_row(run_id)
                del self._cells[run_id]
            for row in visible:
                run_id, cells = row["id"], _cells(row, columns)
                old = self._cells.get(run_id)
                if old is None:
                    table.add_row(*map(_text, cells), key=run_id)
                else:
                    for key, new, was in zip(columns, cells, old):
                        if new != was:
                            table.update_cell(run_id, key, _text(new), update_width=True)
                self._cells[run_id] = cells
        self._order_table()
        self._restore_cursor(keep_run, keep_column)
        self._update_headers()
        self._sync_highlight()
        self._update_status()
        self._update_groups()

    def _order_table(self) -> None:
        table = self.table
        if [str(r.key.value) for r in table.ordered_rows] != self._shown:
            rank = {run_id: i for i, run_id in enumerate(self._shown)}
            table.sort("id", key=lambda cell: rank[cell.plain])

    def _restore_cursor(self, run_id: str | None, column: str | None) -> None:
        """Keep the cursor on the same run and column after rows moved or columns changed."""
        table = self.table
        if table.row_count == 0:
            return
        row = self._shown.index(run_id) if run_id in self._shown else min(table.cursor_row, table.row_count - 1)
        col = self._columns.index(column) if column in self._columns else 0
        if Coordinate(row, col) != table.cursor_coordinate:
            table.move_cursor(row=row, column=col)

    def _header(self, key: str) -> Text:
        name = dict(METRIC_COLUMNS).get(key, key)
        arrow = ARROWS[self.sort_reverse] if key == self.sort_key else NO_ARROW
        current = key == self._current_column() if self._columns else False
        return Text.assemble((name, "underline" if current else ""), arrow)

    def _update_headers(self) -> None:
        """Mark the sort column (▲ ascending, ▼ descending) and the current column (underlined)."""
        table = self.table
        labels = {key: self._header(key) for key in self._columns}
        changed = False
        for key, label in labels.items():
            old = self._labels.get(key)
            if old is None or old.plain != label.plain or old.spans != label.spans:
                table.columns[ColumnKey(key)].label = label
                changed = True
        self._labels = labels
        if changed:
            table.notify_style_update()  # header cells are cached; this drops the caches
            table.refresh()

    def _update_status(self) -> None:
        status = self.query_one("#results-status", Static)
        parts = [f"filter: {self.filter_error}"] if self.filter_error else []  # first: it must not be cut off
        parts.append(f"{len(self._shown)} of {len(self._rows)} runs")
        if self.sort_key:
            parts.append(f"sorted by {dict(METRIC_COLUMNS).get(self.sort_key, self.sort_key)}{ARROWS[self.sort_reverse]}")
        if self.group_key:
            parts.append(f"grouped by {self.group_key}")
        status.update(Text(" · ".join(parts)))
        status.set_class(bool(self.filter_error), "-error")

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
            for label in (self.group_key, "n", "mean best dice", "mean final loss"):
                groups_table.add_column(label, key=label)
            self._group_columns_for = self.group_key
        else:
            groups_table.clear()
        for value, n, dice, loss in groups:
            groups_table.add_row(
                Text(fmt_value(value, missing="") or "(unset)"),
                Text(str(n), justify="right"),
                Text(_metric(dice), justify="right"),
                Text(_metric(loss), justify="right"),
            )
