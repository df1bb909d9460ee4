"""One trainable experiment: its id, where experiments.toml defines it, its resolved config or why it is invalid."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .config import Config, ConfigError


@dataclass
class Experiment:
    """An experiment of the queue (from an [[experiment]], a [[sweep]]'s grid or a [[study]]'s stage)."""

    id: str
    origin: str  # e.g. "[[sweep]] 'opt' (item 3 of 6)"
    overrides: dict[str, Any] = field(default_factory=dict)  # keys set by this entry (on top of [defaults])
    config: Config | None = None
    error: ConfigError | None = None
    budget: int | None = None  # train only to this epoch for now (a study stage's successive-halving rung)

    @property
    def target_epochs(self) -> int:
        """The epoch this experiment is to be trained to now: its budget, or the config's epochs."""
        assert self.config is not None
        return self.config.epochs if self.budget is None else min(self.budget, self.config.epochs)

    @property
    def valid(self) -> bool:
        return self.error is None
