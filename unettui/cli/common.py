"""What every command shares: the Typer app, the --project option, one-line errors, loading the queue."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ..core.show.fmt import duration  # noqa: F401  (the CLI's commands import it from here)

if TYPE_CHECKING:  # pragma: no cover
    from ..core.runs.options import RunnerOptions

app = typer.Typer(
    name="unettui",
    help="A terminal lab for UNet segmentation hyper-parameter studies.\n\n"
    "`unettui` alone opens the TUI on the project folder (queue, runner, live curves, results, mask previews). "
    "Define experiments in experiments.toml, train them with `unettui run` (TUI) or `unettui run --headless`, "
    "then read `unettui results` or `unettui export results.csv`.",
    invoke_without_command=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)

ProjectOpt = typer.Option(Path("."), "--project", "-p", help="Project folder holding experiments.toml and runs/.",
                          file_okay=False)


def fail(message: str, code: int = 2) -> None:
    """Print a one-line error to stderr and exit (no traceback)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def load_queue_or_fail(project: Path, required: bool = True):
    from ..core.define.config import ConfigError
    from ..core.define.queue import QueueError
    from ..core.plan import load_queue

    try:
        return load_queue(project)
    except (QueueError, ConfigError) as exc:
        if required:
            fail(str(exc))
        return None


def open_tui(project: Path, start_runner: bool = False, options: RunnerOptions | None = None) -> None:
    """Open the TUI on ``project`` (textual is imported only here); the runner it starts runs with ``options`` (None:
    the defaults, with --pack from UNETTUI_PACK as `unettui run` takes it)."""
    from ..core.runs.options import OptionsError, RunnerOptions

    if options is None:
        import os

        try:
            options = RunnerOptions.from_cli({"pack": os.environ.get("UNETTUI_PACK")})
        except OptionsError as exc:
            fail(f"UNETTUI_PACK: {exc}")
    load_queue_or_fail(project)
    from ..tui.app import make_app

    app_ = make_app(project, start_runner=start_runner, runner_options=options)
    app_.run()
    if app_.return_code:
        raise typer.Exit(app_.return_code)


@app.callback()
def _root(ctx: typer.Context, project: Path = ProjectOpt) -> None:
    """Without a command: open the TUI on the project folder."""
    if ctx.invoked_subcommand is None:
        open_tui(project)


def write_output(path: Path | None, text: str, done: str) -> None:
    """Write ``text`` to stdout, or atomically to ``path`` and say ``done`` on stderr; one-line error if it can't."""
    import sys

    if path is None:
        sys.stdout.write(text)
        return
    from ..core.runs.store import atomic_write_text

    try:
        atomic_write_text(path, text)
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}")
    typer.echo(done, err=True)


# ---- what the commands that look at the queue and runs share -----------------------------------------


def make_console(colour: bool | None = None):
    from rich.console import Console

    if colour is False:
        return Console(highlight=False, no_color=True, color_system=None)
    return Console(highlight=False)


def queue_and_store(project: Path):
    """The queue (None when there is no usable queue file but runs/ exists) and the run store."""
    from ..core.runs.store import RunStore

    queue = load_queue_or_fail(project, required=False)
    if queue is None and not (project / "runs").is_dir():
        load_queue_or_fail(project)  # says why and exits 2
    return queue, RunStore(project)


def known_ids(queue, store) -> list[str]:
    ids = [e.id for e in queue.experiments] if queue else []
    return ids + [r.id for r in store.runs() if r.id not in set(ids)]


def resolve(exp_id: str, queue, store):
    """(experiment or None, run) for ``exp_id``; an id that is neither in the queue nor in runs/ fails with the nearest ids."""
    exp = queue.get(exp_id) if queue else None
    run = store.run(exp_id)
    if exp is None and not run.exists():
        from ..core.define.names import nearest_ids

        ids = known_ids(queue, store)
        hint = nearest_ids(exp_id, ids) if ids else "the queue is empty"
        if not hint.startswith("did you mean") and ids:
            hint = "`unettui ls` lists the experiments"
        fail(f"unknown experiment '{exp_id}'; {hint}")
    return exp, run


def one_line(text: Any, limit: int | None = None) -> str:
    s = " ".join(str(text).split())
    if limit and len(s) > limit:
        s = s[: limit - 1] + "…"
    return s


def fmt_number(v: Any, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (int, float)):
        f = float(v)
        if math.isnan(f):
            return "nan"
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return f"{f:.{digits}f}"
    return str(v)


def fmt_lr(v: Any) -> str:
    return f"{float(v):.3g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"


def best_of(metrics: list[dict[str, Any]], summary: dict[str, Any] | None) -> tuple[float | None, int | None]:
    """Best val Dice and its epoch: from summary.json, else from the epochs recorded so far."""
    if summary and isinstance(summary.get("best_val_dice"), (int, float)):
        return float(summary["best_val_dice"]), summary.get("best_epoch")
    best = None
    for rec in metrics:
        v = rec.get("val_dice")
        if isinstance(v, (int, float)) and math.isfinite(v) and (best is None or v > best[0]):
            best = (float(v), rec.get("epoch"))
    return best if best else (None, None)


def as_dict(obj: Any) -> dict[str, Any]:
    """A JSON file's content when it is an object, else {} (missing, torn, or not an object)."""
    return obj if isinstance(obj, dict) else {}


