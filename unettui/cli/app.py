"""The `unettui` command line: run the queue, show and export results, benchmark the trainer."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from .common import ProjectOpt, app, duration, fail, load_queue_or_fail, write_output

if TYPE_CHECKING:  # pragma: no cover
    from ..core.runs.options import RunnerOptions


class Backend(str, Enum):
    local = "local"
    slurm = "slurm"


@app.command()
def run(
    ctx: typer.Context,
    project: Path = ProjectOpt,
    headless: bool = typer.Option(False, "--headless", help="Run in the foreground with line-oriented progress; without it the TUI opens with the runner started."),
    device: str | None = typer.Option(None, "--device", "-d", help="Override every experiment's device: auto, cpu, cuda or cuda:N."),
    only: list[str] | None = typer.Option(None, "--only", help="Run only this experiment id (repeatable)."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads for PyTorch (default: all cores)."),
    plain: bool = typer.Option(False, "--plain", help="Plain lines even on a terminal (no progress bar)."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Runner processes sharing the queue (each claims its own experiments)."),
    devices: str | None = typer.Option(None, "--devices", help="Comma-separated devices given to the workers in turn, e.g. cuda:0,cuda:1 or cpu."),
    stale_after: float = typer.Option(120.0, "--stale-after", min=5, help="Seconds without a heartbeat after which another machine's running claim is taken over."),
    pack: str = typer.Option("auto", "--pack", envvar="UNETTUI_PACK", help="Train up to N compatible experiments at once as one fused model (same data, architecture, batch size, device, AMP dtype; see docs/packs.md): N, off, or auto (off on the CPU; on CUDA up to 8 only once the packs' GPU check passed on this pack code; runs interrupted in a pack resume in it)."),
    pack_dropout: str = typer.Option("exact", "--pack-dropout", metavar="exact|fused", help="How a pack draws its members' dropout masks. exact (default): each member's masks are its solo run's (its own generator), one draw per member per dropout layer, so a pack's kernel launches grow with N. fused: one draw per dropout layer for the whole pack (each member still its own p), fewer kernel launches, but a member's masks depend on the pack it trained in. Recorded in each member's config.json as pack_dropout; see docs/packs.md."),
    backend: Backend = typer.Option(Backend.local, "--backend", help="local: train here (default). slurm: submit pilot tasks to SLURM and return at once (see docs/clusters.md).", rich_help_panel="SLURM"),
    partition: str | None = typer.Option(None, "--partition", help="SLURM partition (default: the cluster's default).", rich_help_panel="SLURM"),
    gpus_per_run: int = typer.Option(0, "--gpus-per-run", min=0, help="GPUs per task (--gpus-per-node).", rich_help_panel="SLURM"),
    cpus_per_run: int = typer.Option(1, "--cpus-per-run", min=1, help="CPUs per task (--cpus-per-task); also its PyTorch threads.", rich_help_panel="SLURM"),
    mem: str | None = typer.Option(None, "--mem", help="Memory per task in SLURM syntax, e.g. 16G (default: the partition's).", rich_help_panel="SLURM"),
    time_limit: str | None = typer.Option(None, "--time", help="Time limit per task in SLURM syntax (30, 4:00:00, 1-00:00:00); default 4:00:00 or the partition's MaxTime if lower. A task at its limit checkpoints and is requeued.", rich_help_panel="SLURM"),
    max_parallel: int | None = typer.Option(None, "--max-parallel", min=1, help="Pilot tasks in the array (default: what there is to train, at most 4).", rich_help_panel="SLURM"),
    account: str | None = typer.Option(None, "--account", help="SLURM account to charge.", rich_help_panel="SLURM"),
    qos: str | None = typer.Option(None, "--qos", help="SLURM quality of service.", rich_help_panel="SLURM"),
    sbatch: list[str] | None = typer.Option(None, "--sbatch", metavar="KEY=VALUE", help="Any other sbatch option, passed through (repeatable), e.g. --sbatch constraint=a100.", rich_help_panel="SLURM"),
    runner_options: str | None = typer.Option(None, "--runner-options", hidden=True, help="Every runner option as the JSON text RunnerOptions.to_json writes: how `--workers`, the TUI and SLURM tasks start runners."),
) -> None:
    """Train every experiment of the queue that has no finished run, in file order.

    Interrupted or crashed runs resume from their last checkpoint; a failing experiment is recorded with its reason and the queue goes on. Ctrl-C (or SIGTERM) stops after the current batch and leaves the run resumable; a second Ctrl-C exits at once.

    Exit status: 0 all done, 1 some experiment failed or was invalid, 130 interrupted.

    Several workers (--workers N, or runners started by hand on the same folder, on this or other machines sharing it) cooperate: each experiment is claimed by one process; a claim whose process is gone (same machine) or whose heartbeat is older than --stale-after is taken over and resumed from its checkpoint. CPU workers split the cores' threads between them.

    On a SLURM cluster, --backend slurm submits a job array of pilot tasks, each an ordinary runner claiming from this queue on the shared filesystem, and returns at once (follow with `unettui ls`, `unettui logs ID`; stop with `unettui cancel --all`).

    Packs (--pack N|auto|off): up to N pending experiments that share the data, architecture, batch size, device and AMP dtype train together as one fused model in one process, each still its own run with its own files; auto trains alone on the CPU, and on CUDA packs up to 8 only once the packs' GPU check (scripts/gpu_pack_check.sh) passed on the installed pack code; a run interrupted in a pack resumes in that pack. The runner says what it did and why in one line. Dropout in a pack (--pack-dropout exact|fused): exact keeps each member's solo masks, fused draws once for the whole pack (fewer kernel launches).

    Example: unettui run --headless --project my-study --workers 2 --devices cuda:0,cuda:1

    Example: unettui run --headless --pack 16   (a sweep on one GPU, 16 experiments at a time)

    Example: unettui run --headless --backend slurm --partition gpu --gpus-per-run 1 --cpus-per-run 8 --mem 32G --time 4:00:00 --max-parallel 8
    """
    from ..core.runs.options import OptionsError

    try:
        options = _runner_options(ctx, runner_options)
    except OptionsError as exc:
        fail(str(exc))
    queue = load_queue_or_fail(project)
    unknown = [o for o in options.only if queue.get(o) is None]
    if unknown:
        import difflib

        ids = [e.id for e in queue.experiments]
        close = difflib.get_close_matches(unknown[0], ids, n=3, cutoff=0.5)
        hint = ("did you mean " + ", ".join(f"'{c}'" for c in close) + "?") if close else "`unettui ls` lists them"
        fail(f"--only {unknown[0]}: no such experiment in {project / 'experiments.toml'}; {hint}")
    if backend is Backend.slurm:
        from ..cluster.slurm import SlurmOptions
        from .slurm_cmds import submit_to_slurm

        submit_to_slurm(project, options, SlurmOptions(
            partition=partition, gpus_per_run=gpus_per_run, cpus_per_run=cpus_per_run, mem=mem, time=time_limit,
            max_parallel=max_parallel, account=account, qos=qos, sbatch=list(sbatch or [])))
        return
    if not headless:
        from .common import open_tui

        open_tui(project, start_runner=True, options=options)
        return
    if options.fans_out:
        from ..runner import run_workers

        raise typer.Exit(run_workers(project, options))
    from ..reporting import PlainReporter
    from ..runner import Runner
    from .progress import RichReporter

    reporter = RichReporter() if (sys.stdout.isatty() and not plain) else PlainReporter()
    runner = Runner(project, options, reporter=reporter)
    try:
        outcome = runner.run()
    except KeyboardInterrupt:
        _quiet_echo("stopped at once; the current run resumes next time")
        raise typer.Exit(130) from None
    finally:
        if runner.reporter.broken is not None:  # no "Exception ignored ... BrokenPipeError" when Python exits
            _mute_stdout()
    if outcome.lost:
        runner.reporter.say(f"claims taken over by another runner (it trains them): {', '.join(outcome.lost)}")
    runner.reporter.say(
        f"finished: {len(outcome.done)} done, {len(outcome.failed)} failed, {len(outcome.interrupted)} interrupted"
        + (f", {len(outcome.skipped_invalid)} invalid skipped" if outcome.skipped_invalid else "")
        + (f", {len(outcome.skipped_damaged)} damaged skipped" if outcome.skipped_damaged else "")
        + (f". Next: unettui results{'' if str(project) == '.' else f' -p {project}'}")
    )
    if runner.reporter.broken is not None:
        _mute_stdout()
    raise typer.Exit(outcome.exit_code)


def _runner_options(ctx: typer.Context, carried: str | None) -> RunnerOptions:
    """The runner's options: from its flags (each under its RunnerOptions field's name), or — for a runner started
    by another (`--workers`, the TUI, a SLURM task) — from the one JSON text that carries them all, then with no
    runner flag beside it. Raises OptionsError."""
    from ..core.runs.options import OptionsError, RunnerOptions

    if carried is None:
        return RunnerOptions.from_cli(ctx.params)
    # (by name: Typer keeps its click, and click's ParameterSource, to itself)
    given = [n for n in RunnerOptions.names() if getattr(ctx.get_parameter_source(n), "name", "") == "COMMANDLINE"]
    if given:
        raise OptionsError(f"--runner-options carries every runner option; --{given[0].replace('_', '-')} "
                           "does not go with it")
    return RunnerOptions.from_json(carried)


def _mute_stdout() -> None:
    """Point stdout at /dev/null: its reader is gone (``| head``, a closed terminal) and nothing more can be said."""
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _quiet_echo(text: str) -> None:
    try:
        typer.echo(text, err=True)
    except OSError:
        pass


class Format(str, Enum):
    csv = "csv"
    md = "md"


PARAM_COLUMNS = ("dataset", "optimizer", "lr", "momentum", "weight_decay", "scheduler", "loss", "dropout",
                 "augment.rotate", "augment.hflip", "augment.vflip", "augment.histeq", "train_fraction",
                 "batch_size", "image_size", "base_channels", "depth", "seed")


def _rows(project: Path, sort: str | None, descending: bool):
    from ..core.runs.export import collect_rows, columns_for, sort_rows
    from ..core.runs.jobs import SHIPPED
    from ..core.runs.store import RunStore

    queue = load_queue_or_fail(project, required=False)
    if queue is None and not (project / "runs").is_dir():
        load_queue_or_fail(project)  # report why
    rows = collect_rows(queue, RunStore(project), readers=SHIPPED)
    if sort:
        from ..core.define.task import SUMMARY_KEYS, split_class_key

        valid = columns_for(rows)  # the per-class columns of the project's multi-class runs too
        valid = (*valid, *(k for k in SUMMARY_KEYS if k not in valid))  # and best_val_iou
        if sort not in valid:
            import difflib

            close = difflib.get_close_matches(sort, valid, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            if split_class_key(sort) and not close:
                hint = "no run of this project has that class; "
            fail(f"--sort {sort}: unknown column; {hint}valid: {', '.join(valid)}")
        rows = sort_rows(rows, sort, descending)
    return rows


def _heading(key: str) -> str:
    """A score column's two-line heading in `results`, from the registry's words: ``best / val dice``, ``last /
    val dice``, ``test dice / @best``, ``val hd95 / @best``; a class's: ``myocardium / best dice``."""
    from ..core.define.task import PER_CLASS_KEYS, SUMMARY_KEYS, key_of, label_of, split_class_key

    if key == "oof_val_dice":
        return "pooled oof\nval dice"

    split = split_class_key(key, PER_CLASS_KEYS) if key not in SUMMARY_KEYS else None
    if split:
        return f"{split[1]}\n{label_of(split[0], short=True)}"
    entry = key_of(key)
    if entry is None:
        return key
    text = entry.label.lower()
    if entry.at == "best":
        return text.replace("best ", "best\n", 1)
    if entry.at == "final":
        return "last\n" + text
    if entry.at in ("test", "end"):  # the test split at the best epoch; the end-of-run metrics on its weights
        return text + "\n@best"
    return text


@app.command()
def results(
    project: Path = ProjectOpt,
    sort: str = typer.Option("best_val_dice", "--sort", "-s", help="Column to sort by (any export column, per-class ones too, e.g. best_val_dice_myocardium or best_val_dice_min); rows without a value go last."),
    desc: bool = typer.Option(True, "--desc/--asc", help="Sort direction."),
    top: int | None = typer.Option(None, "--top", "-n", min=1, help="Show only the first N rows."),
    runs: bool = typer.Option(False, "--runs", help="One row per run even where configurations have repeats."),
    classes: bool = typer.Option(False, "--classes", help="Per-class columns for multi-class runs (num_classes >= 3): each class's val Dice at the best epoch, the worst class's (min), and each class's test Dice where runs have a test split. — : no score (the class is in no image of the set, in truth or prediction; `unettui show ID` says why), or a binary run."),
    boundary: bool = typer.Option(False, "--boundary", help="The end-of-run boundary metrics, computed once on each run's best weights: val HD95 (pixels, lower is better) and val NSD at the run's nsd_tolerance (higher is better), each per image and then the mean over the images that scored; with --classes also each class's and the worst class's (HD95: max, NSD: min). — : none (a run from before boundary metrics, one still training, or no image scored)."),
) -> None:
    """A table of every experiment: state, the hyper-parameters that differ, best and final val Dice, test Dice, epochs, time.

    Where configurations are trained several times (repeats = N), one row per configuration gives the mean ± standard deviation (n) over its repeats (--runs lists every run); a repeat without a value (no score) is left out of the mean, and n counts those with one. Dice is summed over the validation images (see docs/experiments.md, "Metrics"). For multi-class runs val Dice is the mean over the foreground classes that have a score; --classes adds a column per class.

    Example: unettui results --sort final_val_loss --asc --top 5

    Example: unettui results --classes --sort best_val_dice_min   (the runs whose worst class does best)

    Example: unettui results --boundary --sort val_hd95 --asc   (the closest contours first)
    """
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from ..core.define.task import SUMMARY_KEYS, VIEWS, format_value, metric_of
    from ..core.runs.export import class_keys, sort_rows, varied_keys
    from ..core.runs.groups import configuration_rows, mean_sd_text

    rows = _rows(project, sort, desc)  # (checks the sort key)
    # configurations trained several times (repeats, folds) are one row each
    grouped = not runs and any((r.get("repeat") or 1) > 1 or (r.get("fold") or 0) > 0 for r in rows)
    if grouped:
        rows = configuration_rows(rows)
    if sort:
        rows = sort_rows(rows, sort, desc)
    if top:
        rows = rows[:top]
    if not rows:
        typer.echo("no experiments in the queue and no runs yet")
        return
    # like `guild compare`: show the hyper-parameters that differ between rows, list the shared ones below
    varying = [k for k in varied_keys(rows) if not (grouped and k in ("seed", "fold"))]
    shared = [f"{c}={_show(rows[0].get(c))}" for c in PARAM_COLUMNS
              if c not in varying and rows[0].get(c) is not None and not (grouped and c in ("seed", "fold"))
              and not (c == "train_fraction" and rows[0].get("folds"))]  # (not used with folds)
    table = Table(title=f"{project.resolve()}: {len(rows)} experiment{'' if len(rows) == 1 else 's'}", title_justify="left",
                  caption=("same for all: " + ", ".join(shared)) if shared else None, caption_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False)
    # the score columns (core.define.task.VIEWS): configurations compare the best and the test score (mean ± sd of
    # each), not the last epoch's; a test column only where some run was scored on a test split
    scores = [k for k in VIEWS["results"] if not (grouped and SUMMARY_KEYS[k].at == "final")
              and not (SUMMARY_KEYS[k].at == "test" and all(r.get(k) is None for r in rows))]
    per_class: list[str] = []
    if classes:
        per_class = class_keys(rows, VIEWS["classes"])
        held = class_keys(rows, [k for k in scores if SUMMARY_KEYS[k].at == "test" and SUMMARY_KEYS[k].per_class])
        per_class += held if any(r.get(k) is not None for r in rows for k in held) else []
    # the end-of-run boundary metrics (core.define.task.VIEWS["boundary"]), per class with --classes
    ends: list[str] = []
    if boundary:
        ends = [*VIEWS["boundary"], *(class_keys(rows, VIEWS["boundary"]) if classes else [])]
    # cross-validated configurations: the pooled out-of-fold Dice beside the mean over folds
    if grouped and any(r.get("oof_val_dice_n") for r in rows):
        scores.insert(1, "oof_val_dice")
    cells = []
    no_score = no_end = False
    for r in rows:
        values = []
        for k in (*scores, *per_class, *ends):
            if k in per_class and r.get(k) is None:  # no score, or a binary run: never a silent blank or 0
                values.append("—")
                no_score = no_score or bool(r.get("classes"))
            elif k in ends and r.get(k) is None:  # none: a run from before boundary metrics, or no image scored
                values.append("—")
                no_end = True
            elif grouped:  # (n) also where fewer repeats than the configuration's have a value
                n = r.get(f"{k}_n") or 0
                digits = min(3, metric.digits) if (metric := metric_of(k)) is not None else 3  # HD95 (px): 2
                values.append(mean_sd_text(r.get(k), r.get(f"{k}_sd"), n, digits, compact=True)
                              + (f"({n})" if n == 1 and (r.get("runs") or 1) > 1 else ""))
            elif k in scores and SUMMARY_KEYS[k].at == "best" and r.get(k) is not None:
                values.append(f"{r[k]:.4f} @{r['best_epoch']}")
            else:
                values.append(format_value(k, r.get(k)))
        epochs = f"{r['epochs_done']}/{r['epochs']}" if r.get("epochs_done") is not None else f"-/{_show(r.get('epochs'))}"
        cells.append([r["id"], r["label"], *[_show(r.get(c)) for c in varying], *values, epochs,
                      duration(r.get("seconds"))])
    heads = ["id" if not grouped else "configuration", "state", *[SHORT.get(c, c) for c in varying],
             *[_heading(k) for k in (*scores, *per_class, *ends)], "epochs", "time"]
    widths = [max([len(row[i]) for row in cells] + [max(len(h) for h in head.split("\n"))]) for i, head in enumerate(heads)]
    console = Console()
    # every column but the id keeps its full width; the id takes what is left and folds beyond that
    room = console.width - sum(widths[1:]) - 2 * len(heads)
    fits = room >= 8
    widths[0] = max(8, min(widths[0], room)) if fits else min(widths[0], 20)
    for i, head in enumerate(heads):
        widest = widths[i]
        left = i < 2 or (2 <= i < 2 + len(varying) and varying[i - 2] in ("optimizer", "scheduler", "loss", "dataset"))
        table.add_column(head, justify="left" if left else "right",
                         overflow="fold" if i == 0 else "ellipsis", min_width=widest if (fits or i == 0) else None,
                         no_wrap=(i > 0) == fits)  # rich shrinks the wrappable columns first
    from rich.text import Text

    from ..core.show.styles import state_style

    for r, row in zip(rows, cells):  # Text: an id or a value is never read as markup (an id "a[b]" stays whole)
        table.add_row(*(Text(c, style=state_style(r.get("status")) if i == 1 else "") for i, c in enumerate(row)))
    console.print(table)
    if grouped:
        typer.echo("mean±sd(n): mean and standard deviation over each configuration's n runs (repeats, folds: "
                   "with folds the cross-validated mean over folds); --runs lists every run")
        if "oof_val_dice" in scores:
            typer.echo("pooled oof val dice: every non-test image predicted once by the fold that did not train on "
                       "it, counts summed over the folds (per repeat, then mean±sd(n) over repeats)")
    if classes and not per_class:
        typer.echo("no multi-class runs (num_classes >= 3) here: a binary run's val dice is its foreground's")
    elif no_score:
        typer.echo("—: no score (the class is in no image of the set, in truth or prediction) or none yet; "
                   "`unettui show ID` says why")
    if boundary:
        typer.echo("val hd95 (pixels, lower is better) and val nsd (at each run's nsd_tolerance, higher is better): "
                   "on the best epoch's weights at the end of a run, per image, then the mean over the images that "
                   "scored (a multi-class run's: over its classes with a score; max/min: the worst class's)"
                   + ("; —: none (a run from before boundary metrics or still training, or no image scored)"
                      if no_end else ""))
    if any(r.get("val_on_train") for r in rows):
        typer.echo("note: runs with train_fraction = 1.0 validate on their training images; their val numbers measure fit, not generalisation")


SHORT = {"optimizer": "optim", "weight_decay": "wd", "scheduler": "sched", "train_fraction": "train",
         "augment.rotate": "rot", "augment.hflip": "hflip", "augment.vflip": "vflip", "augment.histeq": "histeq",
         "batch_size": "batch", "image_size": "size", "base_channels": "base", "momentum": "mom"}


def _show(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):  # class_names, mask_values, class_weights: "-" when left at the default
        from ..core.show.fmt import value as fmt_value

        return fmt_value(v)
    return str(v)


@app.command()
def export(
    path: Path | None = typer.Argument(None, help="File to write; stdout when left out.", dir_okay=False),
    project: Path = ProjectOpt,
    fmt: Format = typer.Option(Format.csv, "--format", "-f", help="csv or md (Markdown table)."),
    sort: str | None = typer.Option(None, "--sort", "-s", help="Column to sort by (default: queue order)."),
    desc: bool = typer.Option(True, "--desc/--asc", help="Sort direction."),
    by_configuration: bool = typer.Option(False, "--by-configuration", help="One row per configuration: the mean, standard deviation and n of each metric over its repeats."),
) -> None:
    """Export one row per experiment: id, status, configuration and repeat, every hyper-parameter, best, final and test metrics.

    Every project's export ends with the end-of-run boundary metrics on each run's best weights: val_hd95, val_nsd, test_hd95, test_nsd (HD95 in pixels, lower is better; NSD at the run's nsd_tolerance, higher is better; per image, then the mean over the images that scored), empty for a run that has none.

    Projects with multi-class runs (num_classes >= 3) get, after those columns, best_val_iou and a column per metric and foreground class, <metric>_<class> (best_val_dice_myocardium, test_dice_myocardium, ..., then val_hd95_myocardium, test_nsd_myocardium, ...), and the worst class's, <metric>_min (for HD95, where lower is better, <metric>_max); a binary run's are empty there. A class with no score (in no image of the set, in truth or prediction) is an empty cell, never NaN or 0.

    With --by-configuration, one row per configuration (its repeats folded): the keys of its first repeat, runs, seeds, and for best/final val Dice and loss, final val IoU, test Dice/IoU, val and test HD95/NSD and every per-class column the mean (under the metric's name), <metric>_sd and <metric>_n over the repeats that have a value.

    Example: unettui export results.csv   (then pandas.read_csv("results.csv"))
    """
    from ..core.runs.export import columns_for, sort_rows, to_csv, to_markdown
    from ..core.runs.groups import configuration_columns, configuration_rows

    rows = _rows(project, sort, desc)
    if by_configuration:
        rows = configuration_rows(rows)
        if sort:
            rows = sort_rows(rows, sort, desc)
        columns = configuration_columns(rows)
    else:
        columns = columns_for(rows)
    text = to_csv(rows, columns) if fmt == Format.csv else to_markdown(rows, columns)
    write_output(path, text, f"wrote {len(rows)} rows to {path}")


@app.command()
def bench(
    device: str = typer.Option("auto", "--device", "-d", help="auto, cpu, cuda or cuda:N."),
    steps: int = typer.Option(20, "--steps", min=1, help="Training steps per timed round."),
    rounds: int = typer.Option(5, "--rounds", min=1, help="Alternating rounds of trainer and reference."),
    image_size: int = typer.Option(64, "--image-size", help="Image side in pixels (a multiple of 16)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Images per step."),
    base_channels: int = typer.Option(16, "--base-channels", help="UNet width (16 = baseline / 4)."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads (default: all cores)."),
    pack: str | None = typer.Option(None, "--pack", metavar="N[,N...]", help="Packs instead: train N experiments one after the other and as one pack, for each N, and compare images/s."),
    amp: str = typer.Option("off", "--amp", help="With --pack: off (fp32), bf16, or auto (the trainer's choice)."),
    launches: bool = typer.Option(False, "--launches", help="With --pack: a model of the CUDA kernel launches of one training step instead of timings, counted on the CPU (no GPU needed): per pack size, 'launches N=<n>: <count>', then the pack against one solo step."),
    dropout: float = typer.Option(0.0, "--dropout", min=0.0, max=0.9, help="With --pack: the members' dropout p (0: none)."),
    augment: bool = typer.Option(False, "--augment", help="With --pack: the members augment their batches (flips, rotation up to 15°)."),
    pack_dropout: str = typer.Option("exact", "--pack-dropout", metavar="exact|fused", help="With --pack and --dropout: how the pack draws its dropout masks, as `unettui run --pack-dropout`: exact (each member's solo masks, one draw per member per layer) or fused (one draw per layer for the whole pack)."),
    data: bool = typer.Option(False, "--data", help="The data loader instead: for an experiment of the project (--experiment, default the queue's [defaults]), the loader's samples/s (patches drawn, cut and moved to the device) beside the training step's, and which one limits."),
    experiment: str | None = typer.Option(None, "--experiment", "-e", metavar="ID", help="With --data: the experiment whose settings are used (default: the queue's [defaults])."),
    project: Path = ProjectOpt,
) -> None:
    """Compare unettui's trainer with a minimal hand-written PyTorch loop (same model, data and steps).

    Prints images/s for both and, on the last line, ratio = trainer / reference. On CUDA it also compares fp32 with AMP.

    With --pack N[,N...]: for each N, the same N experiments trained sequentially and as one pack in one process; prints images/s of each and, on the last line, ratio = packed / sequential (one per N).

    Example: unettui bench --device cuda --steps 50

    Example: unettui bench --device cuda --pack 1,4,8,16 --amp bf16 --image-size 128

    With --pack N,... --launches: a model of the kernels one training step would launch on CUDA (forward, backward, loss and the optimizer's multi-tensor launches as torch splits them), counted on the CPU, for one solo run and each pack size; the last line is the pack of the largest N against the solo step.

    Example: unettui bench --pack 1,4,8,16 --launches

    Example: unettui bench --pack 1,4,8,16 --launches --dropout 0.1 --pack-dropout fused   (dropout drawn once per layer for the whole pack)

    With --data: for one experiment of the project, the data loader's samples/s beside the training step's (the slower one limits training); the last line is ratio = loader / step.

    Example: unettui bench --data --experiment nuclei-p128
    """
    from ..core.learn.bench import run_bench, run_launch_model, run_pack_bench

    if threads:
        import torch

        torch.set_num_threads(threads)
    if data:
        _bench_data(project, experiment, device, steps, rounds)
        return
    sizes: tuple[int, ...] = ()
    if pack is not None:
        try:
            sizes = tuple(int(x) for x in pack.split(",") if x.strip())
        except ValueError:
            sizes = ()
        if not sizes or min(sizes) < 1:
            fail(f"--pack {pack}: give pack sizes >= 1, e.g. --pack 1,4,8")
        if amp not in ("off", "bf16", "auto"):
            fail(f"--amp {amp}: use off, bf16 or auto (packs do not train in fp16)")
        pack_dropout = pack_dropout.strip().lower()
        if pack_dropout not in ("exact", "fused"):
            fail(f"--pack-dropout {pack_dropout}: use exact or fused")
    if launches and not sizes:
        fail("--launches models a pack's launches: give the pack sizes too, e.g. --pack 1,4,8,16 --launches")
    try:
        lines = (run_launch_model(packs=sizes, image_size=image_size, batch_size=batch_size,
                                  base_channels=base_channels, dropout=dropout, augment=augment,
                                  dropout_mode=pack_dropout) if launches else
                 run_pack_bench(device=device, packs=sizes, steps=steps, rounds=rounds, image_size=image_size,
                                batch_size=batch_size, base_channels=base_channels, amp=amp,
                                dropout=dropout, augment=augment, dropout_mode=pack_dropout) if sizes else
                 run_bench(device=device, steps=steps, rounds=rounds, image_size=image_size,
                           batch_size=batch_size, base_channels=base_channels))
        for line in lines:
            typer.echo(line)
    except RuntimeError as exc:
        fail(str(exc))


def _bench_data(project: Path, experiment: str | None, device: str, batches: int, rounds: int) -> None:
    from ..core.learn.bench_data import run_data_bench
    from ..core.learn.data import DatasetError
    from .lrfind_cmd import experiment_config

    cfg = experiment_config(project, experiment)
    try:
        for line in run_data_bench(cfg, project, None if device == "auto" else device, batches, rounds):
            typer.echo(line)
    except (RuntimeError, DatasetError, ValueError) as exc:
        fail(str(exc).splitlines()[0])


# the other command groups register themselves on the same app
from . import (  # noqa: E402,F401
    check_cmd,
    compare_cmd,
    logs_cmd,
    lrfind_cmd,
    ls_cmd,
    predict_cmd,
    queue_cmds,
    show_cmd,
    slurm_cmds,
    study_cmds,
)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
