"""Configurations: the repeats of one definition (runs that differ only in their seed) taken together, with the mean,
the seed-to-seed standard deviation and n of a metric, and the noise-aware comparison a winner is chosen by."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..define.config import KEYS
from ..define.task import AT_ORDER, METRICS, SUMMARY_KEYS
from ..stats import mean_sd, mean_sd_text, pooled_dice, standard_error, summed_counts, within_noise
from .export import class_columns, row_dict
from .status import Row

__all__ = ["AGGREGATED", "Group", "configuration_columns", "configuration_rows", "group_rows", "has_repeats", "mean_sd", "mean_sd_text",
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
        if r.state.value in COUNTED:
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


# the summary keys folded over repeats in every project (core.define.task's registry): the per-epoch metrics by epoch
# (best, final, test), Dice first within each (what a study compares by), then the end-of-run ones (val HD95 and NSD,
# then test), each in the registry's order
AGGREGATED = tuple(k.name for k in sorted((k for k in SUMMARY_KEYS.values() if k.folded and k.column),
                                          key=lambda k: (METRICS[k.metric].when == "end", AT_ORDER.index(k.at),
                                                         k.metric != "dice")))
# the states whose runs count in a configuration's statistics (a run still training with its numbers so far)
COUNTED = ("done", "pruned", "running", "interrupted", "changed")


def configuration_columns(rows: list[dict[str, Any]] | None = None) -> tuple[str, ...]:
    """The columns of `unettui export --by-configuration` (and of the TUI's export of configurations) for ``rows``:
    the configuration's keys, then each folded metric's mean, ``_sd`` and ``_n`` (the end-of-run HD95 and NSD too:
    there ``_sd`` is over the repeats, as for every other metric, not the run's sd over its images), and where runs
    have classes the same three of every per-class column (core.runs.export.class_columns); with folds, the pooled
    out-of-fold Dice (``pooled_oof``) after them."""
    oof = ("oof_val_dice", "oof_val_dice_sd", "oof_val_dice_n") if any(r.get("folds") for r in rows or []) else ()
    return ("configuration", "status", "runs", "seeds", *[k for k in KEYS if k not in ("seed", "fold")],
            *[c for m in AGGREGATED for c in (m, f"{m}_sd", f"{m}_n")], *oof, "epochs_done", "seconds",
            *[c for m in class_columns(rows or []) for c in (m, f"{m}_sd", f"{m}_n")])


def configuration_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Export rows (core.runs.export.row_dict) folded into one row per configuration, in first-appearance order:
    its first repeat's keys, ``runs`` (how many), ``seeds``, and for each metric of AGGREGATED and each per-class key
    of its runs (core.runs.export.class_columns) its mean (under the metric's own name), ``<metric>_sd`` and
    ``<metric>_n`` over the repeats that have a value (a null — no score — is left out, never counted as 0);
    ``status`` is the shared state word, or the states counted (``2 done, 1 running``); ``seconds`` is the sum;
    ``no_score``: why a mean has no value (a repeat's reason)."""
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
        counted = [m for m in members if m["status"] in COUNTED]
        by_class = class_columns(members)
        for metric in (*AGGREGATED, *by_class):  # a run without a value (null: no score) is left out, never a 0
            mean, sd, n = mean_sd([m.get(metric) for m in counted])
            first[metric], first[f"{metric}_sd"], first[f"{metric}_n"] = mean, sd, n
        classes = [n for m in members for n in m.get("classes") or ()]
        first["classes"] = tuple(dict.fromkeys(classes))
        # a per-class mean without a value: why (the first repeat's reason that says one)
        reasons: dict[str, str] = {}
        for k in (*AGGREGATED, *by_class):
            why = next((m["no_score"][k] for m in members if k in (m.get("no_score") or {})), None)
            if first[k] is None and why:
                reasons[k] = why
        first["no_score"] = reasons
        secs = [m.get("seconds") for m in members if isinstance(m.get("seconds"), (int, float))]
        first["seconds"] = round(sum(secs), 3) if secs else None
        first["fold"] = None
        if any(m.get("fold") for m in members):
            first.update(zip(("oof_val_dice", "oof_val_dice_sd", "oof_val_dice_n"), pooled_oof(counted)))
        out.append(first)
    return out


def pooled_oof(members: list[dict[str, Any]]) -> tuple[float | None, float | None, int]:
    """The pooled out-of-fold Dice of a cross-validated configuration's runs (export rows with ``fold``, ``repeat``
    and ``best_val_counts``): per repeat, the (tp, fp, fn) of every fold's validation images at its best epoch summed
    (each non-test image predicted once, by the fold that did not train on it), Dice from the sums (binary: the
    foreground's; K classes: the mean over the classes with a score); then mean, sd and n over the repeats whose
    every fold has counts. (None, None, 0) until then."""
    by_repeat: dict[int, list[dict[str, Any]]] = {}
    for m in members:
        by_repeat.setdefault(m.get("repeat") or 1, []).append(m)
    scores = []
    for runs in by_repeat.values():
        folds = runs[0].get("folds") or 0
        counts = [m.get("best_val_counts") for m in runs]
        if len({m.get("fold") for m in runs}) < folds or any(not isinstance(c, list) or not c for c in counts):
            continue
        dice = pooled_dice(summed_counts(counts))
        if dice is not None:
            scores.append(dice)
    return mean_sd(scores)
