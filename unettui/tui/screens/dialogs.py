"""The help screen and the quit dialog."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

HELP = """\
[b]unettui[/b] — the queue of experiments.toml and the runs in runs/

[b]Anywhere[/b]
  1 / 2 / 3 / 4  Queue / Results / Preview / Studies tab
  R              start or stop the runner (it runs as its own process)
  + / -          workers for the next start
  ctrl+p         command palette (every action by name)
  ?              this help          q  quit

[b]Queue tab[/b] (acts on the selected experiment)
  a  add an experiment       e  edit it         d  duplicate it
  w  add a sweep             x  delete it       r  retry it (failed/interrupted/done)
  K / J  move it up / down in the queue (the runner follows file order)

[b]Results tab[/b]
  /  filter (e.g. optimizer=adam val_dice>0.8; escape clears)
  s  sort by the cursor's column, again (or S) to reverse; clicking a header does the same
  g  group by a hyper-parameter: mean val Dice and val loss per value
  x  export the rows shown to CSV

[b]Preview tab[/b]
  [ / ]  previous / next validation image      o  overlay view
  b      best / last epoch                     c  colour / ASCII

[b]Studies tab[/b] (the study tables: stages, progress, winners)
  up / down  choose a stage; enter (or tab) moves to its configurations
  arrows     pick a configuration and a train fraction; enter opens that run in Preview

Edits go through the same locked, comment-keeping writer as the CLI; a bad value is
shown under its field with the CLI's message. The runner started here keeps a log in
runs/.tui-runner.log; a headless runner started elsewhere on this folder shows up too.
"""


class HelpScreen(ModalScreen[None]):
    """Every key, grouped by where it works."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(HELP, id="help-text")

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
