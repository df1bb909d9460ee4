"""Staged studies: `unettui study ls`, `unettui study show ID`, `unettui report STUDY` (no torch, no textual)."""

from __future__ import annotations

import csv
import io
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer

from ..core.show.fmt import value as fmt_value
from ..core.show.study_text import describe as _describe
from ..core.show.study_text import num as _num
from ..core.show.study_text import stage_notes, winner_text
from ..core.show.study_text import values_text as _values
from .common import ProjectOpt, app, fail, load_queue_or_fail, write_output

study_app = typer.Typer(
    help="Staged studies (the study tables of experiments.toml): one hyper-parameter family per stage, each stage "
         "carrying the best setting forward. Train them with `unettui run --headless`.\n\n"
         "Example: unettui study ls",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(study_app, name="study")

METRIC_COLUMNS = (("final_train_loss", "train loss"), ("final_train_dice", "train Dice"),
                  ("final_val_loss", "val loss"), ("final_val_dice", "val Dice"))


def _studies(project: Path):
    queue = load_queue_or_fail(project)
    return queue, queue.studies


def _find(project: Path, study_id: str | None):
    """The StudyStatus of ``study_id`` (None: the only study), or a one-line error naming the study's problem or
    the known studies."""
    import difflib

    queue, studies = _studies(project)
    if study_id is None:
        if len(studies) == 1:
            return studies[0]
        if not studies:
            fail(f"{queue.path.name} defines no valid [[study]]; add one with `unettui study new --template quick`")
        fail(f"{queue.path.name} defines {len(studies)} studies ({', '.join(s.id for s in studies)}); name one")
    for s in studies:
        if s.id == study_id:
            return s
    for p in queue.problems:  # an invalid study: say why
        if f"[[study]] '{study_id}'" in p.where:
            fail(str(p))
    ids = [s.id for s in studies]
    close = difflib.get_close_matches(study_id, ids, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    fail(f"no study '{study_id}' in {queue.path.name}; {hint}" + (f"studies: {', '.join(ids)}" if ids else "it defines no [[study]]"))


def _table(head: list[str], rows: list[list[str]], right: set[int] = frozenset()) -> list[str]:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(head)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(head), line(["-" * w for w in widths])] + [line(r) for r in rows]


class TemplateName(str, Enum):
    quick = "quick"
    seed = "seed"


@study_app.command("new")
def study_new(
    template: TemplateName = typer.Option(..., "--template", "-t", help="quick (a few minutes: every stage kind) or seed "
                                          "(the course study, six stages, about 26 min on 2 CPU cores)."),
    study_id: Optional[str] = typer.Option(None, "--id", help="The study's id, also its experiments' id prefix (default: the template's name)."),
    show: bool = typer.Option(False, "--print", help="Print the [[study]] table instead of adding it."),
    project: Path = ProjectOpt,
) -> None:
    """Add a ready-made staged study to experiments.toml (created if the folder has none), keeping the file's comments and layout. Train it with `unettui run --headless`, then read `unettui report`.

    Example: unettui study new --template quick
    """
    from ..core.define.edit import EditError
    from ..core.define.templates import TEMPLATES, add_study, render_template

    t = TEMPLATES[template.value]
    try:
        if show:
            typer.echo(render_template(t.name, study_id), nl=False)
            return
        path, sid, created = add_study(project, t.name, study_id)
    except (EditError, ValueError) as exc:
        fail(str(exc))
    typer.echo(f"{'created' if created else 'added to'} {path}: study '{sid}' ({t.summary}; {t.runtime} on 2 CPU cores)")
    p = "" if str(project) == "." else f" -p {project}"
    typer.echo(f"next: unettui run --headless{p}   then: unettui study show {sid}{p}, unettui report {sid}{p}")


@study_app.command("ls")
def study_ls(project: Path = ProjectOpt) -> None:
    """Every study of experiments.toml: its stages with state (waiting, running, done), finished/total runs and the winner so far.

    Example: unettui study ls -p my-study
    """
    queue, studies = _studies(project)
    if not studies:
        bad = [p for p in queue.problems if "[[study]]" in p.where]
        typer.echo("no valid [[study]] in experiments.toml" + (f" ({len(bad)} problem(s): see `unettui check`)" if bad else ""))
        return
    for s in studies:
        typer.echo(f"{s.id}: {len(s.stages)} stage{'s' if len(s.stages) != 1 else ''}; {_describe(s)}")
        rows = []
        for n, st in enumerate(s.stages, 1):
            rows.append([str(n), st.name + ("" if st.kind == "grid" else f" ({st.kind})"), st.state,
                         f"{st.finished}/{st.planned}", winner_text(st)])
        for line in _table(["#", "stage", "state", "runs", "winner"], rows, right={0, 3}):
            typer.echo("  " + line)
        if s.done:
            typer.echo(f"  final: {_values(s.final())}")


@study_app.command("show")
def study_show(study_id: str = typer.Argument(..., metavar="ID", help="The study's id."), project: Path = ProjectOpt) -> None:
    """One study, stage by stage: each configuration's score per train fraction and their mean, the winner marked (*) and why it won.

    Example: unettui study show opt -p my-study
    """
    s = _find(project, study_id)
    typer.echo(f"study {s.id}: {_describe(s)}")
    metric = s.study.metric
    for n, st in enumerate(s.stages, 1):
        typer.echo("")
        carried = f"; on {_values(st.carried)}" if st.carried else ""
        typer.echo(f"stage {n} {st.name}: {st.state}, {st.finished}/{st.planned} runs finished{carried}")
        if st.state == "waiting":
            typer.echo("  waits until every run of the earlier stages is finished")
            continue
        fracs = [r.fraction for r in st.configs[0].runs] if st.configs else []
        fhead = [f"f={fmt_value(f)}" if f is not None else metric for f in fracs]
        halving = bool(st.rungs)
        head = ["", *st.varied, *fhead, "mean", "spread"] + (["epochs", "halving"] if halving else [])
        rows = []
        for c in st.configs:
            mark = "*" if st.winner == c.values else ""
            cells = []
            for r in c.runs:
                cells.append(_num(r.value) if r.value is not None else r.state if r.state != "done" else "no metric")
            extra = []
            if halving:
                done = max(int((r.summary or {}).get("epochs_done") or 0) for r in c.runs)
                extra = [f"{done}/{c.budget or '-'}", f"pruned @{c.pruned_at}" if c.pruned_at else ""]
            rows.append([mark, *[fmt_value(c.values[k]) for k in st.varied], *cells, _num(c.score), _num(c.spread), *extra])
        for line in _table(head, rows, right=set(range(1 + len(st.varied), len(head)))):
            typer.echo("  " + line)
        for line in stage_notes(st):
            typer.echo("  " + line)
        if st.state == "done":
            typer.echo(f"  winner: {_values(st.winner or {})} ({st.how}: {st.why})")
        elif st.winner:
            typer.echo(f"  leading: {_values(st.winner)} ({st.why})")
    typer.echo("")
    typer.echo(("final configuration: " if s.done else "configuration so far: ") + _values(s.final()))


class ReportFormat(str, Enum):
    md = "md"
    csv = "csv"


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
        for fig in (figures or {}).get(st.name, []):
            out += [f"![{st.name}: {Path(fig).stem.split('-')[-1]}]({fig})", ""]
        if st.state == "done":
            out += [f"Winner: **{_values(st.winner or {})}** ({st.how}: {st.why}).", ""]
        elif st.winner:
            out += [f"Leading so far: {_values(st.winner)} ({st.why}).", ""]
    out += ["## Final configuration" if s.done else "## Configuration so far (not every stage is done)", "", "```toml"]
    out += [f"{k} = {_toml(v)}" for k, v in s.final().items()] or ["# the study base is [defaults]"]
    out += ["```", ""]
    return "\n".join(out)


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, float):
        return repr(v)
    return str(v)


CSV_METRICS = ("best_val_dice", "best_epoch", "final_train_loss", "final_train_dice", "final_val_loss",
               "final_val_dice", "final_val_iou", "epochs_done", "seconds")


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


@app.command()
def report(
    study_id: Optional[str] = typer.Argument(None, metavar="STUDY", help="The study's id (default: the only study)."),
    output: Optional[Path] = typer.Argument(None, metavar="OUTPUT", help="File to write; stdout when left out.", dir_okay=False),
    project: Path = ProjectOpt,
    fmt: ReportFormat = typer.Option(ReportFormat.md, "--format", "-f", help="md (one table per stage, group averages, winners, final configuration) or csv (one row per run)."),
    figures_dir: Optional[Path] = typer.Option(None, "--figures", help="Folder for the PNG figures (md only; default: OUTPUT's name + -figures beside it, or reports/STUDY/ in the project).", file_okay=False),
    no_figures: bool = typer.Option(False, "--no-figures", help="Write no PNG figures."),
) -> None:
    """Write a staged study's report: per stage a Markdown table of its runs (configuration, final train loss, train Dice, val loss, val Dice, score), the mean val loss and val Dice per value of each varied key, the winner and why; then the final configuration (the study base plus every winner). With md, PNG figures per stage too (train/val loss curves, a bar chart of the score per configuration with the winner highlighted, the validation predictions of each configuration), linked from the report.

    Example: unettui report opt study-opt.md -p my-study   (or --format csv for one row per run)
    """
    if study_id and output is None and (study_id.endswith((".md", ".csv")) or "/" in study_id):
        if study_id not in {x.id for x in _studies(project)[1]}:  # `unettui report out.md`: the only study, to a file
            study_id, output = None, Path(study_id)
    s = _find(project, study_id)
    if fmt == ReportFormat.csv:
        write_output(output, report_csv(s), f"wrote the report of study '{s.id}' to {output}")
        return
    figures: dict[str, list[str]] = {}
    if not no_figures:
        import os

        from ..core.runs.store import RunStore
        from ..core.show.study_figures import write_study_figures

        folder = figures_dir or ((output.parent / f"{output.stem}-figures") if output else project / "reports" / s.id)
        base = (output.parent if output else project).resolve()
        try:
            written = write_study_figures(s, RunStore(project), folder)
        except OSError as exc:
            fail(f"cannot write the figures to {folder}: {exc.strerror or exc}; pass --figures DIR or --no-figures")
        figures = {k: [os.path.relpath(Path(p).resolve(), base) for p in v] for k, v in written.items()}
        n = sum(len(v) for v in written.values())
        if n:
            typer.echo(f"wrote {n} figure{'s' if n != 1 else ''} (loss curves, scores, predictions per stage) to {folder}", err=True)
    write_output(output, report_markdown(s, figures), f"wrote the report of study '{s.id}' to {output}")
