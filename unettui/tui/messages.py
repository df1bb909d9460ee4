"""The messages widgets post upward: a run highlighted or chosen, runs marked for the comparison, and the edits of
experiments.toml they ask for. A widget only asks ("edit this run"); the app handles the request (tui.edits does
the edit), so no widget calls into the app.

Messages a widget sends to itself from its own worker (a preview loaded, a comparison drawn, results computed) stay
in that widget's module: nobody else handles them.
"""

from __future__ import annotations

from textual.message import Message
from textual.widget import Widget

# ---- runs: which one is shown, which ones are compared -------------------------------------------------------------


class RunMessage(Message):
    """A run named by the widget ``source`` (its ``control``, so ``@on(..., "#results-panel")`` can pick one)."""

    def __init__(self, run_id: str, source: Widget) -> None:
        self.run_id, self.source = run_id, source
        super().__init__()

    @property
    def control(self) -> Widget:
        return self.source


class RunHighlighted(RunMessage):
    """The cursor of ``source`` moved to the run ``run_id``: the live panel and the preview show it."""


class RunSelected(RunMessage):
    """Enter (or a second click) on the run ``run_id`` in ``source``: the Preview tab opens on it."""


class Mark(Message):
    """Mark ``run_ids`` for the Compare tab (``on`` None: toggle — marked when any of them is not yet, else
    unmarked)."""

    def __init__(self, run_ids: list[str], on: bool | None = None) -> None:
        self.run_ids, self.on = list(run_ids), on
        super().__init__()


# ---- edits of experiments.toml: asked for here, done by the app through tui.edits ----------------------------------


class AddRequested(Message):
    """Add an experiment (the form)."""


class SweepRequested(Message):
    """Add a sweep (the form)."""


class RetryFailedRequested(Message):
    """Train every failed run of the queue again (after asking)."""


class RunRequest(Message):
    """An edit of the experiment ``run_id``."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__()


class EditRequested(RunRequest):
    """Edit the experiment in the form."""


class DuplicateRequested(RunRequest):
    """Add a copy of the experiment."""


class DeleteRequested(RunRequest):
    """Remove the experiment from experiments.toml (after asking; its run folder stays)."""


class RetryRequested(RunRequest):
    """Train the experiment again from scratch (after asking)."""


class MoveRequested(RunRequest):
    """Move the experiment ``delta`` entries in the file (-1: up)."""

    def __init__(self, run_id: str, delta: int) -> None:
        self.delta = delta
        super().__init__(run_id)
