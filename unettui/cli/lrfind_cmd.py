"""`unettui lr-find`: the learning-rate range test, one short throwaway run per optimizer, plotted in the terminal."""

from __future__ import annotations

import difflib
import shutil
import sys
from pathlib import Path

import typer

from .common import ProjectOpt, app, duration, fail, load_queue_or_fail

PLOT_HEIGHT = 12


def _lr(v: float | None) -> str:
    return "-" if v is None else f"{v:.1e}"


def experiment_config(project: Path, exp_id: str | None):
    """The config of experiment ``exp_id`` in the queue, or the queue's [defaults] when no id is given."""
    queue = load_queue_or_fail(project)
    if exp_id is None:
        return queue.defaults
    exp = queue.get(exp_id)
    if exp is None:
        ids = [e.id for e in queue.experiments]
        close = difflib.get_close_matches(exp_id, ids, n=3, cutoff=0.5)
        if close:
            hint = "; did you mean " + ", ".join(f"'{c}'" for c in close) + "?"
        elif ids:
            hint = "; `unettui ls` lists the experiments"
        else:
            hint = "; the queue is empty (leave out the id to use [defaults])"
        fail(f"unknown experiment '{exp_id}'{hint}")
    if exp.error is not None:
        fail(str(exp.error))
    return exp.config


def _progress(name: str):
    """A one-line, self-overwriting progress report on stderr when it is a terminal; None otherwise."""
    if not sys.stderr.isatty():
        return None

    def on_step(i: int, steps: int, lr: float, loss: float, smoothed: float) -> None:
        sys.stderr.write(f"\r{name}: step {i + 1}/{steps}  lr {lr:.1e}  loss {loss:.4g}  smoothed {smoothed:.4g}\x1b[K")
        sys.stderr.flush()

    return on_step


@app.command("lr-find")
def lr_find(
    exp_id: str | None = typer.Argument(None, metavar="ID",
                                          help="Experiment whose config is used (see `unettui ls`); default: the queue's defaults table."),
    project: Path = ProjectOpt,
    sets: list[str] | None = typer.Option(None, "--set", "-s", metavar="KEY=VALUE",
                                             help="Change a hyper-parameter for this test only, e.g. loss=bce (repeatable)."),
    start: float = typer.Option(1e-7, "--start", help="First learning rate of the ramp."),
    end: float = typer.Option(10.0, "--end", help="Last learning rate of the ramp (the test stops earlier when the loss blows up)."),
    steps: int = typer.Option(100, "--steps", help="Training steps (batches) of the ramp; about 100 is enough."),
    optimizers: list[str] | None = typer.Option(None, "--optimizer", "-o", metavar="NAME",
                                                   help="Optimizer to test (repeatable; default: the config's own)."),
) -> None:
    """Find a learning rate for each optimizer with an LR range test (Leslie Smith; the exponential ramp of fastai's lr_find).

    One short throwaway run per optimizer on the experiment's data, model, loss and augmentation: the learning rate grows exponentially from --start to --end, one training batch per step, and the test stops once the smoothed loss exceeds 4 x its minimum. Nothing is written to runs/ and experiments.toml is not changed; the config's own lr and scheduler are not used.

    Prints the smoothed loss against the learning rate, the suggested rate (where the smoothed loss falls fastest, Smith's and fastai's choice) and the conservative alternative (the rate at the lowest loss divided by 10); with several optimizers, a summary table. Put the rate you choose into the queue with `unettui add --set lr=...`.

    Example: unettui lr-find adam-1e-3 --optimizer adam --optimizer sgd --steps 100
    """
    from ..core.define.config import ConfigError, build_config, coerce
    from ..core.define.setvalues import parse_assignments

    base = experiment_config(project, exp_id)
    try:
        cfg = build_config(parse_assignments(sets or []), "--set", base)
    except ConfigError as exc:
        fail(str(exc))
    names = list(dict.fromkeys(optimizers or [cfg.optimizer]))
    for name in names:
        try:
            coerce("optimizer", name, "--optimizer")
        except ConfigError as exc:
            fail(f"--optimizer {name}: {exc.message}")
    if not start > 0:
        fail(f"--start must be > 0, got {start:g}")
    if not end > start:
        fail(f"--end must be larger than --start ({start:g}), got {end:g}")
    if steps < 2:
        fail(f"--steps must be at least 2, got {steps}")

    from ..core.learn.data import DatasetError
    from ..core.learn.lrfind import ascii_plot, lr_range_test

    width = min(max(shutil.get_terminal_size((80, 24)).columns - 1, 40), 100)
    source = exp_id or "[defaults]"
    results = []
    for n, name in enumerate(names):
        run_cfg = cfg.replace(optimizer=name)
        if n:
            typer.echo("")
        typer.echo(f"lr range test: {name} on {source} ({run_cfg.dataset}), lr {start:g} to {end:g} in {steps} steps")
        progress = _progress(name)
        try:
            result = lr_range_test(run_cfg, project, start_lr=start, end_lr=end, steps=steps, on_step=progress)
        except (DatasetError, ValueError, RuntimeError) as exc:
            fail(" ".join(str(exc).split()))
        except MemoryError:
            fail(f"out of memory during the range test of {name} (batch_size {run_cfg.batch_size}, image_size "
                 f"{run_cfg.image_size}, base_channels {run_cfg.base_channels}); lower one of them with --set")
        finally:
            if progress is not None:
                sys.stderr.write("\r\x1b[K")
                sys.stderr.flush()
        results.append(result)
        for line in ascii_plot(result, width=width, height=PLOT_HEIGHT):
            typer.echo(line.rstrip())
        lowest = result.min_smoothed
        typer.echo(f"suggested lr: {_lr(result.suggested)}  "
                   + ("(steepest descent of the smoothed loss)" if result.steepest is not None
                      else "(too few points before the minimum for a slope: min/10 instead)"))
        typer.echo(f"min/10:       {_lr(result.min_div_10)}  (lr at the lowest smoothed loss"
                   + (f" {lowest:.4g}" if lowest is not None else "") + ", divided by 10)")
        typer.echo(f"steps run:    {result.steps_run} of {steps} on {result.device}")
        typer.echo(f"stopped:      {'early: ' if result.stopped_early else ''}{result.reason}")
        typer.echo(f"time:         {duration(result.seconds)}")

    if len(results) > 1:
        from rich import box
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=escape(f"lr range test on {source}"), title_justify="left", box=box.SIMPLE_HEAD,
                      padding=(0, 1, 0, 0), pad_edge=False)
        table.add_column("optimizer")
        for head in ("suggested lr", "min/10", "lowest smoothed loss"):
            table.add_column(head, justify="right", no_wrap=True)
        for r in results:
            lowest = r.min_smoothed
            table.add_row(r.optimizer, _lr(r.suggested), _lr(r.min_div_10), "-" if lowest is None else f"{lowest:.4f}")
        typer.echo("")
        Console(highlight=False).print(table)
