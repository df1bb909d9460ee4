"""`unettui compare ID...`: the curves of several runs overlaid in the terminal, labelled by what differs between them."""

from __future__ import annotations

from pathlib import Path

import typer

from ..core.define.task import EPOCH_KEYS
from .common import ProjectOpt, app, fail, known_ids, make_console, queue_and_store

DEFAULT_HEIGHT = 16
CURVES = [k.name for k in EPOCH_KEYS.values() if k.curve]  # what --metric takes (core.define.task's registry)


def _wanted(ids: list[str], queue, each: bool) -> list[str]:
    """The ids asked for, in order, once each; an id naming a configuration with repeats brings its repeats along
    (unless ``each``)."""
    out = list(dict.fromkeys(ids))
    if queue is not None and not each:
        asked = set(out)
        for e in queue.experiments:
            if e.configuration in asked and e.id not in asked:
                out.append(e.id)
    return out


@app.command()
def compare(
    ids: list[str] = typer.Argument(..., metavar="ID...", help="Runs to compare (in the queue or not); an id whose experiment has repeats brings its repeats."),
    metric: str = typer.Option("val_dice", "--metric", "-m", help=f"{', '.join(CURVES)}; for multi-class runs also a class's, val_dice_<class> or val_iou_<class> (e.g. val_dice_myocardium), or the worst class's, val_dice_min (a binary run's is its val_dice). For multi-class runs val_dice is the mean over the classes with a score."),
    ascii_: bool = typer.Option(False, "--ascii", help="Plain ASCII, a character per run (also with NO_COLOR or when not on a terminal)."),
    group: bool = typer.Option(False, "--group", help="Also take runs whose configurations differ only in the seed as repeats of one configuration."),
    each: bool = typer.Option(False, "--each", help="One curve per run, repeats too (no mean and band)."),
    height: int = typer.Option(DEFAULT_HEIGHT, "--height", min=3, max=200, help="Rows of the plot."),
    width: int | None = typer.Option(None, "--width", min=30, max=1000, help="Columns (default: the terminal's width)."),
    project: Path = ProjectOpt,
) -> None:
    """Overlay one metric's curves of several runs on shared axes, in the terminal. The legend names each run (or configuration) by the keys that differ between them; a configuration with repeats is drawn as their mean with a band from the lowest to the highest run. The y axis turns logarithmic when the values span decades (a diverging loss).

    For multi-class runs, --metric val_dice_<class> draws one class's Dice, val_dice_min the worst class's; an epoch where a class has no score (it is in no validation image, in truth or prediction) leaves a gap instead of a 0.

    Drawn with braille dots in colour, a marker per run at each epoch, on a terminal; in plain ASCII with a character per run with --ascii, when NO_COLOR is set, or when the output is not a terminal.

    Example: unettui compare opt-lr-adam-lr0.001 opt-lr-adam-lr0.01 opt-lr-sgd-lr0.1 --metric val_loss

    Example: unettui compare heart-adam heart-sgd --metric val_dice_myocardium
    """
    from ..core.define.names import did_you_mean, nearest_ids
    from ..core.define.task import split_class_key
    from ..core.runs.jobs import SHIPPED
    from ..core.runs.status import collect
    from ..core.show.compare import METRICS, PER_CLASS, class_metrics, describe, is_metric
    from ..core.show.compare import compare as build
    from ..core.show.curves import plain, render_curves
    from ..core.show.render import use_colour

    if not is_metric(metric):
        fail(f"unknown metric '{metric}'; {did_you_mean(metric, METRICS)}metrics: {', '.join(METRICS)}, and for "
             "multi-class runs val_dice_<class>, val_iou_<class>, val_dice_min")
    if group and each:
        fail("--group and --each contradict each other; use one")
    queue, store = queue_and_store(project)
    known = known_ids(queue, store)
    unknown = [i for i in dict.fromkeys(ids) if i not in set(known)]
    if unknown:
        hint = nearest_ids(unknown[0], known) if known else "the queue is empty and runs/ has no run"
        more = f" (and {len(unknown) - 1} more unknown)" if len(unknown) > 1 else ""
        fail(f"unknown run '{unknown[0]}'{more}; {hint}")
    wanted = _wanted(ids, queue, each)
    by_id = {r.id: r for r in collect(queue, store, metrics=True, ids=wanted, readers=SHIPPED)}
    rows = [by_id[i] for i in wanted if i in by_id]
    split = split_class_key(metric, PER_CLASS)
    if split and split[1] != "min" and metric not in class_metrics(rows):
        named = class_metrics(rows)
        fail(f"--metric {metric}: none of these runs has a class '{split[1]}'; "
             + (f"{did_you_mean(metric, named)}theirs: {', '.join(named)}" if named else
                "they are binary runs (their val_dice is the foreground's)"))
    comparison = build(rows, metric, "none" if each else "seed" if group else "configuration")
    colour = not ascii_ and use_colour()
    console = make_console(colour)
    cols = width or console.width
    console.width = cols
    try:
        drawn = render_curves(comparison.series, width=cols, height=height, ascii=not colour, ylabel=metric)
    except ValueError as exc:
        fail(str(exc))
    typer.echo(describe(comparison))
    if colour:
        from ..richtext import segments_text

        console.print(segments_text(drawn), no_wrap=True, overflow="crop", soft_wrap=True)
    else:
        for line in plain(drawn):
            typer.echo(line)
    if not any(s.points for s in comparison.series):
        typer.echo(f"none of these runs has a score for class '{split[1]}' in any epoch yet (a class in no validation "
                   "image, in truth or prediction, has none)" if split and any(r.metrics for r in rows)
                   else f"none of these runs has recorded {metric} yet")
