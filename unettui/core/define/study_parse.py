"""[[study]] tables of experiments.toml as a Study: its base, metric, train fractions and stages (grids, pins,
successive halving, learning-rate search), every problem reported with file, entry and key."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

from .config import KEYS, ConfigError, coerce, flatten
from .names import did_you_mean, safe_id
from .task import SUMMARY_KEYS, key_of

STUDY_KEYS = ("id", "metric", "direction", "stage")
STAGE_KEYS = ("name", "pin", "halving", "lr_search")
# what a study may choose by: the summary's metrics at the best or the last epoch (core.define.task's registry; never
# the test split's, which nothing chooses by)
# and, for the metrics with per-class values, the worst class's (``best_val_dice_min``: a binary run's is its
# foreground's, the only class)
METRICS = tuple(name for k in SUMMARY_KEYS.values() if k.metric and k.at in ("best", "final")
                for name in ((k.name, f"{k.name}_min") if k.per_class else (k.name,)))
DIRECTIONS = ("max", "min")


@dataclass(frozen=True)
class Halving:
    """Successive halving: every configuration trains to ``min_epochs``, the best 1/``eta`` go on to
    ``min_epochs * eta`` epochs, and so on, until the survivors reach the run's full ``epochs``."""

    min_epochs: int
    eta: int = 3

    def rungs(self, epochs: int) -> list[int]:
        out, r = [], self.min_epochs
        while r < epochs:
            out.append(r)
            r *= self.eta
        return out + [epochs]


@dataclass(frozen=True)
class LrSearch:
    """The study's learning-rate method: one run per power of ten from ``lo`` to ``hi``, then a bisection
    over the integer multipliers 1..9 of the best power (at most ``steps`` more runs per configuration)."""

    lo_exp: int
    hi_exp: int
    steps: int = 3

    def decades(self) -> list[float]:
        return [float(f"1e{e}") for e in range(self.lo_exp, self.hi_exp + 1)]


@dataclass
class Stage:
    name: str
    grid: dict[str, list[Any]]  # varied keys -> values (coerced), in file order
    shared: dict[str, Any] = field(default_factory=dict)  # the stage's scalar keys
    pin: dict[str, Any] | None = None
    halving: Halving | None = None
    lr_search: LrSearch | None = None
    fractions: list[float] | None = None  # this stage's train_fraction list (instead of the study's)

    @property
    def kind(self) -> str:
        return "lr-search" if self.lr_search else "halving" if self.halving else "grid"

    def configurations(self) -> list[dict[str, Any]]:
        return [dict(zip(self.grid, combo)) for combo in itertools.product(*self.grid.values())]


@dataclass
class Study:
    id: str
    metric: str
    direction: str
    fractions: list[float] | None  # None: one run per configuration
    base: dict[str, Any]  # flat scalar keys on top of [defaults]
    stages: list[Stage]
    origin: str = ""  # "[[study]] 'opt' (line 12)"


def show_value(v: Any) -> str:
    """A grid value as stage labels write it: ``0.001``, ``true``, ``adam``."""
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _check_key(key: str, extra: tuple[str, ...], where: str) -> ConfigError | None:
    if key in KEYS:
        return None
    hint = did_you_mean(key, list(KEYS) + list(extra)).strip()
    return ConfigError(where, key, f"unknown key; {hint}" if hint else f"unknown key; valid: {', '.join(extra)} or a configuration key")


def _fraction_list(v: list, where: str) -> list[float]:
    """A train_fraction list: every configuration runs at each fraction, scored by the mean."""
    if not v:
        raise ConfigError(where, "train_fraction", "empty list: give at least one fraction, e.g. [0.4, 0.8]")
    out = [coerce("train_fraction", x, where) for x in v]
    if len(set(out)) != len(out):
        raise ConfigError(where, "train_fraction", f"repeats a fraction: {v}")
    return out


def parse_study(entry: Any, index: int, file: str, at: str = "") -> tuple[Study | None, list[ConfigError]]:
    """Validate one [[study]] table; returns (the study, []) or (None, every problem found)."""
    problems: list[ConfigError] = []
    origin = f"[[study]] #{index + 1}{at}"
    if not isinstance(entry, dict):
        return None, [ConfigError(f"{file} {origin}", None, "must be a table: [[study]]")]
    sid = _study_id(entry.get("id"), f"{file} {origin}", problems)
    if sid is not None:
        origin = f"[[study]] '{sid}'{at}"
    where = f"{file} {origin}"
    metric = entry.get("metric", "best_val_dice")
    if metric not in METRICS:
        problems.append(ConfigError(where, "metric", f"unknown metric {metric!r}; {did_you_mean(str(metric), METRICS)}"
                                                     f"valid (summary.json keys): {', '.join(METRICS)}"))
    known = key_of(str(metric))
    direction = entry.get("direction", (known.direction if known is not None else None) or "max")
    if direction not in DIRECTIONS:
        problems.append(ConfigError(where, "direction", f"must be max or min, got {direction!r}"))
    base, fractions = _study_base(entry, where, problems)
    stages = _stages(entry.get("stage"), where, problems)
    if problems or sid is None:
        return None, problems
    return Study(id=sid, metric=metric, direction=direction, fractions=fractions, base=base, stages=stages,
                 origin=origin), []


def _study_id(raw: Any, where: str, problems: list[ConfigError]) -> str | None:
    if raw is None:
        problems.append(ConfigError(where, "id", "required: a study needs an id, e.g. id = \"opt\" (its experiments' id prefix)"))
    elif not isinstance(raw, str) or not raw.strip():
        problems.append(ConfigError(where, "id", f"must be a non-empty string, got {raw!r}"))
    elif safe_id(raw) != raw:
        problems.append(ConfigError(where, "id", f"{raw!r} is not filesystem-safe; use letters, digits, '.', '_' and '-' "
                                                 f"(e.g. {safe_id(raw)!r})"))
    else:
        return raw
    return None


def _study_base(entry: dict, where: str, problems: list[ConfigError]) -> tuple[dict[str, Any], list[float] | None]:
    """The study's scalar keys (its base) and its train_fraction list."""
    base: dict[str, Any] = {}
    fractions: list[float] | None = None
    for k, v in flatten({k: v for k, v in entry.items() if k not in STUDY_KEYS}).items():
        err = _check_key(k, STUDY_KEYS, where)
        if err:
            problems.append(err)
            continue
        try:
            if isinstance(v, list):
                if k != "train_fraction":
                    raise ConfigError(where, k, "a list at study level; lists (grids) belong in a [[study.stage]]; "
                                                "only train_fraction may be a list here")
                fractions = _fraction_list(v, where)
            else:
                base[k] = coerce(k, v, where)
        except ConfigError as exc:
            problems.append(exc)
    return base, fractions


def _stages(raw_stages: Any, where: str, problems: list[ConfigError]) -> list[Stage]:
    if not isinstance(raw_stages, list) or not raw_stages:
        problems.append(ConfigError(where, "stage", "a study needs at least one [[study.stage]] with a grid, e.g. "
                                                    "lr = [1e-4, 1e-3]"))
        return []
    stages: list[Stage] = []
    names: set[str] = set()
    for j, raw in enumerate(raw_stages):
        stage = _stage(raw, f"{where} stage #{j + 1}", where, names, problems)
        if stage is not None:
            stages.append(stage)
    return stages


def _stage(raw: Any, swhere: str, where: str, names: set[str], problems: list[ConfigError]) -> Stage | None:
    """One [[study.stage]]; None when it has no usable name (its problems are still reported)."""
    if not isinstance(raw, dict):
        problems.append(ConfigError(swhere, None, "must be a table: [[study.stage]]"))
        return None
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(ConfigError(swhere, "name", f"required: a stage needs a name, e.g. name = \"lr\" (got {name!r})"))
        name = None
    elif safe_id(name) != name:
        problems.append(ConfigError(swhere, "name", f"{name!r} is not filesystem-safe; use letters, digits, '.', '_' "
                                                    f"and '-' (e.g. {safe_id(name)!r})"))
        name = None
    else:
        swhere = f"{where} stage '{name}'"
        if name in names:
            problems.append(ConfigError(swhere, "name", f"duplicate stage name '{name}'; stage names must be unique "
                                                        "within a study"))
        names.add(name)
    grid, shared, fractions = _stage_values(raw, swhere, problems)
    halving = _parse_halving(raw.get("halving"), swhere, problems)
    lr_search = _parse_lr_search(raw.get("lr_search"), swhere, problems)
    if "lr_search" in raw and ("lr" in grid or "lr" in shared):
        problems.append(ConfigError(swhere, "lr", "this stage searches the learning rate (lr_search): remove lr here"))
    if halving and lr_search:
        problems.append(ConfigError(swhere, "halving", "a learning-rate search stage cannot also use halving; "
                                                       "put halving on a grid stage"))
    if halving and "epochs" in grid:
        problems.append(ConfigError(swhere, "halving", "successive halving needs one epochs for the whole stage; "
                                                       "don't vary epochs here"))
    if "lr_search" not in raw and not any(isinstance(v, list) for k, v in flatten(
            {k: v for k, v in raw.items() if k not in STAGE_KEYS}).items() if k != "train_fraction"):
        problems.append(ConfigError(swhere, None, "a stage needs at least one key with a list of values, e.g. "
                                                  "lr = [1e-4, 1e-3], or an lr_search"))
    pin = _parse_pin(raw["pin"], grid, swhere, problems) if "pin" in raw else None
    if name is None:
        return None
    return Stage(name=name, grid=grid, shared=shared, pin=pin, halving=halving, lr_search=lr_search,
                 fractions=fractions)


def _stage_values(raw: dict, swhere: str, problems: list[ConfigError]
                  ) -> tuple[dict[str, list[Any]], dict[str, Any], list[float] | None]:
    """A stage's grid (its lists), its shared scalars and its own train_fraction list."""
    grid: dict[str, list[Any]] = {}
    shared: dict[str, Any] = {}
    fractions: list[float] | None = None
    for k, v in flatten({k: v for k, v in raw.items() if k not in STAGE_KEYS}).items():
        err = _check_key(k, STAGE_KEYS, swhere)
        if err:
            problems.append(err)
            continue
        try:
            if k == "train_fraction" and isinstance(v, list):
                # not a grid (the "best" fraction would always be the largest): this stage's fractions
                fractions = _fraction_list(v, swhere)
            elif isinstance(v, list):
                if not v:
                    raise ConfigError(swhere, k, "empty list: a stage needs at least one value per key")
                if k == "repeats":
                    raise ConfigError(swhere, k, "cannot be a grid: give one number, every configuration is trained "
                                                 "that many times")
                vals = [coerce(k, x, swhere) for x in v]
                if len(set(map(repr, vals))) != len(vals):
                    raise ConfigError(swhere, k, f"repeats a value: {v}")
                grid[k] = vals
            else:
                shared[k] = coerce(k, v, swhere)
        except ConfigError as exc:
            problems.append(exc)
    return grid, shared, fractions


def _parse_pin(raw_pin: Any, grid: dict[str, list[Any]], swhere: str, problems: list[ConfigError]) -> dict[str, Any] | None:
    if not isinstance(raw_pin, dict) or not raw_pin:
        problems.append(ConfigError(swhere, "pin", f"must be a table of varied keys, e.g. pin = {{ scheduler = "
                                                   f"\"plateau\" }}, got {raw_pin!r}"))
        return None
    pin = {}
    for k, v in flatten(raw_pin).items():
        if k not in grid:
            varied = ", ".join(grid) or "none"
            problems.append(ConfigError(swhere, f"pin.{k}", f"this stage does not vary {k!r}; "
                                                            f"{did_you_mean(k, list(grid))}varied keys: {varied}"))
            continue
        try:
            val = coerce(k, v, swhere)
        except ConfigError as exc:
            problems.append(ConfigError(swhere, f"pin.{k}", exc.message))
            continue
        if val not in grid[k]:
            problems.append(ConfigError(swhere, f"pin.{k}", f"{show_value(val)} is not in the stage's grid; valid: "
                                                            f"{', '.join(show_value(x) for x in grid[k])}"))
            continue
        pin[k] = val
    return pin


def _int_in(table: dict, key: str, default: int | None, low: int, where: str, what: str, problems: list) -> int | None:
    v = table.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        problems.append(ConfigError(where, what, f"{key} must be a whole number >= {low}, got {v!r}"))
        return None
    return v


def _parse_halving(raw: Any, where: str, problems: list[ConfigError]) -> Halving | None:
    if raw is None:
        return None
    example = "halving = { min_epochs = 4, eta = 3 }"
    if not isinstance(raw, dict):
        problems.append(ConfigError(where, "halving", f"must be a table, e.g. {example}; got {raw!r}"))
        return None
    for k in raw:
        if k not in ("min_epochs", "eta"):
            problems.append(ConfigError(where, f"halving.{k}", f"unknown key; {did_you_mean(k, ['min_epochs', 'eta'])}valid: min_epochs, eta"))
            return None
    if "min_epochs" not in raw:
        problems.append(ConfigError(where, "halving.min_epochs", f"required: the epochs of the first rung, e.g. {example}"))
        return None
    n = len(problems)
    lo = _int_in(raw, "min_epochs", None, 1, where, "halving.min_epochs", problems)
    eta = _int_in(raw, "eta", 3, 2, where, "halving.eta", problems)
    return Halving(lo, eta) if len(problems) == n else None  # type: ignore[arg-type]


def _parse_lr_search(raw: Any, where: str, problems: list[ConfigError]) -> LrSearch | None:
    if raw is None:
        return None
    example = "lr_search = { from = 1e-5, to = 1e-1, steps = 3 }"
    if not isinstance(raw, dict):
        problems.append(ConfigError(where, "lr_search", f"must be a table, e.g. {example}; got {raw!r}"))
        return None
    for k in raw:
        if k not in ("from", "to", "steps"):
            problems.append(ConfigError(where, f"lr_search.{k}", f"unknown key; {did_you_mean(k, ['from', 'to', 'steps'])}valid: from, to, steps"))
            return None
    exps = []
    for k, default in (("from", 1e-5), ("to", 1e-1)):
        v = raw.get(k, default)
        e = round(math.log10(v)) if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else None
        if e is None or not math.isclose(v, 10.0 ** e, rel_tol=1e-9):
            problems.append(ConfigError(where, f"lr_search.{k}", f"must be a power of ten such as 1e-5, got {v!r}"))
            return None
        exps.append(e)
    if exps[0] >= exps[1]:
        problems.append(ConfigError(where, "lr_search", f"from ({raw.get('from', 1e-5)!r}) must be below to ({raw.get('to', 1e-1)!r})"))
        return None
    steps = _int_in(raw, "steps", 3, 0, where, "lr_search.steps", problems)
    return None if steps is None else LrSearch(exps[0], exps[1], steps)
