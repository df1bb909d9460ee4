"""Configurations: the repeats of one definition (runs that differ only in their seed) taken together, with the mean,
the seed-to-seed standard deviation and n of a metric, and the noise-aware comparison a winner is chosen by."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..stats import mean_sd, mean_sd_text, standard_error, within_noise
from .export import row_dict
from .status import Row

__all__ = ["AGGREGATED", "Group", "configuration_rows", "group_rows", "has_repeats", "mean_sd", "mean_sd_text",
           "standard_error", "within_noise"]


@dataclass
class Group:
    """One configuration: its runs (its repeats) and a metric's statistics over those that have it."""

    configuration: str
    rows: list[Row] = field(default_factory=list)
    metric: str = "best_val_dice"
    values: list[float] = field(default_factory=list)
    mean: float | None = None
    sd: float | None = None
    n: int = 0

    @property
    def text(self) -> str:
        return mean_sd_text(self.mean, self.sd, self.n)


def group_rows(rows: Iterable[Row], metric: str = "best_val_dice") -> list[Group]:
    """The configurations of ``rows`` in the order they first appear, each with ``metric``'s mean, sd and n over
    its runs that have a value (a run still training counts with its best so far; a failed or pending one not)."""
    out: dict[str, Group] = {}
    for r in rows:
        g = out.setdefault(r.configuration, Group(configuration=r.configuration, metric=metric))
        g.rows.append(r)
        if r.state.value in ("done", "pruned", "running", "interrupted", "changed"):
            v = row_dict(r).get(metric)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                g.values.append(float(v))
    for g in out.values():
        g.mean, g.sd, g.n = mean_sd(g.values)
    return list(out.values())


def has_repeats(rows: Iterable[Any]) -> bool:
    seen: dict[str, int] = {}
    for r in rows:
        seen[r.configuration] = seen.get(r.configuration, 0) + 1
    return any(v > 1 for v in seen.values())


AGGREGATED = ("best_val_dice", "best_val_loss", "final_val_dice", "final_val_loss", "final_val_iou", "test_dice",
              "test_iou")


def configuration_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Export rows (core.runs.export.row_dict) folded into one row per configuration, in first-appearance order:
    its first repeat's keys, ``runs`` (how many), ``seeds``, and for each metric of AGGREGATED its mean (under the
    metric's own name), ``<metric>_sd`` and ``<metric>_n`` over the repeats that have it; ``status`` is the shared
    state word, or the states counted (``2 done, 1 running``); ``seconds`` is the sum."""
    by: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(r.get("configuration") or r["id"], []).append(r)
    out = []
    for conf, members in by.items():
        members = sorted(members, key=lambda m: m.get("repeat") or 1)
        first = dict(members[0])
        first.update(id=conf, configuration=conf, runs=len(members), repeat=None,
                     seeds=",".join(str(m.get("seed")) for m in members))
        states: dict[str, int] = {}
        for m in members:
            states[m["status"]] = states.get(m["status"], 0) + 1
        first["status"] = next(iter(states)) if len(states) == 1 else ", ".join(f"{n} {s}" for s, n in states.items())
        first["label"] = first["status"] if len(members) == 1 else f"{first['status']}" + (
            f" ×{len(members)}" if len(states) == 1 else "")
        for metric in AGGREGATED:
            mean, sd, n = mean_sd([m.get(metric) for m in members if m["status"] in ("done", "pruned", "running",
                                                                                     "interrupted", "changed")])
            first[metric], first[f"{metric}_sd"], first[f"{metric}_n"] = mean, sd, n
        secs = [m.get("seconds") for m in members if isinstance(m.get("seconds"), (int, float))]
        first["seconds"] = round(sum(secs), 3) if secs else None
        out.append(first)
    return out
