"""One trainable experiment: its id, where experiments.toml defines it, its resolved config or why it is invalid."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .config import REPEAT_SEED_STRIDE, Config, ConfigError
from .names import MAX_ID


@dataclass
class Experiment:
    """An experiment of the queue (from an [[experiment]], a [[sweep]]'s grid or a [[study]]'s stage)."""

    id: str
    origin: str  # e.g. "[[sweep]] 'opt' (item 3 of 6)"
    overrides: dict[str, Any] = field(default_factory=dict)  # keys set by this entry (on top of [defaults])
    config: Config | None = None
    error: ConfigError | None = None
    budget: int | None = None  # train only to this epoch for now (a study stage's successive-halving rung)
    configuration: str = ""  # the id its repeats share (its own id when it is not a repeat)
    repeat: int = 1  # 1..repeats: repeats of one configuration differ only in their seed
    repeats: int = 1
    fold: int = 0  # 1..folds: the validation fold of one run of a cross-validated configuration (0: no folds)

    def __post_init__(self) -> None:
        self.configuration = self.configuration or self.id

    @property
    def target_epochs(self) -> int:
        """The epoch this experiment is to be trained to now: its budget, or the config's epochs."""
        assert self.config is not None
        return self.config.epochs if self.budget is None else min(self.budget, self.config.epochs)

    @property
    def valid(self) -> bool:
        return self.error is None


def repeat_id(base: str, k: int) -> str:
    """The id of repeat ``k`` of configuration ``base``: ``base`` itself for the first (so adding repeats to an
    experiment keeps its run), ``base-r2``, ``base-r3``, ... after (shortened to fit the id limit)."""
    if k == 1:
        return base
    suffix = f"-r{k}"
    return base[: MAX_ID - len(suffix)].rstrip("-.") + suffix


def fold_id(base: str, i: int) -> str:
    """The id of the run of configuration (or repeat) ``base`` that validates on fold ``i``: ``base-f1``, ``base-f2``,
    ... (shortened to fit the id limit); with repeats ``base-r2-f1``."""
    suffix = f"-f{i}"
    return base[: MAX_ID - len(suffix)].rstrip("-.") + suffix


def folds_of(experiments: Iterable[Experiment], configuration: str) -> dict[int, list[Experiment]]:
    """The fold experiments of a cross-validated ``configuration`` by repeat (1, 2, ...), each repeat's fold 1 first;
    {} when it has none."""
    out: dict[int, list[Experiment]] = {}
    for e in sorted((e for e in experiments if e.configuration == configuration and e.fold),
                    key=lambda e: (e.repeat, e.fold)):
        out.setdefault(e.repeat, []).append(e)
    return out


def with_folds(exp: Experiment) -> list[Experiment]:
    """``exp`` as its ``config.folds`` runs (none: itself), fold i validating on fold i and training on the others
    (core.learn.data.split_folds); they share the configuration (and repeat) of ``exp``. A run whose ``fold`` is set
    already (one fold asked for) stays one."""
    cfg = exp.config
    if cfg is None or cfg.folds < 2 or cfg.fold:
        return [exp]
    return [Experiment(id=fold_id(exp.id, i), origin=f"{exp.origin} (fold {i} of {cfg.folds})",
                       overrides=dict(exp.overrides), config=cfg.replace(fold=i), budget=exp.budget,
                       configuration=exp.configuration, repeat=exp.repeat, repeats=exp.repeats, fold=i)
            for i in range(1, cfg.folds + 1)]


def with_repeats(exp: Experiment) -> list[Experiment]:
    """``exp`` and its repeats: ``config.repeats`` experiments that differ only in their seed (seed, seed + 1000,
    seed + 2000, ...: initialisation, shuffling, augmentation and dropout change; the data split, seeded by
    data_seed, does not), each as its folds when ``config.folds`` is set (``with_folds``: ids ``<id>-f1``,
    ``<id>-r2-f1``; every fold and repeat shares the configuration). An invalid experiment stays one."""
    if exp.config is None or exp.config.repeats <= 1:
        if exp.config is not None:
            exp.repeats = exp.config.repeats
        return with_folds(exp)
    n, out = exp.config.repeats, []
    for k in range(1, n + 1):
        cfg = exp.config.replace(seed=exp.config.seed + (k - 1) * REPEAT_SEED_STRIDE)
        origin = exp.origin if n == 1 else f"{exp.origin} (repeat {k} of {n})"
        out += with_folds(Experiment(id=repeat_id(exp.id, k), origin=origin, overrides=dict(exp.overrides),
                                     config=cfg, budget=exp.budget, configuration=exp.id, repeat=k, repeats=n))
    return out
