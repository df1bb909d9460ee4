"""Headless runner output on a terminal: the plain lines (unettui/reporting.py) with a rich progress bar."""

from __future__ import annotations

from typing import Any

from ..core.define.experiment import Experiment
from ..reporting import PlainReporter


class RichReporter(PlainReporter):
    """The same lines, plus a live progress bar of the current run's epochs and batches."""

    def __init__(self):
        super().__init__()
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = Console()
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=self.console, transient=True,
        )
        self.tasks: dict[str, Any] = {}  # a bar per run in training (a pack trains several at once)

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def run_start(self, exp: Experiment, info: dict[str, Any]) -> None:
        super().run_start(exp, info)
        epochs = exp.target_epochs
        if not self.tasks:
            self.progress.start()
        done = info.get("resumed_epoch") or 0
        self.tasks[exp.id] = self.progress.add_task(exp.id, total=epochs, completed=done,
                                                    info=f"epoch {done + 1}/{epochs}")

    def batch(self, exp: Experiment, epoch: int, step: int, steps: int) -> None:
        task = self.tasks.get(exp.id)
        if task is not None:
            self.progress.update(task, completed=epoch - 1 + step / steps,
                                 info=f"epoch {epoch}/{exp.config.epochs} batch {step}/{steps}")

    def run_end(self, exp: Experiment, state: str, summary: dict[str, Any], error: str | None) -> None:
        task = self.tasks.pop(exp.id, None)
        if task is not None:
            self.progress.remove_task(task)
            if not self.tasks:
                self.progress.stop()
        super().run_end(exp, state, summary, error)
