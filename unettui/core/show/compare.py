"""A comparison of runs for overlaid curves: one series per run, or per configuration — its repeats' mean curve with
their spread — each labelled by the keys that differ between the compared runs. Pure (read-model rows in, curve
series out): `unettui compare` draws it with core.show.curves, and the TUI's compare view can redraw it on each poll.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..define.config import KEYS, NOT_DEFINITION
from ..define.task import EPOCH_KEYS, class_key, direction_of, epoch_value, foreground_of, split_class_key
from ..runs.export import NOT_COMPARED, row_dict, varied_keys
from ..runs.groups import mean_sd, mean_sd_text
from ..runs.status import Row
from .curves import Series, finite, group_curve, wants_log
from .fmt import value as fmt_value

# what metrics.jsonl records per epoch (core.define.task's registry), in the order `unettui compare --metric` lists
# them; multi-class runs also record each foreground class's (val_dice_<class>, val_iou_<class>) and the worst's
METRICS = tuple(k.name for k in EPOCH_KEYS.values() if k.curve)
PER_CLASS = tuple(k.name for k in EPOCH_KEYS.values() if k.curve and k.per_class)
GROUPINGS = ("configuration", "seed", "none")  # declared repeats / any runs equal but for the seed / every run alone


def higher_is_better(metric: str) -> bool:
    return direction_of(metric) == "max"


def is_metric(metric: str) -> bool:
    """A name compare can draw: one of METRICS, or a class's or the worst class's of one that has them
    (``val_dice_myocardium``, ``val_dice_min``)."""
    return metric in METRICS or split_class_key(metric, PER_CLASS) is not None


def class_metrics(rows: Sequence[Row]) -> list[str]:
    """The per-class names compare can draw for ``rows``: each foreground class's and the worst class's, per metric."""
    names = list(dict.fromkeys(n for r in rows for n in foreground_of(r.summary, r.config)))
    return [class_key(m, n) for m in PER_CLASS for n in (*names, "min")] if names else []


def curve(row: Row, metric: str) -> list[tuple[float, float]]:
    """(epoch, value) of ``metric`` over the epochs a run recorded (finite values only; a class's epochs without a
    score are left out; ``<metric>_min`` of a binary run is its ``<metric>``)."""
    out = []
    for i, m in enumerate(row.metrics, 1):
        if not isinstance(m, dict):
            continue
        x, y = finite(m.get("epoch", i)), epoch_value(m, metric)
        if x is not None and y is not None:
            out.append((x, y))
    return out


def _seed_key(row: Row) -> str:
    """What a run is apart from its seed: runs with equal keys are repeats of one configuration."""
    skip = {"seed", *NOT_DEFINITION, *NOT_COMPARED}
    return json.dumps({k: row.config.get(k) for k in KEYS if k not in skip}, sort_keys=True, default=str)


def group(rows: Sequence[Row], by: str = "configuration") -> list[list[Row]]:
    """The rows in groups of repeats, in the order they first appear: ``configuration`` the repeats a definition
    declares (``Row.configuration``), ``seed`` any runs whose configurations differ only in the seed, ``none`` each
    run alone."""
    if by not in GROUPINGS:
        raise ValueError(f"unknown grouping {by!r}; use one of {', '.join(GROUPINGS)}")
    out: dict[str, list[Row]] = {}
    for r in rows:
        key = r.id if by == "none" else r.configuration if by == "configuration" else _seed_key(r)
        out.setdefault(key, []).append(r)
    return list(out.values())


@dataclass
class Comparison:
    """The series to draw (one per group), the keys that differ between the groups, and the groups themselves."""

    metric: str
    series: list[Series]
    varied: list[str]
    groups: list[list[Row]] = field(default_factory=list)

    @property
    def log_y(self) -> bool:
        return wants_log([y for s in self.series for _, y in s.points] + [v for s in self.series for _, lo, hi in s.band
                                                                          for v in (lo, hi)])


def _best(pts: list[tuple[float, float]], metric: str) -> tuple[float, float] | None:
    if not pts:
        return None
    if direction_of(metric) is None:  # the learning rate: its last value
        return pts[-1][1], pts[-1][0]
    pick = max if higher_is_better(metric) else min
    x, y = pick(pts, key=lambda p: (p[1], -p[0]) if pick is max else (p[1], p[0]))
    return y, x


def labels(groups: Sequence[Sequence[Row]], varied: Sequence[str]) -> list[str]:
    """``lr=0.01, optimizer=adam`` per group from the keys in ``varied``; the id where that says nothing or is not
    unique."""
    names = []
    for g in groups:
        first = row_dict(g[0])
        names.append(", ".join(f"{k}={fmt_value(first.get(k))}" for k in varied))
    seen = [n for n in names if n]
    ids = [g[0].id if len(g) == 1 else g[0].configuration for g in groups]
    return [n if n and seen.count(n) == 1 else (f"{n} ({i})" if n else i) for n, i in zip(names, ids)]


def compare(rows: Sequence[Row], metric: str = "val_dice", by: str = "configuration") -> Comparison:
    """The comparison of ``rows`` (read-model rows with their metrics) on ``metric``: a group of several runs is
    drawn as their mean with a min-max band, and its note gives the mean ± sd of their best values."""
    if not is_metric(metric):
        raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)} or a class's (val_dice_<class>, "
                         "val_dice_min)")
    groups = group(rows, by)
    repeats = any(len(g) > 1 for g in groups)
    # keys that do not change what a run computes (device, repeats) never name it; the seed and the fold not where
    # repeats (and folds) are grouped
    varied = varied_keys([row_dict(r) for r in rows],
                         exclude=tuple(NOT_DEFINITION) + (("seed", "fold") if repeats else ()))
    series = []
    for g, label in zip(groups, labels(groups, varied)):
        curves = [curve(r, metric) for r in g]
        what = "best" if direction_of(metric) else "last"
        if len(g) == 1:
            r, pts = g[0], curves[0]
            best = _best(pts, metric)
            note = f"{r.id}  {r.label}" + (f"  {what} {best[0]:.4g} at epoch {best[1]:g}" if best else
                                           f"  no {metric} in its epochs" if r.metrics else "  no epochs yet")
            series.append(Series(label, pts, note=note))
            continue
        mean, band = group_curve(curves)
        bests = [b[0] for b in (_best(c, metric) for c in curves) if b]
        m, sd, n = mean_sd(bests)
        ids = ", ".join(r.id for r in g[:3]) + (", ..." if len(g) > 3 else "")
        states = sorted({r.label for r in g})
        some = f" ({n} of {len(g)} runs have a value)" if 0 < n < len(g) else ""  # a class without a score
        note = (f"mean of {len(g)} runs ({ids}; {', '.join(states)})  {what} {mean_sd_text(m, sd, n)}{some}" if n
                else f"{len(g)} runs ({ids}), no {metric} in their epochs" if any(r.metrics for r in g)
                else f"{len(g)} runs ({ids}), no epochs yet")
        series.append(Series(label, mean, band, note=note))
    return Comparison(metric, series, varied, groups)


def describe(c: Comparison) -> str:
    """One line above the plot: how many runs and configurations, and the keys that differ."""
    runs = sum(len(g) for g in c.groups)
    head = f"{c.metric} of {runs} run{'s' if runs != 1 else ''}"
    if len(c.groups) != runs:
        head += f" in {len(c.groups)} configuration{'s' if len(c.groups) != 1 else ''}"
    return head + ("; they differ in " + ", ".join(c.varied) if c.varied else "; no key differs between them")
