"""The unettui TUI: queue, runner control, live curves, results, mask previews, studies and the comparison of marked runs
over one project folder."""

from __future__ import annotations

import gc
import threading
import time
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App, ComposeResult
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.message import Message
from textual.widgets import Footer, Header, TabbedContent, TabPane, Tabs
from textual.worker import get_current_worker

from ..core.define.config import DEFAULTS, Config
from ..core.runs.options import RunnerOptions
from ..core.runs.runners import RunnerFigures
from . import messages as ask
from .actions import ActionCommands, bindings
from .data import QUEUE_CHANGED, RUNNERS_CHANGED, STUDIES_CHANGED, ProjectMonitor, RunView, queue_eta
from .edits import Editor
from .runner_control import RunnerControl
from .screens.dialogs import HelpScreen, QuitDialog
from .widgets.compare import CompareView
from .widgets.live import LivePanel
from .widgets.preview import PreviewPanel
from .widgets.queue import QueuePanel
from .widgets.results import ResultsPanel
from .widgets.study import StudyPanel

PACK_CHOICES = ("auto", "off", "2", "4", "8", "16")  # the P key's cycle (the runner's --pack)
FIRST_READ = 400  # runs the first poll reads at most (a screenful and more): a large project shows them at once
SLICE_READ = 5000  # runs each later poll reads at most until every run has been read once
APPLY_WAIT = 1.0  # seconds the first read waits at most for the UI to apply a slice before it reads the next
FREEZE_EVERY = 500  # changed views between two gc.freeze() calls (_settle)


class ProjectUpdated(Message):
    """A poll of the project (sent from the polling thread): the views that changed (replaced, never mutated), the ids
    that are gone, the order when it changed, and what the header and the live panel show."""

    def __init__(self, views: dict[str, RunView], gone: set[str], order: list[str] | None, changed: set[str],
                 queue_error: str | None, studies: list[Any] | None = None, study_ids: frozenset[str] = frozenset(),
                 study_problems: list[str] | None = None, claimed: list[RunView] | None = None,
                 runners: list[RunnerFigures] | None = None, eta: tuple[int, float | None] = (0, 0.0),
                 reading: bool = False) -> None:
        self.views, self.gone, self.order, self.changed, self.queue_error = views, gone, order, changed, queue_error
        self.studies, self.study_ids, self.study_problems = studies or [], study_ids, study_problems or []
        self.claimed, self.runners, self.eta = claimed or [], runners or [], eta
        self.reading = reading  # the first read of the project goes on (more views are on their way)
        super().__init__()


class PollFailed(Message):
    """Reading the project failed in the poll worker (it goes on polling)."""

    def __init__(self, text: str) -> None:
        self.text = text
        super().__init__()


class UnettuiApp(App):
    """A thin face: its widgets ask for edits of experiments.toml (tui.messages) and the app does them through core
    (tui.edits); it starts the runner as a process and observes runs/ exactly as it would observe a runner started by
    someone else. Its keys, and every widget's, come from tui.actions. Reading the project happens in one polling
    thread; this thread only applies what changed."""

    CSS_PATH = "app.tcss"
    TITLE = "unettui"
    COMMANDS = App.COMMANDS | {ActionCommands}
    BINDINGS = bindings("app")

    def __init__(self, project: Path, start_runner: bool = False, workers: int | None = None,
                 poll_interval: float = 1.0, runner_options: RunnerOptions | None = None):
        super().__init__()
        self.project = Path(project).resolve()
        self.monitor = ProjectMonitor(self.project)
        self.runner = RunnerControl(self.project, runner_options)  # the options `unettui run` was given
        workers = self.runner.workers if workers is None else workers
        self.editor = Editor(self.project, show=self.push_screen, say=self.notify, changed=self.refresh_now)
        self.start_runner = start_runner
        self.n_workers = workers
        self.poll_interval = poll_interval
        self.views: dict[str, RunView] = {}
        self.order: list[str] = []
        self.selected: str | None = None
        self.marked: list[str] = []  # the runs marked for the Compare tab, in the order they were marked
        self.claimed: list[RunView] = []
        self.runners: list[RunnerFigures] = []
        self.eta: tuple[int, float | None] = (0, 0.0)
        self._wake = threading.Event()
        self._closing = False  # set at unmount: the polling thread ends now, not after one more poll and wait
        self._applied = threading.Event()  # the UI has applied a poll's views (the first read waits for it)
        self._poll_requested = False
        self._unfrozen = 0  # views that arrived since the last gc.freeze()
        self._last_queue_error: str | None = None
        self._results_dirty = False
        self._studies_dirty = False
        self._stale: set[str] = set()  # tabs whose panel has not shown the selected run yet (_show_selected)
        self._system_stale = False  # the live panel's runner figures wait for the Queue tab (_show_system)
        self._reading = False  # the last poll was a slice of the first read
        self._study_msg: ProjectUpdated | None = None
        self._reported_exit: int | None = None
        self._last_poll_error: str | None = None
        self._sent_order = False  # (the polling thread's) the order has been sent once
        self._eta: tuple[int, float | None] | None = None  # (the polling thread's) the queue's ETA last computed
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
            with TabPane("Compare", id="compare"):
                yield CompareView(id="compare-view")
        yield Footer()

    @property
    def current_theme(self):  # type: ignore[override]
        """App.current_theme without copying every registered theme into a new dict twice (App.get_theme does): Textual
        asks for it once per line it draws, and with a screen of tables that was a tenth of the UI thread's time. The
        theme's name is one registered name (App validates it when set), so this is the theme App's own lookup finds."""
        theme = getattr(self, "_registered_themes", {}).get(self.theme)
        return theme if theme is not None else super().current_theme

    def on_mount(self) -> None:
        self.query_one(QueuePanel).focus()
        self._poll_loop()
        if self.start_runner:
            self.action_toggle_runner()

    def on_unmount(self) -> None:
        # the polling thread ends (Textual cancels its worker only after unmount: woken before that, it polled once
        # more and then waited a whole poll_interval, which quitting waited for)
        self._closing = True
        self._wake.set()
        self.monitor.close()

    # ---- observing the project ------------------------------------------------------
    @work(thread=True, group="poll", exit_on_error=False, description="polling the project")
    def _poll_loop(self) -> None:
        """The one polling thread: a poll every ``poll_interval`` seconds, or at once when asked (``refresh_now``, a run
        whose metrics are wanted). Polls never overlap (a Textual exclusive worker would start the next while the last
        still runs: piled-up polls of 10,000 runs were what froze the TUI), and this thread never touches a widget."""
        worker = get_current_worker()
        mon = self.monitor
        loading = gc.isenabled()
        if loading:  # the first read makes objects that all live on: collecting them meanwhile is wasted (see _settle)
            gc.disable()
        try:
            self._polls(worker, mon, loading)
        finally:
            if loading:  # (the app quit during the first read)
                gc.enable()

    def _polls(self, worker: Any, mon: ProjectMonitor, loading: bool) -> None:
        due = 0.0
        while not worker.is_cancelled and not self._closing:
            try:
                changed = mon.load_wanted()
                if time.monotonic() >= due or self._poll_requested or not mon.complete:
                    self._poll_requested = False
                    budget = FIRST_READ if not self._sent_order else None if mon.complete else SLICE_READ
                    changed |= mon.poll(budget=budget)
                    if not loading:  # (a first read is frozen at its end)
                        self._settle(len(changed))
                    due = time.monotonic() + self.poll_interval
                    self.post_message(self._update(changed))
                    read = loading and mon.complete  # the first read's last slice
                    if read:  # on screen before the index is written (writing it meanwhile, 0.3 s at 10,000 runs,
                        self._applied.wait(APPLY_WAIT)  # slowed both)
                        self._applied.clear()
                    mon.keep_index()  # after the views are on their way: the next start reads them in one file
                    if read:  # what the first read made lives on: out of the collector's way
                        loading = False
                        gc.freeze()
                        gc.enable()
                elif changed:
                    self.post_message(self._update(changed))
            except Exception as exc:  # noqa: BLE001 - say so, keep polling: a later poll may read it whole
                self.post_message(PollFailed(f"reading {self.project.name} failed: {type(exc).__name__}: {exc}"))
                due = time.monotonic() + self.poll_interval
                if loading:  # a read that fails may fail for long: collect garbage as usual meanwhile
                    loading = False
                    gc.enable()
            if self._closing:
                break
            if mon.complete:
                self._wake.wait(max(0.0, due - time.monotonic()))
                if not self._closing:
                    self._wake.clear()
            else:  # a first read in slices: the next slice once this one is on screen, not while the UI adds it
                self._applied.wait(APPLY_WAIT)  # (both need the GIL: reading meanwhile made each take twice as long)
                self._applied.clear()

    def _update(self, changed: set[str]) -> ProjectUpdated:
        """The message of a poll (built in the polling thread)."""
        mon = self.monitor
        views = {i: mon.runs[i] for i in changed if i in mon.runs}
        gone = {i for i in changed if i not in mon.runs and not i.startswith("__")}
        order = mon.order() if QUEUE_CHANGED in changed or not self._sent_order else None
        self._sent_order = True
        if mon.complete and (views or gone or self._eta is None):  # (not for each slice of a first read)
            self._eta = queue_eta(mon.views(), max(1, len(mon.runners)))
        return ProjectUpdated(views, gone, order, changed, mon.queue_error, mon.studies, mon.study_run_ids,
                              mon.study_problems, mon.claimed(), mon.runners, self._eta or (0, None), not mon.complete)

    def refresh_now(self) -> None:
        """Poll now (after an edit), not at the next tick."""
        self._poll_requested = True
        self._wake.set()

    def _want_metrics(self) -> None:
        """The runs whose curves are shown (the selected one, the marked ones): their metrics are read at once."""
        wanted = set(self.marked) | ({self.selected} if self.selected else set())
        if self.monitor.want(wanted):
            self._wake.set()

    def on_poll_failed(self, msg: PollFailed) -> None:
        if msg.text != self._last_poll_error:
            self._last_poll_error = msg.text
            self.notify(f"{msg.text} (showing what was last read; retrying)", severity="error", timeout=10)

    def on_project_updated(self, msg: ProjectUpdated) -> None:
        try:
            queue = self.query_one(QueuePanel)
        except NoMatches:  # the app is closing (its widgets are gone) while a poll's views were on their way
            return
        self._last_poll_error = None
        self.views.update(msg.views)
        for gone in msg.gone:
            self.views.pop(gone, None)
        if msg.order is not None:
            self.order = msg.order
        ids = set(msg.views) | msg.gone
        if ids or msg.order is not None:
            if msg.order is not None or msg.gone or not all(queue.has_row(i) for i in msg.views):
                queue.update_views([self.views[i] for i in self.order if i in self.views], ids, more=msg.reading)
            else:
                queue.update_changed(list(msg.views.values()))
            # the results table follows the runs when it is on screen, else when it is shown
            self._results_dirty = True
            if self.query_one(TabbedContent).active == "results":
                self._update_results()
            if self.selected is None and self.order and self.order[0] in self.views:
                self._select(self.order[0])
            elif self.selected in ids:
                self._select(self.selected)
            if not ids.isdisjoint(self.marked):
                self._update_compare()
        if not msg.reading:
            queue.sync_size()  # (the first read's slices left it behind: see KeyedTable.sync)
        # the studies panel: when their status was recomputed, or a study run moved (its epoch shows)
        if STUDIES_CHANGED in msg.changed or not ids.isdisjoint(msg.study_ids):
            self._study_msg, self._studies_dirty = msg, True
            if self.query_one(TabbedContent).active == "studies":
                self._update_studies()
        if msg.queue_error and msg.queue_error != self._last_queue_error:
            self.notify(f"{msg.queue_error} (showing the last good queue)", severity="error", timeout=10)
        self._last_queue_error = msg.queue_error
        self.claimed, self.eta = msg.claimed, msg.eta
        if RUNNERS_CHANGED in msg.changed or msg.runners != self.runners or ids or self._reading != msg.reading:
            self.runners, self._reading = msg.runners, msg.reading
            self._show_system()
        self.sub_title = f"{self.project.name} · {self.runner.describe(self.claimed).text}"
        self._report_runner_exit()
        if msg.reading:
            self._applied.set()
        else:  # the last slice of a first read: once it is drawn (the polling thread then writes the index)
            self.call_after_refresh(self._applied.set)

    def _settle(self, arrived: int) -> None:
        """(The polling thread.) Move what has been read so far out of the garbage collector's way (gc.freeze): with
        10,000 runs read, a full collection walked millions of long-lived objects and stopped every thread for
        a few hundred ms, once in a while, whatever the user was doing. The first read runs with the collector off
        and freezes what it read at its end (_polls); later, this freezes after every FREEZE_EVERY changed views.
        Frozen objects are still freed by reference counting when a newer view replaces them; young garbage is
        collected first (frozen, garbage in reference cycles would never be)."""
        self._unfrozen += arrived
        if self._unfrozen >= FREEZE_EVERY:
            self._unfrozen = 0
            gc.collect(1)
            gc.freeze()

    def _workers_now(self) -> int:
        return len(self.runners) or (self.runner.workers if self.runner.running() else 1)

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
            self.query_one(ResultsPanel).update_runs([self.views[i] for i in self.order if i in self.views])

    def _update_studies(self) -> None:
        if self._studies_dirty and self._study_msg is not None:
            self._studies_dirty = False
            msg = self._study_msg
            self.query_one(StudyPanel).update_studies(msg.studies, self.views, msg.study_problems, msg.queue_error)

    def _update_compare(self) -> None:
        self.query_one(CompareView).show_runs([self.views[i] for i in self.marked if i in self.views])

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "results":
            self._update_results()
        elif event.pane.id == "studies":
            self._update_studies()
        elif event.pane.id == "compare":
            self._update_compare()
        self._show_selected()
        if event.pane.id == "queue" and self._system_stale:
            self._show_system()

    def _select(self, run_id: str | None) -> None:
        self.selected = run_id
        self._stale |= {"queue", "preview"}
        self._show_selected()
        self._want_metrics()

    def _show_selected(self) -> None:
        """The live panel (Queue tab) and the preview (Preview tab) show the selected run when their tab is on screen,
        and catch up when it is shown: a hidden panel that changes still has the whole screen laid out again (keys
        moving through the Results table did that twice each, and read each run's preview meanwhile)."""
        tab = self.query_one(TabbedContent).active
        if tab not in self._stale:
            return
        self._stale.discard(tab)
        if tab == "queue":
            self.query_one(LivePanel).show_run(self.views.get(self.selected) if self.selected else None)
        elif tab == "preview":
            self.query_one(PreviewPanel).show_run(self.selected)

    def _show_system(self) -> None:
        """The runners' figures and the queue's ETA in the live panel, when the Queue tab is on screen (else when it
        is shown next)."""
        self._system_stale = self.query_one(TabbedContent).active != "queue"
        if not self._system_stale:
            running = [v for v in self.claimed if v.state == "running"]
            self.query_one(LivePanel).show_system(self.runners, self.views, self.eta, self._workers_now(), running,
                                                  reading=self._reading)

    def on_run_highlighted(self, msg: ask.RunHighlighted) -> None:
        """A table's cursor moved to a run (Queue, Results, a stage's configurations): it becomes the selected run."""
        if msg.run_id and msg.run_id != self.selected:
            self._select(msg.run_id)

    def on_run_selected(self, msg: ask.RunSelected) -> None:
        """Enter on a run (in Results or Studies): its preview."""
        if msg.run_id != self.selected:
            self._select(msg.run_id)
        self.action_tab("preview")

    # ---- edits: a widget asks (tui.messages), the editor does it (tui.edits) -----------
    def _defaults(self) -> Config:
        queue = self.monitor.queue
        return queue.defaults if queue is not None else DEFAULTS

    def on_add_requested(self, msg: ask.AddRequested) -> None:
        self.editor.add(self._defaults())

    def on_sweep_requested(self, msg: ask.SweepRequested) -> None:
        self.editor.sweep()

    def on_edit_requested(self, msg: ask.EditRequested) -> None:
        self.editor.edit(msg.run_id, self._defaults())

    def on_duplicate_requested(self, msg: ask.DuplicateRequested) -> None:
        self.editor.duplicate(msg.run_id)

    def on_delete_requested(self, msg: ask.DeleteRequested) -> None:
        self.editor.delete(msg.run_id)

    def on_move_requested(self, msg: ask.MoveRequested) -> None:
        self.editor.move(msg.run_id, msg.delta)

    def on_retry_requested(self, msg: ask.RetryRequested) -> None:
        view = self.views.get(msg.run_id)
        self.editor.retry(msg.run_id, view.label if view is not None else None)

    def on_retry_failed_requested(self, msg: ask.RetryFailedRequested) -> None:
        self.editor.retry_failed(self.views.values())

    # ---- marks -------------------------------------------------------------------------
    def on_mark(self, msg: ask.Mark) -> None:
        """Mark or unmark runs (from any table); every table shows the marks, the Compare tab the marked runs."""
        msg.stop()
        ids = [i for i in dict.fromkeys(msg.run_ids)]
        on = msg.on if msg.on is not None else not all(i in self.marked for i in ids)
        if on:
            self.marked += [i for i in ids if i not in self.marked]
        else:
            self.marked = [i for i in self.marked if i not in set(ids)]
        marked = frozenset(self.marked)
        self.query_one(QueuePanel).set_marked(marked)
        self.query_one(ResultsPanel).set_marked(marked)
        self.query_one(StudyPanel).set_marked(marked)
        self._want_metrics()
        self._update_compare()

    # ---- actions: navigation, help, quit -----------------------------------------------
    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        target = {"queue": "#queue-panel", "results": "#results-table", "preview": "#preview-panel",
                  "studies": "#study-stages", "compare": "#compare-view"}[tab]
        if tab == "studies":
            self._update_studies()  # now, so the focus goes to what it shows
        widget = self.query_one(target)
        if not widget.display or not widget.focusable:  # no study shown: the tabs keep the focus, not a hidden table
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
            busy = [v for v in self.claimed if v.state == "running"]
            pid = self.runner.start(self.n_workers)
            extra = f" (another runner is working on {busy[0].id}; they share the queue)" if busy else ""
            self.notify(f"runner started, pid {pid}, {self.n_workers} worker(s){extra}")
        self.sub_title = f"{self.project.name} · {self.runner.describe(self.claimed).text}"

    def action_workers(self, delta: int) -> None:
        self.n_workers = max(1, min(16, self.n_workers + delta))
        self.notify(f"{self.n_workers} worker(s) for the next runner start")

    def action_cycle_pack(self) -> None:
        """The runner's --pack for its next start: auto, off, 2, 4, 8, 16, then auto again."""
        choices = PACK_CHOICES
        now = str(self.runner.pack or "auto")
        self.runner.pack = choices[(choices.index(now) + 1) % len(choices)] if now in choices else choices[0]
        what = {"auto": "auto (alone on the CPU; on CUDA packs once their GPU check passed)", "off": "off (one experiment at a time)"}
        self.notify(f"packs for the next runner start: {what.get(self.runner.pack, f'up to {self.runner.pack}')}")


def make_app(project: Path, start_runner: bool = False, workers: int | None = None, poll_interval: float = 1.0,
             runner_options: RunnerOptions | None = None) -> UnettuiApp:
    """The one factory used by the CLI and every test; the runner it starts runs with ``runner_options`` (what
    `unettui run` was given; None: the defaults) and ``workers`` workers (None: the options')."""
    return UnettuiApp(project, start_runner=start_runner, workers=workers, poll_interval=poll_interval,
                      runner_options=runner_options)
