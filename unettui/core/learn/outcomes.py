"""What a training loop reports and how it ends: the callbacks it fires (Events), what a step leaves (Step), how a
run ended (Result) and the exceptions that end it."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

__all__ = ["CheckpointError", "Diverged", "Events", "NotTrainable", "Result", "Step", "Stopped", "diverged_message"]


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


class Stopped(Exception):
    """should_stop() asked the loop to end; the last finished epoch's checkpoint is intact."""


class NotTrainable(ValueError):
    """The configuration cannot train here (found before any data is loaded): one line, key first."""


class CheckpointError(RuntimeError):
    """A run's checkpoint exists but cannot be read."""


@dataclass
class Events:
    """Callbacks the loop fires; a UI or the runner turns them into output. All optional."""

    on_start: Callable[[dict[str, Any]], None] | None = None
    on_batch: Callable[[int, int, int], None] | None = None  # epoch, step (1-based), steps
    on_epoch: Callable[[dict[str, Any]], None] | None = None
    should_stop: Callable[[], bool] | None = None
    # held around every write to the run folder: the runner's fence, which raises when its claim was taken over
    guard: Callable[[], AbstractContextManager[Any]] | None = None
    # a pack's member left its pack (done, failed, interrupted, or an error: Result.exc); a solo fit returns instead
    on_end: Callable[[Result], None] | None = None
    # a line for the run's log (a pack's member: its pack was built again without the members that left)
    on_note: Callable[[str], None] | None = None


class Step(NamedTuple):
    """What one :meth:`Trainer.step` leaves for the caller's accumulators: detached tensors on the device."""

    loss: torch.Tensor  # the batch's mean loss (a 0-d tensor)
    logits: torch.Tensor  # the model's output for the batch
    masks: torch.Tensor  # the batch's masks, augmented as its images were


@dataclass
class Result:
    state: str  # done / interrupted / failed (a pack's member: also "raised", with the exception in exc, and
    # "split": its pack ran out of memory, it is to train again in a smaller pack from its last checkpoint)
    summary: dict[str, Any]
    error: str | None = None
    exc: BaseException | None = None


def diverged_message(train_loss: float, epoch: int, lr: float) -> str:
    """The reason a run failed when its training loss stopped being finite in ``epoch`` (1-based)."""
    return f"training diverged: train loss is {train_loss} in epoch {epoch} (lr {lr:g}); try a lower lr or another optimizer"
