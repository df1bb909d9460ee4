"""What every command shares: the Typer app, the --project option, one-line errors, loading the queue."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    name="unettui",
    help="A terminal lab for UNet segmentation hyper-parameter studies.\n\n"
    "Define experiments in experiments.toml, train them with `unettui run --headless`, "
    "then read `unettui results` or `unettui export results.csv`.",
    no_args_is_help=True,
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
    from ..core.config import ConfigError
    from ..core.queue import QueueError, load_queue

    try:
        return load_queue(project)
    except (QueueError, ConfigError) as exc:
        if required:
            fail(str(exc))
        return None
