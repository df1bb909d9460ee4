"""The queue panel: every experiment in file order with its status, epoch progress and best val Dice."""

from __future__ import annotations

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

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
