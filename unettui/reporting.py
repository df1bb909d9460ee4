"""A runner's output as plain lines, for logs, pipes, `tail -f` and SLURM tasks' files (the CLI adds a rich progress
bar on a terminal: cli/progress.py)."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from .core.define.experiment import Experiment
from .core.define.queue import Queue
from .core.runs.status import TRAINABLE, Row, counts_text


def _num(v: Any) -> str:
    """4 decimals, "—" for none (a multi-class Dice when no class has a score)."""
    return "—" if v is None else f"{v:.4f}"


def epoch_line(exp_id: str, epochs: int, rec: dict[str, Any]) -> str:
    worst = f" (worst class {_num(rec['val_dice_min'])})" if "val_dice_min" in rec else ""
    return (
        f"  {exp_id} {rec['epoch']}/{epochs}  train loss {rec['train_loss']:.4f} dice {_num(rec['train_dice'])}"
        f" | val loss {rec['val_loss']:.4f} dice {_num(rec['val_dice'])}{worst} | lr {rec['lr']:.3g} | "
        f"{rec['seconds']:.1f}s"
    )


def end_line(exp: Experiment, state: str, summary: dict[str, Any], error: str | None) -> str:
    if state == "done":
        return (f"{exp.id}: done, best val_dice {_num(summary['best_val_dice'])} (epoch {summary['best_epoch']}), "
                f"final val_dice {_num(summary['final_val_dice'])}, {summary['seconds']:.1f}s"
                + (f", stopped early after epoch {summary['epochs_done']}" if summary.get("stopped_early") else "")
                + (f", rung at epoch {summary['epochs_done']} of {summary['epochs']}"
                   if not summary.get("stopped_early") and summary.get("epochs_done", 0) < summary.get("epochs", 0) else ""))
    if state == "interrupted":
        why = f" ({error})" if error else ""
        return f"{exp.id}: interrupted after epoch {summary.get('epochs_done', 0)}{why}; run again to resume"
    if state == "removed":
        return (f"{exp.id}: stopped after epoch {summary.get('epochs_done', 0)}: removed from experiments.toml "
                "(its run stays in runs/)")
    if state == "redefined":
        return (f"{exp.id}: stopped after epoch {summary.get('epochs_done', 0)}: its definition changed in "
                "experiments.toml; it trains again from scratch (this attempt is kept)")
    return f"{exp.id}: failed: {error}"


class PlainReporter:
    """One line per event: safe for log files, pipes and `tail -f`."""

    def __init__(self, out: TextIO | None = None):
        self.out = out or sys.stdout
        self.count = 0

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def plan(self, queue: Queue, rows: list[Row]) -> None:
        mine = [r for r in rows if r.in_queue]
        todo = sum(r.state in TRAINABLE for r in mine)
        self.say(f"queue {queue.path}: {len(mine)} experiment{'' if len(mine) == 1 else 's'}, {todo} to run "
                 f"({counts_text(mine) or 'none'})")

    def skip(self, exp: Experiment, reason: str) -> None:
        self.say(f"skipping {exp.id}: {reason}")

    def note(self, exp: Experiment | None, text: str) -> None:
        self.say(f"{exp.id}: {text}" if exp is not None else f"note: {text}")

    def run_start(self, exp: Experiment, info: dict[str, Any]) -> None:
        self.count += 1
        what = f"resumed at epoch {info['resumed_epoch']}" if info.get("resumed_epoch") else "started"
        note = " (validating on the training images)" if info["val_on_train"] else ""
        if exp.budget is not None and exp.target_epochs < exp.config.epochs:
            note += f" (to epoch {exp.target_epochs} of {exp.config.epochs}: a successive-halving rung)"
        if info.get("mode", "").startswith("patches"):
            note += f", {info['mode']} at the images' own resolution ({info.get('samples_per_epoch')} per epoch)"
        if info.get("pack_size"):
            note += f", in a pack of {info['pack_size']}"
        self.say(f"{exp.id}: {what} on {info['resolved_device']}, amp {info['amp_dtype']}, "
                 f"{info['n_train']} train / {info['n_val']} val" + (f" / {info['n_test']} test" if info.get("n_test") else "")
                 + f" images{note}")

    def batch(self, exp: Experiment, epoch: int, step: int, steps: int) -> None:
        pass

    def epoch(self, exp: Experiment, rec: dict[str, Any]) -> None:
        self.say(epoch_line(exp.id, exp.config.epochs, rec))

    def run_end(self, exp: Experiment, state: str, summary: dict[str, Any], error: str | None) -> None:
        self.say(end_line(exp, state, summary, error))
