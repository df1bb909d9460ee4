"""The queue file (experiments.toml): read it and expand defaults, experiments, sweeps and studies into experiments.

Reading is pure: it reads experiments.toml and nothing of runs/. A [[study]] expands here as far as its definition
alone says (its first stage); how far it has gone — later stages, pruned and promoted runs — depends on its runs and
is planned by core.plan from the read model (``plan_studies`` with a RunLookup)."""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from ..runs.index import cached_toml
from .config import DEFAULTS, LIST_KEYS, Config, ConfigError, build_config, coerce, flatten
from .experiment import Experiment, with_repeats
from .names import safe_id, slug
from .study import RunLookup, StudyStatus, expand
from .study_parse import Study, parse_study

QUEUE_FILE = "experiments.toml"
TOP_LEVEL = ("defaults", "experiment", "sweep", "study")
MAX_SWEEP = 100_000  # experiments one sweep may expand to: beyond that, reading the queue itself takes minutes


class QueueError(ValueError):
    """The queue file as a whole cannot be read (missing, malformed TOML, wrong top-level layout)."""


@dataclass
class Queue:
    path: Path
    defaults: Config
    experiments: list[Experiment]
    problems: list[ConfigError]  # every problem found, including those attached to experiments
    studies: list[StudyStatus] = field(default_factory=list)  # each valid [[study]], in file order
    # what the file holds, in file order: the experiments of an [[experiment]] or [[sweep]] entry, or a valid study's
    # definition (expanded by plan_studies); with the file-level problems, those of invalid studies past their first,
    # and the text (for the lines of errors)
    layout: list[list[Experiment] | Study] = field(default_factory=list)
    file_problems: list[ConfigError] = field(default_factory=list)
    study_problems: list[ConfigError] = field(default_factory=list)
    text: str = ""
    # what the planner found of the studies' successive halving: runs pruned (run id -> the epoch it stopped at) and
    # runs promoted (trained to a rung, to train on); empty until core.plan planned the queue with its runs
    pruned: dict[str, int] = field(default_factory=dict)
    promoted: set[str] = field(default_factory=set)

    def get(self, exp_id: str) -> Experiment | None:
        return next((e for e in self.experiments if e.id == exp_id), None)


def read_queue(project: Path, cache: bool = False) -> Queue:
    """Read ``project/experiments.toml`` (and nothing of runs/ but the parse cache below). File-level problems raise
    QueueError; per-experiment ones are attached. Studies expand as far as their definitions alone say (their first
    stage): core.plan.load_queue plans them with their runs. ``cache``: keep the parse of a large file under
    runs/.index (core.runs.index.cached_toml; the TUI's re-reads): a cache that cannot be read or written is skipped."""
    path = Path(project) / QUEUE_FILE
    if not path.exists():
        raise QueueError(f"{path}: no queue file here; create one with `unettui init` or pass --project DIR")
    try:
        text = path.read_text(encoding="utf-8")
        data = cached_toml(Path(project), text, tomllib.loads) if cache else tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise QueueError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise QueueError(f"{path}: cannot be read: {exc}") from None
    return parse_queue(data, path, text=text)


def parse_queue(data: dict[str, Any], path: Path, text: str | None = None) -> Queue:
    """Expand parsed TOML ``data``; ``text`` (read from ``path`` when left out) gives entry order and lines.

    Studies expand at their position in the file, like sweeps, as far as their definitions alone say (stage 1):
    ``plan_studies`` with a RunLookup (core.plan) expands them past it.
    """
    name = path.name
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            text = ""
    problems: list[ConfigError] = []
    for key in data:
        if key not in TOP_LEVEL:
            problems.append(ConfigError(name, key, "unknown top-level entry; use [defaults], [[experiment]], [[sweep]] or [[study]]"))

    defaults = DEFAULTS
    raw_defaults = data.get("defaults", {})
    if not isinstance(raw_defaults, dict):
        raise QueueError(f"{path}: 'defaults' must be a table: [defaults]")
    try:
        defaults = build_config(flatten(raw_defaults), f"{name} [defaults]")
    except ConfigError as exc:  # every experiment stands on [defaults]: nothing can run
        raise QueueError(str(exc)) from None

    for section in ("experiment", "sweep", "study"):
        entries = data.get(section, [])
        if not isinstance(entries, list):
            raise QueueError(f"{path}: '{section}' must be an array of tables: [[{section}]]")
    # keep file order between [[experiment]] and [[sweep]] entries: tomllib loses it, so recover it from the text
    order = _entry_order(text, data)
    layout: list[list[Experiment] | Study] = []
    study_problems: list[ConfigError] = []
    for section, index, line in order:
        entry = data[section][index]
        at = f" (line {line})" if line else ""
        if section == "experiment":
            layout.append(with_repeats(_experiment(entry, index, defaults, name, at)))
        elif section == "sweep":
            layout.append([e for exp in _sweep(entry, index, defaults, name, at) for e in with_repeats(exp)])
        else:
            layout.append(_study(entry, index, name, at, study_problems))
    _point_at_key_lines(text, [e for part in layout if isinstance(part, list) for e in part])  # once: not per entry
    queue = Queue(path=path, defaults=defaults, experiments=[], problems=[], layout=layout, file_problems=problems,
                  study_problems=study_problems, text=text)
    return plan_studies(queue, None)


def plan_studies(queue: Queue, lookup: RunLookup | None) -> Queue:
    """``queue`` (as read) with its studies expanded as far as ``lookup``'s runs allow (None: as far as their
    definitions alone say, stage 1): a new Queue whose experiments are in file order, each study's at its place,
    with duplicate ids refused. ``queue`` itself is not changed; its experiments are shared (one that takes an id a
    study's experiment also has is copied with that error)."""
    name = queue.path.name
    experiments: list[Experiment] = []
    studies: list[StudyStatus] = []
    for part in queue.layout:
        if isinstance(part, list):
            experiments.extend(part)
        else:
            exps, status = expand(part, queue.defaults, lookup, name)
            _point_at_key_lines(queue.text, exps)
            experiments.extend(exps)
            studies.append(status)
    seen: dict[str, Experiment] = {}
    for i, exp in enumerate(experiments):
        if exp.id in seen:
            error = ConfigError(f"{name} {exp.origin}", "id", f"duplicate id '{exp.id}' (also {seen[exp.id].origin}); "
                                                               "ids must be unique")
            experiments[i] = dataclasses.replace(exp, error=error)
        else:
            seen[exp.id] = exp
    problems = [*queue.file_problems, *(e.error for e in experiments if e.error), *queue.study_problems]
    return dataclasses.replace(queue, experiments=experiments, problems=problems, studies=studies,
                               pruned={}, promoted=set())


def _point_at_key_lines(text: str, experiments: list[Experiment]) -> None:
    """Refine "(line N)" of an error from the entry's header to the line that sets the offending key."""
    if not any(e.error is not None and e.error.key for e in experiments):
        return  # (nothing to point at: the text is not split, a queue may hold 10,000 entries)
    lines = text.splitlines()
    for exp in experiments:
        err = exp.error
        m = re.search(r"\(line (\d+)\)", err.where) if err and err.key else None
        if not m:
            continue
        start = int(m.group(1))
        leaf = re.escape(err.key.split(".")[-1])
        for n in range(start, len(lines)):
            if re.match(r"\s*\[", lines[n]):
                break  # the next table: the key is not written in this entry (e.g. from [defaults])
            if re.match(rf"\s*(?:[\w.]*\.)?{leaf}\s*=", lines[n]):
                err.where = err.where.replace(m.group(0), f"(line {n + 1})")
                break


def _entry_order(text: str, data: dict[str, Any]) -> list[tuple[str, int, int | None]]:
    """(section, index, line) of the [[experiment]] / [[sweep]] headers in the order they appear in the text."""
    counts = {"experiment": 0, "sweep": 0, "study": 0}
    order: list[tuple[str, int, int | None]] = []
    line, seen = 1, 0  # the line number at offset `seen` (counted incrementally: a queue may hold 10,000 entries)
    for m in re.finditer(r"^[ \t]*\[\[[ \t]*(experiment|sweep|study)[ \t]*\]\]", text, re.M):
        sec = m.group(1)
        line += text.count("\n", seen, m.start())
        seen = m.start()
        if counts[sec] < len(data.get(sec, [])):
            order.append((sec, counts[sec], line))
            counts[sec] += 1
    for sec in ("experiment", "sweep", "study"):  # inline arrays of tables that the regex did not see
        for i in range(counts[sec], len(data.get(sec, []))):
            order.append((sec, i, None))
    return order


def _entry_id(entry: dict[str, Any], where: str) -> str | None:
    if "id" not in entry:
        return None
    raw = entry["id"]
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(where, "id", f"must be a non-empty string, got {raw!r}")
    if safe_id(raw) != raw:
        raise ConfigError(where, "id", f"{raw!r} is not filesystem-safe; use letters, digits, '.', '_' and '-' (e.g. {safe_id(raw)!r})")
    return raw


def _experiment(entry: dict[str, Any], index: int, defaults: Config, name: str, at: str = "") -> Experiment:
    origin = f"[[experiment]] #{index + 1}{at}"
    values = flatten({k: v for k, v in entry.items() if k != "id"})
    try:
        exp_id = _entry_id(entry, f"{name} {origin}")
    except ConfigError as exc:
        return Experiment(id=f"invalid-experiment-{index + 1}", origin=origin, error=exc)
    exp_id = exp_id or safe_id(slug(values) or "baseline")
    origin = f"[[experiment]] '{exp_id}'{at}" if "id" in entry else origin
    exp = Experiment(id=exp_id, origin=origin, overrides=values)
    try:
        exp.config = build_config(values, f"{name} {origin}", defaults)
    except ConfigError as exc:
        exp.error = exc
    return exp


def sweep_prefix(grid: dict[str, Any]) -> str:
    """The id of a [[sweep]] that has none: 'sweep-' and the keys it varies (its experiments' id prefix)."""
    return safe_id("sweep-" + "-".join(k.split(".")[-1] for k in grid))


def _sweep(entry: dict[str, Any], index: int, defaults: Config, name: str, at: str = "") -> list[Experiment]:
    origin = f"[[sweep]] #{index + 1}{at}"
    values = flatten({k: v for k, v in entry.items() if k != "id"})
    where = f"{name} {origin}"
    try:
        prefix = _entry_id(entry, where)
        # a list is the values swept; a key whose value is a list itself (class_weights) is swept by a list of lists
        grid = {k: v for k, v in values.items()
                if isinstance(v, list) and (k not in LIST_KEYS or (v and all(isinstance(x, list) for x in v)))}
        for k, v in grid.items():
            if not v:
                raise ConfigError(where, k, "empty list: a sweep needs at least one value per key")
            if k == "repeats":
                raise ConfigError(where, k, "cannot be swept: give one number, every configuration of the sweep is "
                                            "trained that many times")
            for item in v:
                coerce(k, item, where)
        if not grid:
            raise ConfigError(where, None, "a sweep needs at least one key with a list of values, e.g. lr = [1e-4, 1e-3]")
        size = math.prod(len(v) for v in grid.values())
        if size > MAX_SWEEP:
            raise ConfigError(where, None, f"the grid has {size:,} experiments; a sweep can hold at most {MAX_SWEEP:,}: "
                                           "split it, or sweep fewer values")
    except ConfigError as exc:
        return [Experiment(id=f"invalid-sweep-{index + 1}", origin=origin, error=exc)]
    prefix = prefix or sweep_prefix(grid)
    if "id" in entry:
        origin = f"[[sweep]] '{prefix}'{at}"
    shared = {k: v for k, v in values.items() if k not in grid}
    combos = list(itertools.product(*grid.values()))
    out = []
    for n, combo in enumerate(combos, 1):
        varied = dict(zip(grid, combo))
        exp_id = safe_id(f"{prefix}-{slug(varied)}")
        exp = Experiment(id=exp_id, origin=f"{origin} (item {n} of {len(combos)})", overrides={**shared, **varied})
        try:
            exp.config = build_config(exp.overrides, f"{name} {origin} item {n}", defaults)
        except ConfigError as exc:
            exp.error = exc
        out.append(exp)
    return out


def _study(entry: Any, index: int, name: str, at: str, extra_problems: list[ConfigError]) -> list[Experiment] | Study:
    """One [[study]]'s definition (expanded by plan_studies); an invalid study gives one invalid placeholder
    experiment carrying its first problem (the others go to the queue's problems)."""
    study, found = parse_study(entry, index, name, at)
    if study is None:
        sid = entry.get("id") if isinstance(entry, dict) else None
        origin = f"[[study]] '{sid}'{at}" if isinstance(sid, str) and safe_id(sid) == sid else f"[[study]] #{index + 1}{at}"
        extra_problems.extend(found[1:])
        return [Experiment(id=f"invalid-study-{index + 1}", origin=origin, error=found[0])]
    return study
