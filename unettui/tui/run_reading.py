"""Reading a run folder's files again, cheaply and safely, for the TUI's monitor (tui.data): what it saw of each file,
and metrics.jsonl read from where it was left. (JSON objects are read with core.runs.index.read_json_stamped, which
the runner's refresh_index uses too: a torn or foreign file is named, never raised.)"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..core.runs.index import parse_json


@dataclass
class FileState:
    """What the monitor last saw of one file of a run."""

    mtime: float = -1.0
    size: int = -1
    offset: int = 0  # bytes of metrics.jsonl already read
    bad: int = 0  # metrics.jsonl lines that could not be read


UNSEEN = (-2, -2)  # the stamp of a folder never looked at (no folder_stamp returns it)


def summary_final(summary: dict[str, Any] | None, status: dict[str, Any] | None) -> bool:
    """A finished run whose summary has its best val Dice: its metrics.jsonl adds nothing to its row."""
    best = (summary or {}).get("best_val_dice")
    return ((status or {}).get("state") in ("done", "failed") and isinstance(best, (int, float))
            and not isinstance(best, bool) and math.isfinite(best))


def read_metrics(path: str, fs: FileState, stamp: tuple[float, int] | None,
                 metrics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """metrics.jsonl from where ``fs`` says it was left (whole lines only; from the start when it shrank or
    ``metrics`` is empty), appended to ``metrics``; ``stamp``: the file's, taken before."""
    if not stamp:
        fs.offset, fs.bad = 0, 0
        return []
    size = stamp[1]
    if size < fs.offset or not metrics:  # rewritten (a resumed run), or not read yet: from the start
        fs.offset, fs.bad, metrics = 0, 0, []
    try:
        with open(path, "rb") as fh:
            fh.seek(fs.offset)
            chunk = fh.read(size - fs.offset)
    except OSError:
        return metrics
    end = chunk.rfind(b"\n") + 1  # only whole lines; a line being written is read next time
    for line in chunk[:end].splitlines():
        if not line.strip():
            continue
        try:
            rec = parse_json(line)
        except ValueError:  # (UnicodeDecodeError too)
            fs.bad += 1
            continue
        if isinstance(rec, dict):
            metrics.append(rec)
        else:
            fs.bad += 1
    fs.offset += end
    return metrics
