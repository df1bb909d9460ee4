"""A staged study's report: Markdown in the course report's form (a table of runs per stage, averages per value of each
varied key, winners, the final configuration) or CSV, one row per run. Strings only; the CLI writes them."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ..define.task import (
    END_KEYS,
    SUMMARY_KEYS,
    VIEWS,
    class_key,
    foreground_of,
    label_of,
    metric_of,
    no_score_reason,
    worst_key,
)
from ..runs.export import class_columns, class_names
from ..stats import mean_sd, mean_sd_text
from .fmt import value as fmt_value
from .study_figures import OVERVIEW
from .study_text import aggregation_sentence, final_scores_text, metric_sentence, stage_notes
from .study_text import num as _num
from .study_text import values_text as _values

# the course report's table of runs: the last epoch's train and val loss and Dice (core.define.task.VIEWS)
METRIC_COLUMNS = tuple((key, label_of(key)) for key in VIEWS["study-table"])


def _mean(xs: list[float]) -> float | None:
    xs = [x for x in xs if isinstance(x, (int, float)) and not isinstance(x, bool)]
    return sum(xs) / len(xs) if xs else None


def report_markdown(s, figures: dict[str, list[str]] | None = None) -> str:
    """The study as the course report had it: per stage a table of runs, group averages, the winner; the final configuration."""
    study = s.study
    out = [f"# Study `{s.id}`", "", f"Metric `{study.metric}` ({study.direction})"
           + (f"; every configuration at train_fraction {', '.join(fmt_value(f) for f in study.fractions)}, scored by the mean"
              if study.fractions else "") + ".", ""]
    out += [f"It chooses by {metric_sentence(study.metric)}.", ""]
    modes = sorted({str(r.summary["mode"]) for st in s.stages for r in _done(st) if r.summary.get("mode")})
    if modes:  # how the images reached the model: resized whole, or patches at their own resolution
        out += ["Images: " + "; ".join(m + (
            " px at the images' own resolution (validation and test by sliding window)"
            if m.startswith("patches") else "² (whole images)") for m in modes) + ".", ""]
    if study.base:
        out += [f"Base (on top of [defaults]): {_values(study.base)}.", ""]
    out += [f"In the tables, train loss, train Dice, val loss and val Dice are the last epoch's; score is `{study.metric}` "
            "(the mean over a stage's train fractions when it has several).", ""]
    overview = (figures or {}).get(OVERVIEW, [])
    if overview:
        out += [f"`{study.metric}` of every setting, stage by stage (bars grouped by each stage's first varied key):", ""]
        out += _figure_lines(s.id, overview)
    for n, st in enumerate(s.stages, 1):
        out += [f"## Stage {n}: {st.name} ({st.state})", ""]
        if st.carried:
            out += [f"Carried from earlier stages: {_values(st.carried)}.", ""]
        if st.state == "waiting":
            out += [f"Waiting: {st.planned} runs expand once every run of the earlier stages is finished.", ""]
            continue
        has_f = any(r.fraction is not None for c in st.configs for r in c.runs)
        folded = any(r.fold for c in st.configs for r in c.runs)
        keys = list(st.varied) + (["train_fraction"] if has_f else [])
        head = keys + (["fold"] if folded else []) + [label for _, label in METRIC_COLUMNS] + ["score", "note"]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "|".join("---" if i < len(keys) else "---:" for i in range(len(head) - 1)) + "|---|")
        for c in st.configs:
            for r in c.runs:
                summ = r.summary or {}
                vals = [fmt_value(c.values[k]) for k in st.varied] + ([fmt_value(r.fraction)] if has_f else []) + (
                    [str(r.fold) + (f" (repeat {r.repeat})" if r.repeat > 1 else "")] if folded else [])
                metrics = [_num(summ.get(key)) for key, _ in METRIC_COLUMNS]
                mark = "**winner**" if st.state == "done" and st.winner == c.values else ("" if r.state == "done" else r.state)
                if c.pruned_at:
                    mark = f"pruned after epoch {c.pruned_at}"
                out.append("| " + " | ".join(vals + metrics + [_num(c.score), mark]) + " |")
        out.append("")
        for key in keys:  # group averages per value of each varied key (the report's "Avg Val Dice" per scheduler)
            groups: dict[str, list[dict[str, Any]]] = {}
            for c in st.configs:
                for r in c.runs:
                    v = r.fraction if key == "train_fraction" else c.values[key]
                    groups.setdefault(fmt_value(v), []).append((r.summary or {}) if r.state == "done" else {})
            if len(groups) < 2 and len(keys) == 1:
                continue
            means = VIEWS["study-groups"]
            out.append(f"| {key} | runs | " + " | ".join(f"mean {label_of(m)}" for m in means) + " |")
            out.append("|---|---:|" + "---:|" * len(means))
            for v, summs in groups.items():
                done = [x for x in summs if x]
                out.append(f"| {v} | {len(done)}/{len(summs)} | "
                           + " | ".join(_num(_mean([x.get(m) for x in done])) for m in means) + " |")
            out.append("")
        out += _cv_lines(st)
        out += _class_lines(st, has_f)
        out += _end_lines(st, has_f)
        notes = stage_notes(st)
        if notes:
            out += [f"- {n[0].upper()}{n[1:]}." for n in notes] + [""]
        out += _figure_lines(st.name, (figures or {}).get(st.name, []))
        if st.state == "done":
            out += [f"Winner: **{_values(st.winner or {})}** ({st.how}: {st.why}).", ""]
        elif st.winner:
            out += [f"Leading so far: {_values(st.winner)} ({st.why}).", ""]
    out += ["## Final configuration" if s.done else "## Configuration so far (not every stage is done)", ""]
    scores = final_scores_text(s)
    if scores:
        out += [f"- {line[0].upper()}{line[1:]}." for line in scores] + [""]
    out += ["```toml"]
    out += [f"{k} = {_toml(v)}" for k, v in s.final().items()] or ["# the study base is [defaults]"]
    out += ["```", ""]
    return "\n".join(out)


def _cv_lines(st: Any) -> list[str]:
    """With folds: per configuration the mean over its folds, the pooled out-of-fold Dice and the paired difference
    of the best to it, fold by fold, with its 95 % t interval (what decided the stage)."""
    from ..define.study import paired_text

    if not any(r.fold for c in st.configs for r in c.runs):
        return []
    out = ["Cross-validated: each configuration's folds validate on disjoint images; configurations are compared fold "
           "by fold (paired: the same folds), the best's difference to each with its standard error and 95 % interval.",
           "", "| " + " | ".join([*st.varied, "mean over folds", "pooled out-of-fold Dice", "paired Δ (best − this)"])
           + " |", "|" + "---|" * len(st.varied) + "---:|---:|---|"]
    for c in st.configs:
        oof = mean_sd([r["oof"]["dice"] for r in (c.cv or {}).get("repeats") or []])
        pair = (paired_text(c.paired) if c.paired else f"pruned after epoch {c.pruned_at}" if c.pruned_at else
                "—" if c.score is not None else "no score")
        out.append("| " + " | ".join([*(fmt_value(c.values[k]) for k in st.varied),
                                      mean_sd_text(c.score, c.sd, c.n if c.sd is not None else 1),
                                      mean_sd_text(*oof), pair]) + " |")
    return [*out, ""]


def _class_lines(st, has_f: bool) -> list[str]:
    """A stage's per-class table where its runs are multi-class: per configuration (and train fraction) the mean ± sd
    (n) over its finished runs of each class's val Dice at the best epoch, of their mean and of the worst class's; a
    run without a score for a class is left out of that class's mean (n says how many have one), and "—" means none
    has. [] for a stage of binary runs."""
    bases = VIEWS["classes"]
    what = ", ".join(f"{label_of(b)} (each class's {label_of(SUMMARY_KEYS[b].source)} at the run's "
                     f"{SUMMARY_KEYS[b].at} epoch)" for b in bases)
    intro = (f"Per class: {what}, mean ± sd (n) over a configuration's finished runs that have a score. The class mean "
             "is over the foreground classes with a score, worst is the lowest of them, and — means no run has a "
             "score.")
    return _class_table(st, has_f, bases, intro)


def _done(st) -> list[Any]:
    return [r for c in st.configs for r in c.runs if r.state == "done" and r.summary]


def _class_table(st, has_f: bool, bases: tuple[str, ...], intro: str) -> list[str]:
    """``intro``, then a table per configuration (and train fraction) of the mean ± sd (n) over its finished runs of
    each of ``bases``' per-class keys, the mean over classes and the worst class's; [] for a stage of binary runs."""
    names = class_names([{"classes": foreground_of(r.summary)} for r in _done(st)])
    if not names:
        return []
    keys = [k for base in bases for k in (*(class_key(base, n) for n in names), base, worst_key(base))]
    heads = [f"{n} ({label_of(base)})" if len(bases) > 1 else n for base in bases for n in (*names, "mean", "worst")]
    out = [intro, ""]
    return out + _table_rows(st, has_f, keys, heads)


def _table_rows(st, has_f: bool, keys: list[str], heads: list[str]) -> list[str]:
    """A table per configuration (and train fraction) of ``keys``' mean ± sd (n) over its finished runs that have a
    value (n < runs says so; "—": none has), with the reasons a run recorded for having none."""
    vary = list(st.varied) + (["train_fraction"] if has_f else [])
    out = ["| " + " | ".join([*vary, *heads]) + " |", "|" + "---|" * len(vary) + "---:|" * len(heads)]
    reasons: dict[str, list[str]] = {}
    for c in st.configs:
        by_fraction: dict[Any, list[Any]] = {}
        for r in c.runs:
            by_fraction.setdefault(r.fraction, []).append(r)
        for fraction, runs in by_fraction.items():
            finished = [r for r in runs if r.state == "done" and r.summary]
            if not finished:
                continue
            cells = []
            for key in keys:
                mean, sd, n = mean_sd([r.summary.get(key) for r in finished])
                metric = metric_of(key)
                cells.append("—" if mean is None else mean_sd_text(mean, sd, n, metric.digits if metric else 4) + (
                    f" ({n} of {len(finished)} runs)" if n < len(finished) else ""))
                for r in finished:
                    why = no_score_reason(r.summary, key)
                    if why and r.summary.get(key) is None:
                        reasons.setdefault(why, []).append(r.id)
            vals = [fmt_value(c.values[k]) for k in st.varied] + ([fmt_value(fraction)] if has_f else [])
            out.append("| " + " | ".join(vals + cells) + " |")
    out.append("")
    for why, ids in reasons.items():
        ids = list(dict.fromkeys(ids))
        out.append(f"- No score: {why} ({', '.join(f'`{i}`' for i in ids[:5])}{', ...' if len(ids) > 5 else ''}).")
    return out + ([""] if reasons else [])


def _end_lines(st, has_f: bool) -> list[str]:
    """A stage's end-of-run boundary metrics where its runs recorded them: per configuration (and train fraction) the
    mean ± sd (n) over its finished runs of val and test HD95 and NSD (the test split's where some run has one), how
    each aggregates and the empty-case policy; then, for multi-class runs, val HD95 and NSD per class. [] where no
    finished run has them (runs from before boundary metrics)."""
    done = _done(st)
    if not any(k in r.summary for r in done for k in END_KEYS):
        return []
    keys = [k for k in VIEWS["study-end"] if not k.startswith("test_") or any(
        r.summary.get(k) is not None for r in done)]
    tolerances = sorted({r.summary["nsd_tolerance"] for r in done
                         if isinstance(r.summary.get("nsd_tolerance"), (int, float))})
    tol = f", NSD at {', '.join(f'{t:g}' for t in tolerances)} px" if tolerances else ""
    heads = [label_of(k) + (f" ({metric.unit})" if (metric := metric_of(k)) is not None and metric.unit else "")
             for k in keys]
    out = [f"End-of-run boundary metrics, on each run's best weights{tol} (reported, never chosen by): mean ± sd (n) "
           "over a configuration's finished runs that have them; HD95 is in pixels, lower is better, NSD higher is "
           f"better. {aggregation_sentence()[0].upper()}{aggregation_sentence()[1:]}.", ""]
    out += _table_rows(st, has_f, keys, heads)
    bases = VIEWS["study-end-classes"]
    intro = (f"Per class: {', '.join(label_of(b) for b in bases)} (each class's, per image, then the mean over the "
             "images that scored), mean ± sd (n) over a configuration's finished runs that have a score. The class "
             "mean is over the foreground classes with a score, worst is the highest HD95 and the lowest NSD of them, "
             "and — means no run has a score.")
    return out + _class_table(st, has_f, bases, intro)


def _figure_lines(name: str, paths: list[str]) -> list[str]:
    """A Markdown image per PNG, followed by links to its vector copies (same name, .svg or .pdf)."""
    out = []
    for png in [p for p in paths if Path(p).suffix == ".png"]:
        kind = Path(png).stem.split("-")[-1]
        vectors = [p for p in paths if Path(p).suffix != ".png" and Path(p).with_suffix(".png") == Path(png)]
        links = "".join(f" [{Path(v).suffix[1:].upper()}]({v})" for v in vectors)
        out += [f"![{name}: {kind}]({png})" + links, ""]
    return out


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, float):
        return repr(v)
    return str(v)


# the summary's numbers, as `unettui export` has them (core.define.task's registry)
CSV_METRICS = tuple(k.name for k in SUMMARY_KEYS.values() if k.column)


def report_csv(s) -> str:
    """One row per run: study, stage, id, state, every key any stage varies, train_fraction, metrics (the end-of-run
    val and test HD95 and NSD last), score, winner; where runs are multi-class, then their per-class columns as
    `unettui export` names them (HD95 and NSD per class after Dice and IoU; empty: no score)."""
    summaries = [r.summary for st in s.stages for c in st.configs for r in c.runs if r.summary]
    metrics = (*CSV_METRICS, *class_columns([{"classes": foreground_of(x)} for x in summaries]))
    keys: list[str] = []
    for st in s.stages:
        keys += [k for k in st.varied if k not in keys]
    if any(r.fraction is not None for st in s.stages for c in st.configs for r in c.runs) and "train_fraction" not in keys:
        keys.append("train_fraction")
    head = ["study", "stage", "id", "state", *keys, *CSV_METRICS, "metric", "score", "winner", "pruned_at",
            *metrics[len(CSV_METRICS):]]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)
    for st in s.stages:
        for c in st.configs:
            for r in c.runs:
                summ = r.summary or {}
                vals = {**st.carried, **c.values}
                if r.fraction is not None:
                    vals["train_fraction"] = r.fraction
                w.writerow([s.id, st.name, r.id, r.state, *[vals.get(k, "") for k in keys],
                            *[_csv_value(summ.get(m)) for m in CSV_METRICS],
                            "" if r.value is None else r.value, "" if c.score is None else c.score,
                            "yes" if st.state == "done" and st.winner == c.values else "", c.pruned_at or "",
                            *[_csv_value(summ.get(m)) for m in metrics[len(CSV_METRICS):]]])
    return buf.getvalue()


def _csv_value(v: Any) -> Any:
    """A summary value as a CSV cell: empty for a null (no score), a NaN or anything that is not a number or text."""
    if isinstance(v, float) and v != v:
        return ""
    return "" if v is None or isinstance(v, (dict, list)) else v
