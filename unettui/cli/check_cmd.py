"""`unettui check`: every definition, dataset and would-be run checked without training anything."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import ProjectOpt, app, load_queue_or_fail, one_line


def _memory_for(cfg) -> tuple[int | None, str]:
    """The memory a run of ``cfg`` would have on this machine: its GPU's when it would train on one, else the RAM."""
    from ..core.learn.feasible import machine_memory

    if cfg.device.startswith("cuda") or cfg.device == "auto":
        import torch

        if torch.cuda.is_available():
            dev = torch.device("cuda" if cfg.device == "auto" else cfg.device)
            index = dev.index or 0
            if index < torch.cuda.device_count():
                return torch.cuda.get_device_properties(index).total_memory, f"{torch.cuda.get_device_name(index)} (cuda:{index})"
    return machine_memory(), "this machine"


def _ids_text(ids: list[str], limit: int = 4) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


@app.command()
def check(project: Path = ProjectOpt) -> None:
    """Validate experiments.toml and the datasets it names, without training anything.

    Every definition is checked (keys, values, ids), every dataset folder is read once (built-in datasets need no reading), and every experiment is checked as its run would check it before training: the train/validation split must leave an image on each side, batch_size must not exceed the training images, a 1x1-pixel bottleneck needs at least two images in every batch (batch norm), and the memory training needs (estimated) must exist on this machine (its GPU when the run would use one). Every problem is printed on one line (file, entry, key, reason); it finishes in seconds whatever the numbers.

    Exit status: 0 no problems, 1 problems found, 2 the file cannot be read at all.

    Example: unettui check -p my-study
    """
    from ..core.define.config import ConfigError
    from ..core.define.queue import QUEUE_FILE, QueueError, load_queue

    qpath = project / QUEUE_FILE
    if not qpath.exists():
        load_queue_or_fail(project)  # exits 2 with the reason
    try:
        queue = load_queue(project)
    except (QueueError, ConfigError) as exc:
        typer.echo(str(exc))
        typer.echo("1 problem")
        raise typer.Exit(1) from None
    problems = [str(p) for p in queue.problems]
    valid = [e for e in queue.experiments if e.valid]
    name = qpath.name

    groups: dict[tuple, list] = {}
    for e in valid:
        c = e.config
        synthetic = c.dataset.strip().lower().startswith("synthetic:")
        key = (c.dataset, c.image_size, c.num_images if synthetic else None, c.data_seed if synthetic else None)
        groups.setdefault(key, []).append(e)

    checked = []
    if groups:
        from ..core.learn.data import DatasetError
        from ..core.learn.dataset_id import is_synthetic
        from ..core.learn.feasible import problems as feasibility_problems
        from ..core.learn.folders import load_dataset
        from ..core.learn.synthetic import check_synthetic_args

        for (spec, size, _, _), exps in groups.items():
            ids = [e.id for e in exps]
            users = f"{name} {exps[0].origin}" if len(ids) == 1 else f"{name} ({len(ids)} experiments: {_ids_text(ids)})"
            synthetic = is_synthetic(spec)
            channels = 1
            try:
                if synthetic:  # nothing to read: the generators cannot fail once their arguments are valid
                    check_synthetic_args(exps[0].config.num_images, size)
                    n = exps[0].config.num_images
                else:
                    data = load_dataset(spec, size, exps[0].config.num_images, exps[0].config.data_seed, base_dir=project)
                    n, channels = len(data), data.channels
            except DatasetError as exc:
                problems.append(f"{users}: dataset: {exc}")
                continue
            except Exception as exc:  # anything else while loading is also a problem of this dataset
                problems.append(f"{users}: dataset: cannot load {spec!r}: {type(exc).__name__}: {one_line(exc)}")
                continue
            checked.append(f"{spec}: {n} images at {size} px" + (" (generated when trained)" if synthetic else ""))
            for e in exps:
                memory, where = _memory_for(e.config)
                # the run's own checks, in the order it would hit them: the split, the batch, batch norm, memory
                for key, why in feasibility_problems(e.config, n, memory, where, channels, synthetic):
                    problems.append(f"{name} {e.origin}: {key}: {why}")
                    break
    for p in problems:
        typer.echo(p)
    n_exp = len(queue.experiments)
    if problems:
        typer.echo(f"{len(problems)} problem{'s' if len(problems) > 1 else ''} in {qpath} "
                   f"({n_exp} experiment{'s' if n_exp != 1 else ''}, {len(checked)} dataset{'s' if len(checked) != 1 else ''} checked)")
        raise typer.Exit(1)
    typer.echo(f"ok: {qpath}: {n_exp} experiment{'s' if n_exp != 1 else ''}, {len(checked)} "
               f"dataset{'s' if len(checked) != 1 else ''} checked" + (f" ({'; '.join(checked)})" if checked else ""))
