"""The edits of the queue the TUI offers (add, sweep, edit, duplicate, delete, move, retry), each on the experiment
id a widget asked about (tui.messages); the app handles the request and calls the ``Editor`` with what the edit
needs (the queue's defaults, a run's state), so nothing here knows the app. Files are written by core (the CLI's
writers) and a refusal becomes a notification, never a crash. Delete and retry name what they act on and ask
first."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.screen import Screen

from ..core.define.config import Config
from ..core.runs.status import State


def _set_only(values: dict[str, Any]) -> dict[str, Any]:
    """A new experiment writes only the keys that were filled in."""
    return {k: v for k, v in values.items() if v is not None}


@dataclass
class Editor:
    """The queue's edits on ``project``. What they do on screen goes through three callables: ``show`` a screen
    (a form, a question) with the callback of its result, ``say`` something (a notification: text, then
    ``severity`` and ``timeout`` keywords), and ``changed``: the project was written, read it again now."""

    project: Path
    show: Callable[[Screen, Callable[[Any], None]], Any]
    say: Callable[..., Any]
    changed: Callable[[], None]

    def _attempt(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run one edit; every refusal becomes a notification naming it, and the project is read again after."""
        from ..core.define.config import ConfigError
        from ..core.define.edit import EditError
        from ..core.define.queue import QueueError

        try:
            result = fn()
        except (EditError, ConfigError, QueueError, OSError, ValueError) as exc:
            self.say(f"{what}: {exc}", severity="error", timeout=10)
            return None
        self.changed()
        return result

    def add(self, defaults: Config) -> None:
        """The form of a new experiment (``defaults``: the queue's, shown as placeholders)."""
        from ..core.define import edit as core_edit
        from .screens.form import ExperimentForm

        added: list[str] = []

        def apply(result: dict) -> None:  # runs on Save; a refusal (ValueError) keeps the form open with its message
            added.append(core_edit.add_experiment(self.project, _set_only(result["values"]), result.get("id") or None))

        def done(result: dict | None) -> None:
            if result and added:
                self.say(f"added {added[-1]}")
                self.changed()

        self.show(ExperimentForm("Add an experiment", {}, None, defaults, apply=apply), done)

    def sweep(self) -> None:
        from ..core.define import edit as core_edit
        from .screens.form import SweepForm

        added: list[list[str]] = []

        def apply(result: dict) -> None:
            added.append(core_edit.add_sweep(self.project, result["grid"], result.get("id") or None,
                                             confirm_large=True))

        def done(result: dict | None) -> None:
            if result and added:
                self.say(f"added {len(added[-1])} experiments")
                self.changed()

        self.show(SweepForm(apply=apply), done)

    def edit(self, run_id: str, defaults: Config) -> None:
        """A form with ``run_id``'s own keys; Save rewrites its entry in experiments.toml (and its id when changed)."""
        from ..core.define import edit as core_edit
        from .screens.form import ExperimentForm

        values = self._attempt(f"edit {run_id}", lambda: core_edit.experiment_values(self.project, run_id))
        if values is None:
            return
        saved: list[str] = []

        def apply(result: dict) -> None:
            new_id = result.get("id") or None
            saved.append(core_edit.update_experiment(self.project, run_id, result["values"],
                                                     new_id if new_id != run_id else None))

        def done(result: dict | None) -> None:
            if result and saved:
                self.say(f"saved {saved[-1]}" + (f" (was {run_id})" if saved[-1] != run_id else ""))
                self.changed()

        self.show(ExperimentForm(f"Edit {run_id}", values, run_id, defaults, apply=apply), done)

    def duplicate(self, run_id: str) -> None:
        from ..core.define import edit as core_edit

        new = self._attempt(f"duplicate {run_id}", lambda: core_edit.duplicate(self.project, run_id))
        if new:
            self.say(f"added {new}, a copy of {run_id}")

    def delete(self, run_id: str) -> None:
        from ..core.define import edit as core_edit
        from .screens.form import ConfirmDialog

        def done(yes: bool | None) -> None:
            if yes:
                removed = self._attempt(f"delete {run_id}", lambda: core_edit.remove(self.project, [run_id]))
                if removed:
                    self.say(f"removed {', '.join(removed)} from the queue; runs/{run_id} stays")

        self.show(ConfirmDialog(f"Remove {run_id} from experiments.toml? Its run folder stays."), done)

    def move(self, run_id: str, delta: int) -> None:
        from ..core.define import edit as core_edit

        if self._attempt(f"move {run_id}", lambda: core_edit.move(self.project, run_id, delta)) is False:
            self.say(f"{run_id} is already {'first' if delta < 0 else 'last'}")

    def _retry(self, run_ids: list[str], question: str) -> None:
        from ..core.runs.retry import retry as retry_runs
        from .screens.form import ConfirmDialog

        def done(yes: bool | None) -> None:
            if yes:
                chosen = self._attempt(f"retry {', '.join(run_ids)}", lambda: retry_runs(self.project, run_ids))
                if chosen:
                    self.say(f"{', '.join(chosen)} will train again from scratch on the next runner pass")

        where = f"runs/{run_ids[0]}/attempts/" if len(run_ids) == 1 else "runs/<id>/attempts/"
        self.show(ConfirmDialog(f"{question} The current attempt moves to {where} (its log, metrics and "
                                "summary kept; its checkpoint and previews dropped)."), done)

    def retry(self, run_id: str, label: str | None = None) -> None:
        """Train ``run_id`` again from scratch, after asking (naming the run and, given its ``label``, its state)."""
        state = f" ({label})" if label else ""
        self._retry([run_id], f"Train {run_id}{state} again from scratch?")

    def retry_failed(self, views: Iterable[Any]) -> None:
        """Train every failed run of the queue among ``views`` (RunViews) again, after asking (naming them)."""
        failed = [v.id for v in views if v.state is State.FAILED and v.in_queue]
        if not failed:
            self.say("no failed runs")
            return
        names = ", ".join(failed[:8]) + (f" and {len(failed) - 8} more" if len(failed) > 8 else "")
        self._retry(failed, f"Train {len(failed)} failed run{'s' if len(failed) > 1 else ''} again from scratch: "
                            f"{names}?")
