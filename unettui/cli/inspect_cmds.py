"""Commands that look at the queue and runs: ls, show, logs, check."""

from __future__ import annotations

import difflib
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer

from ..core.show.fmt import value as fmt_value
from .common import ProjectOpt, app, duration, fail, load_queue_or_fail

POLL_SECONDS = 0.5  # `logs --follow` polling interval
MAX_EPOCH_ROWS = 30  # `show`: longer histories show their first and last rows
EDGE_ROWS = 10


# ---------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------


def _console(colour: bool | None = None):
    from rich.console import Console

    if colour is False:
        return Console(highlight=False, no_color=True, color_system=None)
    return Console(highlight=False)


def _queue_and_store(project: Path):
    """The queue (None when there is no usable queue file but runs/ exists) and the run store."""
    from ..core.runs.store import RunStore

    queue = load_queue_or_fail(project, required=False)
    if queue is None and not (project / "runs").is_dir():
        load_queue_or_fail(project)  # says why and exits 2
    return queue, RunStore(project)


def _known_ids(queue, store) -> list[str]:
    ids = [e.id for e in queue.experiments] if queue else []
    return ids + [r.id for r in store.runs() if r.id not in set(ids)]


def _resolve(exp_id: str, queue, store):
    """(experiment or None, run) for ``exp_id``; an id that is neither in the queue nor in runs/ fails with the nearest ids."""
    exp = queue.get(exp_id) if queue else None
    run = store.run(exp_id)
    if exp is None and not run.exists():
        ids = _known_ids(queue, store)
        close = difflib.get_close_matches(exp_id, ids, n=3, cutoff=0.5)
        close += [i for i in ids if exp_id and exp_id in i and i not in close][: max(0, 3 - len(close))]
        if close:
            hint = "; did you mean " + ", ".join(f"'{c}'" for c in close) + "?"
        elif ids:
            hint = "; `unettui ls` lists the experiments"
        else:
            hint = "; the queue is empty"
        fail(f"unknown experiment '{exp_id}'{hint}")
    return exp, run


def _one_line(text: Any, limit: int | None = None) -> str:
    s = " ".join(str(text).split())
    if limit and len(s) > limit:
        s = s[: limit - 1] + "…"
    return s


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (int, float)):
        f = float(v)
        if math.isnan(f):
            return "nan"
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return f"{f:.{digits}f}"
    return str(v)


def _lr(v: Any) -> str:
    return f"{float(v):.3g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"


def _best(metrics: list[dict[str, Any]], summary: dict[str, Any] | None) -> tuple[float | None, int | None]:
    """Best val Dice and its epoch: from summary.json, else from the epochs recorded so far."""
    if summary and isinstance(summary.get("best_val_dice"), (int, float)):
        return float(summary["best_val_dice"]), summary.get("best_epoch")
    best = None
    for rec in metrics:
        v = rec.get("val_dice")
        if isinstance(v, (int, float)) and math.isfinite(v) and (best is None or v > best[0]):
            best = (float(v), rec.get("epoch"))
    return best if best else (None, None)


def _dict(obj: Any) -> dict[str, Any]:
    """A JSON file's content when it is an object, else {} (missing, torn, or not an object)."""
    return obj if isinstance(obj, dict) else {}


# ---------------------------------------------------------------------------
# ls
# ---------------------------------------------------------------------------


@app.command("ls")
def ls_cmd(project: Path = ProjectOpt) -> None:
    """List the queue in file order with each experiment's state, best val Dice, attempt and the note that explains it.

    States: pending (nothing trained yet, a retry, or a halving promotion: the next run trains it), running E/N (epochs finished of the epochs it trains to now), interrupted E/N (the next `unettui run` resumes it), done, pruned @E (successive halving stopped it after epoch E), failed (its error is shown), invalid (its definition has a problem), changed (its definition or dataset changed since it ran: the next run trains it again, keeping the earlier attempt), damaged (a file of the run cannot be read: named). Runs whose experiment is no longer in experiments.toml are listed at the end.

    Example: unettui ls -p my-study
    """
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from ..core.runs.status import collect, counts_text

    queue, store = _queue_and_store(project)
    rows_ = collect(queue, store)
    rows: list[tuple[str, str, str, str, str]] = []
    for r in rows_:
        best = r.best_val_dice
        best_text = "-" if best is None else f"{best:.4f}" + (f" @{r.best_epoch}" if r.best_epoch is not None else "")
        note = r.note
        if not r.in_queue:
            note = "not in experiments.toml" + (f"; {note}" if note else "")
        rows.append((r.id, r.label, best_text, str(r.attempt) if r.attempt else "-", _one_line(note)))

    if not rows:
        typer.echo(f"{project}: no experiments in the queue and no runs yet")
        return
    console = _console()
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
    for r in rows:
        table.add_row(*(Text(cell) for cell in r))  # Text: ids and errors may contain [brackets], never markup
    console.print(table)
    typer.echo(counts_text(rows_))


# ---------------------------------------------------------------------------
# show
# ---------------------------------------------------------------------------


RUN_INFO_KEYS = ("id", "unettui_version", "torch_version", "resolved_device", "amp_dtype", "in_channels", "n_train",
                 "n_val", "val_on_train", "parameters", "fingerprint")


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


def _config_section(console, cfg: dict[str, Any], title: str) -> None:
    from rich.text import Text

    from ..core.define.config import DEFAULTS, KEYS

    defaults = DEFAULTS.to_dict()
    differ = [k for k in KEYS if k in cfg and cfg[k] != defaults[k]]
    same = [k for k in KEYS if k in cfg and cfg[k] == defaults[k]]
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

    best_v, best_e = _best(metrics, None)
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
    for head in ("epoch", "train loss", "train dice", "val loss", "val dice", "lr", "time"):
        table.add_column(head, justify="right", no_wrap=True)
    for rec in shown:
        if rec is None:
            table.add_row(*["⋮"] * 7)
            continue
        is_best = best_v is not None and rec.get("epoch") == best_e and rec.get("val_dice") == best_v
        table.add_row(_fmt(rec.get("epoch"), 0) if isinstance(rec.get("epoch"), int) else _fmt(rec.get("epoch")),
                      _fmt(rec.get("train_loss")), _fmt(rec.get("train_dice")), _fmt(rec.get("val_loss")),
                      _fmt(rec.get("val_dice")) + ("*" if is_best else " "), _lr(rec.get("lr")), duration(rec.get("seconds")),
                      style="bold" if is_best else None)
    console.print(table)


def _curves_section(console, metrics: list[dict[str, Any]]) -> None:
    from rich.text import Text

    from ..core.show.render import sparkline

    n = len(metrics)
    console.print(Text(f"curves ({n} epoch{'' if n == 1 else 's'})", style="bold"))
    width = max(8, min(n, console.width - 52))
    for key, label, better in (("train_loss", "train loss", min), ("val_loss", "val loss", min),
                               ("train_dice", "train dice", max), ("val_dice", "val dice", max), ("lr", "lr", None)):
        vals = [rec.get(key) for rec in metrics]
        finite = [(float(v), rec.get("epoch")) for v, rec in zip(vals, metrics)
                  if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
        fmt = _lr if key == "lr" else _fmt
        line = Text(f"  {label:<11}")
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
        parts.append(f"best val dice {_fmt(summary.get('best_val_dice'))} at epoch {summary.get('best_epoch', '?')}")
    final = [f"{label} {_fmt(summary.get(k))}" for k, label in (
        ("final_train_loss", "train loss"), ("final_train_dice", "train dice"), ("final_val_loss", "val loss"),
        ("final_val_dice", "val dice"), ("final_val_iou", "val iou")) if k in summary]
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


def _load_preview(run, tag: str) -> tuple[dict[str, Any] | None, str | None]:
    """(arrays of preview_<tag>.npz, None), or (None, why it cannot be drawn)."""
    import zipfile

    from ..core.show.preview import preview_paths

    _, npz = preview_paths(run.path, tag)
    if not npz.exists():
        return None, f"{npz.name} (no validation preview yet)"
    try:
        if not zipfile.is_zipfile(npz):
            return None, f"{npz.name} is unreadable (not an npz archive: torn or foreign file)"
        import numpy as np

        with np.load(npz, allow_pickle=False) as z:
            pv = {k: z[k] for k in z.files}
    except Exception as exc:  # a torn or foreign file: say so, draw nothing
        return None, f"{npz.name} is unreadable ({type(exc).__name__}: {_one_line(exc, 80)})"
    from ..core.show.preview import preview_problem

    problem = preview_problem(pv)
    if problem:
        return None, f"{npz.name} cannot be drawn: {problem}"
    return pv, None


def _preview_section(console, pv: dict[str, Any], tag: str, sample: int | None, colour: bool) -> None:
    """Draw the validation preview: every sample (or sample N) as input | truth | prediction | overlay."""
    import numpy as np
    from rich.text import Text

    from ..core.show.render import (
        ASCII_PANELS_LEGEND,
        ascii_panels,
        colour_panels,
        overlay_legend,
        pred_from_prob,
    )
    from ..richtext import segments_text

    k = pv["truth"].shape[0]
    names = [str(n) for n in np.atleast_1d(pv.get("names", []))]
    dice = [float(d) for d in np.atleast_1d(pv.get("dice", []))]
    epoch = pv.get("epoch")
    ep = f", epoch {int(epoch)}" if epoch is not None and np.ndim(epoch) == 0 else ""
    console.print(Text(f"validation preview ({tag}{ep}, {k} sample{'' if k == 1 else 's'})", style="bold"))
    gap = 2
    panel_width = max(4, (console.width - 3 * gap) // 4)
    for i in ([sample - 1] if sample else range(k)):
        name = names[i] if i < len(names) else f"#{i + 1}"
        d = f"  dice {dice[i]:.4f}" if i < len(dice) else ""
        console.print(Text(f"sample {i + 1}/{k}  {name}{d}"))
        image, truth, pred = pv["images"][i], pv["truth"][i], pred_from_prob(pv["prob"][i])
        if colour:
            for row in colour_panels(image, truth, pred, panel_width, gap):
                console.print(segments_text([row]), no_wrap=True, overflow="crop")
        else:
            for line in ascii_panels(image, truth, pred, panel_width, gap, legend=False):
                console.print(Text(line), no_wrap=True, overflow="crop")
    if colour:
        console.print(segments_text([overlay_legend()]))
    else:
        console.print(Text(ASCII_PANELS_LEGEND))
        console.print(Text("truth: # foreground; prediction: + foreground (probability > 0.5)"))


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


@app.command()
def show(
    exp_id: str = typer.Argument(..., metavar="ID", help="Experiment id (see `unettui ls`)."),
    project: Path = ProjectOpt,
    ascii_: bool = typer.Option(False, "--ascii", help="Draw the preview in plain ASCII (also with NO_COLOR or when not on a terminal)."),
    sample: Optional[int] = typer.Option(None, "--sample", "-n", min=1, help="Draw only preview sample N (1-based; default: all)."),
    last: bool = typer.Option(False, "--last", help="The preview of the last epoch instead of the best one."),
    all_epochs: bool = typer.Option(False, "--all-epochs", help=f"Every epoch's row, even beyond {MAX_EPOCH_ROWS}."),
) -> None:
    """Everything about one run: its config, the per-epoch metrics, loss and Dice curves, the best and final numbers, and validation previews (input | truth | prediction | overlay).

    Previews are drawn with colour half-blocks on a terminal; in plain ASCII with --ascii, when NO_COLOR is set, or when the output is not a terminal. In the overlay, hits are green, false positives red (vermillion) and misses blue; in ASCII '@' hit, '+' false positive, '#' missed. An experiment that has not run yet shows its resolved config.

    Example: unettui show opt-at-1e-4-adam --sample 2 --last
    """
    from rich.text import Text

    from ..core.show.render import use_colour

    queue, store = _queue_and_store(project)
    exp, run = _resolve(exp_id, queue, store)
    colour = not ascii_ and use_colour()
    console = _console(colour)

    if exp is not None and not exp.valid:
        console.print(Text(f"{exp_id}: invalid definition ({exp.origin})", style="bold"))
        console.print(_kv_grid([("error:", str(exp.error), "red")]))
        if not run.exists():
            return
    from ..core.runs.status import State, collect

    row = collect(queue, store, metrics=True, ids=[exp_id])[0]
    state, st = row.state, row.status
    if state is State.PENDING and not run.file("config.json").exists() and not row.metrics:
        if exp is not None and exp.valid:
            console.print(Text(f"{exp_id}: not run yet ({exp.origin})", style="bold"))
            _config_section(console, exp.config.to_dict(), "config (resolved)")
            where = "" if str(project) == "." else f" -p {project}"
            console.print(Text(f"run it with: unettui run --headless --only {exp_id}{where}"))
        from ..core.runs.store import ATTEMPTS

        leftovers = [p.name for p in run.path.iterdir() if not p.name.startswith(".")] if run.exists() else []
        if leftovers == [ATTEMPTS]:  # `unettui retry` archived the earlier attempts: nothing else to show
            console.print(Text(f"  earlier attempts: {', '.join(p.name for p in run.attempts())}"
                               f" (their logs: unettui logs {exp_id} --attempt N)"))
        if not leftovers or leftovers == [ATTEMPTS]:
            return

    tag = "last" if last else "best"
    pv, pv_problem = _load_preview(run, tag)
    if sample is not None:  # say so before printing anything else
        if pv is None:
            fail(f"--sample {sample}: {pv_problem}")
        if sample > pv["truth"].shape[0]:
            fail(f"--sample {sample}: preview_{tag}.npz holds samples 1..{pv['truth'].shape[0]}")

    # header
    head = f"{exp_id}: {row.label}"
    if row.attempt:
        head += f", attempt {row.attempt}"
    if exp is None:
        head += " (not in experiments.toml)"
    console.print(Text(head, style="bold"))
    when = []
    for key, label in (("started", "started"), ("ended", "ended"), ("heartbeat", "last heartbeat")):
        if isinstance(st.get(key), (int, float)) and (key != "heartbeat" or state in ("running", "interrupted")):
            try:
                when.append(f"{label} {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(st[key]))}")
            except (OverflowError, OSError, ValueError):
                pass
    if st.get("host"):
        when.append(f"on {st['host']}" + (f" pid {st['pid']}" if st.get("pid") else ""))
    if when:
        console.print(Text("  " + ", ".join(when)))
    if row.error:
        console.print(_kv_grid([("error:", row.error, "red")]))
    if row.change_text:
        console.print(_kv_grid([("changed:", row.note, "yellow")]))
    older = run.attempts()
    if older:
        console.print(Text(f"  earlier attempts: {', '.join(p.name for p in older)}"
                           f" (their logs: unettui logs {exp_id} --attempt N)"))

    cfg = _dict(run.config())
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
    summary = _dict(run.summary())
    if summary:
        _summary_section(console, summary, st)

    problems = row.problems + _missing_files(run, state, st)
    if pv is not None:
        _preview_section(console, pv, tag, sample, colour)
    elif pv_problem and (state == "done" or run.file(f"preview_{tag}.npz").exists()):
        problems.append(pv_problem)
    elif metrics:
        console.print(Text(f"no validation preview yet (preview_{tag}.npz)", style="dim"))
    for p in problems:
        console.print(Text(f"note: {p}", style="yellow"))


# ---------------------------------------------------------------------------
# logs
# ---------------------------------------------------------------------------


@app.command()
def logs(
    exp_id: str = typer.Argument(..., metavar="ID", help="Experiment id (see `unettui ls`)."),
    project: Path = ProjectOpt,
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines until the run stops running (Ctrl-C to leave)."),
    attempt: Optional[int] = typer.Option(None, "--attempt", "-a", min=1, help="Print the log of earlier attempt N (runs/ID/attempts/N/run.log)."),
) -> None:
    """Print a run's log (runs/ID/run.log): claims, epochs, the end state, and the traceback of a failure.

    With --follow, new lines are printed as they are written until the run is no longer running; Ctrl-C leaves at once. Logs of earlier attempts (kept by `unettui retry`) are printed with --attempt N.

    Example: unettui logs opt-at-1e-4-adam --follow
    """
    from ..core.runs.store import LOG

    queue, store = _queue_and_store(project)
    exp, run = _resolve(exp_id, queue, store)
    older = run.attempts()
    if attempt is not None:
        match = [p for p in older if int(p.name) == attempt]
        if not match:
            have = ", ".join(p.name for p in older) or "none"
            fail(f"'{exp_id}' has no attempt {attempt} (earlier attempts: {have})")
        path = match[0] / LOG
        if not path.exists():
            typer.echo(f"attempt {attempt} of '{exp_id}' has no log", err=True)
            return
        _quiet_pipe(_copy, path, 0)
        return

    path = run.file(LOG)
    if older:
        typer.echo(f"({len(older)} earlier attempt{'s' if len(older) > 1 else ''}: "
                   f"unettui logs {exp_id} --attempt N, N in {', '.join(p.name for p in older)})", err=True)
    if not path.exists() and not (follow and _running(run)):
        if exp is not None and not exp.valid:
            why = "invalid definition; see `unettui check`"
        elif not run.exists() or not run.status():
            why = "not run yet"
        else:
            why = f"state {run.state()}"
        typer.echo(f"no log yet for '{exp_id}' ({why})", err=True)
        return
    offset = _quiet_pipe(_copy, path, 0) if path.exists() else 0
    if not follow or not _running(run):  # a finished run has nothing more to say
        return
    try:
        _quiet_pipe(_follow, run, path, offset)
    except KeyboardInterrupt:
        pass


def _quiet_pipe(fn, *args):
    """Run ``fn``; a reader that went away (``unettui logs ID | head``) ends the command quietly."""
    try:
        return fn(*args)
    except BrokenPipeError:
        try:  # no "Exception ignored ... BrokenPipeError" when Python flushes stdout at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        raise typer.Exit(0) from None


def _copy(path: Path, offset: int) -> int:
    """Print ``path`` from ``offset`` up to its last complete line; returns the new offset."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except OSError:
        return offset
    end = data.rfind(b"\n") + 1
    if end:
        sys.stdout.write(data[:end].decode("utf-8", errors="replace"))
        sys.stdout.flush()
    return offset + end


def _running(run) -> bool:
    from ..core.runs.status import State, judge_run

    return judge_run(run, None).state is State.RUNNING


def _follow(run, path: Path, offset: int) -> None:
    """Poll the log until the run is no longer running (then one more poll for the final lines)."""
    stopping = False
    while True:
        time.sleep(POLL_SECONDS)
        try:
            size = path.stat().st_size
        except OSError:
            size = None
        if size is not None:
            if size < offset:  # replaced: a new attempt started a fresh log
                typer.echo("--- the log was restarted (new attempt) ---")
                offset = 0
            offset = _copy(path, offset)
        if not _running(run):
            if stopping:
                if size is not None:
                    _flush_tail(path, offset)
                return
            stopping = True
        else:
            stopping = False


def _flush_tail(path: Path, offset: int) -> None:
    """A last line without a newline (the writer is gone) is still printed."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            rest = fh.read()
    except OSError:
        return
    if rest:
        typer.echo(rest.decode("utf-8", errors="replace"))


# ---------------------------------------------------------------------------
# check
# ---------------------------------------------------------------------------


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
        from ..core.learn.data import DatasetError, check_synthetic_args, load_dataset
        from ..core.learn.dataset_id import is_synthetic
        from ..core.learn.feasible import problems as feasibility_problems

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
                problems.append(f"{users}: dataset: cannot load {spec!r}: {type(exc).__name__}: {_one_line(exc)}")
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
