"""Result rows (one per experiment) from the queue and runs/, and their CSV / Markdown forms."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..define.config import KEYS
from .backend import JobReader
from .status import Row, collect
from .store import RunStore

if TYPE_CHECKING:  # pragma: no cover
    from ..define.queue import Queue

METRIC_COLUMNS = (
    "val_on_train",
    "best_val_dice",
    "best_epoch",
    "best_val_loss",
    "final_train_loss",
    "final_train_dice",
    "final_val_loss",
    "final_val_dice",
    "final_val_iou",
    "epochs_done",
    "seconds",
    "test_dice",
    "test_iou",
    "n_test",
)
# status: the read model's state word (core.status.State); in_queue false: the run's experiment was removed from
# experiments.toml; error: the one line that explains the state (an error, what changed, what is damaged)
# configuration: the id the repeats of one configuration share (its own id without repeats); repeat: 1, 2, ...
COLUMNS: tuple[str, ...] = ("id", "status", "in_queue", "attempt", "configuration", "repeat", *KEYS, *METRIC_COLUMNS,
                            "error")
NUMERIC = set(METRIC_COLUMNS) - {"val_on_train"}


def collect_rows(queue: Queue | None, store: RunStore, readers: Mapping[str, JobReader] | None = None
                 ) -> list[dict[str, Any]]:
    """One row per experiment in queue order, then runs whose experiment is no longer in the queue (core.status).

    Hyper-parameters come from the run's config.json when it exists (what actually ran), else from the
    queue's definition; metrics from summary.json. ``readers``: the backends asked about claims' jobs (collect)."""
    return [row_dict(r) for r in collect(queue, store, readers=readers)]


def row_dict(r: Row) -> dict[str, Any]:
    """A read-model row as a flat dict of COLUMNS (plus ``label``: the state as tables show it)."""
    row: dict[str, Any] = {c: None for c in COLUMNS}
    row.update({k: r.config[k] for k in KEYS if k in r.config})
    for col in METRIC_COLUMNS:
        if col in r.summary:
            row[col] = r.summary[col]
    if row["val_on_train"] is None and "val_on_train" in r.config:
        row["val_on_train"] = r.config["val_on_train"]
    metrics = [m for m in r.metrics if isinstance(m, dict)]
    if metrics:  # a run between its first metrics line and its first summary: what the lines so far say
        scored = [m for m in metrics if isinstance(m.get("val_dice"), (int, float))]
        best = max(scored, key=lambda m: (m["val_dice"], -m.get("epoch", 0))) if scored else {}  # earliest of equal bests
        last = metrics[-1]
        derived = {
            "best_val_dice": best.get("val_dice"),
            "best_epoch": best.get("epoch"),
            "best_val_loss": best.get("val_loss"),
            "final_train_loss": last.get("train_loss"),
            "final_train_dice": last.get("train_dice"),
            "final_val_loss": last.get("val_loss"),
            "final_val_dice": last.get("val_dice"),
            "final_val_iou": last.get("val_iou"),
            "epochs_done": len(metrics),
            "seconds": round(sum(m.get("seconds", 0.0) for m in metrics if isinstance(m.get("seconds"), (int, float))), 3),
        }
        for col, value in derived.items():
            if row[col] is None:
                row[col] = value
    row.update(id=r.id, status=r.state.value, in_queue=r.in_queue, attempt=r.attempt or None, error=r.note or None,
               label=r.label, configuration=r.configuration, repeat=r.repeat)
    if row["epochs_done"] is None and r.epoch:
        row["epochs_done"] = r.epoch
    return row


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


def to_csv(rows: list[dict[str, Any]], columns: tuple[str, ...] = COLUMNS) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return buf.getvalue()


def _md_cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return _cell(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(rows: list[dict[str, Any]], columns: tuple[str, ...] = COLUMNS) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_md_cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"
