"""The queue panel: every experiment in file order with its status, epoch progress and best val Dice; its keys
(add, edit, delete, retry, move, ...) act on the experiment selected here."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.binding import BindingType
from textual.widgets import DataTable

from ...core.show.styles import state_style
from ..actions import bindings
from ..data import RunView
from ..messages import (
    AddRequested,
    DeleteRequested,
    Mark,
    MoveRequested,
    RetryFailedRequested,
    RunHighlighted,
    SweepRequested,
)
from .chosen import OnChosenRun
from .keyed_table import KeyedTable
from .marks import mark_text

_SHARED: dict[tuple[str, str, str], Text] = {}


def shared_text(text: str, style: str = "", justify: str = "default") -> Text:
    """One Text for every cell that reads the same (the table only renders cells, never changes them): 10,000 rows
    of a large project need a few hundred of them, not 50,000."""
    key = (text, style, justify)
    cell = _SHARED.get(key)
    if cell is None:
        if len(_SHARED) >= 4096:
            _SHARED.clear()
        cell = _SHARED[key] = Text(text, style=style, justify=justify)  # type: ignore[arg-type]
    return cell


def status_text(v: RunView) -> Text:
    label = v.label
    if not v.in_queue:
        label += " (not in queue)"
    return shared_text(label, state_style(v.state))


def best_text(v: RunView) -> Text:
    best = v.best_val_dice
    if best is None:
        return shared_text("-", "dim", "right")
    return shared_text(f"{best:.4f}", "", "right")


class QueuePanel(OnChosenRun, KeyedTable):
    """The queue, keyed by experiment id: ``update_views`` adds, removes and updates rows in place (a new queue
    order is one sort, not a rebuild); moving the cursor posts RunHighlighted, space marks the selected experiment
    for the Compare tab, and the edit keys post their requests (tui.messages) for the app to do."""

    COLUMNS = ((" ", "mark"), ("id", "id"), ("state", "status"), ("best dice", "best"), ("attempt", "tries"))
    BINDINGS: ClassVar[list[BindingType]] = bindings("queue")

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, key_column="id", **kwargs)
        self._views: dict[str, RunView] = {}
        self.marked: frozenset[str] = frozenset()

    def on_mount(self) -> None:
        for label, key in self.COLUMNS:
            self.add_column(label, key=key, width=1 if key == "mark" else None)

    def _cells(self, v: RunView) -> tuple:
        return (mark_text(v.id in self.marked), Text(v.id), status_text(v), best_text(v),
                shared_text(str(v.attempt or "-"), "", "right"))

    def update_views(self, views: list[RunView], changed: set[str] | None = None, more: bool = False) -> None:
        """Rows follow ``views`` (queue order): the ``changed`` ids' cells are updated in place (every row's when None),
        new rows added, gone ones removed, and the order fixed when it moved; ``more``: the first read of a large
        project goes on (KeyedTable.sync)."""
        self._views = {v.id: v for v in views}
        if changed is not None and len(views) == len(self.keys) and [v.id for v in views] == self.keys:
            self.update_rows([(v.id, self._cells(v)) for v in views if v.id in changed])
            return
        known = self._want_cells
        self.sync([(v.id, self._cells(v) if changed is None or v.id in changed or v.id not in known
                    else known[v.id]) for v in views], changed=changed, more=more)

    def update_changed(self, views: list[RunView]) -> None:
        """These views changed (their rows exist): their cells are updated in place."""
        self._views.update((v.id, v) for v in views)
        self.update_rows([(v.id, self._cells(v)) for v in views])

    def has_row(self, run_id: str) -> bool:
        return run_id in self._want_cells

    def set_marked(self, marked: frozenset[str]) -> None:
        """Show which experiments are marked for the comparison."""
        flipped = marked ^ self.marked
        self.marked = marked
        self.update_rows([(k, self._cells(self._views[k])) for k in flipped if k in self._views])

    def selected_id(self) -> str | None:
        return self.cursor_key()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if event.row_key is not None and event.row_key.value is not None:
            self.post_message(RunHighlighted(event.row_key.value, self))

    # ---- actions (keys from actions.ACTIONS; edit, duplicate, retry: OnChosenRun): requests about the experiment
    # selected here, which the app performs (tui.edits)
    def _chosen(self) -> str | None:
        run_id = self.selected_id()
        if run_id is None:
            self.notify("no experiment selected", severity="warning")
        return run_id

    def action_add(self) -> None:
        self.post_message(AddRequested())

    def action_sweep(self) -> None:
        self.post_message(SweepRequested())

    def action_delete(self) -> None:
        if run_id := self._chosen():
            self.post_message(DeleteRequested(run_id))

    def action_move(self, delta: int) -> None:
        if run_id := self._chosen():
            self.post_message(MoveRequested(run_id, delta))

    def action_retry_failed(self) -> None:
        self.post_message(RetryFailedRequested())

    def action_mark(self) -> None:
        if run_id := self._chosen():
            self.post_message(Mark([run_id]))
