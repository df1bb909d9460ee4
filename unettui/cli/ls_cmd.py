"""`unettui ls`: the queue in file order with each experiment's state, best val Dice, attempt and note."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import ProjectOpt, app, make_console, one_line, queue_and_store

# ---------------------------------------------------------------------------
# ls
# ---------------------------------------------------------------------------


@app.command("ls")
def ls_cmd(project: Path = ProjectOpt) -> None:
    """List the queue in file order with each experiment's state, best val Dice, attempt and the note that explains it.

    States: pending (nothing trained yet, a retry, or a halving promotion: the next run trains it), running E/N (epochs finished of the epochs it trains to now), interrupted E/N (the next `unettui run` resumes it), done, pruned @E (successive halving stopped it after epoch E), failed (its error is shown), invalid (its definition has a problem), changed (its definition or dataset changed since it ran: the next run trains it again, keeping the earlier attempt), damaged (a file of the run cannot be read: named). Runs whose experiment is no longer in experiments.toml are listed at the end. A run claimed by a SLURM task shows that task and the scheduler's state of it beside its own (`running 3/20 · slurm 42_1 running`); below the table, this project's SLURM submissions that may still run, with squeue's reason for tasks that wait (`slurm job 42 (4 tasks): 2 running, 2 pending (Resources: waiting for free resources)`).

    Example: unettui ls -p my-study
    """
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from ..core.runs.jobs import SHIPPED
    from ..core.runs.status import collect, counts_text
    from ..core.show.styles import state_style

    queue, store = queue_and_store(project)
    rows_ = collect(queue, store, readers=SHIPPED)  # with the job state of every claim in a cluster job
    rows: list[tuple[str, str, str, str, str]] = []
    for r in rows_:
        best = r.best_val_dice
        best_text = "-" if best is None else f"{best:.4f}" + (f" @{r.best_epoch}" if r.best_epoch is not None else "")
        note = r.note
        if not r.in_queue:
            note = "not in experiments.toml" + (f"; {note}" if note else "")
        rows.append((r.id, r.label, best_text, str(r.attempt) if r.attempt else "-", one_line(note)))

    if not rows:
        typer.echo(f"{project}: no experiments in the queue and no runs yet")
        return
    console = make_console()
    heads = ("id", "state", "best dice", "attempt", "note")
    fixed = [max(len(h) for h in heads[i].split("\n")) for i in range(len(heads))]
    for r in rows:
        for i in (1, 2, 3):
            fixed[i] = max(fixed[i], len(r[i]))
    id_width = max(len(r[0]) for r in rows)
    err_width = max([len(r[4]) for r in rows] + [len(heads[4])])
    # the state, Dice and attempt columns keep their width; id and note share the rest (id folds, note ends in …)
    room = console.width - sum(fixed[1:4]) - 2 * (len(heads) - 1)  # two spaces between columns
    if id_width + err_width > room:
        id_width = max(8, min(id_width, room // 2 if err_width > room // 2 else room - err_width))
        err_width = max(10, min(err_width, room - id_width))
    title = f"{project.resolve()}: {len(rows)} experiment{'' if len(rows) == 1 else 's'}"
    table = Table(title=Text(title), title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False,
                  show_edge=False)
    # rich counts a column's right padding in its width (the last column has none: pad_edge=False)
    table.add_column(heads[0], overflow="fold", width=id_width + 1)
    table.add_column(heads[1], no_wrap=True, width=fixed[1] + 1)
    table.add_column(heads[2], no_wrap=True, justify="right", width=fixed[2] + 1)
    table.add_column(heads[3], no_wrap=True, justify="right", width=fixed[3] + 1)
    table.add_column(heads[4], no_wrap=True, overflow="ellipsis", width=err_width)
    for r, row in zip(rows, rows_):
        # Text: ids and errors may contain [brackets], never markup; the state in its colour (core.show.styles)
        table.add_row(*(Text(cell, style=state_style(row.state) if i == 1 else "") for i, cell in enumerate(r)))
    console.print(table)
    typer.echo(counts_text(rows_))
    from ..core.runs.slurm_state import active_submissions

    for line in active_submissions(project):  # what this project submitted to SLURM that may still run
        typer.echo(line)
