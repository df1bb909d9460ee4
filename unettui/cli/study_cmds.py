"""Staged studies: `unettui study ls`, `unettui study show ID`, `unettui report STUDY` (no torch, no textual)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

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
    study_id: str | None = typer.Option(None, "--id", help="The study's id, also its experiments' id prefix (default: the template's name)."),
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
        first = st.configs[0].runs if st.configs else []
        repeats = any(c.n > 1 for c in st.configs)
        several = any(r.repeat > 1 for c in st.configs for r in c.runs)
        folded = any(r.fold for c in st.configs for r in c.runs)

        def column(r, several: bool = several) -> str:  # a run's column: its train fraction, repeat and fold
            bits = [f"f={fmt_value(r.fraction)}"] if r.fraction is not None else []
            bits += [f"r{r.repeat}"] if several else []
            bits += [f"fold {r.fold}"] if r.fold else []
            return " ".join(bits) or metric

        fhead = [column(r) for r in first]
        halving = bool(st.rungs)
        head = ["", *st.varied, *fhead, "mean", *(["± sd", "n"] if repeats else []), "spread"] + (
            ["paired Δ to the best ± SE"] if folded else []) + (["epochs", "halving"] if halving else [])
        rows = []
        # with folds: the best mean (choose's, which every other configuration's paired difference is to)
        best = next((c for c in st.configs if c.score is not None and c.paired is None and not c.pruned_at),
                    None) if any(c.paired for c in st.configs) else None
        for c in st.configs:
            mark = "*" if st.winner == c.values else ""
            cells = []
            for r in c.runs:
                cells.append(_num(r.value) if r.value is not None else r.state if r.state != "done" else "no metric")
            extra = []
            if halving:
                done = max(int((r.summary or {}).get("epochs_done") or 0) for r in c.runs)
                extra = [f"{done}/{c.budget or '-'}", f"pruned @{c.pruned_at}" if c.pruned_at else ""]
            noise = [_num(c.sd), str(c.n)] if repeats else []
            pair = ([f"{c.paired[0]:+.4f} ± {_num(c.paired[1])}" if c.paired else "best" if c is best else
                     "pruned" if c.pruned_at else "-"] if folded else [])
            rows.append([mark, *[fmt_value(c.values[k]) for k in st.varied], *cells, _num(c.score), *noise, _num(c.spread),
                         *pair, *extra])
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
    from ..core.show.study_text import final_scores_text

    for line in final_scores_text(s):
        typer.echo("  " + line)


class ReportFormat(str, Enum):
    md = "md"
    csv = "csv"


class VectorFormat(str, Enum):
    svg = "svg"
    pdf = "pdf"
    none = "none"


@app.command()
def report(
    study_id: str | None = typer.Argument(None, metavar="STUDY", help="The study's id (default: the only study)."),
    output: Path | None = typer.Argument(None, metavar="OUTPUT", help="File to write; stdout when left out.", dir_okay=False),
    project: Path = ProjectOpt,
    fmt: ReportFormat = typer.Option(ReportFormat.md, "--format", "-f", help="md (one table per stage, group averages, winners, final configuration) or csv (one row per run)."),
    figures_dir: Path | None = typer.Option(None, "--figures", help="Folder for the figures (md only; default: OUTPUT's name + -figures beside it, or reports/STUDY/ in the project).", file_okay=False),
    vector: VectorFormat = typer.Option(VectorFormat.svg, "--vector", help="The vector copy of each figure, beside its PNG: svg, pdf, or none (PNG only)."),
    no_figures: bool = typer.Option(False, "--no-figures", help="Write no figures."),
) -> None:
    """Write a staged study's report: per stage a Markdown table of its runs (configuration, final train loss, train Dice, val loss, val Dice, score), the mean val loss and val Dice per value of each varied key, the winner and why; then the final configuration (the study base plus every winner). With md, figures drawn with matplotlib too, each as PNG plus SVG (or PDF with --vector pdf), linked from the report: per stage the train/val loss curves, the score per configuration with the winner outlined, the validation predictions of each configuration; and an overview of the metric of every setting, stage by stage.

    Example: unettui report opt study-opt.md -p my-study --vector pdf   (or --format csv for one row per run)
    """
    if study_id and output is None and (study_id.endswith((".md", ".csv")) or "/" in study_id):
        if study_id not in {x.id for x in _studies(project)[1]}:  # `unettui report out.md`: the only study, to a file
            study_id, output = None, Path(study_id)
    from ..core.show.report import report_csv, report_markdown

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
            written = write_study_figures(s, RunStore(project), folder, None if vector == VectorFormat.none else vector.value)
        except ImportError as exc:
            fail(f"the figures need matplotlib ({exc}); `pip install matplotlib`, or pass --no-figures")
        except OSError as exc:
            fail(f"cannot write the figures to {folder}: {exc.strerror or exc}; pass --figures DIR or --no-figures")
        figures = {k: [os.path.relpath(Path(p).resolve(), base) for p in v] for k, v in written.items()}
        n = sum(1 for v in written.values() for p in v if p.suffix == ".png")
        if n:
            also = "" if vector == VectorFormat.none else f", each as PNG and {vector.value.upper()}"
            typer.echo(f"wrote {n} figure{'s' if n != 1 else ''} (per stage: loss curves, scores, predictions; "
                       f"the study's overview){also} to {folder}", err=True)
    write_output(output, report_markdown(s, figures), f"wrote the report of study '{s.id}' to {output}")
