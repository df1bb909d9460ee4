"""The edits a table offers on the one experiment it names (edit, duplicate, retry), as requests it posts
(tui.messages); mixed into the Queue and Results widgets, which say which run is chosen."""

from __future__ import annotations

from collections.abc import Callable

from textual.message import Message

from ..messages import DuplicateRequested, EditRequested, RetryRequested


class OnChosenRun:
    """Actions on ``_chosen()``: the selected or highlighted run, or None after telling the user there is none."""

    post_message: Callable[[Message], bool]  # (the widget's: an annotation only, so the widget's own is used)

    def _chosen(self) -> str | None:
        raise NotImplementedError

    def action_edit(self) -> None:
        if run_id := self._chosen():
            self.post_message(EditRequested(run_id))

    def action_duplicate(self) -> None:
        if run_id := self._chosen():
            self.post_message(DuplicateRequested(run_id))

    def action_retry(self) -> None:
        if run_id := self._chosen():
            self.post_message(RetryRequested(run_id))
