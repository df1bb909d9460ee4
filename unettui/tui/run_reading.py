"""Reading a run folder's files again, cheaply and safely, for the TUI's monitor (tui.data): what it saw of each file,
whether a run's status, config and summary are still as read, and metrics.jsonl read from where it was left. (JSON
objects are read with core.runs.index.read_json_stamped, which the runner's refresh_index uses too: a torn or foreign
file is named, never raised.)"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from ..core.runs.index import SETTLED, parse_json
from ..core.runs.store import CONFIG, STATUS, SUMMARY

WATCHED = (STATUS, CONFIG, SUMMARY)  # stat-ed whenever a run's folder is: an edit in place does not move the folder


@dataclass
class FileState:
    """What the monitor last saw of one file of a run."""

    mtime: float = -1.0
    size: int = -1
    offset: int = 0  # bytes of metrics.jsonl already read
    bad: int = 0  # metrics.jsonl lines that could not be read
    recheck: float = 0.0  # 0: the file had been still for index.SETTLED seconds when it was last read (or is
    # absent), so (mtime, size) stand for what was read; else a rewrite within the clock tick of its mtime may hide
    # behind the same stamp, and this is the time.time() from which the file is read once more (then it has settled)


def recheck_at(stamp: tuple[float, int] | None, read_at: float) -> float:
    """FileState.recheck of a file of this (mtime, size) (None: absent) read at ``read_at`` (``time.time()``, taken
    before its stamp): 0 when it had been still for index.SETTLED seconds (no change of it can hide behind that
    stamp), else when it will have been (a read from then on is sure)."""
    return 0.0 if stamp is None or stamp[0] <= read_at - SETTLED else stamp[0] + SETTLED


def still(files: dict[tuple[str, str], FileState], run_id: str, folder: str, now: float) -> bool:
    """Each WATCHED file of the run in ``folder`` is as ``files`` (the monitor's FileState of each (run, file)) says
    it was read, at ``now`` (``time.time()``): of the same (mtime, size), or still absent (a file rewritten in place
    moves its own mtime and size, not its folder's), and not due to be read once more (FileState.recheck). A stat
    each."""
    stat = os.stat
    for name in WATCHED:
        fs = files.get((run_id, name))
        try:
            st = stat(f"{folder}/{name}")
        except OSError:
            if fs is not None and fs.size >= 0:
                return False
            continue
        if fs is None or st.st_mtime != fs.mtime or st.st_size != fs.size or 0.0 < fs.recheck <= now:
            return False
    return True


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
