"""Widgets ask, the app does: a key posts a request (tui.messages) from the widget that owns it, the app handles it and
tui.edits writes experiments.toml; no widget (nor tui.edits) imports the app, and the run messages are defined once."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

from textual import on

import unettui.tui.widgets as widgets_pkg
from tests.tui.fixtures import experiments, seeded_project, select, wait_for
from unettui.core.runs.status import State
from unettui.tui import app as app_module
from unettui.tui import edits as edits_module
from unettui.tui import messages
from unettui.tui.app import UnettuiApp
from unettui.tui.edits import Editor
from unettui.tui.screens.form import ConfirmDialog
from unettui.tui.widgets.queue import QueuePanel


class Recording(UnettuiApp):
    """The real app, noting every request it handles and which widget posted it (``posted`` by the queue)."""

    CSS_PATH = str(Path(app_module.__file__).with_name("app.tcss"))  # (relative: to the module of the class)

    def __init__(self, project: Path) -> None:
        super().__init__(project, poll_interval=0.2)
        self.asked: list[tuple[str, str | None]] = []
        self.posted: list[type] = []

    def on_mount(self) -> None:
        super().on_mount()
        queue = self.query_one(QueuePanel)
        post = queue.post_message
        queue.post_message = lambda msg: bool(self.posted.append(type(msg))) or post(msg)  # type: ignore[method-assign]

    @on(messages.RunRequest)
    def _noted(self, msg: messages.RunRequest) -> None:
        self.asked.append((type(msg).__name__, msg.run_id))


def ids(project: Path) -> list[str]:
    return [e["id"] for e in experiments(project)]


def test_queue_keys_post_requests_and_the_app_edits_experiments_toml(tmp_path):
    """d, x (confirmed) and J on the queue: each posts its request from the QueuePanel, the app performs it, and
    experiments.toml changes accordingly (comments kept)."""
    proj = seeded_project(tmp_path / "p")
    (proj / "experiments.toml").write_text((proj / "experiments.toml").read_text()
                                           + '\n[[experiment]]\nid = "last"\nlr = 0.01\n')
    before = (proj / "experiments.toml").read_text()

    async def go():
        app = Recording(proj)
        async with app.run_test(size=(100, 40)) as pilot:
            assert await wait_for(pilot, lambda: app.query_one(QueuePanel).row_count == 8)
            await select(pilot, app, "base")
            await pilot.press("d")
            assert await wait_for(pilot, lambda: ids(proj) == ["base", "last", "base-copy"])
            assert app.asked[-1] == ("DuplicateRequested", "base") and messages.DuplicateRequested in app.posted
            assert await wait_for(pilot, lambda: "base-copy" in app.monitor.order())
            await select(pilot, app, "base-copy")
            await pilot.press("x")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmDialog)
            assert app.asked[-1] == ("DeleteRequested", "base-copy") and messages.DeleteRequested in app.posted
            assert ids(proj) == ["base", "last", "base-copy"]  # nothing written before the answer
            await pilot.press("y")
            assert await wait_for(pilot, lambda: ids(proj) == ["base", "last"])
            await select(pilot, app, "base")
            await pilot.press("J")
            assert await wait_for(pilot, lambda: ids(proj) == ["last", "base"])
            assert app.asked[-1] == ("MoveRequested", "base") and messages.MoveRequested in app.posted
            text = (proj / "experiments.toml").read_text()  # the comments kept, the one above base moved with it
            assert text.startswith(before.split("[[sweep]]")[0]) and '# the reference\n[[experiment]]\nid = "base"' in text

    asyncio.run(go())


def test_the_editor_needs_the_project_and_three_callables_not_the_app(tmp_path):
    """tui.edits on its own: a delete asks (the screen it shows names the experiment), then writes; a refusal is said,
    never raised; retry_failed names only the failed runs of the queue."""
    proj = seeded_project(tmp_path / "p")
    shown, said, changed = [], [], []

    def show(screen, callback):
        shown.append(screen)
        callback(True)  # the user answers yes

    editor = Editor(proj, show=show, say=lambda text, **kw: said.append(text), changed=lambda: changed.append(1))
    editor.delete("base")
    assert isinstance(shown[-1], ConfirmDialog) and "base" in shown[-1].message
    assert "base" not in ids(proj) and changed and "removed base" in said[-1]
    editor.move("no-such-run", 1)
    assert said[-1].startswith("move no-such-run:")

    class View:
        def __init__(self, id_, state, in_queue=True):
            self.id, self.state, self.in_queue = id_, state, in_queue

    shown.clear()
    editor.show = lambda screen, callback: shown.append(screen)  # the question only: nobody answers
    editor.retry_failed([View("a", State.DONE), View("b", State.FAILED), View("c", State.FAILED, in_queue=False)])
    assert "Train 1 failed run again from scratch: b?" in shown[-1].message
    editor.retry_failed([View("a", State.DONE)])
    assert said[-1] == "no failed runs"


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (relative imports resolved), TYPE_CHECKING blocks and late imports included."""
    package = "unettui." + ".".join(path.relative_to(Path(widgets_pkg.__file__).parents[2]).parent.parts[1:])
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            out |= {module} | {f"{module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return out


def test_no_widget_and_not_the_edits_import_the_app():
    files = [*Path(widgets_pkg.__file__).parent.glob("*.py"), Path(edits_module.__file__),
             Path(messages.__file__)]
    assert len(files) > 5
    for f in files:
        assert "unettui.tui.app" not in _imports(f), f"{f.name} imports unettui.tui.app"


def test_run_messages_are_defined_once_in_tui_messages():
    """No widget defines its own message of a run (highlighted, selected, marked) or of an edit request: only the
    messages a widget sends to itself from its worker stay in its module."""
    own = {"Computed", "Drawn", "Loaded"}  # a widget's worker -> the widget itself
    for f in Path(widgets_pkg.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ClassDef) and any(ast.unparse(b).endswith("Message") for b in node.bases):
                assert node.name in own, f"{f.name} defines the message {node.name}: it belongs in tui/messages.py"
