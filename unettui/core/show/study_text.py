"""The words a study is shown in, shared by `unettui study ...`, `unettui report` and the TUI's Studies tab."""

from __future__ import annotations

from typing import Any

from ..stats import mean_sd_text
from .fmt import value as fmt_value

__all__ = ["values_text", "num", "describe", "winner_text", "stage_notes", "final_scores_text", "class_scores_text",
           "end_scores_text", "aggregation_sentence", "metric_sentence"]


def values_text(d: dict[str, Any] | None) -> str:
    """``key=value, ...`` (or '-')."""
    return ", ".join(f"{k}={fmt_value(v)}" for k, v in (d or {}).items()) or "-"


def num(v: Any) -> str:
    """A metric with 4 decimals, '-' when missing."""
    return "-" if not isinstance(v, (int, float)) or isinstance(v, bool) else f"{v:.4f}"


def describe(status: Any) -> str:
    """The study's metric, fractions and base."""
    st = status.study
    parts = [f"metric {st.metric} ({st.direction})"]
    if st.fractions:
        parts.append("train_fraction " + ", ".join(fmt_value(f) for f in st.fractions) + " (score = mean)")
    if st.base:
        parts.append("base " + values_text(st.base))
    return "; ".join(parts)


def winner_text(st: Any) -> str:
    """'lr=0.01 (tie-break)' for a finished stage, 'leading: lr=0.01' while it runs, '-' otherwise."""
    if st.state == "done":
        return f"{values_text(st.winner)} ({st.how})" if st.winner else "-"
    if st.winner:
        return f"leading: {values_text(st.winner)}"
    return "-"


def stage_notes(st: Any) -> list[str]:
    """What a halving or learning-rate-search stage adds to its table: rungs and epochs saved, the best rates."""
    out = []
    if st.rungs:
        share = f" ({100 * st.epochs_trained / st.epochs_full:.0f} %)" if st.epochs_full else ""
        out.append(f"successive halving: rungs at epochs {', '.join(map(str, st.rungs))}; epochs trained: "
                   f"{st.epochs_trained} of {st.epochs_full} for the full grid{share}")
    if st.kind == "lr-search":
        out.append("learning-rate search: one run per power of ten, then a bisection of the multiplier of the best one")
        if len(st.tuned) == 1 and not st.tuned[0][0]:
            out.append(f"best lr: {fmt_value(st.tuned[0][1]['lr'])}")
        elif st.tuned:
            out.append("best lr: " + "; ".join(f"{values_text(g)}: {fmt_value(v['lr'])}" for g, v in st.tuned)
                       + " (later stages use each one's own rate)")
    return out


def metric_sentence(metric: str) -> str:
    """What a study's metric is, in the registry's words: ``best_val_dice_min, the best val Dice (worst class):
    higher is better; the lowest foreground class's ...; pooled counts ...``."""
    from ..define.task import describe_key

    words = describe_key(metric)
    return f"{metric}, the {words}" if words != metric else metric


def aggregation_sentence() -> str:
    """How Dice and IoU, and how HD95 and NSD, aggregate over a set's images, and the empty-case policy: one
    sentence (core.define.task's registry)."""
    from ..define.task import EMPTY_POLICY, METRICS, aggregation_text

    pooled = " and ".join(m.label for m in METRICS.values() if m.images == "pooled" and m.per_class)
    per_image = " and ".join(m.label for m in METRICS.values() if m.images == "mean")
    return (f"{pooled} are {aggregation_text('dice')}; {per_image} are computed at the end of a run on its best "
            f"epoch's weights, {aggregation_text('hd95')}: {EMPTY_POLICY}")


def end_scores_text(fs: dict[str, Any]) -> str:
    """``val HD95 3.41 ± 0.50 px (n=2), val NSD 0.8123 ...; test HD95 ...``: the final configuration's end-of-run
    metrics (mean ± sd (n) over its runs that have them); "" where none has."""
    from ..define.task import VIEWS, label_of, metric_of

    parts: list[str] = []
    for key in VIEWS["study-end"]:
        mean, sd, n = (fs.get("end") or {}).get(key, (None, None, 0))
        if mean is None:
            continue
        metric = metric_of(key)
        digits = metric.digits if metric is not None else 4
        unit = f" {metric.unit}" if metric is not None and metric.unit else ""
        text = f"{mean:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None and n >= 2 else "") + unit
        parts.append(f"{label_of(key)} {text}" + (f" (n={n})" if n >= 2 else ""))
    return ", ".join(parts)


def final_scores_text(status: Any) -> list[str]:
    """The final configuration's validation score (which chose it) and its held-out test score (which nothing chose
    by), labelled so that nobody mistakes one for the other; then its end-of-run HD95 and NSD (reported, never chosen
    by) and how each metric aggregates."""
    from ..define.task import label_of

    fs = status.final_scores()
    if fs is None:
        return []
    out = [f"validation {fs['metric']} (chose it, optimistic): {mean_sd_text(*fs['val'])}",
           f"chosen by {metric_sentence(fs['metric'])}"]
    if fs.get("folds") and fs["oof"][0] is not None:
        out.append(f"pooled out-of-fold Dice (every non-test image predicted once, by the fold that left it out): "
                   f"{mean_sd_text(*fs['oof'])}")
    if fs["test_dice"][0] is None:
        out.append("held-out test: none (test_fraction = 0); set test_fraction = 0.2 in the study for an honest score")
    else:
        if fs.get("folds"):
            single = f"each of the {fs['folds']} folds alone"
            ens = (mean_sd_text(*fs["ensemble_test_dice"]) if fs["ensemble_test_dice"][0] is not None else
                   "not computed yet (`unettui cv` computes it)")
            out.append(f"held-out test Dice of the ensemble of the {fs['folds']} folds (the final model: `unettui "
                       f"predict` averages them; never used to choose, {fs['n_test']} images): {ens}")
        else:
            single = "never used to choose"
        out.append(f"held-out test Dice ({single}, {fs['n_test']} images): {mean_sd_text(*fs['test_dice'])}"
                   f", IoU {mean_sd_text(*fs['test_iou'])}")
        per_class = class_scores_text(status, fs, "test_dice")
        if per_class:
            out.append(f"held-out test Dice per class (the Dice above is their mean over the classes with a score): "
                       f"{per_class}")
    end = end_scores_text(fs)
    if end:
        tol = ", ".join(f"{t:g}" for t in fs.get("nsd_tolerance") or ())
        out.append(f"end-of-run boundary metrics, on each run's best weights (never used to choose"
                   f"{'; NSD at ' + tol + ' px' if tol else ''}): {end}")
        for key in ("test_hd95", "test_nsd") if fs["test_dice"][0] is not None else ("val_hd95", "val_nsd"):
            per_class = class_scores_text(status, fs, key)
            if per_class:
                out.append(f"{'held-out ' if key.startswith('test') else ''}{label_of(key)} per class: {per_class}")
        out.append(aggregation_sentence())
    return out



def class_scores_text(status: Any, fs: dict[str, Any], key: str) -> str:
    """``cavity 0.8500 ± 0.0707 (n=2), myocardium 0.4500 (1 of 2 runs have a score), worst ...``: the mean ± sd (n) of
    ``key``'s value per class (a summary key with per-class companions) over the final configuration's finished runs
    that have one; "" where its runs are binary."""
    from ..define.task import class_key, foreground_of, metric_of, worst_key
    from ..stats import mean_sd

    stage = next((st for st in status.stages if st.name == fs.get("stage")), None)
    cs = next((c for c in stage.configs if c.values == stage.winner), None) if stage is not None else None
    summaries = [r.summary for r in (cs.runs if cs is not None else []) if r.state == "done" and r.summary]
    names = list(dict.fromkeys(n for x in summaries for n in foreground_of(x)))
    if not names:
        return ""
    metric = metric_of(key)
    digits = metric.digits if metric is not None else 4
    parts = []
    for name, k in [*((n, class_key(key, n)) for n in names), ("worst", worst_key(key))]:
        mean, sd, n = mean_sd([x.get(k) for x in summaries])
        text = "— (no run has a score)" if mean is None else mean_sd_text(mean, sd, n, digits)
        if mean is not None and n < len(summaries):
            text += f" ({n} of {len(summaries)} runs have a score)"
        parts.append(f"{name} {text}")
    return ", ".join(parts)
