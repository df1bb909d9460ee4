"""Every action of the TUI as data: its key(s), the widget that owns it, what it does; the bindings, the command
palette and the help screen are all generated from ``ACTIONS``, so they cannot drift apart.

A key is bound on the widget that owns its action (the queue's keys on the queue table, the results' keys on the
results panel, ...), so a key pressed on a tab acts on the row highlighted there, or does nothing: never on
another tab's cursor. Only the keys that act on no row (quit, help, tabs, the runner) are the app's.

Which queue actions also work on the Results tab, on the run highlighted there: edit (``e``), duplicate (``d``)
and retry (``r``) its experiment. Adding (``a``, ``w``), removing and reordering (``x``, ``K``, ``J``) stay on
the Queue tab, where the queue's order is seen; on Results ``x`` exports the rows shown and deletes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from textual.app import App


@dataclass(frozen=True)
class Owner:
    """A widget that owns actions: the tab it lives in (None: the app itself) and how to find it."""

    section: str  # the palette's prefix; the help's heading ("... tab")
    tab: str | None = None
    selector: str | None = None  # None: the app
    notes: tuple[tuple[str, str], ...] = ()  # (keys, text) the help adds: Textual's own keys of the widget (arrows)


OWNERS: dict[str, Owner] = {
    "app": Owner("Anywhere"),
    "queue": Owner("Queue", "queue", "#queue-panel", (("up, down", "select an experiment (its curves: right)"),)),
    "results-table": Owner("Results", "results", "#results-table",
                           (("up, down", "highlight a run"), ("left, right", "choose the column s sorts by"))),
    "results": Owner("Results", "results", "#results-panel"),
    "preview": Owner("Preview", "preview", "#preview-panel"),
    "study-stages": Owner("Studies", "studies", "#study-stages", (("up, down", "choose a stage"),)),
    "study-configs": Owner("Studies", "studies", "#study-configs",
                           (("arrows", "pick a configuration and a train fraction"),)),
    "compare": Owner("Compare", "compare", "#compare-view"),
}
SECTIONS = ("Anywhere", "Queue", "Results", "Preview", "Studies", "Compare")
SECTION_HINTS = {
    "Queue": "acts on the experiment selected here",
    "Results": "acts on the run highlighted here",
    "Preview": "the run selected in Queue, Results or Studies",
    "Studies": "stages, their progress and winners",
    "Compare": "the marked runs' curves overlaid; mark with space in Queue, Results or a stage",
}


@dataclass(frozen=True)
class Action:
    """One action: ``keys`` (Textual key names, comma-separated; "" for palette-only), the ``owner`` widget (a key
    of OWNERS), the Textual ``action`` it runs there, its footer ``label`` and its ``text`` for the help and the
    command palette; ``show``: named in the footer."""

    keys: str
    owner: str
    action: str
    label: str
    text: str
    show: bool = True
    priority: bool = False


ACTIONS: tuple[Action, ...] = (
    # ---- anywhere: keys that act on no row ---------------------------------------------------------------
    Action("q", "app", "quit", "quit", "quit (asks first while the runner started here trains)"),
    Action("question_mark", "app", "help", "help", "help: every key, by tab"),
    Action("1", "app", "tab('queue')", "queue", "show the Queue tab", show=False),
    Action("2", "app", "tab('results')", "results", "show the Results tab", show=False),
    Action("3", "app", "tab('preview')", "preview", "show the Preview tab (the selected run's masks)", show=False),
    Action("4", "app", "tab('studies')", "studies", "show the Studies tab", show=False),
    Action("5", "app", "tab('compare')", "compare", "show the Compare tab (the marked runs' curves overlaid)",
           show=False),
    Action("R", "app", "toggle_runner", "runner", "start or stop the runner (it trains in its own process)"),
    Action("plus", "app", "workers(1)", "+worker", "one more worker for the next runner start", show=False),
    Action("minus", "app", "workers(-1)", "-worker", "one worker fewer for the next runner start", show=False),
    Action("P", "app", "cycle_pack", "packs", "packs for the next runner start: auto, off, 2, 4, 8, 16 (see --pack)",
           show=False),
    Action("ctrl+p", "app", "command_palette", "palette", "command palette: every action by name", show=False,
           priority=True),
    # ---- the queue: the experiment selected there --------------------------------------------------------
    Action("a", "queue", "add", "add", "add an experiment (a form for every key)"),
    Action("w", "queue", "sweep", "sweep", "add a sweep (a grid of experiments)", show=False),
    Action("e", "queue", "edit", "edit", "edit the selected experiment"),
    Action("d", "queue", "duplicate", "dup", "duplicate the selected experiment", show=False),
    Action("x,delete", "queue", "delete", "delete", "delete the selected experiment (asks; its run folder stays)"),
    Action("r", "queue", "retry", "retry", "retrain the selected experiment from scratch (asks first)"),
    Action("K", "queue", "move(-1)", "up", "move the selected experiment up (runs go in file order)",
           show=False),
    Action("J", "queue", "move(1)", "down", "move the selected experiment down", show=False),
    Action("", "queue", "retry_failed", "retry failed", "retrain every failed run from scratch (asks first)"),
    Action("space", "queue", "mark", "mark", "mark or unmark the selected experiment for the Compare tab"),
    # ---- the results: the run highlighted there ----------------------------------------------------------
    Action("enter", "results-table", "select_cursor", "preview", "open the highlighted run in Preview"),
    Action("space", "results-table", "mark", "mark", "mark or unmark the highlighted run (a configuration: its repeats)"),
    Action("slash", "results", "focus_filter", "filter", "filter the runs, e.g. optimizer=adam val_dice>0.8"),
    Action("escape", "results", "clear_filter", "clear filter", "clear the filter"),
    Action("s", "results", "sort", "sort", "sort by the cursor's column, again to reverse"),
    Action("S", "results", "reverse_sort", "reverse", "reverse the sort", show=False),
    Action("g", "results", "group", "group", "group by a hyper-parameter (mean Dice and loss per value)"),
    Action("x", "results", "export", "export", "export the rows shown to CSV"),
    Action("M", "results", "mark_shown", "mark shown", "mark every run the filter shows (again: unmark them)",
           show=False),
    Action("c", "results", "configurations", "per config", "one row per configuration (mean ± sd (n) of its "
           "repeats) or per run", show=False),
    Action("k", "results", "class_columns", "per class", "a column per class of multi-class runs (each class's best "
           "val Dice and the worst's; — : no score, why on the status line), or none", show=False),
    Action("h", "results", "boundary_columns", "HD95/NSD", "the end-of-run boundary metrics: val HD95 (px, lower is "
           "better) and NSD (higher is better), per class too with k; — : none", show=False),
    Action("e", "results", "edit", "edit", "edit the highlighted run's experiment"),
    Action("d", "results", "duplicate", "dup", "duplicate the highlighted run's experiment", show=False),
    Action("r", "results", "retry", "retry", "retrain the highlighted run from scratch (asks first)"),
    # ---- the preview: the selected run's validation images -----------------------------------------------
    Action("right_square_bracket,right", "preview", "step(1)", "next", "next validation image"),
    Action("left_square_bracket,left", "preview", "step(-1)", "prev", "previous validation image"),
    Action("o", "preview", "toggle_overlay", "overlay", "the overlay alone, or all four panels"),
    Action("b", "preview", "toggle_tag", "best/last", "the best or the last epoch's preview"),
    Action("c", "preview", "toggle_colour", "colour", "colour or ASCII"),
    # ---- the studies -------------------------------------------------------------------------------------
    Action("enter", "study-stages", "select_cursor", "configurations",
           "in the stages: show the selected stage's configurations"),
    Action("enter", "study-configs", "select_cursor", "preview run",
           "in a stage's configurations: open that run in Preview"),
    Action("space", "study-configs", "mark", "mark", "in a stage's configurations: mark the runs under the cursor "
           "(a train fraction's, or the whole configuration's)"),
    # ---- the comparison of the marked runs ---------------------------------------------------------------
    Action("m", "compare", "step_metric", "metric", "all three metrics, or val Dice, val loss, train loss alone, then "
           "each class's val Dice and the worst's (marked multi-class runs)"),
    Action("g", "compare", "toggle_each", "repeats", "a configuration's repeats as mean and spread, or each run"),
    Action("c", "compare", "toggle_colour", "colour", "colour or ASCII"),
    Action("u", "compare", "clear_marks", "unmark all", "unmark every run (the comparison empties)"),
)

KEY_NAMES = {"space": "space", "question_mark": "?", "slash": "/", "plus": "+", "minus": "-", "left_square_bracket": "[",
             "right_square_bracket": "]", "escape": "esc", "delete": "del"}


def key_display(keys: str) -> str:
    """``x,delete`` -> ``x, del``."""
    return ", ".join(KEY_NAMES.get(k, k) for k in keys.split(",") if k)


def bindings(owner: str) -> list[Binding]:
    """The bindings of the widget ``owner`` (a key of OWNERS), generated from ACTIONS."""
    assert owner in OWNERS, owner
    return [Binding(a.keys, a.action, a.label, show=a.show, tooltip=a.text, priority=a.priority)
            for a in ACTIONS if a.owner == owner and a.keys]


def in_palette(action: Action) -> bool:
    """Every action is in the palette but the one that opens it."""
    return action.action != "command_palette"


def palette_title(action: Action) -> str:
    section = OWNERS[action.owner].section
    text = action.text[0].upper() + action.text[1:]
    return text if section == "Anywhere" else f"{section}: {action.text}"


def palette_entries() -> list[tuple[str, str, Action]]:
    """``(title, help, action)`` of every palette entry, in table order."""
    return [(palette_title(a), f"key: {key_display(a.keys)}" if a.keys else "no key: here only", a)
            for a in ACTIONS if in_palette(a)]


def help_text() -> Text:
    """The help screen: every action of the table under its tab's heading (palette-only ones too), and the
    tables' own arrow keys."""
    text = Text()
    text.append("unettui", "bold").append(" — the queue of experiments.toml and the runs in runs/\n")
    for section in SECTIONS:
        owners = [name for name, o in OWNERS.items() if o.section == section]
        keyed = [(key_display(a.keys) or "(palette)", a.text) for name in owners for a in ACTIONS if a.owner == name]
        keyed += [note for name in owners for note in OWNERS[name].notes]
        width = max(len(keys) for keys, _ in keyed)
        hint = SECTION_HINTS.get(section)
        text.append("\n").append(section if section == "Anywhere" else f"{section} tab", "bold")
        text.append(f" ({hint})\n" if hint else "\n")
        for keys, what in keyed:
            text.append(f"  {keys:<{width}}  {what}\n")
    text.append("\nEdits go through the same locked, comment-keeping writer as the CLI; a bad\n"
                "value is shown under its field with the CLI's message. The runner started\n"
                "here logs to runs/.tui-runner.log; a headless runner started elsewhere on\n"
                "this folder shows up too. A header click sorts the Results by that column.")
    return text


async def perform(app: App, action: Action) -> None:
    """Run ``action`` on its owner, as its key would there: the owner's tab is shown first, so what it acts on
    (the row highlighted there) is what the user sees."""
    owner = OWNERS[action.owner]
    if owner.tab is not None:
        await app.run_action(f"tab('{owner.tab}')")
    target = app if owner.selector is None else app.query_one(owner.selector)
    await app.run_action(action.action, target)


class ActionCommands(Provider):
    """The command palette's entries: every action of ACTIONS, named with its tab and key."""

    async def discover(self) -> Hits:
        for title, help_, action in palette_entries():
            yield DiscoveryHit(title, lambda a=action: perform(self.app, a), help=help_)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_, action in palette_entries():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), lambda a=action: perform(self.app, a), help=help_)
