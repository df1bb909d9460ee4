"""The unettui TUI: queue, runner control, live curves, results and mask previews over one project folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import work
from textual.app import App, ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Footer, Header, TabbedContent, TabPane, Tabs

from .actions import ActionCommands, bindings
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


class UnettuiApp(App):
    """A thin face: its widgets edit experiments.toml through core (tui.edits), it starts the runner as a process
    and observes runs/ exactly as it would observe a runner started by someone else. Its keys, and every widget's,
    come from tui.actions."""

    CSS_PATH = "app.tcss"
    TITLE = "unettui"
    COMMANDS = App.COMMANDS | {ActionCommands}
    BINDINGS = bindings("app")

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
        self._preview(msg.run_id)

    def on_results_panel_run_selected(self, msg: ResultsPanel.RunSelected) -> None:
        self._preview(msg.run_id)

    def _preview(self, run_id: str) -> None:
        """Enter on a run (in Results or Studies): its preview."""
        if run_id != self.selected:
            self._select(run_id)
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


def make_app(project: Path, start_runner: bool = False, workers: int = 1, poll_interval: float = 1.0) -> UnettuiApp:
    """The one factory used by the CLI and every test."""
    return UnettuiApp(project, start_runner=start_runner, workers=workers, poll_interval=poll_interval)
