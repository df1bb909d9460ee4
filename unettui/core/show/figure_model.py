"""What a study's figures show, as data: one configuration's style, runs and scores (ConfigFigure) and a stage's
configurations (StageFigure). core.show.study_figures gathers them from a study's status and its runs, and
core.show.figures draws them; both import them from here (neither imports the other's module for them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..define.names import safe_id

__all__ = ["ConfigFigure", "StageFigure", "Style"]


@dataclass(frozen=True)
class Style:
    """How one configuration is drawn in every figure: its colour, and its line style and marker in the curves."""

    colour: str
    linestyle: Any = "-"
    marker: str = "o"


@dataclass
class ConfigFigure:
    """One configuration of a stage as its figures show it."""

    label: str
    values: dict[str, Any]
    style: Style
    histories: list[list[dict[str, Any]]] = field(default_factory=list)  # metrics of its pictured runs (repeats)
    score: float | None = None  # the stage's score (mean over train fractions)
    sd: float | None = None  # the seed-to-seed standard deviation of the score (the study's; None without repeats)
    n: int = 1  # runs behind each point (repeats)
    points: list[tuple[float | None, float | None, float | None, int]] = field(default_factory=list)  # (fraction, mean, sd, n)
    winner: bool = False
    pruned_at: int | None = None
    preview: Path | None = None
    states: list[str] = field(default_factory=list)

    @property
    def gid(self) -> str:
        """An id for the configuration's shapes in SVG output (the label made XML-safe)."""
        return "cfg-" + safe_id(self.label.replace("=", "-").replace(", ", "-"))

    @property
    def legend_label(self) -> str:
        extra = [f"pruned @{self.pruned_at}"] if self.pruned_at else []
        if len(self.histories) > 1:
            extra.append(f"mean of {len(self.histories)}, band min to max")
        return self.label + (f" ({', '.join(extra)})" if extra else "")


@dataclass
class StageFigure:
    """A started stage: its configurations in grid order with their styles."""

    number: int
    name: str
    varied: list[str]
    metric: str
    fractions: list[float | None]
    configs: list[ConfigFigure]
    done: bool = False

    @property
    def title(self) -> str:
        return f"Stage {self.number}, {self.name}"

    @property
    def stem(self) -> str:
        return f"stage{self.number}-{self.name}"

    @property
    def dims(self) -> list[str]:
        """The stage's axes: its varied keys, then train_fraction when it has several."""
        return list(self.varied) + (["train_fraction"] if len(self.fractions) > 1 else [])
