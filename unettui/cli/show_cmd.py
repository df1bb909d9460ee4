"""`unettui show ID`: a run's config, epochs, curves, best and final numbers, and its validation previews."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import typer

from ..core.define.task import SUMMARY_KEYS, VIEWS, direction_of, label_of
from ..core.show.fmt import value as fmt_value
from ..core.show.styles import state_style
from .common import (
    ProjectOpt,
    app,
    as_dict,
    best_of,
    duration,
    fail,
    fmt_lr,
    fmt_number,
    make_console,
    queue_and_store,
    resolve,
)

MAX_EPOCH_ROWS = 30  # longer histories show their first and last rows
EDGE_ROWS = 10




RUN_INFO_KEYS = ("id", "unettui_version", "torch_version", "resolved_device", "amp_dtype", "in_channels", "n_train",
                 "n_val", "val_on_train", "parameters", "fingerprint", "mode", "samples_per_epoch")


def _kv_grid(rows: list[tuple[str, str, str | None]]):
    """Label | text rows where long texts wrap under themselves, not under the label."""
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for label, text, style in rows:
        grid.add_row(Text("  " + label), Text(text, style=style or ""))
    return grid


def _heading(exp_id: str, state: Any, label: str, rest: str = ""):
    """``exp_id: label rest`` in bold, the state's ``label`` in its colour (core.show.styles, as in ls and the TUI)."""
    from rich.text import Text

    return Text.assemble(f"{exp_id}: ", (label, state_style(state)), rest, style="bold")


def _config_section(console, cfg: dict[str, Any], title: str) -> None:
    from rich.text import Text

    from ..core.define.config import DEFAULTS, KEYS, recorded_value

    defaults = DEFAULTS.to_dict()
    differ = [k for k in KEYS if k in cfg and recorded_value(cfg[k]) != defaults[k]]
    same = [k for k in KEYS if k in cfg and recorded_value(cfg[k]) == defaults[k]]
    extra = [k for k in cfg if k not in KEYS and k not in RUN_INFO_KEYS]
    rows: list[tuple[str, str, str | None]] = []
    if differ:
        rows.append(("set:", "  ".join(f"{k}={fmt_value(cfg[k])}" for k in differ), None))
    if same:
        rows.append(("defaults:", "  ".join(f"{k}={fmt_value(cfg[k])}" for k in same), "dim"))
    if extra:
        rows.append(("other:", "  ".join(f"{k}={fmt_value(cfg[k])}" for k in extra), "dim"))
    info = []
    if cfg.get("resolved_device"):
        info.append(f"{cfg['resolved_device']}, amp {cfg.get('amp_dtype', '?')}")
    if cfg.get("n_train") is not None:
        info.append(f"{cfg['n_train']} train / {cfg.get('n_val', '?')} val images"
                    + (" (validating on the training images)" if cfg.get("val_on_train") else ""))
    if cfg.get("mode"):  # resize to N, or patches of P at native resolution
        info.append(str(cfg["mode"]) + (f" ({cfg['samples_per_epoch']} per epoch)"
                                         if str(cfg["mode"]).startswith("patches") else ""))
    if isinstance(cfg.get("parameters"), int):
        info.append(f"{cfg['parameters']:,} parameters")
    if cfg.get("torch_version"):
        info.append(f"torch {cfg['torch_version']}")
    if info:
        rows.append(("run:", ", ".join(info), None))
    console.print(Text(title, style="bold"))
    console.print(_kv_grid(rows))


def _metrics_section(console, metrics: list[dict[str, Any]], all_rows: bool) -> None:
    from rich import box
    from rich.table import Table

    best_v, best_e = best_of(metrics, None)
    shown: list[dict[str, Any] | None] = list(metrics)
    notes = ["* best val dice"] if best_v is not None else []
    if not all_rows and len(metrics) > MAX_EPOCH_ROWS:
        middle = metrics[EDGE_ROWS:-EDGE_ROWS]
        best_rec = [r for r in middle if r.get("epoch") == best_e and r.get("val_dice") == best_v][:1]
        shown = metrics[:EDGE_ROWS] + [None] + (best_rec + [None] if best_rec else []) + metrics[-EDGE_ROWS:]
        notes.append(f"⋮ {len(middle) - len(best_rec)} epochs not shown (--all-epochs)")
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False, show_edge=False, title="epochs",
                  title_justify="left", title_style="bold",
                  caption="; ".join(notes) or None, caption_justify="left")
    keys = VIEWS["epochs"]  # core.define.task: what the table shows, and the words of each
    chosen_by = SUMMARY_KEYS["best_val_dice"].source  # the epoch key the best epoch is chosen by (val_dice)
    for head in ("epoch", *(label_of(k, short=True) for k in keys)):
        table.add_column(head, justify="right", no_wrap=True)
    for rec in shown:
        if rec is None:
            table.add_row(*["⋮"] * (1 + len(keys)))
            continue
        is_best = best_v is not None and rec.get("epoch") == best_e and rec.get(chosen_by) == best_v
        table.add_row(fmt_number(rec.get("epoch"), 0) if isinstance(rec.get("epoch"), int) else fmt_number(rec.get("epoch")),
                      *(_epoch_cell(rec, k) + ("*" if is_best else " ") if k == chosen_by else _epoch_cell(rec, k)
                        for k in keys),
                      style="bold" if is_best else None)
    console.print(table)


def _epoch_cell(rec: dict[str, Any], key: str) -> str:
    """A metrics.jsonl value as the epochs table shows it: a time as a duration, a rate with 3 digits, a metric
    with 4."""
    if key == "seconds":
        return duration(rec.get(key))
    return fmt_number(rec.get(key)) if direction_of(key) else fmt_lr(rec.get(key))


def _curves_section(console, metrics: list[dict[str, Any]]) -> None:
    from rich.text import Text

    from ..core.show.render import sparkline

    n = len(metrics)
    console.print(Text(f"curves ({n} epoch{'' if n == 1 else 's'})", style="bold"))
    width = max(8, min(n, console.width - 52))
    for key in VIEWS["curves"]:
        direction = direction_of(key)
        better = None if direction is None else max if direction == "max" else min
        vals = [rec.get(key) for rec in metrics]
        finite = [(float(v), rec.get("epoch")) for v, rec in zip(vals, metrics)
                  if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
        fmt = fmt_number if direction else fmt_lr
        line = Text(f"  {label_of(key, short=True):<11}")
        line.append(sparkline(vals, width).ljust(width), style="cyan")
        if finite:
            line.append(f"  {fmt(finite[0][0])} → {fmt(finite[-1][0])}")
            if better is not None:
                v, e = better(finite, key=lambda t: t[0])
                line.append(f"  ({'min' if better is min else 'max'} {fmt(v)} @{e})")
        console.print(line, no_wrap=True, overflow="ellipsis")


def _summary_section(console, summary: dict[str, Any], st: dict[str, Any]) -> None:
    from rich.text import Text

    parts = []
    if summary.get("best_val_dice") is not None:
        parts.append(f"best val dice {fmt_number(summary.get('best_val_dice'))} at epoch {summary.get('best_epoch', '?')}")
    final = [f"{k.label.lower()} {fmt_number(summary.get(k.name))}" for k in SUMMARY_KEYS.values()
             if k.at == "final" and k.name in summary]  # the last epoch's metrics (core.define.task)
    console.print(Text("summary", style="bold"))
    if parts:
        console.print(Text("  " + "; ".join(parts)))
    if final:
        console.print(Text("  final: " + ", ".join(final)))
    done, total = summary.get("epochs_done"), summary.get("epochs", st.get("epochs"))
    if done is not None:
        console.print(Text(f"  {done}/{total} epochs in {duration(summary.get('seconds'))}"))
    if summary.get("val_on_train"):
        console.print(Text("  note: train_fraction = 1.0: validated on the training images; val numbers measure fit,"
                           " not generalisation"))


def _preview_section(console, pv: dict[str, Any], tag: str, sample: int | None, colour: bool) -> None:
    """Draw the validation preview: every sample (or sample N) as input | truth | prediction | overlay (multi-class:
    input | truth | prediction | errors, each class in its colour, or with its own character in ASCII)."""
    import numpy as np
    from rich.text import Text

    from ..core.show.preview import dice_caption, preview_classes
    from ..core.show.render_preview import preview_legend, sample_panels
    from ..richtext import segments_text

    k = pv["truth"].shape[0]
    names = [str(n) for n in np.atleast_1d(pv.get("names", []))]
    dice = [float(d) for d in np.atleast_1d(pv.get("dice", []))]
    classes = preview_classes(pv)
    epoch = pv.get("epoch")
    ep = f", epoch {int(epoch)}" if epoch is not None and np.ndim(epoch) == 0 else ""
    console.print(Text(f"validation preview ({tag}{ep}, {k} sample{'' if k == 1 else 's'})", style="bold"))
    gap = 2
    panel_width = max(4, (console.width - 3 * gap) // 4)
    for i in ([sample - 1] if sample else range(k)):
        name = names[i] if i < len(names) else f"#{i + 1}"
        d = f"  {dice_caption(pv, i)}" if classes is not None else f"  dice {dice[i]:.4f}" if i < len(dice) else ""
        console.print(Text(f"sample {i + 1}/{k}  {name}{d}"))
        for row in sample_panels(pv, i, panel_width, gap, colour):
            console.print(segments_text([row]) if colour else Text(row), no_wrap=True, overflow="crop")
    legend = preview_legend(pv, colour)
    console.print(segments_text([legend]) if colour else Text(legend))
    if colour:
        return
    if classes is None:
        console.print(Text("truth: # foreground; prediction: + foreground (probability > 0.5)"))
    else:
        console.print(Text("truth and prediction: each class's character (a cell of several classes shows the "
                           "rarest); errors: the truth's character, ! where any pixel's predicted class is not the "
                           "truth's"))


def _classes_section(console, summary: dict[str, Any], cfg: dict[str, Any]) -> None:
    """A multi-class run's scores per class: Dice and IoU at the best epoch, the last, and on the test split, and
    beside them the end-of-run HD95 and NSD where the run recorded them, for each foreground class, their mean and the
    worst (HD95's: the highest); "—" where a class has no score, and why underneath. A binary run: its HD95 and NSD
    on one line."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from ..core.define.task import class_key, foreground_of, format_value, no_score_reason, spread_keys, worst_key

    names = foreground_of(summary, cfg)
    if not names:
        _boundary_line(console, summary)
        return
    keys = [k for k in VIEWS["class-table"]
            if any(x in summary for x in (k, worst_key(k), *(class_key(k, n) for n in names)))]
    ends = [k for k in VIEWS["class-boundary"]
            if any(x in summary for x in (k, worst_key(k), *(class_key(k, n) for n in names)))]
    if not keys and not ends:
        return
    title = "per class: Dice and IoU at the best epoch, the last, and on the test split"
    if ends:
        title += "; HD95 and NSD"
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False, show_edge=False, title_justify="left",
                  title=title, title_style="bold")
    table.add_column("class", no_wrap=True)
    for k in (*keys, *ends):
        table.add_column(label_of(k, short=True), justify="right", no_wrap=True)
    reasons: dict[tuple[str, str], list[str]] = {}  # (class, reason) -> the columns it explains

    def cell(base: str, key: str, who: str) -> str:
        value = summary.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return format_value(key, value)
        why = no_score_reason(summary, key)
        spread = spread_keys(key)
        if not why and spread is not None and summary.get(spread[1]) == 0:  # an end-of-run metric: no image scored
            where = "test" if base.startswith("test_") else "validation"
            why = f"no {where} image scored: the class is in neither the truth nor the prediction of any of them"
        if why:
            reasons.setdefault((who, why), []).append(label_of(base, short=True))
        return "—"

    for n in names:
        table.add_row(n, *(cell(k, class_key(k, n), n) for k in (*keys, *ends)))
    table.add_row(Text("mean", style="dim"), *(cell(k, k, "mean") for k in (*keys, *ends)))
    table.add_row(Text("worst", style="dim"), *(cell(k, worst_key(k), "worst") for k in (*keys, *ends)))
    console.print(table)
    console.print(Text("  mean: over the foreground classes that have a score (the run's val dice); worst: the lowest "
                       "of them" + (" (HD95's: the highest)" if ends else "")), overflow="fold")
    if ends:
        counts = []
        for prefix in ("val", "test"):
            k = next((e for e in ends if e.startswith(prefix + "_")), None)
            spread = [spread_keys(class_key(k, n)) for n in names] if k else []
            ns = [(n, summary.get(sp[1])) for n, sp in zip(names, spread) if sp and sp[1] in summary]
            if ns:
                counts.append(f"{prefix}: " + ", ".join(f"{n} {c if c is not None else '—'}" for n, c in ns))
        console.print(Text(f"  {_end_words(summary)}" + (f"; images scored — {'; '.join(counts)}" if counts else "")),
                      overflow="fold")
    for (who, why), cols in reasons.items():
        console.print(Text(f"  — {who} ({', '.join(cols)}): {why}"), overflow="fold")


def _end_words(summary: dict[str, Any]) -> str:
    """How the end-of-run boundary metrics were computed (core.define.task's registry: per image, then the mean)."""
    from ..core.define.task import aggregation_text

    tol = summary.get("nsd_tolerance")
    at = f" at {tol:g} px" if isinstance(tol, (int, float)) and not isinstance(tol, bool) else ""
    return (f"HD95 (pixels, lower is better) and NSD{at} (higher is better): once, at the end of the run on the best "
            f"epoch's weights, {aggregation_text('hd95')}")


def _boundary_line(console, summary: dict[str, Any]) -> None:
    """A binary run's end-of-run HD95 and NSD on one line per split: mean ± sd over the images that scored, and n."""
    from rich.text import Text

    from ..core.define.task import END_KEYS, format_value, label_of, metric_of, spread_keys

    if not any(k in summary for k in END_KEYS):
        return
    console.print(Text("  boundary:"))
    for prefix, where in (("val", "validation"), ("test", "test")):
        keys = [k for k in END_KEYS if k.startswith(prefix + "_") and k in summary]
        if not keys:
            continue
        parts, n = [], None
        for k in keys:
            sd_key, n_key = spread_keys(k) or ("", "")
            metric = metric_of(k)
            text = format_value(k, summary.get(k), missing="—")
            sd = summary.get(sd_key)
            if text != "—" and isinstance(sd, (int, float)) and not isinstance(sd, bool) and math.isfinite(sd):
                text += f" ± {format_value(k, sd)}"
            unit = f" {metric.unit}" if text != "—" and metric is not None and metric.unit else ""
            parts.append(f"{metric.label if metric is not None else label_of(k)} {text}{unit}")
            n = summary.get(n_key, n)
        scored = f" ({n} image{'' if n == 1 else 's'} scored)" if isinstance(n, int) else ""
        why = " — : no image scored (no foreground in truth or prediction)" if n == 0 else ""
        console.print(Text(f"    {where}: {', '.join(parts)}{scored}{why}"))
    console.print(Text(f"    {_end_words(summary)}"), overflow="fold")


def _missing_files(run, state, st: dict[str, Any]) -> list[str]:
    """Files that a run in ``state`` should have but lacks (unreadable ones are the read model's problems)."""
    from ..core.runs.status import State
    from ..core.runs.store import CONFIG, LOG, METRICS, STATUS, SUMMARY

    expected = [STATUS, LOG] if state is not State.DAMAGED else [LOG]
    if state in (State.DONE, State.PRUNED):
        expected += [CONFIG, METRICS, SUMMARY]
    elif state in (State.RUNNING, State.INTERRUPTED) and isinstance(st.get("epoch"), int) and st["epoch"] > 0:
        expected += [CONFIG, METRICS]
    missing = [n for n in expected if not run.file(n).exists()]
    return ["missing: " + ", ".join(missing)] if missing else []


def next_step(row, exp_id: str, where: str) -> str | None:
    """The command that moves a run on from its state (a hint that works for that state), or None."""
    from ..core.runs.status import State

    if not row.in_queue or row.state is State.INVALID:
        return None  # not trainable as it is: the header and error say why
    if row.state is State.FAILED:  # `run` passes a failed run by: retry archives it and makes it pending again
        return (f"train it again from scratch (once its error is dealt with): unettui retry {exp_id}{where}, then "
                f"unettui run --headless --only {exp_id}{where}")
    if row.state is State.PENDING:
        return f"run it with: unettui run --headless --only {exp_id}{where}"
    if row.state is State.INTERRUPTED:
        return f"resume it with: unettui run --headless --only {exp_id}{where}"
    if row.state is State.CHANGED:
        return (f"train it again with: unettui run --headless --only {exp_id}{where} (from scratch; this attempt is "
                "kept in runs/ID/attempts/)").replace("runs/ID/", f"runs/{exp_id}/")
    if row.state is State.RUNNING and row.backend.get("kind") == "slurm":
        return f"stop it with: unettui cancel {exp_id}{where}"
    return None


def _waiting_for(console, project: Path, exp_id: str, row) -> None:
    """The SLURM submissions of this project that may still train a run no task holds now, with the scheduler's
    state of their tasks (and why they wait)."""
    from rich.text import Text

    from ..core.runs.slurm_state import active_submissions
    from ..core.runs.status import TRAINABLE

    if row.state not in TRAINABLE or not row.in_queue:
        return
    for line in active_submissions(project, run_id=exp_id):
        console.print(Text(f"  to be trained by {line}"), overflow="fold")


@app.command()
def show(
    exp_id: str = typer.Argument(..., metavar="ID", help="Experiment id (see `unettui ls`)."),
    project: Path = ProjectOpt,
    ascii_: bool = typer.Option(False, "--ascii", help="Draw the preview in plain ASCII (also with NO_COLOR or when not on a terminal)."),
    sample: int | None = typer.Option(None, "--sample", "-n", min=1, help="Draw only preview sample N (1-based; default: all)."),
    last: bool = typer.Option(False, "--last", help="The preview of the last epoch instead of the best one."),
    all_epochs: bool = typer.Option(False, "--all-epochs", help=f"Every epoch's row, even beyond {MAX_EPOCH_ROWS}."),
) -> None:
    """Everything about one run: its config, the per-epoch metrics, loss and Dice curves, the best and final numbers, and validation previews (input | truth | prediction | overlay).

    Previews are drawn with colour half-blocks on a terminal; in plain ASCII with --ascii, when NO_COLOR is set, or when the output is not a terminal. In the overlay, hits are green, false positives red (vermillion) and misses blue; in ASCII '@' hit, '+' false positive, '#' missed. An experiment that has not run yet shows its resolved config.

    Example: unettui show opt-at-1e-4-adam --sample 2 --last
    """
    from rich.text import Text

    from ..core.show.render import use_colour

    queue, store = queue_and_store(project)
    exp, run = resolve(exp_id, queue, store)
    colour = not ascii_ and use_colour()
    console = make_console(colour)

    if exp is not None and not exp.valid:
        console.print(_heading(exp_id, "invalid", "invalid definition", f" ({exp.origin})"))
        console.print(_kv_grid([("error:", str(exp.error), "red")]))
        if not run.exists():
            return
    from ..core.runs.jobs import SHIPPED
    from ..core.runs.status import State, collect

    row = collect(queue, store, metrics=True, ids=[exp_id], readers=SHIPPED)[0]
    state, st = row.state, row.status
    if state is State.PENDING and not run.file("config.json").exists() and not row.metrics:
        if exp is not None and exp.valid:
            console.print(_heading(exp_id, state, "pending", f", not run yet ({exp.origin})"))
            _config_section(console, exp.config.to_dict(), "config (resolved)")
            where = "" if str(project) == "." else f" -p {project}"
            console.print(Text(next_step(row, exp_id, where) or ""))
            _waiting_for(console, project, exp_id, row)
        from ..core.runs.store import ATTEMPTS

        leftovers = [p.name for p in run.path.iterdir() if not p.name.startswith(".")] if run.exists() else []
        if leftovers == [ATTEMPTS]:  # `unettui retry` archived the earlier attempts: nothing else to show
            console.print(Text(f"  earlier attempts: {', '.join(p.name for p in run.attempts())}"
                               f" (their logs: unettui logs {exp_id} --attempt N)"))
        if not leftovers or leftovers == [ATTEMPTS]:
            return

    tag = "last" if last else "best"
    from ..core.show.preview import load_preview

    pv, pv_problem = load_preview(run.path, tag)
    if sample is not None:  # say so before printing anything else
        if pv is None:
            fail(f"--sample {sample}: {pv_problem}")
        if sample > pv["truth"].shape[0]:
            fail(f"--sample {sample}: preview_{tag}.npz holds samples 1..{pv['truth'].shape[0]}")

    # header
    head = f", attempt {row.attempt}" if row.attempt else ""
    if exp is None:
        head += " (not in experiments.toml)"
    console.print(_heading(exp_id, state, row.label, head))
    when = []
    for key, label in (("started", "started"), ("ended", "ended"), ("heartbeat", "last heartbeat")):
        if isinstance(st.get(key), (int, float)) and (key != "heartbeat" or state in ("running", "interrupted")):
            try:
                when.append(f"{label} {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(st[key]))}")
            except (OverflowError, OSError, ValueError):
                pass
    if st.get("host"):
        when.append(f"on {st['host']}" + (f" pid {st['pid']}" if st.get("pid") else ""))
    if row.backend:  # a claim of a cluster job: which, and what the scheduler says of it
        when.append(f"in {row.backend.get('kind')} job {row.backend.get('job')}"
                    + (f" ({row.scheduler})" if row.scheduler else "")
                    + (f" (its output: unettui logs {exp_id} --slurm)" if row.backend.get("log") else ""))
    if when:
        console.print(Text("  " + ", ".join(when)))
    if row.error:
        console.print(_kv_grid([("error:", row.error, "red")]))
    if row.change_text:
        console.print(_kv_grid([("changed:", row.note, state_style("changed"))]))
    older = run.attempts()
    if older:
        console.print(Text(f"  earlier attempts: {', '.join(p.name for p in older)}"
                           f" (their logs: unettui logs {exp_id} --attempt N)"))
    hint = next_step(row, exp_id, "" if str(project) == "." else f" -p {project}")
    if hint:
        console.print(Text(hint))
    _waiting_for(console, project, exp_id, row)

    cfg = as_dict(run.config())
    if cfg and row.change_text:
        _config_section(console, cfg, "config (as it ran; experiments.toml now defines it otherwise)")
    elif cfg:
        _config_section(console, cfg, "config")
    elif exp is not None and exp.config is not None:
        _config_section(console, exp.config.to_dict(), "config (from experiments.toml; the run has no config.json)")

    metrics = row.metrics
    if metrics:
        _metrics_section(console, metrics, all_epochs)
        _curves_section(console, metrics)
    summary = as_dict(run.summary())
    if summary:
        _summary_section(console, summary, st)
        _classes_section(console, summary, cfg or {})

    problems = row.problems + _missing_files(run, state, st)
    if pv is not None:
        _preview_section(console, pv, tag, sample, colour)
    elif pv_problem and (state == "done" or run.file(f"preview_{tag}.npz").exists()):
        problems.append(pv_problem)
    elif metrics:
        console.print(Text(f"no validation preview yet (preview_{tag}.npz)", style="dim"))
    for p in problems:
        console.print(Text(f"note: {p}", style="yellow"))
