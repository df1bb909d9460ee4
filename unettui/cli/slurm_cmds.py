"""`unettui run --backend slurm` (submit the queue to SLURM and return) and `unettui cancel [ID ...] [--all]`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import ProjectOpt, app, fail, queue_and_store, resolve


def submit_to_slurm(project: Path, *, device: str | None, only: list[str] | None, stale_after: float,
                    partition: str | None, gpus_per_run: int, cpus_per_run: int, mem: str | None, time: str | None,
                    max_parallel: int | None, account: str | None, qos: str | None, sbatch: list[str] | None,
                    pack: str = "auto") -> None:
    """Submit pilot tasks on the queue, print what was submitted and how to follow it (the `run` command's part)."""
    from ..cluster.slurm import DEFAULT_TASKS, SlurmError, SlurmOptions, submit, to_train

    opts = SlurmOptions(partition=partition, gpus_per_run=gpus_per_run, cpus_per_run=cpus_per_run, mem=mem,
                        time=time, max_parallel=max_parallel, account=account, qos=qos, sbatch=list(sbatch or []))
    n, later, devices = to_train(project, only)
    if n == 0 and not later:
        typer.echo(f"nothing to train in {project / 'experiments.toml'} (`unettui ls` shows every state); "
                   "nothing submitted")
        raise typer.Exit(0)
    tasks = max_parallel or (DEFAULT_TASKS if later else max(1, min(DEFAULT_TASKS, n)))
    try:
        rec = submit(project, opts, device=device, only=only, stale_after=stale_after, tasks=tasks, pack=pack)
    except SlurmError as exc:
        fail(str(exc), code=1)
    if not gpus_per_run and any(str(d).startswith("cuda") for d in ({device} if device else devices)):
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
    ids: Optional[list[str]] = typer.Argument(None, metavar="[ID]...", help="Experiments whose SLURM task to cancel."),
    all_: bool = typer.Option(False, "--all", help="Cancel every SLURM job this project submitted that may still run."),
    project: Path = ProjectOpt,
) -> None:
    """Cancel what this project submitted to SLURM (`unettui run --backend slurm`).

    With --all, every job of this project's submissions (runs/.slurm/) that is pending or running is cancelled with scancel. With an ID, the task that trains that experiment (from its runs/ID/status.json) is cancelled. A cancelled task stops after its current batch and leaves its run interrupted: the next runner (another task of the job, `unettui run`, or a new submission) resumes it from its checkpoint; to keep it from training, `unettui rm ID`.

    Example: unettui cancel --all
    """
    from ..cluster.slurm import SlurmError, cancel_all, cancel_run

    if not ids and not all_:
        fail("name an experiment ID (its SLURM task is cancelled) or --all (every job this project submitted)")
    if ids and all_:
        fail("give IDs or --all, not both")
    try:
        if all_:
            for line in cancel_all(project):
                typer.echo(line)
            return
        queue, store = queue_and_store(project)
        for exp_id in dict.fromkeys(ids or []):
            resolve(exp_id, queue, store)
            typer.echo(cancel_run(project, exp_id))
    except SlurmError as exc:
        fail(str(exc), code=1)
