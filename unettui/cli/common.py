"""What every command shares: the Typer app, the --project option, one-line errors, loading the queue."""

from __future__ import annotations

from pathlib import Path

import typer

from ..core.show.fmt import duration  # noqa: F401  (the CLI's commands import it from here)

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
    from ..core.define.queue import QueueError, load_queue

    try:
        return load_queue(project)
    except (QueueError, ConfigError) as exc:
        if required:
            fail(str(exc))
        return None


def open_tui(project: Path, start_runner: bool = False, workers: int = 1) -> None:
    """Open the TUI on ``project`` (textual is imported only here)."""
    load_queue_or_fail(project)
    from ..tui.app import make_app

    app_ = make_app(project, start_runner=start_runner, workers=workers)
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
