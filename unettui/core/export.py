"""Result rows (one per experiment) from the queue and runs/, and their CSV / Markdown forms."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

from .config import KEYS
from .queue import Queue
from .store import RunStore

METRIC_COLUMNS = (
    "val_on_train",
    "best_val_dice",
    "best_epoch",
    "final_train_loss",
    "final_train_dice",
    "final_val_loss",
    "final_val_dice",
    "final_val_iou",
    "epochs_done",
    "seconds",
)
COLUMNS: tuple[str, ...] = ("id", "status", *KEYS, *METRIC_COLUMNS, "error")
NUMERIC = set(METRIC_COLUMNS) - {"val_on_train"}


def collect_rows(queue: Queue | None, store: RunStore) -> list[dict[str, Any]]:
    """One row per experiment in queue order, then runs whose experiment is no longer in the queue.

    Hyper-parameters come from the run's config.json when it exists (what actually ran), else from the
    queue's definition; metrics from summary.json; status derived from status.json.
    """
    rows: list[dict[str, Any]] = []
    seen = set()
    experiments = queue.experiments if queue else []
    for exp in experiments:
        seen.add(exp.id)
        run = store.run(exp.id)
        row: dict[str, Any] = {"id": exp.id}
        if exp.config is not None:
            row.update(exp.config.to_dict())
        if run.exists():
            _fill_from_run(row, run)
        else:
            row["status"] = "queued" if exp.valid else "invalid"
            if not exp.valid:
                row["error"] = str(exp.error)
        rows.append(row)
    for run in store.runs():
        if run.id not in seen:
            row = {"id": run.id}
            _fill_from_run(row, run)
            row["status"] = f"{row['status']} (not in queue)"
            rows.append(row)
    for row in rows:
        for col in COLUMNS:
            row.setdefault(col, None)
    return rows


def _fill_from_run(row: dict[str, Any], run) -> None:
    cfg = run.config() or {}
    row.update({k: cfg[k] for k in KEYS if k in cfg})
    row["status"] = run.state()
    st = run.status() or {}
    row["error"] = st.get("error")
    summary = run.summary() or {}
    for col in METRIC_COLUMNS:
        if col in summary:
            row[col] = summary[col]
    if "val_on_train" not in summary and "val_on_train" in cfg:
        row["val_on_train"] = cfg["val_on_train"]


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
