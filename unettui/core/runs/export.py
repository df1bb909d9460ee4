"""Result rows (one per experiment) from the queue and runs/, and their CSV / Markdown forms."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..define.config import KEYS
from ..define.task import (
    PER_CLASS_KEYS,
    SUMMARY_KEYS,
    class_key,
    epoch_value,
    foreground_of,
    split_class_key,
    worst_key,
    worst_suffix,
)
from .backend import JobReader
from .status import Row, collect
from .store import RunStore

if TYPE_CHECKING:  # pragma: no cover
    from ..define.queue import Queue

# the summary.json numbers every project exports (core.define.task's registry, in its order), after val_on_train: the
# end-of-run boundary metrics (val_hd95, val_nsd, test_hd95, test_nsd) last, empty for a run that has none
METRIC_COLUMNS = ("val_on_train", *(k.name for k in SUMMARY_KEYS.values() if k.column))
# status: the read model's state word (core.status.State); in_queue false: the run's experiment was removed from
# experiments.toml; error: the one line that explains the state (an error, what changed, what is damaged)
# configuration: the id the repeats of one configuration share (its own id without repeats); repeat: 1, 2, ...
COLUMNS: tuple[str, ...] = ("id", "status", "in_queue", "attempt", "configuration", "repeat", *KEYS, *METRIC_COLUMNS,
                            "error")
NUMERIC = set(METRIC_COLUMNS) - {"val_on_train"}
# summary keys a row holds beside its columns (best_val_iou: a column only where runs have classes)
_MORE = tuple(k.name for k in SUMMARY_KEYS.values() if not k.column)
# (summary key, its metrics.jsonl key, best or final) of what a run's lines give before its summary.json exists
_DERIVED = tuple((k.name, k.source, k.at) for k in SUMMARY_KEYS.values() if k.source and k.at in ("best", "final"))
_CHOSEN_BY = SUMMARY_KEYS["best_val_dice"].source  # what the best epoch is chosen by (val_dice)
_DERIVED_KEYS = (*(k for k, _, _ in _DERIVED), "epochs_done", "seconds")  # what a run's lines give
# the per-class keys a run's lines give at its best or last epoch (the test split's and the end-of-run metrics' only
# come with its summary)
_FROM_EPOCHS = tuple(k for k in PER_CLASS_KEYS if SUMMARY_KEYS[k].at in ("best", "final"))


def class_names(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """The foreground classes of the multi-class runs among ``rows``, in the order they first appear."""
    names: list[str] = []
    for r in rows:
        for n in r.get("classes") or ():
            if n not in names:
                names.append(n)
    return names


def class_keys(rows: Iterable[Mapping[str, Any]], keys: Iterable[str]) -> list[str]:
    """``<key>_<class>`` for each of ``keys`` (summary keys with per-class companions) and each foreground class of
    ``rows``, then the worst class's (``<key>_min``; ``<key>_max`` for HD95, where lower is better); [] where no row
    is of a multi-class run."""
    names = class_names(rows)
    return [k for key in keys for k in (*(class_key(key, n) for n in names), worst_key(key))] if names else []


def class_columns(rows: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """The columns that follow COLUMNS where ``rows`` hold multi-class runs: for each summary key with per-class
    companions (core.define.task.PER_CLASS_KEYS, in its order: Dice and IoU, then the end-of-run HD95 and NSD) the key
    itself where it is not a column of every project (best_val_iou), then ``<key>_<class>`` for every foreground class
    of those runs (in the order they first appear) and the worst class's, ``<key>_min`` (``<key>_max`` for HD95). ()
    for rows of binary runs only."""
    rows = list(rows)
    if not class_names(rows):
        return ()
    out: list[str] = []
    for key in PER_CLASS_KEYS:
        out += [key] if not SUMMARY_KEYS[key].column else []
        out += class_keys(rows, [key])
    return tuple(out)


def columns_for(rows: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """The export's columns for ``rows``: COLUMNS, then the per-class ones their multi-class runs need."""
    return (*COLUMNS, *class_columns(rows))


def collect_rows(queue: Queue | None, store: RunStore, readers: Mapping[str, JobReader] | None = None
                 ) -> list[dict[str, Any]]:
    """One row per experiment in queue order, then runs whose experiment is no longer in the queue (core.status).

    Hyper-parameters come from the run's config.json when it exists (what actually ran), else from the
    queue's definition; metrics from summary.json. ``readers``: the backends asked about claims' jobs (collect)."""
    return [row_dict(r) for r in collect(queue, store, readers=readers)]


def row_dict(r: Row) -> dict[str, Any]:
    """A read-model row as a flat dict of COLUMNS (plus ``label``: the state as tables show it; ``classes``: the
    foreground classes of a multi-class run, () for a binary one; its per-class keys (class_columns) and
    ``best_val_iou``; ``no_score``: why a per-class key has no value, by key)."""
    row: dict[str, Any] = {c: None for c in COLUMNS}
    row.update({k: r.config[k] for k in KEYS if k in r.config})
    for col in METRIC_COLUMNS:
        if col in r.summary:
            row[col] = r.summary[col]
    if row["val_on_train"] is None and "val_on_train" in r.config:
        row["val_on_train"] = r.config["val_on_train"]
    if _finite(r.summary.get("nsd_tolerance")) is not None:  # what its end-of-run NSD was scored at
        row["nsd_tolerance"] = r.summary["nsd_tolerance"]
    foreground = foreground_of(r.summary, r.config)
    per_class = [class_key(key, n) for key in PER_CLASS_KEYS for n in (*foreground, worst_suffix(key))] \
        if foreground else []
    for key in (*_MORE, *per_class):
        row[key] = _finite(r.summary.get(key))
    reasons = r.summary.get("no_score")
    row["classes"] = foreground
    row["best_val_counts"] = r.summary.get("best_val_counts")  # (pooled out-of-fold scores sum these)
    row["no_score"] = ({str(k): str(v) for k, v in reasons.items() if v} if isinstance(reasons, Mapping) else {})
    from_epochs = [class_key(key, n) for key in _FROM_EPOCHS for n in (*foreground, worst_suffix(key))] \
        if foreground else []
    derivable = [*_DERIVED_KEYS, *from_epochs]
    metrics = [m for m in r.metrics if isinstance(m, dict)] if any(row[k] is None for k in derivable) else []
    if metrics:  # a run between its first metrics line and its first summary: what the lines so far say
        scored = [m for m in metrics if isinstance(m.get(_CHOSEN_BY), (int, float))]
        best = max(scored, key=lambda m: (m[_CHOSEN_BY], -m.get("epoch", 0))) if scored else {}  # earliest of equal bests
        last = metrics[-1]
        derived = {key: (best if at == "best" else last).get(source) for key, source, at in _DERIVED}
        derived.update(epochs_done=len(metrics), seconds=round(sum(
            m.get("seconds", 0.0) for m in metrics if isinstance(m.get("seconds"), (int, float))), 3))
        for key in from_epochs:  # a class's value at the best or the last epoch (the test split only at the end)
            base, name = split_class_key(key, PER_CLASS_KEYS) or (key, "")
            entry = SUMMARY_KEYS[base]
            derived[key] = epoch_value(best if entry.at == "best" else last, class_key(entry.source, name))
        for col, value in derived.items():
            if row.get(col) is None:
                row[col] = value
    row.update(id=r.id, status=r.state.value, in_queue=r.in_queue, attempt=r.attempt or None, error=r.note or None,
               label=r.label, configuration=r.configuration, repeat=r.repeat)
    if row["epochs_done"] is None and r.epoch:
        row["epochs_done"] = r.epoch
    return row


def _finite(value: Any) -> float | None:
    """A number as it is, anything else (null, NaN, text) None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return value


# keys that say where or how a run was watched, not what it is: never a column of their own
NOT_COMPARED = ("device", "preview_count")


def varied_keys(rows: list[dict[str, Any]], exclude: tuple[str, ...] = ()) -> list[str]:
    """The hyper-parameters (in KEYS order) that differ between ``rows``: the columns a comparison table needs. A key
    set on some rows and absent (unknown) on others does not count as varied. ``exclude``: keys a table shows in a
    column of its own (the TUI's epochs column shows done/total)."""
    skip = set(NOT_COMPARED) | set(exclude)
    out = []
    for key in KEYS:
        if key in skip:
            continue
        seen = set()
        for r in rows:
            v = r.get(key)
            if v is not None:
                seen.add(_value_key(v))
                if len(seen) > 1:
                    out.append(key)
                    break
    return out


def _value_key(v: Any) -> Any:
    """What tells values apart for varied_keys: a number, string or bool as itself (with its kind: true is not 1.0), any
    other value (a list) by its JSON; 1 and 1.0 are one value, and so are two NaNs."""
    v = _same_kind(v)
    if type(v) is float:
        return (float, "nan") if v != v else (float, v)
    if type(v) in (str, bool):
        return (type(v), v)
    return (object, json.dumps(v, sort_keys=True, default=str))


def _same_kind(v: Any) -> Any:
    """1 and 1.0 are one value (a float key written as an int in a hand-made config.json)."""
    return float(v) if isinstance(v, int) and not isinstance(v, bool) else v


def sort_rows(rows: list[dict[str, Any]], key: str, descending: bool) -> list[dict[str, Any]]:
    """Sort by ``key``; rows without a value go last in either direction."""
    present = [r for r in rows if r.get(key) is not None]
    missing = [r for r in rows if r.get(key) is None]
    try:
        present.sort(key=lambda r: r[key], reverse=descending)
    except TypeError:
        present.sort(key=lambda r: str(r[key]), reverse=descending)
    return present + missing


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value)


def to_csv(rows: list[dict[str, Any]], columns: tuple[str, ...] | None = None) -> str:
    """``rows`` as CSV under ``columns`` (by default columns_for(rows)); a missing value, a null or a NaN is an empty
    cell."""
    columns = columns_for(rows) if columns is None else columns
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return buf.getvalue()


def _md_cell(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4g}"
    return _cell(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(rows: list[dict[str, Any]], columns: tuple[str, ...] | None = None) -> str:
    """``rows`` as a Markdown table (columns as to_csv's)."""
    columns = columns_for(rows) if columns is None else columns
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_md_cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"
