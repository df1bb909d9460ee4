"""The help screen (generated from the action table) and the quit dialog."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from ..actions import help_text


class HelpScreen(ModalScreen[None]):
    """Every key, grouped by where it works (generated from the action table)."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(help_text(), id="help-text")

    def action_dismiss(self) -> None:
        self.dismiss(None)


class QuitDialog(ModalScreen[str]):
    """Quitting while our runner works: leave it running in the background, stop it, or stay."""

    BINDINGS = [Binding("l", "choose('leave')", "leave running"), Binding("s", "choose('stop')", "stop it"),
                Binding("escape,c", "choose('cancel')", "cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="quit-box"):
            yield Static("The runner started here is still training.\n"
                         "Leave it running in the background (it goes on without the TUI; "
                         "`unettui` shows it again later), or stop it (the run is left resumable)?",
                         id="quit-text")
            with Horizontal(id="quit-buttons"):
                yield Button("Leave running (l)", id="leave", variant="primary")
                yield Button("Stop it (s)", id="stop", variant="warning")
                yield Button("Cancel (esc)", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id)

    def action_choose(self, what: str) -> None:
        self.dismiss(what)
