"""LivePanel: the selected run's progress, ETA, curves (train loss, val loss, val Dice, lr) and latest numbers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import fmean
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import ProgressBar, Sparkline, Static

from ...core.show.fmt import duration as _duration
from ..data import RunView

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


class LivePanel(Vertical):
    """The selected run, live: title, epoch progress with ETA, one sparkline per curve with its numbers.

    The parent calls :meth:`show_run` with each new view of the selected run (views are replaced, never
    mutated). Children are composed once and updated in place; the sparklines get a new list only when
    the run's metrics changed (a new epoch, another run, or a resumed run that rewrote metrics.jsonl).
    """

    DEFAULT_CSS = """
    LivePanel { height: auto; }
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
        self._metrics_key: tuple[Any, ...] | None = None

    def compose(self) -> ComposeResult:
        yield self._title
        yield self._message
        yield self._progress
        yield from self._rows
        yield self._best
        yield self._error

    def on_mount(self) -> None:
        self._apply()

    # ---- what the parent calls -------------------------------------------------------
    def show_run(self, view: RunView | None) -> None:
        """Show ``view`` (None: nothing selected). Cheap: call it on every change of the selected run."""
        self.view = view
        if self.is_mounted:
            self._apply()

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
        title.append(f"  {word}", style=_STATE_STYLE.get(view.state.value, ""))
        if view.job_label:  # a claim of a cluster job: "slurm 42_3 running"
            title.append(f"  {view.job_label}", style="cyan")
        if view.attempt:
            title.append(f"  attempt {view.attempt}")
        self._title.update(title)
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
        has_curves = bool(view.metrics)
        self._show_curves(has_curves)
        if has_curves:
            self._update_curves(view)
        best, best_epoch = best_val_dice(view)
        self._best.display = best is not None
        if best is not None:
            self._best.update(f"best val dice {best:.4f} at epoch {best_epoch if best_epoch is not None else '?'}")
        self._error.display = bool(view.note)
        if view.note:
            self._error.update(" ".join(str(view.note).split()))

    def _show_message(self, message: str | None) -> None:
        self._message.display = message is not None
        if message is not None:
            self._message.update(message)

    def _show_curves(self, show: bool) -> None:
        for row in self._rows:
            row.display = show

    def _update_progress(self, view: RunView) -> None:
        done = len(view.metrics) if view.metrics else view.epoch
        total = view.target or view.epochs  # a successive-halving rung counts to the rung, as `ls` does
        self._epoch.update(f"epoch {done}/{total if total else '?'}")
        self._bar.update(total=total if total else None, progress=done)
        if view.state == "running":
            eta = view.eta_seconds()
            self._eta.update(f"ETA {duration(eta)}" if eta is not None else "ETA -")
        elif view.state == "done":
            secs = view.summary.get("seconds")
            if _finite(secs) is None:
                secs = sum(_finite(m.get("seconds")) or 0.0 for m in view.metrics)
            self._eta.update(f"took {duration(secs)}")
        else:  # failed / interrupted: the title says so, the error line says why
            self._eta.update("")

    def _update_curves(self, view: RunView) -> None:
        metrics = view.metrics
        key = (view.id, len(metrics), metrics[-1] if metrics else None, metrics[0] if metrics else None)
        if key == self._metrics_key:
            return
        self._metrics_key = key
        for name, _, fmt in CURVES:
            values = curve(metrics, name)
            self.sparklines[name].data = values  # a new list each time: Sparkline only redraws on a new value
            latest = _finite(metrics[-1].get(name))
            if not values:
                self.values[name].update("-")
                continue
            now = fmt.format(latest) if latest is not None else str(metrics[-1].get(name, "-"))
            self.values[name].update(now)
            self.values[name].tooltip = f"latest {now}; lowest {fmt.format(min(values))}, highest {fmt.format(max(values))}"


_STATE_STYLE = {
    "running": "bold green",
    "done": "green",
    "failed": "bold red",
    "interrupted": "yellow",
    "invalid": "bold red",
    "pending": "dim",
}
