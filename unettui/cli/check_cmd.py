"""`unettui check`: every definition, dataset and would-be run checked without training anything."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import ProjectOpt, app, load_queue_or_fail


@app.command()
def check(project: Path = ProjectOpt) -> None:
    """Validate experiments.toml and the datasets it names, without training anything.

    Every definition is checked (keys, values, ids), every dataset folder is read once (built-in datasets need no reading), and every experiment is checked as its run would check it before training: the train/validation split must leave an image on each side, batch_size must not exceed the training images, a 1x1-pixel bottleneck needs at least two images in every batch (batch norm), and the memory training needs (estimated) must exist on this machine (its GPU when the run would use one). Every problem is printed on one line (file, entry, key, reason); it finishes in seconds whatever the numbers.

    Exit status: 0 no problems, 1 problems found, 2 the file cannot be read at all.

    Example: unettui check -p my-study
    """
    from ..core.define.config import ConfigError
    from ..core.define.queue import QUEUE_FILE, QueueError
    from ..core.plan import load_queue

    qpath = project / QUEUE_FILE
    if not qpath.exists():
        load_queue_or_fail(project)  # exits 2 with the reason
    try:
        queue = load_queue(project)
    except (QueueError, ConfigError) as exc:
        typer.echo(str(exc))
        typer.echo("1 problem")
        raise typer.Exit(1) from None
    from ..core.define.checks import check_queue

    report = check_queue(queue, project)
    problems, checked, n_exp = report.problems, report.checked, report.experiments
    for p in problems:
        typer.echo(p)
    if problems:
        typer.echo(f"{len(problems)} problem{'s' if len(problems) > 1 else ''} in {qpath} "
                   f"({n_exp} experiment{'s' if n_exp != 1 else ''}, {len(checked)} dataset{'s' if len(checked) != 1 else ''} checked)")
        raise typer.Exit(1)
    typer.echo(f"ok: {qpath}: {n_exp} experiment{'s' if n_exp != 1 else ''}, {len(checked)} "
               f"dataset{'s' if len(checked) != 1 else ''} checked" + (f" ({'; '.join(checked)})" if checked else ""))
