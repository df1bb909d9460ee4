"""The edits of the queue the TUI offers (add, sweep, edit, duplicate, delete, move, retry), each on the experiment
id the widget that owns the key names; files are written by core (the CLI's writers) and a refusal becomes a
notification, never a crash. Delete and retry name what they act on and ask first."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..core.runs.status import State

if TYPE_CHECKING:
    from .app import UnettuiApp


class OnChosenRun:
    """The edits a widget offers on the one experiment it names (``_chosen``: the selected or highlighted one, or None
    after telling the user there is none); mixed into the Queue and Results widgets."""

    app: UnettuiApp

    def _chosen(self) -> str | None:
        raise NotImplementedError

    def action_edit(self) -> None:
        if run_id := self._chosen():
            edit(self.app, run_id)

    def action_duplicate(self) -> None:
        if run_id := self._chosen():
            duplicate(self.app, run_id)

    def action_retry(self) -> None:
        if run_id := self._chosen():
            retry(self.app, run_id)


def _attempt(app: UnettuiApp, what: str, fn: Callable[[], Any]) -> Any:
    """Run one edit; every refusal becomes a notification naming it, and the project is read again after."""
    from ..core.define.config import ConfigError
    from ..core.define.edit import EditError
    from ..core.define.queue import QueueError

    try:
        result = fn()
    except (EditError, ConfigError, QueueError, OSError, ValueError) as exc:
        app.notify(f"{what}: {exc}", severity="error", timeout=10)
        return None
    app.refresh_now()
    return result


def _defaults(app: UnettuiApp):
    from ..core.define.config import DEFAULTS

    q = app.monitor.queue
    return q.defaults if q is not None else DEFAULTS


def _set_only(values: dict[str, Any]) -> dict[str, Any]:
    """A new experiment writes only the keys that were filled in."""
    return {k: v for k, v in values.items() if v is not None}


def add(app: UnettuiApp) -> None:
    from ..core.define import edit as core_edit
    from .screens.form import ExperimentForm

    added: list[str] = []

    def apply(result: dict) -> None:  # runs on Save; a refusal (ValueError) keeps the form open with its message
        added.append(core_edit.add_experiment(app.project, _set_only(result["values"]), result.get("id") or None))

    def done(result: dict | None) -> None:
        if result and added:
            app.notify(f"added {added[-1]}")
            app.refresh_now()

    app.push_screen(ExperimentForm("Add an experiment", {}, None, _defaults(app), apply=apply), done)


def sweep(app: UnettuiApp) -> None:
    from ..core.define import edit as core_edit
    from .screens.form import SweepForm

    added: list[list[str]] = []

    def apply(result: dict) -> None:
        added.append(core_edit.add_sweep(app.project, result["grid"], result.get("id") or None, confirm_large=True))

    def done(result: dict | None) -> None:
        if result and added:
            app.notify(f"added {len(added[-1])} experiments")
            app.refresh_now()

    app.push_screen(SweepForm(apply=apply), done)


def edit(app: UnettuiApp, run_id: str) -> None:
    """A form with ``run_id``'s own keys; Save rewrites its entry in experiments.toml (and its id when changed)."""
    from ..core.define import edit as core_edit
    from .screens.form import ExperimentForm

    values = _attempt(app, f"edit {run_id}", lambda: core_edit.experiment_values(app.project, run_id))
    if values is None:
        return
    saved: list[str] = []

    def apply(result: dict) -> None:
        new_id = result.get("id") or None
        saved.append(core_edit.update_experiment(app.project, run_id, result["values"],
                                            new_id if new_id != run_id else None))

    def done(result: dict | None) -> None:
        if result and saved:
            app.notify(f"saved {saved[-1]}" + (f" (was {run_id})" if saved[-1] != run_id else ""))
            app.refresh_now()

    app.push_screen(ExperimentForm(f"Edit {run_id}", values, run_id, _defaults(app), apply=apply), done)


def duplicate(app: UnettuiApp, run_id: str) -> None:
    from ..core.define import edit as core_edit

    new = _attempt(app, f"duplicate {run_id}", lambda: core_edit.duplicate(app.project, run_id))
    if new:
        app.notify(f"added {new}, a copy of {run_id}")


def delete(app: UnettuiApp, run_id: str) -> None:
    from ..core.define import edit as core_edit
    from .screens.form import ConfirmDialog

    def done(yes: bool | None) -> None:
        if yes:
            removed = _attempt(app, f"delete {run_id}", lambda: core_edit.remove(app.project, [run_id]))
            if removed:
                app.notify(f"removed {', '.join(removed)} from the queue; runs/{run_id} stays")

    app.push_screen(ConfirmDialog(f"Remove {run_id} from experiments.toml? Its run folder stays."), done)


def move(app: UnettuiApp, run_id: str, delta: int) -> None:
    from ..core.define import edit as core_edit

    if _attempt(app, f"move {run_id}", lambda: core_edit.move(app.project, run_id, delta)) is False:
        app.notify(f"{run_id} is already {'first' if delta < 0 else 'last'}")


def _retry(app: UnettuiApp, run_ids: list[str], question: str) -> None:
    from ..core.runs.retry import retry as retry_runs
    from .screens.form import ConfirmDialog

    def done(yes: bool | None) -> None:
        if yes:
            chosen = _attempt(app, f"retry {', '.join(run_ids)}", lambda: retry_runs(app.project, run_ids))
            if chosen:
                app.notify(f"{', '.join(chosen)} will train again from scratch on the next runner pass")

    where = f"runs/{run_ids[0]}/attempts/" if len(run_ids) == 1 else "runs/<id>/attempts/"
    app.push_screen(ConfirmDialog(f"{question} The current attempt moves to {where} (its log, metrics and "
                                  "summary kept; its checkpoint and previews dropped)."), done)


def retry(app: UnettuiApp, run_id: str) -> None:
    """Train ``run_id`` again from scratch, after asking (naming the run and its state)."""
    view = app.views.get(run_id)
    state = f" ({view.label})" if view is not None else ""
    _retry(app, [run_id], f"Train {run_id}{state} again from scratch?")


def retry_failed(app: UnettuiApp) -> None:
    """Train every failed run of the queue again, after asking (naming them)."""
    failed = [v.id for v in app.views.values() if v.state is State.FAILED and v.in_queue]
    if not failed:
        app.notify("no failed runs")
        return
    names = ", ".join(failed[:8]) + (f" and {len(failed) - 8} more" if len(failed) > 8 else "")
    _retry(app, failed, f"Train {len(failed)} failed run{'s' if len(failed) > 1 else ''} again from scratch: {names}?")
