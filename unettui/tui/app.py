"""The unettui TUI: queue, runner control, live curves, results and mask previews over one project folder."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Callable

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Footer, Header, TabbedContent, TabPane, Tabs

from .data import STUDIES_CHANGED, ProjectMonitor, RunView
from .runner_control import RunnerControl
from .screens.dialogs import HelpScreen, QuitDialog
from .widgets.live import LivePanel
from .widgets.preview import PreviewPanel
from .widgets.queue import QueuePanel
from .widgets.results import ResultsPanel
from .widgets.study import StudyPanel


class ProjectUpdated(Message):
    """A poll of the project found changes (sent from the polling thread)."""

    def __init__(self, views: list[RunView], changed: set[str], queue_error: str | None,
                 studies: list[Any] | None = None, study_ids: frozenset[str] = frozenset(),
                 study_problems: list[str] | None = None) -> None:
        self.views, self.changed, self.queue_error = views, changed, queue_error
        self.studies, self.study_ids, self.study_problems = studies or [], study_ids, study_problems or []
        super().__init__()


class PollFailed(Message):
    """Reading the project failed in the poll worker (it goes on polling)."""

    def __init__(self, text: str) -> None:
        self.text = text
        super().__init__()


class UnettuiCommands(Provider):
    """Command-palette entries for the app's actions."""

    def _commands(self) -> list[tuple[str, str, Callable[[], Any]]]:
        app: UnettuiApp = self.app  # type: ignore[assignment]
        return [
            ("Start or stop the runner", "train the queue in a separate process (R)", app.action_toggle_runner),
            ("Add an experiment", "a form for every key (a)", app.action_add),
            ("Add a sweep", "a grid of experiments (w)", app.action_sweep),
            ("Edit the selected experiment", "(e)", app.action_edit),
            ("Duplicate the selected experiment", "(d)", app.action_duplicate),
            ("Delete the selected experiment", "(x)", app.action_delete),
            ("Retry the selected run", "train it again from scratch (r)", app.action_retry),
            ("Retry every failed run", "", app.action_retry_failed),
            ("Show the queue", "(1)", partial(app.action_tab, "queue")),
            ("Show the results", "(2)", partial(app.action_tab, "results")),
            ("Show the mask preview", "(3)", partial(app.action_tab, "preview")),
            ("Show the studies", "stages, their progress and winners (4)", partial(app.action_tab, "studies")),
            ("Export the results shown to CSV", "(x in Results)", app.action_export),
            ("Help: every key", "(?)", app.action_help),
        ]

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)


class UnettuiApp(App):
    """A thin face: it edits experiments.toml through core.edit, starts the runner as a process and
    observes runs/ exactly as it would observe a runner started by someone else."""

    CSS_PATH = "app.tcss"
    TITLE = "unettui"
    COMMANDS = App.COMMANDS | {UnettuiCommands}
    BINDINGS = [
        Binding("q", "quit", "quit"),
        Binding("question_mark", "help", "help"),
        Binding("1", "tab('queue')", "queue", show=False),
        Binding("2", "tab('results')", "results", show=False),
        Binding("3", "tab('preview')", "preview", show=False),
        Binding("4", "tab('studies')", "studies", show=False),
        Binding("R", "toggle_runner", "runner"),
        Binding("plus", "workers(1)", "+worker", show=False),
        Binding("minus", "workers(-1)", "-worker", show=False),
        Binding("a", "add", "add"),
        Binding("e", "edit", "edit"),
        Binding("d", "duplicate", "dup", show=False),
        Binding("x,delete", "delete", "delete"),
        Binding("r", "retry", "retry"),
        Binding("w", "sweep", "sweep", show=False),
        Binding("K", "move(-1)", "up", show=False),
        Binding("J", "move(1)", "down", show=False),
    ]

    def __init__(self, project: Path, start_runner: bool = False, workers: int = 1, poll_interval: float = 1.0):
        super().__init__()
        self.project = Path(project).resolve()
        self.monitor = ProjectMonitor(self.project)
        self.runner = RunnerControl(self.project)
        self.start_runner = start_runner
        self.n_workers = workers
        self.poll_interval = poll_interval
        self.views: dict[str, RunView] = {}
        self.selected: str | None = None
        self._last_queue_error: str | None = None
        self._results_dirty = False
        self._studies_dirty = False
        self._study_msg: ProjectUpdated | None = None
        self._reported_exit: int | None = None
        self._last_poll_error: str | None = None
        self.sub_title = self.project.name

    # ---- layout --------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="queue"):
            with TabPane("Queue", id="queue"):
                with Horizontal(id="queue-split"):
                    yield QueuePanel(id="queue-panel")
                    yield LivePanel(id="live-panel")
            with TabPane("Results", id="results"):
                yield ResultsPanel(self.project, id="results-panel")
            with TabPane("Preview", id="preview"):
                yield PreviewPanel(self.project, id="preview-panel")
            with TabPane("Studies", id="studies"):
                yield StudyPanel(id="study-panel")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(QueuePanel).focus()
        self.poll()
        self.set_interval(self.poll_interval, self.poll)
        if self.start_runner:
            self.action_toggle_runner()

    # ---- observing the project ------------------------------------------------------
    @work(thread=True, exclusive=True, group="poll", exit_on_error=False)
    def poll(self) -> None:
        try:
            changed = self.monitor.poll()
        except Exception as exc:  # noqa: BLE001 - say so, keep polling: a later poll may read it whole
            self.post_message(PollFailed(f"reading {self.project.name} failed: {type(exc).__name__}: {exc}"))
            return
        mon = self.monitor
        self.post_message(ProjectUpdated(mon.views(), changed, mon.queue_error, mon.studies, mon.study_run_ids,
                                         mon.study_problems))

    def on_poll_failed(self, msg: "PollFailed") -> None:
        if msg.text != self._last_poll_error:
            self._last_poll_error = msg.text
            self.notify(f"{msg.text} (showing what was last read; retrying)", severity="error", timeout=10)

    def on_project_updated(self, msg: ProjectUpdated) -> None:
        self._last_poll_error = None
        self.views = {v.id: v for v in msg.views}
        if msg.changed:
            self.query_one(QueuePanel).update_views(msg.views, msg.changed)
            # the results table recomputes every row: do it when it is on screen, else when it is shown
            self._results_dirty = True
            if self.query_one(TabbedContent).active == "results":
                self._update_results()
            if self.selected is None and msg.views:
                self._select(msg.views[0].id)
            elif self.selected in msg.changed:
                self._select(self.selected)
            # the studies panel: when their status was recomputed, or a study run moved (its epoch shows)
            if STUDIES_CHANGED in msg.changed or not msg.changed.isdisjoint(msg.study_ids):
                self._study_msg, self._studies_dirty = msg, True
                if self.query_one(TabbedContent).active == "studies":
                    self._update_studies()
        if msg.queue_error and msg.queue_error != self._last_queue_error:
            self.notify(f"{msg.queue_error} (showing the last good queue)", severity="error", timeout=10)
        self._last_queue_error = msg.queue_error
        self.sub_title = f"{self.project.name} · {self.runner.describe(msg.views).text}"
        self._report_runner_exit()

    def _report_runner_exit(self) -> None:
        """Tell once when the runner started here ends: done, some runs failed, or it crashed."""
        code = self.runner.exit_code()
        if code is None or self.runner.proc is None or self._reported_exit == self.runner.proc.pid:
            return
        self._reported_exit = self.runner.proc.pid
        if code == 0:
            self.notify("runner finished: the queue is done")
        elif code == 1:
            self.notify("runner finished; some experiments failed or were invalid (see the queue)", severity="warning")
        elif code in (130, -15, 143):
            self.notify("runner stopped; interrupted runs resume on the next start")
        else:
            self.notify(f"runner crashed (exit {code}); its output is in {self.runner.log_path}",
                        severity="error", timeout=15)

    def _update_results(self) -> None:
        if self._results_dirty:
            self._results_dirty = False
            self.query_one(ResultsPanel).update_runs(list(self.views.values()))

    def _update_studies(self) -> None:
        if self._studies_dirty and self._study_msg is not None:
            self._studies_dirty = False
            msg = self._study_msg
            self.query_one(StudyPanel).update_studies(msg.studies, self.views, msg.study_problems, msg.queue_error)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "results":
            self._update_results()
        elif event.pane.id == "studies":
            self._update_studies()

    def _select(self, run_id: str | None) -> None:
        self.selected = run_id
        self.query_one(LivePanel).show_run(self.views.get(run_id) if run_id else None)
        self.query_one(PreviewPanel).show_run(run_id)

    def on_queue_panel_selected(self, msg: QueuePanel.Selected) -> None:
        if msg.run_id and msg.run_id != self.selected:
            self._select(msg.run_id)

    def on_results_panel_run_highlighted(self, msg: ResultsPanel.RunHighlighted) -> None:
        if msg.run_id and msg.run_id != self.selected:
            self._select(msg.run_id)

    def on_study_panel_run_highlighted(self, msg: StudyPanel.RunHighlighted) -> None:
        if msg.run_id and msg.run_id != self.selected:
            self._select(msg.run_id)

    def on_study_panel_run_selected(self, msg: StudyPanel.RunSelected) -> None:
        if msg.run_id != self.selected:
            self._select(msg.run_id)
        self.action_tab("preview")

    def refresh_now(self) -> None:
        self.poll()

    # ---- actions: navigation, help, quit -----------------------------------------------
    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        target = {"queue": "#queue-panel", "results": "#results-table", "preview": "#preview-panel",
                  "studies": "#study-stages"}[tab]
        if tab == "studies":
            self._update_studies()  # now, so the focus goes to what it shows
        widget = self.query_one(target)
        if not widget.display:  # no study to show: the tabs keep the focus, not a hidden table
            widget = self.query_one(TabbedContent).query_one(Tabs)
        widget.focus()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        if not self.runner.running():
            self.exit()
            return

        def chosen(what: str | None) -> None:
            if what == "stop":
                self.runner.stop(wait=2.0)
                self.exit()
            elif what == "leave":
                self.exit(message=f"the runner goes on in the background (pid {self.runner.proc.pid}); "
                                  f"its log: {self.runner.log_path}")

        self.push_screen(QuitDialog(), chosen)

    # ---- actions: the runner -------------------------------------------------------------
    def action_toggle_runner(self) -> None:
        if self.runner.running():
            self.runner.stop()
            self.notify("runner asked to stop after the current batch; the run stays resumable")
        else:
            busy = [v for v in self.views.values() if v.state == "running"]
            pid = self.runner.start(self.n_workers)
            extra = f" (another runner is working on {busy[0].id}; they share the queue)" if busy else ""
            self.notify(f"runner started, pid {pid}, {self.n_workers} worker(s){extra}")
        self.sub_title = f"{self.project.name} · {self.runner.describe(list(self.views.values())).text}"

    def action_workers(self, delta: int) -> None:
        self.n_workers = max(1, min(16, self.n_workers + delta))
        self.notify(f"{self.n_workers} worker(s) for the next runner start")

    # ---- actions: editing the queue ------------------------------------------------------
    def _selected_in_queue(self) -> str | None:
        run_id = self.query_one(QueuePanel).selected_id()
        if run_id is None:
            self.notify("no experiment selected", severity="warning")
        return run_id

    def _edit(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run one edit of experiments.toml; every refusal becomes a notification, never a crash."""
        from ..core.define.config import ConfigError
        from ..core.define.edit import EditError
        from ..core.define.queue import QueueError

        try:
            result = fn()
        except (EditError, ConfigError, QueueError, OSError, ValueError) as exc:
            self.notify(f"{what}: {exc}", severity="error", timeout=10)
            return None
        self.refresh_now()
        return result

    def _defaults(self):
        from ..core.define.config import DEFAULTS

        q = self.monitor.queue
        return q.defaults if q is not None else DEFAULTS

    def action_add(self) -> None:
        from ..core.define import edit
        from .screens.form import ExperimentForm

        added: list[str] = []

        def apply(result: dict) -> None:  # runs on Save; a refusal (ValueError) keeps the form open with its message
            added.append(edit.add_experiment(self.project, _set_only(result["values"]), result.get("id") or None))

        def done(result: dict | None) -> None:
            if result and added:
                self.notify(f"added {added[-1]}")
                self.refresh_now()

        self.push_screen(ExperimentForm("Add an experiment", {}, None, self._defaults(), apply=apply), done)

    def action_edit(self) -> None:
        from ..core.define import edit
        from .screens.form import ExperimentForm

        run_id = self._selected_in_queue()
        if run_id is None:
            return
        values = self._edit("edit", lambda: edit.experiment_values(self.project, run_id))
        if values is None:
            return
        saved: list[str] = []

        def apply(result: dict) -> None:
            new_id = result.get("id") or None
            saved.append(edit.update_experiment(self.project, run_id, result["values"],
                                                new_id if new_id != run_id else None))

        def done(result: dict | None) -> None:
            if result and saved:
                self.notify(f"saved {saved[-1]}" + (f" (was {run_id})" if saved[-1] != run_id else ""))
                self.refresh_now()

        self.push_screen(ExperimentForm(f"Edit {run_id}", values, run_id, self._defaults(), apply=apply), done)

    def action_duplicate(self) -> None:
        from ..core.define import edit

        run_id = self._selected_in_queue()
        if run_id:
            new = self._edit("duplicate", lambda: edit.duplicate(self.project, run_id))
            if new:
                self.notify(f"added {new}, a copy of {run_id}")

    def action_delete(self) -> None:
        from ..core.define import edit
        from .screens.form import ConfirmDialog

        run_id = self._selected_in_queue()
        if run_id is None:
            return

        def done(yes: bool | None) -> None:
            if yes:
                removed = self._edit("delete", lambda: edit.remove(self.project, [run_id]))
                if removed:
                    self.notify(f"removed {', '.join(removed)} from the queue; runs/{run_id} stays")

        self.push_screen(ConfirmDialog(f"Remove {run_id} from experiments.toml? Its run folder stays."), done)

    def action_move(self, delta: int) -> None:
        from ..core.define import edit

        run_id = self._selected_in_queue()
        if run_id and self._edit("move", lambda: edit.move(self.project, run_id, delta)) is False:
            self.notify(f"{run_id} is already {'first' if delta < 0 else 'last'}")

    def action_retry(self) -> None:
        from ..core.define import edit

        run_id = self._selected_in_queue()
        if run_id:
            done = self._edit("retry", lambda: edit.retry(self.project, [run_id]))
            if done:
                self.notify(f"{run_id} will train again from scratch on the next runner pass")

    def action_retry_failed(self) -> None:
        from ..core.define import edit

        done = self._edit("retry", lambda: edit.retry(self.project, None, failed=True))
        if done is not None:
            self.notify(f"retrying {len(done)} failed run(s)" if done else "no failed runs")

    def action_sweep(self) -> None:
        from ..core.define import edit
        from .screens.form import SweepForm

        added: list[list[str]] = []

        def apply(result: dict) -> None:
            added.append(edit.add_sweep(self.project, result["grid"], result.get("id") or None, confirm_large=True))

        def done(result: dict | None) -> None:
            if result and added:
                self.notify(f"added {len(added[-1])} experiments")
                self.refresh_now()

        self.push_screen(SweepForm(apply=apply), done)

    def action_export(self) -> None:
        self.action_tab("results")
        self.query_one(ResultsPanel).action_export()


def _set_only(values: dict[str, Any]) -> dict[str, Any]:
    """A new experiment writes only the keys that were filled in."""
    return {k: v for k, v in values.items() if v is not None}


def make_app(project: Path, start_runner: bool = False, workers: int = 1, poll_interval: float = 1.0) -> UnettuiApp:
    """The one factory used by the CLI and every test."""
    return UnettuiApp(project, start_runner=start_runner, workers=workers, poll_interval=poll_interval)
