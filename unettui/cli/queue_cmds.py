"""Queue-editing commands: init, add, sweep, rm, retry (comment-preserving, locked, atomic edits of experiments.toml)."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import typer

from .common import ProjectOpt, app, fail

SetOpt = typer.Option(None, "--set", "-s", metavar="KEY=VALUE",
                      help="A hyper-parameter, e.g. lr=1e-4 or optimizer=adam (repeatable; keys: docs/experiments.md).")


@contextmanager
def _errors():
    """Turn every refusal of the core into a one-line `error: ...` and exit code 2 (nothing was written)."""
    from ..core.define.config import ConfigError
    from ..core.define.edit import EditError
    from ..core.define.queue import QueueError

    try:
        yield
    except (ConfigError, EditError, QueueError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{getattr(exc, 'filename', None) or 'experiments.toml'}: {exc.strerror or exc}")


def _interactive() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def _p(project: Path) -> str:
    return "" if str(project) == "." else f" -p {project}"


@app.command()
def init(
    directory: Path | None = typer.Argument(None, help="Folder for the project (created if needed); default: --project or the current folder.",
                                               file_okay=False),
    project: Path = ProjectOpt,
) -> None:
    """Start a project: write a commented starter experiments.toml (defaults, one experiment, a commented-out sweep). Never overwrites an existing file.

    Example: unettui init my-study
    """
    from ..core.define.init import init_project

    if directory is not None and str(project) != "." and directory.resolve() != project.resolve():
        fail(f"two folders given ({directory} and --project {project}); give one")
    target = directory if directory is not None else project
    with _errors():
        path = init_project(target)
    typer.echo(f"created {path}")
    typer.echo(f"next: edit it, or `unettui add{_p(target)} --set lr=1e-4`, then `unettui run --headless{_p(target)}`")


@app.command()
def add(
    sets: list[str] | None = SetOpt,
    exp_id: str | None = typer.Option(None, "--id", help="The experiment's id (default: generated from the keys it sets, e.g. sgd-lr0.01)."),
    project: Path = ProjectOpt,
) -> None:
    """Append one experiment to experiments.toml, keeping its comments and layout, and print its id. Keys not set come from the defaults table; every key and value is checked first, and a duplicate id is refused.

    Example: unettui add --set optimizer=sgd --set lr=1e-2 --set augment.rotate=20
    """
    from ..core.define.edit import add_experiment
    from ..core.define.setvalues import parse_assignments

    with _errors():
        values = parse_assignments(sets or [])
        new_id = add_experiment(project, values, exp_id)
    typer.echo(f"added {new_id}")


def _show(values: dict, keys) -> str:
    from ..core.define.setvalues import format_value

    return " ".join(f"{k}={v if isinstance(v, str) else format_value(v)}" for k, v in values.items() if k in keys)


@app.command()
def sweep(
    sets: list[str] | None = SetOpt,
    sweep_id: str | None = typer.Option(None, "--id", help="The sweep's id, the prefix of its experiments' ids (default: sweep-<keys>)."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Print the experiments the sweep would add and their count; write nothing."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before adding a sweep of more than 100 experiments."),
    project: Path = ProjectOpt,
) -> None:
    """Append a sweep to experiments.toml: a grid over every key given several values; keys given one value are shared by all its experiments.

    Values: a list (optimizer=adam,sgd,rmsprop), an evenly spaced range START..STOP:N (dropout=0..0.5:6 gives 0, 0.1, ..., 0.5), or a log-spaced range START..STOP:logN (lr=1e-4..1e-1:log4 gives 1e-4, 1e-3, 1e-2, 1e-1). Integer ends give integers when every value is whole. Ids are <sweep id>-<values>, e.g. opt-adam-lr0.0001. Above 100 experiments it asks first (--yes to skip).

    Example: unettui sweep --id opt --set optimizer=adam,sgd,adagrad --set lr=1e-4..1e-2:log3 --dry-run
    """
    from ..core.define.edit import SWEEP_CONFIRM, LargeSweep, add_sweep, expand_preview
    from ..core.define.setvalues import parse_sweep_assignments, sweep_prefix

    with _errors():
        grid = parse_sweep_assignments(sets or [])
        varied = [k for k, v in grid.items() if isinstance(v, list)]
        if dry_run:
            plan = expand_preview(project, grid, sweep_id)
            width = max(len(i) for i, _ in plan)
            for exp_id, overrides in plan:
                typer.echo(f"{exp_id:<{width}}  {_show(overrides, varied)}")
            shared = _show(grid, [k for k in grid if k not in varied])
            typer.echo(f"{len(plan)} experiment{'' if len(plan) == 1 else 's'}" + (f", shared: {shared}" if shared else "")
                       + " (dry run: nothing written)")
            return
        try:
            ids = add_sweep(project, grid, sweep_id)
        except LargeSweep as big:
            if not yes:
                if not _interactive():
                    fail(f"the sweep expands to {big.count} experiments (more than {SWEEP_CONFIRM}); pass --yes to add them "
                         "(or --dry-run to list them)")
                if not typer.confirm(f"add a sweep of {big.count} experiments?", default=False):
                    typer.echo("nothing added", err=True)
                    raise typer.Exit(1) from None
            ids = add_sweep(project, grid, sweep_id, confirm_large=True)
    name = sweep_id or sweep_prefix(grid)
    shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
    typer.echo(f"added sweep {name} with {len(ids)} experiment{'' if len(ids) == 1 else 's'}: {shown}")


@app.command()
def rm(
    ids: list[str] = typer.Argument(..., help="Ids of experiments, or of whole sweeps.", metavar="ID"),
    project: Path = ProjectOpt,
) -> None:
    """Remove experiments, or whole sweeps by the sweep's own id, from experiments.toml (with the comment block right above each; other comments stay). All or nothing.

    One item of a sweep cannot be removed alone: edit the sweep's lists instead. Run folders are NOT deleted: runs/<id>/ stays, and `unettui results` shows it as "not in queue".

    Example: unettui rm sgd-lr0.01 opt-at-1e-4
    """
    from ..core.define.edit import remove_entries
    from ..core.runs.status import State, judge_run
    from ..core.runs.store import RunStore

    store = RunStore(project)
    # the runs being trained as they are removed (asked first: a runner that notices the removal at once has already
    # stopped its run by the time this command would look)
    training = {r.id: r.status() or {} for r in store.runs() if r.id.startswith(tuple(ids))
                and judge_run(r, None).state is State.RUNNING}
    with _errors():
        removed = remove_entries(project, ids)
    kept = []
    for e in removed:
        what = f"[[{e.section}]] {e.id}" + (f" ({len(e.experiments)} experiments)" if e.section == "sweep" else "")
        typer.echo(f"removed {what}")
        if e.section == "study":  # every stage's runs, not only the first stage's
            kept += [r.id for r in store.runs() if r.id.startswith(e.id + "-")]
        else:
            kept += [x for x in e.experiments if store.run(x).exists()]
    if kept:
        typer.echo(f"run folders kept: {', '.join(f'runs/{x}/' for x in kept)} (results show them as 'not in queue')")
    for x in kept:
        if x in training:
            st = training[x]
            typer.echo(f"{x} is being trained by {st.get('host', '?')} pid {st.get('pid', '?')}: its runner stops it "
                       "after the current epoch")


@app.command()
def retry(
    ids: list[str] | None = typer.Argument(None, help="Experiments to train again.", metavar="ID"),
    failed: bool = typer.Option(False, "--failed", help="Retry every failed run of the queue."),
    project: Path = ProjectOpt,
) -> None:
    """Make finished runs train again from scratch on the next `unettui run`. Each run's log, status, metrics, summary and config move to runs/<id>/attempts/<n>/ (its checkpoint and previews are dropped).

    A named id may be failed, interrupted (it then restarts instead of resuming) or done (it is re-trained). --failed picks every failed run of the queue. A running run is refused: stop it first.

    Example: unettui retry --failed
    """
    from ..core.runs.retry import retry as retry_runs
    from ..core.runs.store import RunStore

    with _errors():
        done = retry_runs(project, ids, failed)
    if not done:
        typer.echo("no failed runs to retry")
        return
    store = RunStore(project)
    for exp_id in done:
        attempt = store.run(exp_id).attempts()[-1]
        typer.echo(f"{exp_id}: will train again; the previous attempt is kept in {attempt.relative_to(store.project)}/")
    typer.echo(f"next: unettui run --headless{_p(project)}")
