"""A staged study's report: Markdown in the course report's form (a table of runs per stage, averages per value of each
varied key, winners, the final configuration) or CSV, one row per run. Strings only; the CLI writes them."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from .fmt import value as fmt_value
from .study_figures import OVERVIEW
from .study_text import final_scores_text, stage_notes
from .study_text import num as _num
from .study_text import values_text as _values

METRIC_COLUMNS = (("final_train_loss", "train loss"), ("final_train_dice", "train Dice"),
                  ("final_val_loss", "val loss"), ("final_val_dice", "val Dice"))


def _mean(xs: list[float]) -> float | None:
    xs = [x for x in xs if isinstance(x, (int, float)) and not isinstance(x, bool)]
    return sum(xs) / len(xs) if xs else None


def report_markdown(s, figures: dict[str, list[str]] | None = None) -> str:
    """The study as the course report had it: per stage a table of runs, group averages, the winner; the final configuration."""
    study = s.study
    out = [f"# Study `{s.id}`", "", f"Metric `{study.metric}` ({study.direction})"
           + (f"; every configuration at train_fraction {', '.join(fmt_value(f) for f in study.fractions)}, scored by the mean"
              if study.fractions else "") + ".", ""]
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
        keys = list(st.varied) + (["train_fraction"] if has_f else [])
        head = keys + [label for _, label in METRIC_COLUMNS] + ["score", "note"]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "|".join("---" if i < len(keys) else "---:" for i in range(len(head) - 1)) + "|---|")
        for c in st.configs:
            for r in c.runs:
                summ = r.summary or {}
                vals = [fmt_value(c.values[k]) for k in st.varied] + ([fmt_value(r.fraction)] if has_f else [])
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
            out.append(f"| {key} | runs | mean val loss | mean val Dice |")
            out.append("|---|---:|---:|---:|")
            for v, summs in groups.items():
                done = [x for x in summs if x]
                out.append(f"| {v} | {len(done)}/{len(summs)} | {_num(_mean([x.get('final_val_loss') for x in done]))} "
                           f"| {_num(_mean([x.get('final_val_dice') for x in done]))} |")
            out.append("")
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


CSV_METRICS = ("best_val_dice", "best_epoch", "final_train_loss", "final_train_dice", "final_val_loss",
               "final_val_dice", "final_val_iou", "test_dice", "test_iou", "epochs_done", "seconds")


def report_csv(s) -> str:
    """One row per run: study, stage, id, state, every key any stage varies, train_fraction, metrics, score, winner."""
    keys: list[str] = []
    for st in s.stages:
        keys += [k for k in st.varied if k not in keys]
    if any(r.fraction is not None for st in s.stages for c in st.configs for r in c.runs) and "train_fraction" not in keys:
        keys.append("train_fraction")
    head = ["study", "stage", "id", "state", *keys, *CSV_METRICS, "metric", "score", "winner", "pruned_at"]
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
                            *[summ.get(m, "") if summ.get(m) is not None else "" for m in CSV_METRICS],
                            "" if r.value is None else r.value, "" if c.score is None else c.score,
                            "yes" if st.state == "done" and st.winner == c.values else "", c.pruned_at or ""])
    return buf.getvalue()
