"""The queue panel: every experiment in file order with its status, epoch progress and best val Dice; its keys
(add, edit, delete, retry, move, ...) act on the experiment selected here."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.binding import BindingType
from textual.message import Message
from textual.widgets import DataTable

from .. import edits
from ..actions import bindings
from ..data import RunView

STATE_STYLE = {
    "pending": "dim",
    "running": "bold yellow",
    "done": "green",
    "pruned": "dim green",
    "failed": "bold red",
    "interrupted": "magenta",
    "invalid": "red",
    "changed": "yellow",
    "damaged": "bold red",
}


def status_text(v: RunView) -> Text:
    label = v.label
    if not v.in_queue:
        label += " (not in queue)"
    return Text(label, style=STATE_STYLE.get(v.state.value, ""))


def best_text(v: RunView) -> Text:
    best = v.best_val_dice
    if best is None:
        return Text("-", style="dim", justify="right")
    return Text(f"{best:.4f}", justify="right")


class QueuePanel(DataTable):
    """A DataTable keyed by experiment id; ``update_views`` adds, removes and updates rows in place."""

    COLUMNS = (("id", "id"), ("state", "status"), ("best dice", "best"), ("attempt", "tries"))
    BINDINGS: ClassVar[list[BindingType]] = bindings("queue")

    class Selected(Message):
        """The cursor moved to an experiment."""

        def __init__(self, run_id: str | None) -> None:
            self.run_id = run_id
            super().__init__()

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._order: list[str] = []

    def on_mount(self) -> None:
        for label, key in self.COLUMNS:
            self.add_column(label, key=key)

    def _cells(self, v: RunView) -> tuple:
        return (Text(v.id), status_text(v), best_text(v), Text(str(v.attempt or "-"), justify="right"))

    def update_views(self, views: list[RunView], changed: set[str] | None = None) -> None:
        """Rows follow ``views`` (queue order); existing rows are updated cell by cell (only the ``changed``
        ids when given)."""
        selected = self.selected_id()
        order = [v.id for v in views]
        if order != self._order:  # the queue changed (added, removed, moved): rebuild rows, keep the cursor
            self.clear()
            for v in views:
                self.add_row(*self._cells(v), key=v.id)
            self._order = order
            if selected in order:
                self.move_cursor(row=order.index(selected))
            return
        for v in views:
            if changed is not None and v.id not in changed:
                continue
            for (_, key), cell in zip(self.COLUMNS, self._cells(v)):
                if str(self.get_cell(v.id, key)) != str(cell) or key == "status":
                    self.update_cell(v.id, key, cell, update_width=True)

    def selected_id(self) -> str | None:
        if not self._order or self.cursor_row is None or not (0 <= self.cursor_row < len(self._order)):
            return None
        return self.coordinate_to_cell_key((self.cursor_row, 0)).row_key.value

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self.post_message(self.Selected(event.row_key.value if event.row_key else None))

    # ---- actions (keys from actions.ACTIONS): on the experiment selected here ------------------------
    def _chosen(self) -> str | None:
        run_id = self.selected_id()
        if run_id is None:
            self.notify("no experiment selected", severity="warning")
        return run_id

    def action_add(self) -> None:
        edits.add(self.app)

    def action_sweep(self) -> None:
        edits.sweep(self.app)

    def action_edit(self) -> None:
        if run_id := self._chosen():
            edits.edit(self.app, run_id)

    def action_duplicate(self) -> None:
        if run_id := self._chosen():
            edits.duplicate(self.app, run_id)

    def action_delete(self) -> None:
        if run_id := self._chosen():
            edits.delete(self.app, run_id)

    def action_move(self, delta: int) -> None:
        if run_id := self._chosen():
            edits.move(self.app, run_id, delta)

    def action_retry(self) -> None:
        if run_id := self._chosen():
            edits.retry(self.app, run_id)

    def action_retry_failed(self) -> None:
        edits.retry_failed(self.app)
