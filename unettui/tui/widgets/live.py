"""LivePanel: what the runners do now (device, GPU memory and utilisation, images/s; the queue's ETA) and the selected
run's progress, ETA, curves (train loss, val loss, val Dice, lr) and latest numbers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import fmean
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import ProgressBar, Sparkline, Static

from ...core.runs.runners import RunnerFigures
from ...core.show import render
from ...core.show.curves import ASCII_MARKERS, MARKERS, PALETTE, Series, plain, render_curves
from ...core.show.fmt import duration as _duration
from ...core.show.styles import state_style
from ...richtext import segments_text
from ..data import RunView, images_per_second

# (metrics key, label, how to print a value); the order is the order on screen
CURVES: tuple[tuple[str, str, str], ...] = (
    ("train_loss", "train loss", "{:.4f}"),
    ("val_loss", "val loss", "{:.4f}"),
    ("val_dice", "val dice", "{:.4f}"),
    ("lr", "lr", "{:.2e}"),
)


def duration(seconds: Any) -> str:
    """Whole seconds: an ETA has no decimals."""
    return _duration(seconds, whole=True)


def _finite(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def curve(metrics: Sequence[dict[str, Any]], key: str) -> list[float]:
    """The finite values of ``key`` over the epochs (a diverged NaN/inf loss is left out: it has no height)."""
    return [f for f in (_finite(m.get(key)) for m in metrics) if f is not None]


def best_val_dice(view: RunView) -> tuple[float | None, Any]:
    """Best val Dice and its epoch: from summary.json, else from the epochs recorded so far."""
    best = _finite(view.summary.get("best_val_dice"))
    if best is not None:
        return best, view.summary.get("best_epoch")
    found: tuple[float | None, Any] = (None, None)
    for rec in view.metrics:
        v = _finite(rec.get("val_dice"))
        if v is not None and (found[0] is None or v > found[0]):
            found = (v, rec.get("epoch"))
    return found


GIB = 1024**3


def _run_speed(view: RunView | None) -> str:
    ips = images_per_second(view) if view is not None else None
    return f"{ips:,.0f} img/s" if ips is not None and ips >= 10 else f"{ips:.1f} img/s" if ips is not None else ""


def runner_line(fig: RunnerFigures, views: dict[str, RunView]) -> Text:
    """``lab pid 4242 · cuda:0 NVIDIA H100 · GPU mem 12.3/79.6 GiB · util 97% · opt-adam 412 img/s``."""
    line = Text(f"{fig.host} pid {fig.pid}", style="bold")
    line.append(f" · {fig.device or '?'}" + (f" {fig.gpu}" if fig.gpu else ""))
    if fig.mem_used is not None and fig.mem_total:
        share = fig.mem_used / fig.mem_total
        line.append(" · GPU mem ")
        line.append(f"{fig.mem_used / GIB:.1f}/{fig.mem_total / GIB:.1f} GiB",
                    style="bold red" if share > 0.95 else "yellow" if share > 0.8 else "")
        if fig.mem_process is not None:
            line.append(f" (this {fig.mem_process / GIB:.1f})", style="dim")
    if fig.util is not None:
        line.append(f" · util {fig.util}%")
    for run_id in fig.runs:
        speed = _run_speed(views.get(run_id))
        line.append(f" · {run_id}" + (f" {speed}" if speed else ""), style="cyan")
    return line


def system_text(runners: list[RunnerFigures], views: dict[str, RunView], eta: tuple[int, float | None],
                workers: int, running: list[RunView] | None = None, reading: bool = False) -> Text:
    """One line per runner (its figures file), one per running run no figures file names (a runner of an older
    version, or one whose file is late), then the queue: runs left and when it is done (``reading``: not known
    before the project's first read is done)."""
    lines = [runner_line(f, views) for f in runners]
    named = {r for f in runners for r in f.runs}
    for v in running or []:
        if v.id not in named:
            device = v.config.get("resolved_device") or v.config.get("device") or "?"
            speed = _run_speed(v)
            lines.append(Text(f"{v.id} on {device}" + (f" · {speed}" if speed else ""), style="cyan"))
    left, seconds = eta
    if reading:
        lines.append(Text("queue: reading the runs…", style="dim"))
    elif left:
        at = f" at {workers} runs at a time" if workers > 1 else ""
        when = f"ETA {duration(seconds)}{at}" if seconds is not None else "ETA - (no epoch timed yet)"
        lines.append(Text(f"queue: {left} run{'s' if left != 1 else ''} to train · {when}", style="dim"))
    elif views:
        lines.append(Text("queue: nothing left to train", style="dim"))
    return Text("\n").join(lines)


class CurvePlot(Static):
    """The selected run's curves drawn large when the panel has the room (at 120 columns and more): its train and val
    loss on shared axes and its val Dice, side by side when wide, else one above the other; nothing when too small
    (the sparklines above say it all). Drawn by core.show.curves, in colour or ASCII like the Compare tab."""

    DEFAULT_CSS = "CurvePlot { height: 1fr; }"
    MIN_WIDTH, MIN_ROWS = 50, 8

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("", markup=False, **kwargs)
        self.metrics: list[dict[str, Any]] = []
        self.colour = render.use_colour(isatty=True)
        self._key: tuple | None = None

    def show(self, metrics: list[dict[str, Any]]) -> None:
        self.metrics = metrics
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        width, height = self.content_size.width, self.content_size.height
        m = self.metrics
        key = (width, height, len(m), m[-1] if m else None, m[0] if m else None, self.colour)
        if key == self._key:
            return
        self._key = key
        if width < self.MIN_WIDTH or height < self.MIN_ROWS or len(m) < 2:
            self.update("", layout=False)  # (its size is its share of the panel, whatever it shows)
            return
        pts = {k: [(float(r.get("epoch", i)), v) for i, r in enumerate(m, 1) if (v := _finite(r.get(k))) is not None]
               for k in ("train_loss", "val_loss", "val_dice")}
        losses = [Series("train loss", pts["train_loss"], colour=PALETTE[0]),
                  Series("val loss", pts["val_loss"], colour=PALETTE[1])]
        dice = [Series("val dice", pts["val_dice"], colour=PALETTE[2])]
        ascii = not self.colour
        try:
            if width >= 100:  # side by side: each half, the loss legend under both
                half = (width - 2) // 2
                a = render_curves(losses, half, max(3, height - 5), ascii=ascii, ylabel="loss", legend=False)
                b = render_curves(dice, width - half - 2, max(3, height - 5), ascii=ascii, ylabel="val dice",
                                  legend=False)
                rows = [ra + [("  ", None, None)] + rb for ra, rb in zip(_pad(a, half), b)]
            else:
                each = (height - 8) // 2
                if each < 3:
                    rows = render_curves(dice, width, height - 3, ascii=ascii, ylabel="val dice", legend=False)
                else:
                    rows = (render_curves(losses, width, each, ascii=ascii, ylabel="loss", legend=False)
                            + render_curves(dice, width, each, ascii=ascii, ylabel="val dice", legend=False))
            rows = rows + _legend(losses, ascii)
        except ValueError:
            self.update("", layout=False)
            return
        self.update(segments_text(rows) if self.colour else Text("\n".join(plain(rows)), no_wrap=True), layout=False)


def set_text(widget: Static, content: Text | str) -> None:
    """``widget.update(content)``, without laying the screen out again when the content's size cannot have changed:
    as many lines as before, each as wide as before (any width, in a widget whose width does not follow its content),
    none wider than the widget (so none wraps). A layout places every widget of the screen again; the live panel
    changes on every key that moves the selection."""
    text = content.plain if isinstance(content, Text) else content
    lines = text.split("\n")
    shape = tuple(len(line) if line.isascii() else Text(line).cell_len for line in lines)
    width = widget.content_size.width
    old = getattr(widget, "_shape", None)
    # (a widget whose width does not follow its content, such as the values' column, only needs as many lines)
    fixed = widget.styles.width is not None and not widget.styles.width.is_auto
    same = old is not None and width > 0 and max(shape) <= width and (old == shape or (fixed and len(old) == len(shape)))
    widget._shape = shape  # type: ignore[attr-defined]
    widget.update(content, layout=not same)


def _pad(rows: list, width: int) -> list:
    """Rows padded with spaces to ``width`` cells (to put another plot beside them)."""
    return [row + [(" " * (width - sum(len(t) for t, _, _ in row)), None, None)] for row in rows]


def _legend(series: list[Series], ascii: bool) -> list:
    """The loss plot's legend (the val Dice plot has one curve: its title names it)."""
    row: list = [("  loss: ", None, None)]
    for i, s in enumerate(series):
        mark = ASCII_MARKERS[i] if ascii else MARKERS[i] + "⠒"
        row += [(mark, None if ascii else s.colour, None), (f" {s.label}   ", None, None)]
    return [row]


class LivePanel(Vertical):
    """The selected run, live: title, epoch progress with ETA, one sparkline per curve with its numbers.

    The parent calls :meth:`show_run` with each new view of the selected run (views are replaced, never
    mutated). Children are composed once and updated in place; the sparklines get a new list only when
    the run's metrics changed (a new epoch, another run, or a resumed run that rewrote metrics.jsonl).
    """

    DEFAULT_CSS = """
    LivePanel { height: auto; }
    LivePanel > #live-system { height: auto; margin-bottom: 1; }
    LivePanel > #live-title { text-style: bold; }
    LivePanel > #live-message { color: $text-muted; }
    LivePanel > #live-error { color: $error; }
    LivePanel > Horizontal { height: 1; }
    LivePanel #live-epoch { width: auto; margin-right: 1; }
    LivePanel #live-bar { width: 1fr; }
    LivePanel #live-bar > Bar { width: 1fr; }
    LivePanel #live-eta { width: auto; margin-left: 1; }
    LivePanel .live-label { width: 11; }
    LivePanel .live-curve Sparkline { width: 1fr; min-width: 4; }
    LivePanel .live-value { width: 10; padding-left: 1; }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.view: RunView | None = None
        self._system = Static("", id="live-system", markup=False)
        self._system_shown: Text | None = None
        self._system.display = False
        self._title = Static("", id="live-title", markup=False)
        self._message = Static("select an experiment", id="live-message", markup=False)
        self._epoch = Static("", id="live-epoch", markup=False)
        self._bar = ProgressBar(total=None, show_eta=False, show_percentage=True, id="live-bar")
        self._eta = Static("", id="live-eta", markup=False)
        self._progress = Horizontal(self._epoch, self._bar, self._eta, id="live-progress")
        self.sparklines: dict[str, Sparkline] = {}
        self.values: dict[str, Static] = {}
        self._rows: list[Horizontal] = []
        for key, label, _ in CURVES:
            spark = Sparkline([], summary_function=fmean, id=f"live-spark-{key.replace('_', '-')}")
            value = Static("", classes="live-value", markup=False)
            self.sparklines[key], self.values[key] = spark, value
            self._rows.append(Horizontal(Static(label, classes="live-label"), spark, value, classes="live-curve"))
        self._best = Static("", id="live-best", markup=False)
        self._error = Static("", id="live-error", markup=False)
        self.plot = CurvePlot(id="live-plot")
        self._metrics_key: tuple[Any, ...] | None = None

    def compose(self) -> ComposeResult:
        yield self._system
        yield self._title
        yield self._message
        yield self._progress
        yield from self._rows
        yield self._best
        yield self._error
        yield self.plot

    def on_mount(self) -> None:
        self._apply()

    # ---- what the parent calls -------------------------------------------------------
    def show_run(self, view: RunView | None) -> None:
        """Show ``view`` (None: nothing selected). Cheap: call it on every change of the selected run."""
        self.view = view
        if self.is_mounted:
            self._apply()

    def show_system(self, runners: list[RunnerFigures], views: dict[str, RunView], eta: tuple[int, float | None],
                    workers: int = 1, running: list[RunView] | None = None, reading: bool = False) -> None:
        """The runners' figures, the running runs' speed and the queue's ETA (from the poll; nothing here asks a GPU)."""
        text = system_text(runners, views, eta, workers, running, reading)
        if text == self._system_shown:  # (every poll calls this: an update re-lays the screen out)
            return
        self._system_shown = text
        self._system.display = bool(text.plain)
        set_text(self._system, text)

    # ---- drawing ----------------------------------------------------------------------
    def _apply(self) -> None:
        view = self.view
        if view is None:
            self._title.display = False
            self._show_message("select an experiment")
            self._show_curves(False)
            self._progress.display = False
            self._best.display = self._error.display = False
            return
        self._title.display = True
        title = Text(view.id, style="bold")
        word = view.state.value if view.state.value in ("running", "interrupted") else view.label  # epochs: below
        title.append(f"  {word}", style=state_style(view.state))
        if view.job_label:  # a claim of a cluster job: "slurm 42_3 running"
            title.append(f"  {view.job_label}", style="cyan")
        if view.attempt:
            title.append(f"  attempt {view.attempt}")
        mode = view.config.get("mode")  # how the images reached the model: "resize to 64", "patches of 128"
        if isinstance(mode, str):
            title.append(f"  {mode}", style="dim")
        set_text(self._title, title)
        if view.state == "pending":
            planned = f" ({view.epochs} epochs planned)" if view.epochs else ""
            self._show_message(f"not started yet{planned}")
        elif view.state == "invalid":
            self._show_message("invalid definition: fix it in experiments.toml")
        elif view.state == "running" and not view.metrics:
            self._show_message("first epoch in progress…")
        else:
            self._show_message(None)
        started = view.state not in ("pending", "invalid")
        self._progress.display = started
        if started:
            self._update_progress(view)
        # a run with epochs whose curves are not read yet (they are read when it is selected: a moment later) keeps
        # the curves' rows, empty meanwhile: hiding them and showing them again laid the screen out twice per key
        has_curves = bool(view.metrics) or (started and bool(view.epoch))
        self._show_curves(has_curves)
        if has_curves:
            self._update_curves(view)
        best, best_epoch = best_val_dice(view)
        self._best.display = best is not None
        if best is not None:
            set_text(self._best, f"best val dice {best:.4f} at epoch {best_epoch if best_epoch is not None else '?'}")
        self._error.display = bool(view.note)
        if view.note:
            set_text(self._error, " ".join(str(view.note).split()))

    def _show_message(self, message: str | None) -> None:
        self._message.display = message is not None
        if message is not None:
            set_text(self._message, message)

    def _show_curves(self, show: bool) -> None:
        for row in self._rows:
            row.display = show
        self.plot.display = show

    def _update_progress(self, view: RunView) -> None:
        done = len(view.metrics) if view.metrics else view.epoch
        total = view.target or view.epochs  # a successive-halving rung counts to the rung, as `ls` does
        set_text(self._epoch, f"epoch {done}/{total if total else '?'}")
        self._bar.update(total=total if total else None, progress=done)
        if view.state == "running":
            eta = view.eta_seconds()
            set_text(self._eta, f"ETA {duration(eta)}" if eta is not None else "ETA -")
        elif view.state == "done":
            secs = view.summary.get("seconds")
            if _finite(secs) is None:
                secs = sum(_finite(m.get("seconds")) or 0.0 for m in view.metrics)
            set_text(self._eta, f"took {duration(secs)}")
        else:  # failed / interrupted: the title says so, the error line says why
            set_text(self._eta, "")

    def _update_curves(self, view: RunView) -> None:
        metrics = view.metrics
        key = (view.id, len(metrics), metrics[-1] if metrics else None, metrics[0] if metrics else None)
        if key == self._metrics_key:
            return
        self._metrics_key = key
        self.plot.show(metrics)
        for name, _, fmt in CURVES:
            values = curve(metrics, name)
            self.sparklines[name].data = values  # a new list each time: Sparkline only redraws on a new value
            if not values:
                set_text(self.values[name], "-")
                self.values[name].tooltip = None
                continue
            latest = _finite(metrics[-1].get(name))
            now = fmt.format(latest) if latest is not None else str(metrics[-1].get(name, "-"))
            set_text(self.values[name], now)
            self.values[name].tooltip = f"latest {now}; lowest {fmt.format(min(values))}, highest {fmt.format(max(values))}"

