"""The studies panel: every [[study]] with its stages (state, runs, progress, winner) and the selected
stage's configurations (score per train fraction, mean, spread, the winner, pruned ones).

It shows what `unettui study ls` and `unettui study show ID` print, from the core.study.StudyStatus
objects the project monitor computes; the app feeds it with ``update_studies`` whenever they (or a
running study run) change.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Vertical
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable, Static

from ...core.show.fmt import value as fmt_value
from ...core.show.study_text import describe, stage_notes, winner_text
from ...core.show.study_text import num as _num
from ...core.show.study_text import values_text as _values
from ...core.show.styles import state_style
from ..actions import bindings
from ..messages import Mark, RunHighlighted, RunSelected

NO_STUDY = ("no [[study]] in experiments.toml — `unettui study new --template quick` creates one\n\n"
            "A study tunes one hyper-parameter family per stage (learning rate, then scheduler, ...) and "
            "carries each stage's winner into the next; R starts the runner that trains it.")
BAR_WIDTH = 10
MAX_STAGE_LINES = 10  # the stages table's height at most (header included); it scrolls beyond

Cell = tuple[str, str, bool]  # text, rich style, right-justified (a cell may also be a Text, drawn as it is)
Row = tuple[str, tuple]  # row key, cells


def progress_bar(done: int, total: int, width: int = BAR_WIDTH) -> Text:
    """A bar of ``width`` cells: finished runs filled (█), the rest light (░), readable without colour."""
    filled = 0 if total <= 0 else min(width, round(width * done / total))
    if 0 < done < total:
        filled = max(1, min(width - 1, filled))  # started but not done never looks empty or full
    style = state_style("done" if total and done >= total else "running")
    return Text.assemble(("█" * filled, style), ("░" * (width - filled), "dim"))


def stage_kind(st: Any) -> str:
    return getattr(st, "kind", "grid") or "grid"


class StageTable(DataTable):
    """The stages; enter (named in the footer) moves to the selected stage's configurations."""

    BINDINGS: ClassVar[list[BindingType]] = bindings("study-stages")


class ConfigTable(DataTable):
    """The configurations of a stage; enter (named in the footer) opens the run under the cursor in Preview, space marks
    the runs under the cursor for the Compare tab."""

    BINDINGS: ClassVar[list[BindingType]] = bindings("study-configs")

    def action_mark(self) -> None:
        if isinstance(self.parent, StudyPanel):
            runs = self.parent.cursor_runs()
            if runs:
                self.post_message(Mark(runs))

    def on_focus(self) -> None:
        if isinstance(self.parent, StudyPanel):
            self.parent.configs_focused()


class StudyPanel(Vertical):
    """Studies and stages on top, the selected stage's configurations below.

    ``update_studies(studies, views, problems)`` (UI thread) redraws what changed; the cursor stays on
    the same stage (by study id and stage number) and configuration. Moving the cursor in the
    configurations table (while it has the focus) posts RunHighlighted with the run under it (the run
    of that fraction's column, else the configuration's first run); enter posts RunSelected.
    """

    DEFAULT_CSS = """
    StudyPanel { height: 1fr; }
    StudyPanel > #study-hint { padding: 1 2; color: $text-muted; }
    StudyPanel > #study-problems { color: $error; padding: 0 1; height: auto; max-height: 8; }
    StudyPanel > #study-title { padding: 0 1; height: auto; color: $text-muted; }
    StudyPanel > #study-stages { height: 3; }
    StudyPanel > #study-stage-title { padding: 0 1; height: auto; text-style: bold; border-top: solid $primary-background; }
    StudyPanel > #study-configs { height: 1fr; min-height: 3; }
    StudyPanel > #study-notes { padding: 0 1; height: auto; max-height: 6; }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.studies: list[Any] = []
        self.problems: list[str] = []
        self.error: str | None = None
        self.views: dict[str, Any] = {}
        self.stage_key: str | None = None  # "study/n" of the stage whose configurations are shown
        self._chosen = False  # the user moved the stage cursor (else it follows the current stage)
        self._stages: dict[str, tuple[Any, int, Any]] = {}  # row key -> (study status, number, stage status)
        self._cells: dict[str, tuple[tuple, list[Row]]] = {}  # table id -> (columns, rows) drawn
        self._run_at: dict[tuple[str, str], str] = {}  # (config row key, column key) -> run id
        self._first_run: dict[str, str] = {}  # config row key -> its first run id
        self._runs_at: dict[tuple[str, str | None], list[str]] = {}  # (config row key, column or None) -> its runs
        self.marked: frozenset[str] = frozenset()
        self._highlighted: str | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="study-problems", markup=False)
        yield Static(NO_STUDY, id="study-hint", markup=False)
        yield Static("", id="study-title", markup=False)
        yield StageTable(id="study-stages", cursor_type="row", zebra_stripes=True)
        yield Static("", id="study-stage-title", markup=False)
        yield ConfigTable(id="study-configs", cursor_type="cell", zebra_stripes=True)
        yield Static("", id="study-notes", markup=False)

    def on_mount(self) -> None:
        self._refresh()

    # ---- data in ---------------------------------------------------------------------------
    def update_studies(self, studies: list[Any], views: dict[str, Any] | None = None,
                       problems: list[str] | None = None, error: str | None = None) -> None:
        """Show these core.study.StudyStatus objects; ``views`` (RunView by id) add the epoch of running
        runs; ``problems`` are the lines of invalid [[study]] tables; ``error`` says why experiments.toml
        could not be read (the studies shown are then those of the last good file). Call on the UI thread."""
        self.studies = list(studies)
        self.views = dict(views or {})
        self.problems = list(problems or [])
        self.error = error
        if self.is_mounted:
            self._refresh()

    @property
    def stage_table(self) -> StageTable:
        return self.query_one("#study-stages", StageTable)

    @property
    def config_table(self) -> ConfigTable:
        return self.query_one("#study-configs", ConfigTable)

    # ---- drawing ---------------------------------------------------------------------------
    def _refresh(self) -> None:
        studies = self.studies
        any_study = bool(studies)
        hint = self.query_one("#study-hint", Static)
        hint.display = not any_study
        if not any_study:
            hint.update(NO_STUDY if not (self.problems or self.error) else NO_STUDY.replace("no [[study]]", "no valid [[study]]", 1))
        lines = [f"{self.error} (showing the last good file)" if any_study else self.error] if self.error else []
        if self.problems:
            n = len(self.problems)
            lines.append(f"{n} [[study]] table{'s are' if n != 1 else ' is'} invalid (`unettui check` lists every problem):")
            lines += self.problems[:2] + (["…"] if n > 2 else [])
        problems = self.query_one("#study-problems", Static)
        problems.display = bool(lines)
        problems.update("\n".join(lines))
        for wid in ("#study-title", "#study-stages", "#study-stage-title", "#study-configs", "#study-notes"):
            self.query_one(wid).display = any_study
        self._stages = {f"{s.id}/{n}": (s, n, st) for s in studies for n, st in enumerate(s.stages, 1)}
        if not any_study:
            self.stage_key = None
            return
        if not self._chosen or self.stage_key not in self._stages:
            self.stage_key = self._current_stage()
        several = len(studies) > 1
        columns = ((("study", "study"),) if several else ()) + (
            ("n", "#"), ("stage", "stage"), ("state", "state"), ("runs", "runs"), ("progress", "progress"),
            ("winner", "winner"))
        rows: list[Row] = []
        for key, (s, n, st) in self._stages.items():
            kind = stage_kind(st)
            cells: list[Cell] = [(s.id if n == 1 else "", "bold", False)] if several else []
            cells += [(str(n), "", True), (st.name + (f" ({kind})" if kind != "grid" else ""), "bold", False),
                      (st.state, state_style(st.state), False), (f"{st.finished}/{st.planned}", "", True),
                      progress_bar(st.finished, st.planned), (winner_text(st), "green" if st.state == "done" else "", False)]
            rows.append((key, tuple(cells)))
        rows = self._fit_last_column(columns, rows)
        self._fill(self.stage_table, columns, rows, keep=self.stage_key)
        self._fit_stages()
        self.call_after_refresh(self._fit_stages)  # once its width is known: room for a scrollbar
        self._refresh_stage()

    def _fit_last_column(self, columns: tuple, rows: list[Row]) -> list[Row]:
        """Cut the last column's texts (the winners) with an ellipsis so the table fits the panel's width;
        the stage's own lines below say the winner in full."""
        width = self.size.width - (2 if len(rows) + 1 > MAX_STAGE_LINES else 0)
        if width <= 0 or not rows:
            return rows
        used = sum(2 + max([Text(label).cell_len, *(self._text(cells[i]).cell_len for _, cells in rows)])
                   for i, (_, label) in enumerate(columns[:-1]))
        room = max(len(columns[-1][1]), 12, width - used - 2)
        out = []
        for key, cells in rows:
            text, style, _ = cells[-1]
            if Text(text).cell_len > room:
                cut = Text(text, style=style)
                cut.truncate(room, overflow="ellipsis")
                cells = (*cells[:-1], cut)
            out.append((key, cells))
        return out

    def on_resize(self) -> None:
        if self.studies:
            self._refresh()

    def _fit_stages(self) -> None:
        """The stages table is as tall as its rows (at most 10 lines), plus its scrollbar when too wide."""
        table = self.stage_table
        wide = table.size.width and table.virtual_size.width > table.size.width
        height = min(MAX_STAGE_LINES, table.row_count + 1) + (1 if wide else 0)
        if table.styles.height is None or table.styles.height.value != height:
            table.styles.height = height

    def _current_stage(self) -> str:
        """The first stage that is not done (of the first study that has one), else the last stage."""
        for key, (_, _, st) in self._stages.items():
            if st.state != "done":
                return key
        return list(self._stages)[-1]

    def _refresh_stage(self) -> None:
        s, n, st = self._stages[self.stage_key]  # type: ignore[index]
        self.query_one("#study-title", Static).update(
            f"study {s.id}: {len(s.stages)} stage{'s' if len(s.stages) != 1 else ''}; {describe(s)}")
        title = Text.assemble(f"stage {n} {st.name}: ", (st.state, state_style(st.state)),
                              f", {st.finished}/{st.planned} runs finished")
        if st.carried:
            title.append(f" · on {_values(st.carried)}")
        self.query_one("#study-stage-title", Static).update(title)
        table = self.config_table
        notes: list[Text] = []
        if st.state == "waiting":
            table.display = False
            notes.append(Text(f"waits until every run of the earlier stages is finished; then {st.planned} runs "
                              "train on their winners", style="dim"))
        else:
            table.display = True
            self._fill_configs(s, st)
            notes += [Text(line, style="dim") for line in stage_notes(st)]
            if st.state == "done":
                notes.append(Text.assemble(("winner: ", "bold"), (_values(st.winner), "bold green"),
                                           f" ({st.how}: {st.why})"))
            elif st.winner:
                notes.append(Text.assemble(("leading: ", "bold"), _values(st.winner), f" ({st.why})"))
        notes.append(Text(("final configuration: " if s.done else "configuration so far: ") + _values(s.final()),
                          style="" if s.done else "dim"))
        self.query_one("#study-notes", Static).update(Text("\n").join(notes))

    def _run_cell(self, r: Any) -> Cell:
        if r.value is not None:
            return (_num(r.value), "", True)
        if r.state == "done":
            return ("no metric", "red", True)
        label = r.state
        view = self.views.get(r.id)
        if r.state == "running" and view is not None and view.target:
            label = view.label
        return (label, state_style(r.state), True)

    def _fraction_cell(self, runs: list[Any]) -> Cell:
        """One train fraction of a configuration: its run's value, or with repeats their mean (once all have one)."""
        if len(runs) == 1:
            return self._run_cell(runs[0])
        values = [r.value for r in runs if r.value is not None]
        if len(values) == len(runs):
            return (_num(sum(values) / len(values)), "", True)
        waiting = next(r for r in runs if r.value is None)
        cell = self._run_cell(waiting)
        return (f"{cell[0]} ({len(values)}/{len(runs)})", cell[1], True)

    def _fill_configs(self, s: Any, st: Any) -> None:
        metric = s.study.metric
        fracs: list[Any] = []  # every train fraction any configuration runs at, in order
        for c in st.configs:
            for r in c.runs:
                if r.fraction not in fracs:
                    fracs.append(r.fraction)
        halving = bool(getattr(st, "rungs", None))
        repeats = any(len(c.runs) > len({r.fraction for r in c.runs}) for c in st.configs)
        paired = any(getattr(c, "paired", None) for c in st.configs)  # with folds: the best's difference, per fold
        columns = (("mark", " "), *((f"v:{k}", k) for k in st.varied),
                   *((f"run{i}", f"f={fmt_value(f)}" if f is not None else metric) for i, f in enumerate(fracs)),
                   ("mean", "mean"), *((("sd", "± sd"), ("n", "n")) if repeats else ()), ("spread", "spread"),
                   *((("paired", "paired Δ ± SE"),) if paired else ()), *((("epochs", "epochs"),) if halving else ()),
                   ("note", "note"))
        rows: list[Row] = []
        self._run_at, self._first_run, self._runs_at = {}, {}, {}
        for j, c in enumerate(st.configs):
            key = f"{self.stage_key}/{j}"
            pruned = getattr(c, "pruned_at", None)
            is_winner = bool(st.winner) and st.winner == c.values
            marked = any(r.id in self.marked for r in c.runs)
            mark = Text.assemble(("*", "bold green") if is_winner else " ", ("●", "bold magenta") if marked else "")
            note = ("", "", False)
            if pruned is not None:
                note = (f"pruned @{pruned}", "dim", False)
            elif is_winner:
                note = ("winner", "bold green", False) if st.state == "done" else ("leading", "yellow", False)
            style = "dim" if pruned is not None else "bold" if is_winner else ""
            cells: list[Any] = [mark, *((fmt_value(c.values.get(k)), style, False) for k in st.varied)]
            for i, f in enumerate(fracs):
                runs = [r for r in c.runs if r.fraction == f]
                cells.append(self._fraction_cell(runs) if runs else ("", "", True))
                if runs:
                    self._run_at[(key, f"run{i}")] = runs[0].id
                    self._runs_at[(key, f"run{i}")] = [r.id for r in runs]
            cells.append((_num(c.score), style, True))
            if repeats:
                n = getattr(c, "n", 1) or 1
                cells += [(_num(c.sd) if c.sd is not None else "", "", True), (str(n) if c.score is not None else "",
                                                                              "", True)]
            cells.append((_num(c.spread), "", True))
            if paired:
                d = getattr(c, "paired", None)
                cells.append((f"{d[0]:+.4f} ± {_num(d[1])}" if d else "", "", True))
            if halving:
                done = max((int((r.summary or {}).get("epochs_done") or 0) for r in c.runs), default=0)
                cells.append((f"{done}/{getattr(c, 'budget', None) or '-'}", "", True))
            cells.append(note)
            if c.runs:
                self._first_run[key] = c.runs[0].id
                self._runs_at[(key, None)] = [r.id for r in c.runs]
            rows.append((key, tuple(cells)))
        self._fill(self.config_table, columns, rows)

    def set_marked(self, marked: frozenset[str]) -> None:
        """Show which runs are marked for the comparison (a configuration with a marked run shows ●)."""
        if marked != self.marked:
            self.marked = marked
            if self.is_mounted and self.studies and self.stage_key in self._stages:
                self._refresh_stage()

    def cursor_runs(self) -> list[str]:
        """The runs under the configurations' cursor: a train fraction's (every repeat), or the whole configuration's
        when the cursor is on its keys or scores."""
        table = self.config_table
        if not table.row_count or not table.display:
            return []
        row_key, col_key = table.coordinate_to_cell_key(
            Coordinate(min(table.cursor_row, table.row_count - 1), min(table.cursor_column, len(table.columns) - 1)))
        return self._runs_at.get((row_key.value, col_key.value)) or self._runs_at.get((row_key.value, None), [])

    def _fill(self, table: DataTable, columns: tuple, rows: list[Row], keep: str | None = None) -> None:
        """Draw ``rows`` in ``table``: cell by cell when the columns, their widths and the row keys are as
        before, else rebuilt with the cursor kept on the same row key (or ``keep``) and column.

        Columns get explicit widths (the widest cell): a DataTable's automatic widths are measured
        later, on idle, and a table rebuilt while on screen could keep drawing rows cut to the header's
        width."""
        texts = [tuple(map(self._text, cells)) for _, cells in rows]
        widths = tuple(max([Text(label).cell_len, *(t[i].cell_len for t in texts)]) for i, (_, label) in enumerate(columns))
        layout = (columns, widths)
        old = self._cells.get(table.id or "")
        if old is not None and old[0] == layout and [k for k, _ in old[1]] == [k for k, _ in rows]:
            for (key, cells), (_, was), row_texts in zip(rows, old[1], texts):
                for (ckey, _), new, before, text in zip(columns, cells, was, row_texts):
                    if new != before:
                        table.update_cell(key, ckey, text)
        else:
            cursor = keep
            if cursor is None and old is not None and table.row_count:
                row = min(table.cursor_row, len(old[1]) - 1)
                cursor = old[1][row][0] if row >= 0 else None
            column = table.cursor_column
            table.clear(columns=True)
            for (ckey, label), width in zip(columns, widths):
                table.add_column(label, key=ckey, width=width)
            for (key, _), row_texts in zip(rows, texts):
                table.add_row(*row_texts, key=key)
            keys = [k for k, _ in rows]
            if keys:
                row = keys.index(cursor) if cursor in keys else 0
                table.move_cursor(row=row, column=min(column, len(columns) - 1), animate=False)
        if keep is not None and table.row_count:
            keys = [k for k, _ in rows]
            if keep in keys and table.cursor_row != keys.index(keep):
                table.move_cursor(row=keys.index(keep), animate=False)
        self._cells[table.id or ""] = (layout, rows)

    @staticmethod
    def _text(cell: Any) -> Text:
        if isinstance(cell, Text):
            return cell.copy()
        text, style, right = cell
        return Text(text, style=style, justify="right" if right else "left")

    # ---- events ----------------------------------------------------------------------------
    @on(DataTable.RowHighlighted, "#study-stages")
    def _stage_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if event.cursor_row != self.stage_table.cursor_row:
            return  # posted by a redraw (the cursor went to row 0, then back): not the user's choice
        key = event.row_key.value
        if key in self._stages and key != self.stage_key:
            self._chosen = True
            self.stage_key = key
            self._refresh_stage()

    @on(DataTable.RowSelected, "#study-stages")
    def _stage_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if self.config_table.display:
            self.config_table.focus()

    def _cursor_run(self) -> str | None:
        table = self.config_table
        if not table.row_count:
            return None
        row_key, col_key = table.coordinate_to_cell_key(
            Coordinate(min(table.cursor_row, table.row_count - 1), min(table.cursor_column, len(table.columns) - 1)))
        return self._run_at.get((row_key.value, col_key.value)) or self._first_run.get(row_key.value)

    def _announce(self) -> None:
        if not self.config_table.has_focus:
            return
        run_id = self._cursor_run()
        if run_id is not None and run_id != self._highlighted:
            self._highlighted = run_id
            self.post_message(RunHighlighted(run_id, self))

    @on(DataTable.CellHighlighted, "#study-configs")
    def _cell_highlighted(self, event: DataTable.CellHighlighted) -> None:
        event.stop()
        self._announce()

    def configs_focused(self) -> None:
        """The configurations table got the focus: its run under the cursor becomes the selected run."""
        self._highlighted = None
        self._announce()

    @on(DataTable.CellSelected, "#study-configs")
    def _cell_selected(self, event: DataTable.CellSelected) -> None:
        event.stop()
        run_id = self._cursor_run()
        if run_id is not None:
            self.post_message(RunSelected(run_id, self))

    @on(DataTable.HeaderSelected)
    def _quiet(self, event: Message) -> None:
        event.stop()
