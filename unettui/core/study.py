"""Staged studies ([[study]] in experiments.toml): tune one hyper-parameter family per stage, carry the winner on.

A study has a base (scalar keys on top of ``[defaults]``), optional ``train_fraction`` list (every
configuration runs at each fraction; its score is the mean over them) and ordered stages. Each stage
varies some keys (lists: a grid, in grid order) and may share scalars. Stage 1 always expands;
stage k+1 expands only once every run of stages 1..k is finished (done or failed). Its experiments
stand on the study base plus the winners of every earlier stage.

Experiment ids: ``<study>-<stage>-<slug of the varied values>[-b<hash>][-f<fraction>]``. Stages after
the first carry ``-b`` + 5 hex digits of a hash of the winners carried into them, so a different
carried winner (a new pin, a retried run that changes the ranking) gives new runs instead of wrongly
reusing runs trained on another base; the same winners give the same ids, and finished runs are reused.

Precedence of keys: [defaults] < study base < carried winners < the stage's scalars < the stage's grid
values < the study's train_fraction.

Winner of a finished stage: runs are grouped by configuration (the stage's varied values); a
configuration's score is the mean of ``metric`` over its fractions; a configuration with a failed run,
an invalid definition, or a run without the metric has no score and cannot win (unless no configuration
has a score: then the first in grid order is carried on, and said so). An experiment whose definition is
invalid (e.g. a grid value that fails a cross-key check) keeps its stage from finishing: fix it, and the
ids stay the same. Best by direction; exact ties
(within 1e-9) are broken by the smaller spread (max - min) over the fractions — the more consistent
setting — then by grid order. A ``pin`` chooses by hand: the winner is the best configuration among
those matching the pin (the pinned one when the pin names every varied key).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from typing import Any

from .config import KEYS, Config, ConfigError, _nearest, build_config, coerce, flatten
from .store import FINISHED

STUDY_KEYS = ("id", "metric", "direction", "stage")
STAGE_KEYS = ("name", "pin")
METRICS = ("best_val_dice", "best_val_loss", "final_train_loss", "final_train_dice", "final_val_loss",
           "final_val_dice", "final_val_iou")
DIRECTIONS = ("max", "min")
REL_TOL = 1e-9


@dataclass
class Stage:
    name: str
    grid: dict[str, list[Any]]  # varied keys -> values (coerced), in file order
    shared: dict[str, Any] = field(default_factory=dict)  # the stage's scalar keys
    pin: dict[str, Any] | None = None

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


@dataclass
class RunScore:
    id: str
    fraction: float | None
    state: str  # queued / running / done / failed / interrupted / invalid
    value: float | None  # the study's metric, when the run is done and has it
    summary: dict[str, Any] | None = None


@dataclass
class ConfigScore:
    values: dict[str, Any]
    runs: list[RunScore] = field(default_factory=list)
    score: float | None = None  # mean over fractions; None unless every run has the metric
    spread: float | None = None  # max - min over fractions

    def label(self) -> str:
        return ", ".join(f"{k}={_show(v)}" for k, v in self.values.items())


@dataclass
class StageStatus:
    name: str
    state: str  # waiting / running / done
    varied: list[str]
    carried: dict[str, Any]  # winners of the earlier stages this stage stands on
    planned: int  # experiments the stage has (or will have once it expands)
    experiments: list[str] = field(default_factory=list)
    configs: list[ConfigScore] = field(default_factory=list)
    winner: dict[str, Any] | None = None  # final when state == "done", else the leader so far (or None)
    how: str | None = None  # best / pinned / tie-break / no-score
    why: str = ""

    @property
    def finished(self) -> int:
        return sum(r.state in FINISHED for c in self.configs for r in c.runs)


@dataclass
class StudyStatus:
    study: Study
    stages: list[StageStatus]

    @property
    def id(self) -> str:
        return self.study.id

    def final(self) -> dict[str, Any]:
        """The study base plus the winners of every finished stage (the final configuration once all are done)."""
        out = dict(self.study.base)
        for st in self.stages:
            if st.state == "done" and st.winner:
                out.update(st.winner)
        return out

    @property
    def done(self) -> bool:
        return all(st.state == "done" for st in self.stages)


def _show(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


# ---- parsing ----------------------------------------------------------------------------------------
def _check_key(key: str, extra: tuple[str, ...], where: str) -> ConfigError | None:
    if key in KEYS:
        return None
    hint = _nearest(key, list(KEYS) + list(extra)).strip()
    return ConfigError(where, key, f"unknown key; {hint}" if hint else f"unknown key; valid: {', '.join(extra)} or a configuration key")


def parse_study(entry: Any, index: int, file: str, at: str = "") -> tuple[Study | None, list[ConfigError]]:
    """Validate one [[study]] table; returns (the study, []) or (None, every problem found)."""
    problems: list[ConfigError] = []
    origin = f"[[study]] #{index + 1}{at}"
    if not isinstance(entry, dict):
        return None, [ConfigError(f"{file} {origin}", None, "must be a table: [[study]]")]
    raw_id = entry.get("id")
    from .queue import safe_id  # late: queue imports this module

    sid = None
    if raw_id is None:
        problems.append(ConfigError(f"{file} {origin}", "id", "required: a study needs an id, e.g. id = \"opt\" (its experiments' id prefix)"))
    elif not isinstance(raw_id, str) or not raw_id.strip():
        problems.append(ConfigError(f"{file} {origin}", "id", f"must be a non-empty string, got {raw_id!r}"))
    elif safe_id(raw_id) != raw_id:
        problems.append(ConfigError(f"{file} {origin}", "id", f"{raw_id!r} is not filesystem-safe; use letters, digits, '.', '_' and '-' (e.g. {safe_id(raw_id)!r})"))
    else:
        sid = raw_id
        origin = f"[[study]] '{sid}'{at}"
    where = f"{file} {origin}"

    metric = entry.get("metric", "best_val_dice")
    if metric not in METRICS:
        problems.append(ConfigError(where, "metric", f"unknown metric {metric!r}; {_nearest(str(metric), METRICS)}valid (summary.json keys): {', '.join(METRICS)}"))
    direction = entry.get("direction", "min" if "loss" in str(metric) else "max")
    if direction not in DIRECTIONS:
        problems.append(ConfigError(where, "direction", f"must be max or min, got {direction!r}"))

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
                if not v:
                    raise ConfigError(where, k, "empty list: give at least one fraction, e.g. [0.4, 0.8]")
                fractions = [coerce(k, x, where) for x in v]
                if len(set(fractions)) != len(fractions):
                    raise ConfigError(where, k, f"repeats a fraction: {v}")
            else:
                base[k] = coerce(k, v, where)
        except ConfigError as exc:
            problems.append(exc)

    raw_stages = entry.get("stage")
    stages: list[Stage] = []
    if not isinstance(raw_stages, list) or not raw_stages:
        problems.append(ConfigError(where, "stage", "a study needs at least one [[study.stage]] with a grid, e.g. lr = [1e-4, 1e-3]"))
        raw_stages = []
    names: set[str] = set()
    for j, raw in enumerate(raw_stages):
        swhere = f"{where} stage #{j + 1}"
        if not isinstance(raw, dict):
            problems.append(ConfigError(swhere, None, "must be a table: [[study.stage]]"))
            continue
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            problems.append(ConfigError(swhere, "name", f"required: a stage needs a name, e.g. name = \"lr\" (got {name!r})"))
            name = None
        elif safe_id(name) != name:
            problems.append(ConfigError(swhere, "name", f"{name!r} is not filesystem-safe; use letters, digits, '.', '_' and '-' (e.g. {safe_id(name)!r})"))
            name = None
        else:
            swhere = f"{where} stage '{name}'"
            if name in names:
                problems.append(ConfigError(swhere, "name", f"duplicate stage name '{name}'; stage names must be unique within a study"))
            names.add(name)
        grid: dict[str, list[Any]] = {}
        shared: dict[str, Any] = {}
        for k, v in flatten({k: v for k, v in raw.items() if k not in STAGE_KEYS}).items():
            err = _check_key(k, STAGE_KEYS, swhere)
            if err:
                problems.append(err)
                continue
            try:
                if k == "train_fraction" and fractions is not None:
                    raise ConfigError(swhere, k, "the study already runs every configuration at train_fraction "
                                                 f"{[_show(f) for f in fractions]}; remove it here or there")
                if isinstance(v, list):
                    if not v:
                        raise ConfigError(swhere, k, "empty list: a stage needs at least one value per key")
                    vals = [coerce(k, x, swhere) for x in v]
                    if len(set(map(repr, vals))) != len(vals):
                        raise ConfigError(swhere, k, f"repeats a value: {v}")
                    grid[k] = vals
                else:
                    shared[k] = coerce(k, v, swhere)
            except ConfigError as exc:
                problems.append(exc)
        if not any(isinstance(v, list) for v in flatten({k: v for k, v in raw.items() if k not in STAGE_KEYS}).values()):
            problems.append(ConfigError(swhere, None, "a stage needs at least one key with a list of values, e.g. lr = [1e-4, 1e-3]"))
        pin = None
        if "pin" in raw:
            raw_pin = raw["pin"]
            if not isinstance(raw_pin, dict) or not raw_pin:
                problems.append(ConfigError(swhere, "pin", f"must be a table of varied keys, e.g. pin = {{ scheduler = \"plateau\" }}, got {raw_pin!r}"))
            else:
                pin = {}
                for k, v in flatten(raw_pin).items():
                    if k not in grid:
                        varied = ", ".join(grid) or "none"
                        problems.append(ConfigError(swhere, f"pin.{k}", f"this stage does not vary {k!r}; {_nearest(k, list(grid))}varied keys: {varied}"))
                        continue
                    try:
                        val = coerce(k, v, swhere)
                    except ConfigError as exc:
                        problems.append(ConfigError(swhere, f"pin.{k}", exc.message))
                        continue
                    if val not in grid[k]:
                        problems.append(ConfigError(swhere, f"pin.{k}", f"{_show(val)} is not in the stage's grid; valid: {', '.join(_show(x) for x in grid[k])}"))
                        continue
                    pin[k] = val
        if name is not None:
            stages.append(Stage(name=name, grid=grid, shared=shared, pin=pin))
    if problems or sid is None:
        return None, problems
    return Study(id=sid, metric=metric, direction=direction, fractions=fractions, base=base, stages=stages, origin=origin), []


# ---- expansion ----------------------------------------------------------------------------------------
def base_hash(carried: dict[str, Any]) -> str:
    """5 hex digits naming the winners a later stage stands on (part of its experiments' ids)."""
    return hashlib.sha1(json.dumps(carried, sort_keys=True, default=str).encode()).hexdigest()[:5]


def experiment_id(study: str, stage: str, values: dict[str, Any], carried: dict[str, Any] | None,
                  fraction: float | None) -> str:
    """``<study>-<stage>-<slug>[-b<hash>][-f<fraction>]``; the suffix survives truncation to the id limit."""
    from .queue import MAX_ID, _fmt, _slug, safe_id

    suffix = (f"-b{base_hash(carried)}" if carried is not None else "") + (f"-f{_fmt(fraction)}" if fraction is not None else "")
    head = safe_id(f"{study}-{stage}-{_slug(values)}")[: MAX_ID - len(suffix)].rstrip("-.")
    return head + suffix


def _metric_value(summary: dict[str, Any] | None, metric: str) -> float | None:
    v = (summary or {}).get(metric)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _score(cs: ConfigScore) -> None:
    vals = [r.value for r in cs.runs]
    if vals and all(v is not None for v in vals):
        cs.score = sum(vals) / len(vals)  # type: ignore[arg-type]
        cs.spread = max(vals) - min(vals)  # type: ignore[type-var,operator]


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)


def choose(configs: list[ConfigScore], direction: str) -> tuple[ConfigScore | None, str, str]:
    """The best configuration among ``configs`` (grid order), with how ('best', 'tie-break', 'no-score') and why."""
    scored = [c for c in configs if c.score is not None]
    if not scored:
        return (configs[0], "no-score", "no configuration has a score (failed runs or missing metric): the first in grid order") if configs else (None, "no-score", "")
    sign = 1.0 if direction == "max" else -1.0
    top = max(sign * c.score for c in scored)  # type: ignore[operator]
    tied = [c for c in scored if _close(sign * c.score, top)]  # type: ignore[operator]
    if len(tied) == 1:
        return tied[0], "best", f"{direction} score {tied[0].score:.4f}"
    low = min(c.spread for c in tied)  # type: ignore[type-var]
    steady = [c for c in tied if _close(c.spread, low)]  # type: ignore[arg-type]
    if len(steady) == 1:
        return steady[0], "tie-break", (f"tie at score {top * sign:.4f} between {len(tied)} configurations; "
                                        f"smallest spread over fractions ({low:.4f})")
    return steady[0], "tie-break", f"tie at score {top * sign:.4f} and spread {low:.4f}: first in grid order"


def expand(study: Study, defaults: Config, store: Any = None, file: str = "experiments.toml") -> tuple[list, StudyStatus]:
    """The study's experiments so far and the status of each stage (see the module docstring for the rules).

    ``store`` is a RunStore; without one no run is known, so only stage 1 expands.
    """
    from .queue import Experiment

    experiments: list[Experiment] = []
    stages: list[StageStatus] = []
    carried: dict[str, Any] = {}
    blocked = False
    fractions: list[float | None] = list(study.fractions) if study.fractions else [None]
    for k, stage in enumerate(study.stages):
        combos = stage.configurations()
        status = StageStatus(name=stage.name, state="waiting", varied=list(stage.grid), carried=dict(carried),
                             planned=len(combos) * len(fractions))
        stages.append(status)
        if blocked:
            continue
        origin = f"[[study]] '{study.id}' stage '{stage.name}'"
        n_items = status.planned
        for combo in combos:
            cs = ConfigScore(values=combo)
            for f in fractions:
                exp_id = experiment_id(study.id, stage.name, combo, carried if k else None, f)
                overrides = {**study.base, **carried, **stage.shared, **combo}
                if f is not None:
                    overrides["train_fraction"] = f
                exp = Experiment(id=exp_id, origin=f"{origin} (item {len(status.experiments) + 1} of {n_items})",
                                 overrides=overrides)
                try:
                    exp.config = build_config(overrides, f"{file} {origin}", defaults)
                except ConfigError as exc:
                    exp.error = exc
                experiments.append(exp)
                status.experiments.append(exp_id)
                summary = None
                if not exp.valid:
                    state = "invalid"  # never trained: the stage cannot finish until the definition is fixed
                elif store is None:
                    state = "queued"
                else:
                    run = store.run(exp_id)
                    state = run.state()
                    summary = run.summary() if state == "done" else None
                cs.runs.append(RunScore(id=exp_id, fraction=f, state=state, summary=summary,
                                        value=_metric_value(summary, study.metric) if state == "done" else None))
            _score(cs)
            status.configs.append(cs)
        finished = all(r.state in FINISHED for c in status.configs for r in c.runs)
        status.state = "done" if finished else "running"
        if finished:
            best, how, why = choose(status.configs, study.direction)
            if stage.pin:
                matching = [c for c in status.configs if all(c.values[key] == v for key, v in stage.pin.items())]
                chosen, _, _ = choose(matching, study.direction)
                best_label = best.label() if best else "-"
                best, how, why = chosen, "pinned", f"pinned by hand (best by score: {best_label})"
            status.winner = dict(best.values) if best else {}
            status.how, status.why = how, why
            carried.update(status.winner)
        else:
            leader, how, why = choose([c for c in status.configs if c.score is not None], study.direction)
            if leader is not None:
                status.winner, status.how, status.why = dict(leader.values), how, "so far: " + why
            blocked = True
    return experiments, StudyStatus(study=study, stages=stages)
