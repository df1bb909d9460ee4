"""`unettui logs ID [--follow] [--attempt N]`: a run's log, followed until the run ends."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import typer

from .common import ProjectOpt, app, fail, queue_and_store, resolve

POLL_SECONDS = 0.5  # `logs --follow` polling interval




@app.command()
def logs(
    exp_id: str = typer.Argument(..., metavar="ID", help="Experiment id (see `unettui ls`)."),
    project: Path = ProjectOpt,
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines until the run stops running (Ctrl-C to leave)."),
    attempt: int | None = typer.Option(None, "--attempt", "-a", min=1, help="Print the log of earlier attempt N (runs/ID/attempts/N/run.log)."),
    slurm: bool = typer.Option(False, "--slurm", help="Print the stdout and stderr files of the SLURM tasks that trained it (every attempt) instead."),
) -> None:
    """Print a run's log (runs/ID/run.log): claims, epochs, the end state, and the traceback of a failure.

    With --follow, new lines are printed as they are written until the run is no longer running; Ctrl-C leaves at once. Logs of earlier attempts (kept by `unettui retry`) are printed with --attempt N. For a run trained by SLURM tasks (`unettui run --backend slurm`), their stdout/stderr files are named on stderr, and printed with --slurm.

    Example: unettui logs opt-at-1e-4-adam --follow
    """
    from ..core.runs.store import LOG

    queue, store = queue_and_store(project)
    exp, run = resolve(exp_id, queue, store)
    if slurm:
        _slurm_files(project, exp_id, run, print_them=True)
        return
    older = run.attempts()
    if attempt is not None:
        match = [p for p in older if int(p.name) == attempt]
        if not match:
            have = ", ".join(p.name for p in older) or "none"
            fail(f"'{exp_id}' has no attempt {attempt} (earlier attempts: {have})")
        path = match[0] / LOG
        if not path.exists():
            typer.echo(f"attempt {attempt} of '{exp_id}' has no log", err=True)
            return
        _quiet_pipe(_copy, path, 0)
        return

    path = run.file(LOG)
    _slurm_files(project, exp_id, run, print_them=False)
    if older:
        typer.echo(f"({len(older)} earlier attempt{'s' if len(older) > 1 else ''}: "
                   f"unettui logs {exp_id} --attempt N, N in {', '.join(p.name for p in older)})", err=True)
    if not path.exists() and not (follow and _running(run)):
        if exp is not None and not exp.valid:
            why = "invalid definition; see `unettui check`"
        elif not run.exists() or not run.status():
            why = "not run yet"
        else:
            why = f"state {run.state()}"
        typer.echo(f"no log yet for '{exp_id}' ({why})", err=True)
        return
    offset = _quiet_pipe(_copy, path, 0) if path.exists() else 0
    if not follow or not _running(run):  # a finished run has nothing more to say
        return
    try:
        _quiet_pipe(_follow, run, path, offset)
    except KeyboardInterrupt:
        pass


def _slurm_files(project: Path, exp_id: str, run, print_them: bool) -> None:
    """The stdout/stderr files of the SLURM tasks that trained ``run`` (current and earlier attempts): named on
    stderr, or printed (--slurm)."""
    from ..core.runs.slurm_state import backends_of_run

    found = [(which, b) for which, b in backends_of_run(run.path) if b.get("log") or b.get("err")]
    if not found:
        if print_them:
            fail(f"'{exp_id}' was not trained by a SLURM task (no backend in runs/{exp_id}/status.json)", code=1)
        return
    for which, b in found:
        files = [(kind, _under(project, b.get(key))) for kind, key in (("stdout", "log"), ("stderr", "err"))
                 if b.get(key)]
        if not print_them:
            typer.echo(f"(slurm task {b.get('job')} [{which}]: " + ", ".join(f"{k} {p}" for k, p in files)
                       + f"; unettui logs {exp_id} --slurm prints them)", err=True)
            continue
        for kind, p in files:
            typer.echo(f"==> slurm task {b.get('job')} [{which}] {kind}: {p} <==")
            if p.exists():
                _quiet_pipe(_copy, p, 0)
                _flush_tail(p, _complete(p))  # a last line without its newline too
            else:
                typer.echo("(not there: the task has not started, or the file was removed)")


def _under(project: Path, path: str | None) -> Path:
    p = Path(path or "")
    return p if p.is_absolute() else Path(project) / p


def _complete(path: Path) -> int:
    try:
        data = path.read_bytes()
    except OSError:
        return 0
    return data.rfind(b"\n") + 1


def _quiet_pipe(fn, *args):
    """Run ``fn``; a reader that went away (``unettui logs ID | head``) ends the command quietly."""
    try:
        return fn(*args)
    except BrokenPipeError:
        try:  # no "Exception ignored ... BrokenPipeError" when Python flushes stdout at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        raise typer.Exit(0) from None


def _copy(path: Path, offset: int) -> int:
    """Print ``path`` from ``offset`` up to its last complete line; returns the new offset."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except OSError:
        return offset
    end = data.rfind(b"\n") + 1
    if end:
        sys.stdout.write(data[:end].decode("utf-8", errors="replace"))
        sys.stdout.flush()
    return offset + end


def _running(run) -> bool:
    from ..core.runs.status import State, judge_run

    return judge_run(run, None).state is State.RUNNING


def _follow(run, path: Path, offset: int) -> None:
    """Poll the log until the run is no longer running (then one more poll for the final lines)."""
    stopping = False
    while True:
        time.sleep(POLL_SECONDS)
        try:
            size = path.stat().st_size
        except OSError:
            size = None
        if size is not None:
            if size < offset:  # replaced: a new attempt started a fresh log
                typer.echo("--- the log was restarted (new attempt) ---")
                offset = 0
            offset = _copy(path, offset)
        if not _running(run):
            if stopping:
                if size is not None:
                    _flush_tail(path, offset)
                return
            stopping = True
        else:
            stopping = False


def _flush_tail(path: Path, offset: int) -> None:
    """A last line without a newline (the writer is gone) is still printed."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            rest = fh.read()
    except OSError:
        return
    if rest:
        typer.echo(rest.decode("utf-8", errors="replace"))
