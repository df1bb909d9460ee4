"""`unettui run --backend slurm` (submit the queue to SLURM and return) and `unettui cancel [ID ...] [--all]`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from .common import ProjectOpt, app, fail, queue_and_store, resolve

if TYPE_CHECKING:  # pragma: no cover
    from ..cluster.slurm import SlurmOptions
    from ..core.runs.options import RunnerOptions


def submit_to_slurm(project: Path, options: RunnerOptions, slurm: SlurmOptions) -> None:
    """Submit pilot tasks, each a runner with ``options``, on the queue; print what was submitted and how to follow it
    (the `run` command's part)."""
    from ..cluster.slurm import DEFAULT_TASKS, FANS_OUT, SlurmBackend, SlurmError, to_train, unsatisfiable

    if options.fans_out:
        fail(FANS_OUT)
    n, later, devices = to_train(project, options.only)
    if n == 0 and not later:
        typer.echo(f"nothing to train in {project / 'experiments.toml'} (`unettui ls` shows every state); "
                   "nothing submitted")
        raise typer.Exit(0)
    tasks = slurm.max_parallel or (DEFAULT_TASKS if later else max(1, min(DEFAULT_TASKS, n)))
    try:
        rec = SlurmBackend(slurm, tasks).submit(project, options).record
    except SlurmError as exc:
        fail(str(exc), code=1)
    too_big = unsatisfiable(slurm)  # sbatch took it, but a task no node can run pends for ever: say so
    if too_big:
        typer.echo(f"warning: {too_big}", err=True)
    device = options.device
    if not slurm.gpus_per_run and any(str(d).startswith("cuda") for d in ({device} if device else devices)):
        typer.echo("note: experiments ask for a CUDA device but the tasks get no GPU; ask for one with "
                   "--gpus-per-run 1", err=True)
    where = "" if str(project) == "." else f" -p {project}"
    typer.echo(f"submitted slurm job {rec['job']}: {tasks} pilot task{'s' if tasks != 1 else ''} "
               f"(time limit {rec['minutes']} min each) on {n} experiment{'s' if n != 1 else ''} to train"
               + (" and the study stages still to come" if later else ""))
    typer.echo(f"  each task claims from the queue until nothing is left; logs in {rec['folder']}/")
    typer.echo(f"  follow: unettui ls{where} | unettui logs ID{where} | squeue -j {rec['job']}")
    typer.echo(f"  stop:   unettui cancel --all{where} (runs are left interrupted and resume later)")


@app.command("cancel")
def cancel(
    ids: list[str] | None = typer.Argument(None, metavar="[ID]...", help="Experiments whose SLURM task to cancel."),
    all_: bool = typer.Option(False, "--all", help="Cancel every SLURM job this project submitted that may still run."),
    pack: bool = typer.Option(False, "--pack", help="An ID trains in a pack: cancel the whole pack (and its task) "
                                                    "without asking."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation (same as --pack)."),
    project: Path = ProjectOpt,
) -> None:
    """Cancel what this project submitted to SLURM (`unettui run --backend slurm`).

    With --all, every job of this project's submissions (runs/.slurm/) that is pending or running is cancelled with scancel. With an ID, the SLURM task training that experiment this moment is cancelled — checked again just before scancel against runs/ID/status.json (running, that task's claim, a live heartbeat) and the scheduler, so an ID that has finished (its task moved on to another experiment) is refused, never another experiment cancelled. The task stops with it: a pilot task trains nothing else (the job's other tasks keep going). An ID trained in a pack stops every member of the pack: that is asked on a terminal, and needs --pack (or --yes) otherwise. A cancelled task stops after its current batch and leaves its runs interrupted: the next runner (another task of the job, `unettui run`, or a new submission) resumes them from their checkpoint; to keep one from training, `unettui rm ID`.

    Example: unettui cancel --all
    """
    import sys

    from ..cluster.slurm import SlurmError, cancel_all, cancel_plan, describe_pack, plan_cancel

    if not ids and not all_:
        fail("name an experiment ID (the SLURM task training it is cancelled) or --all (every job this project "
             "submitted)")
    if ids and all_:
        fail("give IDs or --all, not both")
    if all_:
        try:
            for line in cancel_all(project):
                typer.echo(line)
        except SlurmError as exc:
            fail(str(exc), code=1)
        return
    queue, store = queue_and_store(project)
    named = list(dict.fromkeys(ids or []))
    for exp_id in named:
        resolve(exp_id, queue, store)
    plans = {}
    for exp_id in named:  # all or nothing: every ID is checked before anything is cancelled
        try:
            plan = plan_cancel(project, exp_id, queue)
        except SlurmError as exc:
            fail(str(exc) + ("; nothing cancelled" if len(named) > 1 else ""), code=1)
        plans.setdefault(plan.job, plan)  # two IDs of one pack: one task, cancelled once
    asks = [p for p in plans.values() if set(p.mates) - set(named)]
    if asks and not (pack or yes):
        if not sys.stdin.isatty():
            fail(describe_pack(asks[0]) + "; pass --pack (or --yes) to cancel it (not asked: no terminal)", code=1)
        for p in asks:
            typer.echo(describe_pack(p))
        if not typer.confirm("Cancel the whole pack" + ("s" if len(asks) > 1 else "") + "?", default=False):
            fail("nothing cancelled", code=1)
    failed = False
    for plan in plans.values():
        try:
            for line in cancel_plan(project, plan):
                typer.echo(line)
        except SlurmError as exc:
            typer.echo(f"error: {exc}", err=True)
            failed = True
    if failed:
        raise typer.Exit(1)
