"""Reading a run folder's files cheaply and safely, for the TUI's monitor (tui.data): stamps of files and folders,
JSON objects read whole (a torn or foreign file is named, never raised), metrics.jsonl read from where it was left."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.runs.store import ATTEMPTS, read_json_checked


@dataclass
class FileState:
    """What the monitor last saw of one file of a run."""

    mtime: float = -1.0
    size: int = -1
    offset: int = 0  # bytes of metrics.jsonl already read
    bad: int = 0  # metrics.jsonl lines that could not be read


def file_stamp(path: str) -> tuple[float, int] | None:
    """A file's (mtime, size); None: no such file."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime, st.st_size


def folder_stamp(path: str) -> tuple[int, int] | None:
    """A folder's (mtime in ns, inode): a file renamed into or out of it moves the first; a folder replaced by another
    of the same name (or a project copied elsewhere) the second. None: no such folder."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_ino


UNSEEN = (-2, -2)  # the stamp of a folder never looked at (no folder_stamp returns it)


def read_json_object(path: str) -> tuple[dict[str, Any] | None, str | None]:
    """store.read_json_checked, without its pathlib on the common path (a readable JSON object): 30,000 of these open
    a project of 10,000 runs. Anything else goes to read_json_checked, which says what is wrong."""
    try:
        with open(path, "rb") as fh:
            obj = json.loads(fh.read())
        if isinstance(obj, dict):
            return obj, None
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError):
        pass
    return read_json_checked(Path(path))


def read_json_stamped(path: str) -> tuple[dict[str, Any] | None, str | None, tuple[float, int] | None]:
    """_read_json and the file's stamp, in four system calls (open, fstat, read, close): what a first read of 10,000
    runs does 30,000 times (Python's open() adds an isatty ioctl and a second fstat, and a separate stat for the
    stamp; each call also hands the GIL to the UI thread and waits to get it back). The stamp is that of the very file
    read."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None, None, None
    except OSError:
        value, problem = read_json_checked(Path(path))
        return value, problem, file_stamp(path)
    try:
        st = os.fstat(fd)
        data = os.read(fd, st.st_size + 1)
        if len(data) != st.st_size:  # short read, or the file grew or shrank meanwhile: read it to its end
            chunks = [data]
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
            data = b"".join(chunks)
    except OSError:
        value, problem = read_json_checked(Path(path))
        return value, problem, file_stamp(path)
    finally:
        os.close(fd)
    stamp = (st.st_mtime, st.st_size)
    try:
        value = json.loads(data)
        if isinstance(value, dict):
            return value, None, stamp
    except ValueError:
        pass
    value, problem = read_json_checked(Path(path))  # which says what is wrong with it
    return value, problem, stamp


def summary_final(summary: dict[str, Any] | None, status: dict[str, Any] | None) -> bool:
    """A finished run whose summary has its best val Dice: its metrics.jsonl adds nothing to its row."""
    best = (summary or {}).get("best_val_dice")
    return ((status or {}).get("state") in ("done", "failed") and isinstance(best, (int, float))
            and not isinstance(best, bool) and math.isfinite(best))


def count_attempts(folder: str) -> int:
    """Earlier attempts of a run kept in its attempts/ folder."""
    try:
        return sum(1 for e in os.scandir(f"{folder}/{ATTEMPTS}") if e.is_dir() and e.name.isdigit())
    except OSError:
        return 0

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
            rec = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            fs.bad += 1
            continue
        if isinstance(rec, dict):
            metrics.append(rec)
        else:
            fs.bad += 1
    fs.offset += end
    return metrics
