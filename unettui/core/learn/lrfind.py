"""The learning-rate range test (Leslie Smith, 2015/2017; the exponential ramp of fastai's ``lr_find``).

One short throwaway training run per optimizer: before step ``i`` of ``steps`` the learning rate is set to
``start_lr * (end_lr / start_lr) ** (i / (steps - 1))``, so it grows by the same factor every step and the
steps spread evenly over log10(lr). Each step's training loss is recorded raw and smoothed by an
exponential moving average with bias correction (as fastai)::

    avg_i      = beta * avg_{i-1} + (1 - beta) * loss_i          (avg_{-1} = 0)
    smoothed_i = avg_i / (1 - beta ** (i + 1))

``beta`` defaults to :func:`auto_beta` (0.9 for 100 steps; fastai uses 0.98, which lags on a short
ramp). The test stops early once the smoothed loss is not finite, or (after :data:`MIN_STEPS` steps) exceeds
``diverge`` times its minimum so far: past that point the rate is far too high and the remaining steps
would only cost time.

Suggestions, all read from the smoothed loss:

- ``steepest``: the lr where the smoothed loss falls fastest per decade of lr (most negative
  d smoothed / d log10 lr, central differences), looked for between the first ~10% of the points (the
  ramp's start, where the model barely moves and the average is still settling) and the minimum of the
  curve (past the minimum the loss is on its way up);
- ``min_div_10``: the lr at the minimum of the smoothed loss divided by 10 (at the minimum the rate is
  already on the edge of instability; one decade below is the classic safe choice);
- ``suggested`` = ``steepest``. This is Smith's and fastai's practice: the fastest descent is where
  training makes the most progress per step while still being stable, and it is not pinned to the noisy
  bottom of the curve. ``min_div_10`` is reported next to it as the conservative alternative; when there
  are too few points for a slope, ``suggested`` falls back to it.

Everything is throwaway: the model and optimizer are built by a :class:`~unettui.core.learn.train.Trainer`
(the same data on the device, the same model, loss, optimizer, augmentation and autocast as a real run)
and nothing is written to ``runs/``. The config's own ``lr`` and scheduler are not used: the ramp sets
the rate before every step. Every step sees a full batch (the training images are shuffled each pass
with the trainer's seeded generator and a last partial batch is skipped, like fastai's ``drop_last``);
the passes repeat as often as ``steps`` needs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..define.config import Config

MIN_STEPS = 5  # the divergence test waits this many steps (the first smoothed values are the least reliable)
SKIP_START = 0.1  # share of the first points left out when looking for the steepest descent


@dataclass
class LRFindResult:
    """The curve of one range test and its suggestions (None when there were too few finite points)."""

    optimizer: str
    lrs: list[float]
    losses: list[float]  # raw training loss of each step (a non-finite last value when it blew up)
    smoothed: list[float]  # bias-corrected exponential moving average of ``losses``
    stopped_early: bool
    reason: str
    steepest: float | None = None
    min_div_10: float | None = None
    suggested: float | None = None
    start_lr: float = 1e-7
    end_lr: float = 10.0
    steps: int = 100  # steps planned; len(lrs) were run
    seconds: float = 0.0
    device: str = "cpu"

    @property
    def steps_run(self) -> int:
        return len(self.lrs)

    @property
    def min_smoothed(self) -> float | None:
        finite = [s for s in self.smoothed if math.isfinite(s)]
        return min(finite) if finite else None

    @property
    def min_lr(self) -> float | None:
        """The lr at the minimum of the smoothed loss."""
        i = _argmin_finite(self.smoothed)
        return None if i is None else self.lrs[i]


class SmoothedLoss:
    """Incremental bias-corrected exponential moving average: ``update(loss)`` returns the smoothed value."""

    def __init__(self, beta: float = 0.98):
        if not 0 <= beta < 1:
            raise ValueError(f"beta must be in [0, 1), got {beta!r}")
        self.beta = beta
        self.avg = 0.0
        self.count = 0

    def update(self, loss: float) -> float:
        self.avg = self.beta * self.avg + (1 - self.beta) * loss
        self.count += 1
        return self.avg / (1 - self.beta**self.count)


def smooth(losses: Sequence[float], beta: float = 0.98) -> list[float]:
    """The smoothed curve of ``losses`` (pure; the same numbers the range test records)."""
    ema = SmoothedLoss(beta)
    return [ema.update(float(v)) for v in losses]


def auto_beta(steps: int) -> float:
    """The smoothing factor for a ramp of ``steps``: a memory of about a tenth of the ramp.

    fastai's fixed 0.98 remembers ~50 steps, i.e. half of a 100-step ramp (four decades of lr): the
    smoothed curve then trails the raw loss so far that, on the built-in data with Adam, the "steepest"
    point came out ~4x above where the raw loss really fell fastest. 1 - 10/steps (0.9 for 100 steps)
    keeps the noise down and the lag to about a third of a decade.
    """
    return min(0.98, max(0.5, 1 - 10 / max(steps, 1)))


def ramp(start_lr: float, end_lr: float, steps: int) -> list[float]:
    """The exponential ramp: ``steps`` rates from ``start_lr`` to ``end_lr`` with a constant ratio between neighbours."""
    if steps == 1:
        return [start_lr]
    return [start_lr * (end_lr / start_lr) ** (i / (steps - 1)) for i in range(steps)]


def _argmin_finite(values: Sequence[float]) -> int | None:
    best = None
    for i, v in enumerate(values):
        if math.isfinite(v) and (best is None or v < values[best]):
            best = i
    return best


def suggest(lrs: Sequence[float], smoothed: Sequence[float]) -> tuple[float | None, float | None]:
    """``(steepest, min_div_10)`` for a curve; see the module docstring. Only the finite prefix counts."""
    n = 0
    while n < len(smoothed) and math.isfinite(smoothed[n]):
        n += 1
    if n == 0:
        return None, None
    s = list(smoothed[:n])
    x = [math.log10(lr) for lr in lrs[:n]]
    m = _argmin_finite(s)
    min_div_10 = lrs[m] / 10
    skip = max(1, round(SKIP_START * n))
    if n < 3 or m < skip:
        return None, min_div_10
    # d smoothed / d log10(lr): central differences, one-sided at the ends (as numpy.gradient)
    def slope(i: int) -> float:
        lo, hi = max(i - 1, 0), min(i + 1, n - 1)
        return (s[hi] - s[lo]) / (x[hi] - x[lo])

    best = min(range(skip, m + 1), key=slope)
    return lrs[best], min_div_10


def lr_range_test(
    cfg: Config,
    project: Path | None = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 100,
    beta: float | None = None,
    diverge: float = 4.0,
    device: str | None = None,
    on_step: Callable[[int, int, float, float, float], None] | None = None,
) -> LRFindResult:
    """Run one LR range test on ``cfg`` (its optimizer, loss, data, augmentation, seed) and return the curve.

    ``on_step(i, steps, lr, loss, smoothed)`` is called after each step (``i`` counts from 0).
    Raises ValueError for a bad range; the Trainer's own errors (DatasetError, RuntimeError for a
    missing device) pass through.
    """
    if beta is None:
        beta = auto_beta(steps)

    from .train import Trainer

    if not (isinstance(start_lr, (int, float)) and math.isfinite(start_lr) and start_lr > 0):
        raise ValueError(f"start lr must be a positive number, got {start_lr!r}")
    if not (isinstance(end_lr, (int, float)) and math.isfinite(end_lr) and end_lr > start_lr):
        raise ValueError(f"end lr must be larger than the start lr {start_lr:g}, got {end_lr!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2, got {steps!r}")
    if not (isinstance(diverge, (int, float)) and diverge > 1):
        raise ValueError(f"diverge must be a number > 1, got {diverge!r}")
    ema = SmoothedLoss(beta)

    t0 = time.perf_counter()
    trainer = Trainer(cfg.replace(scheduler="none"), project, device)
    bs = cfg.batch_size
    full_batches = max(1, trainer.samples_per_epoch // bs)  # (the Trainer refuses a batch larger than its images)
    trainer.model.train()

    lrs_planned = ramp(float(start_lr), float(end_lr), steps)
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    best = math.inf
    stopped, reason = False, f"reached the end of the ramp ({steps} steps, lr {end_lr:g})"
    order = None
    for i, lr in enumerate(lrs_planned):
        b = i % full_batches
        if b == 0:  # a new pass over the training images, in a new seeded order
            order = trainer.new_epoch()
        for group in trainer.optimizer.param_groups:
            group["lr"] = lr
        loss = trainer.step(order[b * bs : (b + 1) * bs]).loss  # the training step itself, augmentation included

        value = float(loss)  # one sync per step: the stop test needs it
        sm = ema.update(value)
        lrs.append(lr)
        losses.append(value)
        smoothed.append(sm)
        if on_step is not None:
            on_step(i, steps, lr, value, sm)
        if not math.isfinite(sm):
            stopped, reason = True, f"the loss became {value:g} at lr {lr:.3g}"
            break
        if sm < best:
            best = sm
        if i + 1 >= MIN_STEPS and best > 0 and sm > diverge * best:
            stopped = True
            reason = f"the smoothed loss {sm:.4g} rose above {diverge:g} x its minimum {best:.4g} at lr {lr:.3g}"
            break
    steepest, min_div_10 = suggest(lrs, smoothed)
    return LRFindResult(
        optimizer=cfg.optimizer,
        lrs=lrs,
        losses=losses,
        smoothed=smoothed,
        stopped_early=stopped,
        reason=reason,
        steepest=steepest,
        min_div_10=min_div_10,
        suggested=steepest if steepest is not None else min_div_10,
        start_lr=float(start_lr),
        end_lr=float(end_lr),
        steps=steps,
        seconds=round(time.perf_counter() - t0, 3),
        device=str(trainer.device),
    )


# ---------------------------------------------------------------------------
# the plot
# ---------------------------------------------------------------------------


def lr_label(lr: float) -> str:
    """A compact lr: 3.2e-03."""
    return f"{lr:.1e}"


def _decade(e: int) -> str:
    return f"1e{e:+d}"


def ascii_plot(result: LRFindResult, width: int = 60, height: int = 12) -> list[str]:
    """Smoothed loss against log10(lr) as ``height + 3`` lines of exactly ``width`` characters (pure ASCII).

    Line 0 holds the y-axis title and a ``v`` above the suggested lr's column with its value; then
    ``height`` plot rows (``*`` the curve, ``o`` the point at the suggestion, ``^`` a last point above
    the scale after a blow-up), labelled with the highest and lowest loss shown; then the x axis (``+``
    at each decade); then the decade labels (``1e-6 ... 1e+0``) under the ``lr`` title. The x axis spans
    the rates actually tried; the y axis the finite smoothed losses (without the final blow-up point when
    the test stopped early, so the curve keeps its resolution).
    """
    if height < 2:
        raise ValueError(f"height must be >= 2, got {height}")
    pts = [(lr, s) for lr, s in zip(result.lrs, result.smoothed) if math.isfinite(s) and lr > 0]
    scale = [s for _, s in pts]
    if result.stopped_early and len(scale) >= 3:
        scale = scale[:-1]
    if scale:
        lo, hi = min(scale), max(scale)
    else:
        lo, hi = 0.0, 1.0
    top, bottom = f"{hi:.4g}", f"{lo:.4g}"
    gutter = max(len(top), len(bottom), len("loss"), len("lr")) + 1
    plot_w = width - gutter - 1
    if plot_w < 10:
        raise ValueError(f"width {width} is too small for the plot; use at least {gutter + 11}")

    if pts:
        x0, x1 = math.log10(pts[0][0]), math.log10(pts[-1][0])
    else:
        x0, x1 = math.log10(result.start_lr), math.log10(result.end_lr)
    if x1 <= x0:
        x1 = x0 + 1e-9

    def col(lr: float) -> int:
        return min(plot_w - 1, max(0, round((math.log10(lr) - x0) / (x1 - x0) * (plot_w - 1))))

    def row(v: float) -> int:
        if hi <= lo:
            return height // 2
        return min(height - 1, max(0, round((hi - v) / (hi - lo) * (height - 1))))

    grid = [[" "] * plot_w for _ in range(height)]
    for lr, s in pts:
        if s > hi:
            grid[0][col(lr)] = "^"
        else:
            grid[row(s)][col(lr)] = "*"
    marker = [" "] * plot_w
    note = ""
    sug = result.suggested
    if sug is not None and sug > 0:
        c = col(sug)
        marker[c] = "v"
        at = next(((lr, s) for lr, s in pts if lr == sug), None)
        if at is not None and at[1] <= hi:
            grid[row(at[1])][c] = "o"
        note = f"suggested {lr_label(sug)}"
        if c + 2 + len(note) <= plot_w:
            marker[c + 2 : c + 2 + len(note)] = note
        elif c - 1 - len(note) >= 0:
            marker[c - 1 - len(note) : c - 1] = note

    axis = ["-"] * plot_w
    labels = [" "] * plot_w
    decades = list(range(math.ceil(x0 - 1e-9), math.floor(x1 + 1e-9) + 1))
    ticks = [(col(10.0**e), _decade(e)) for e in decades]
    if len(ticks) < 2:  # less than a decade wide: label the ends instead
        ticks = [(0, lr_label(10**x0)), (plot_w - 1, lr_label(10**x1))]
    free = 0  # first column a label may use
    for c, text in ticks:
        start = min(max(c - len(text) // 2, 0), plot_w - len(text))
        if start < free:
            continue
        axis[c] = "+"
        labels[start : start + len(text)] = text
        free = start + len(text) + 1

    def fit(line: str) -> str:
        return line[:width].ljust(width)

    lines = [fit(f"{'loss':<{gutter}} " + "".join(marker))]
    for r in range(height):
        label = top if r == 0 else bottom if r == height - 1 else ""
        lines.append(fit(f"{label:>{gutter - 1}} |" + "".join(grid[r])))
    lines.append(fit(" " * gutter + "+" + "".join(axis)))
    lines.append(fit(f"{'lr':>{gutter - 1}}  " + "".join(labels)))
    return lines
