"""A cache of what was last read of each run folder (runs/.index/runs.jsonl), so that reopening a project of 10,000
runs reads one file instead of 30,000. The TUI keeps it; runners write it (refresh_index) when their queue is done
and now and then during a long one; a helper process the TUI starts (start_refresh) writes it when a large project
is opened without one.

It is only ever a shortcut. An entry is used for a run (``trusted``) only when, now:

- its folder is the very one read, unchanged: the folder's mtime and inode are the ones recorded (a file renamed
  into or out of the folder, as every write of a run file by unettui but an append is, moves the folder's mtime; a
  folder removed and made again, or a project copied elsewhere, has another inode);
- each file the entry holds (the JSON objects of core.runs.reader's RUN_FILES: status.json, config.json,
  summary.json) has the mtime and size recorded
  when it was read: a file rewritten in place (``open(path, "w")`` by a user or a script, no rename) moves its own
  mtime, not the folder's (a file the entry records as absent cannot appear without moving the folder's);
- the folder and each of those files had already been still for ``SETTLED`` seconds when they were read: a change
  within the same clock tick as the read (coarse on some filesystems) would leave the mtime as it was.

That is one stat of the folder and one of each file the entry holds (three for a finished run). Anything else — no
index, another format, a torn or edited line, a run not in it — is read from the run folder as if there were no
index. Deleting it is always safe. Which files an entry holds comes from reader.RUN_FILES (its OBJECT files and
counts), and the header lists them: an index written for other run files is ignored (and rewritten).

One JSON object per line (a header line first), so that neither reading nor writing it holds Python's GIL for long
in the TUI's polling thread.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .reader import (
    COUNT,
    OBJECT,
    RUN_FILES,
    SETTLED,
    RunFiles,
    folder_stamp,
    indexable,
    read_folder,
    stamps_of,
)
from .reader import file_stamp as file_stamp  # (runner.py's import of it, from before the reader)
from .store import RUNS_DIR, atomic_write_bytes, parse_json

INDEX_DIR = ".index"
INDEX_FILE = "runs.jsonl"
QUEUE_CACHE = "queue.json"  # experiments.toml parsed, for a large queue file (cached_toml)
INDEX_MIN = 200  # run folders a project needs for an index to be kept (fewer are read in a few ms)
QUEUE_CACHE_MIN = 64 * 1024  # bytes of experiments.toml from which the TUI caches its parse
FORMAT = 1  # the entries' layout; another number: the file is ignored (and rewritten)
_BASE = ""  # (not a run id) load_index's key of the header's config
_WHOLE = "/"  # (not a run id) load_index's key of "the body is the one written": its SHA-1 is the header's
_ID = '{"id":"'  # how every entry's line starts (entry() writes the id first)


def _held() -> list[str]:
    """The run files an entry holds (the OBJECT and COUNT files of reader.RUN_FILES), as the header lists them: an
    index written for other run files is ignored."""
    return [spec.name for spec in RUN_FILES.indexed]


def index_path(project: Path) -> Path:
    return Path(project) / RUNS_DIR / INDEX_DIR / INDEX_FILE


def entry(folder: tuple[int, int], read_at: float, stamps: dict[str, tuple[float, int]],
          files: RunFiles) -> dict[str, Any]:
    """One run's entry: its folder's (mtime in ns, inode) and when its files were read (``time.time()`` taken before
    the folder was stat-ed), the (mtime, size) of each file read, and what was read of each file it holds (by its
    RunFiles field: status, config, summary, attempts)."""
    item = {"dir": list(folder), "read": read_at, "stamps": {k: list(v) for k, v in stamps.items()}}
    for spec in RUN_FILES.indexed:
        item[spec.key] = spec.value(files)
    return item


def files_of(item: dict[str, Any]) -> tuple[RunFiles, dict[str, Any], tuple[Any, float]]:
    """What an entry (``decode``'s) holds: the run's files as read then, the stamps of its JSON objects, and (its
    folder's stamp, when it was read)."""
    files = RunFiles(exists=True)
    get = item.get
    for spec in RUN_FILES.indexed:
        if spec.field:  # (the common case, inlined: 10,000 runs read from the index)
            setattr(files, spec.field, get(spec.field))
        else:
            spec.put(files, get(spec.key))
    return files, item["stamps"], (tuple(item["dir"]), item["read"])


def trusted(item: dict[str, Any], folder: tuple[int, int] | None, path: str) -> bool:
    """The entry stands for the run folder ``path``, whose (mtime in ns, inode) is ``folder`` now: the very folder (a
    copy, or a folder removed and made again, has another inode), unchanged, and still for SETTLED seconds when it
    was read; and each file the entry holds has the (mtime, size) recorded, and had been still for SETTLED seconds
    when it was read (a file edited in place moves its own mtime, not its folder's). One stat per file held."""
    recorded = item["dir"]
    settled = item["read"] - SETTLED
    if not (folder is not None and recorded[0] == folder[0] and recorded[1] == folder[1] and folder[0] > 0
            and folder[0] / 1e9 <= settled):
        return False
    stat = os.stat
    for name, (mtime, size) in item["stamps"].items():
        if mtime > settled:
            return False
        try:
            st = stat(f"{path}/{name}")
        except OSError:
            return False
        if st.st_mtime != mtime or st.st_size != size:
            return False
    return True


def load_index(project: Path) -> dict[str, Any]:
    """run id -> its entry's line, not decoded yet (``decode`` takes each out when its run is looked at: a large
    project's first screenful of runs does not wait for every entry), and what decoding needs; {} when there is no
    index or it is of another format. Never raises."""
    try:
        raw = index_path(project).read_bytes()
    except OSError:
        return {}
    head, _, body = raw.partition(b"\n")
    try:
        header = json.loads(head)
        text = body.decode("utf-8")
    except ValueError:
        return {}
    if not isinstance(header, dict) or header.get("unettui_index") != FORMAT or header.get("files") != _held():
        return {}
    base = header.get("config")
    out: dict[str, Any] = {_BASE: base if isinstance(base, dict) else None,
                           _WHOLE: header.get("sha1") == hashlib.sha1(body).hexdigest()}
    for line in text.split("\n"):
        if line.startswith(_ID):  # entry() writes the id first; ids are filesystem-safe names (no quotes)
            end = line.find('"', len(_ID))
            if end > 0:
                out[line[len(_ID):end]] = line
    return out


def decode(index: dict[str, Any], run_id: str) -> dict[str, Any] | None:
    """Take the entry of ``run_id`` out of ``index`` (load_index's); None when there is none or its line cannot be
    read (torn, edited, another run's)."""
    line = index.pop(run_id, None) if run_id not in (_BASE, _WHOLE) else None
    if line is None:
        return None
    try:
        item = parse_json(line)
    except ValueError:
        return None
    if type(item) is not dict or not (index.get(_WHOLE) or _valid(item)) or item.pop("id", None) != run_id:
        return None  # (a file whose body is the one write_index wrote holds only entries as entry() makes them)
    diff, drop = item.pop("config_diff", None), item.pop("config_drop", None)
    if diff is not None:
        base = index.get(_BASE)
        if not isinstance(base, dict) or not isinstance(diff, dict) or not isinstance(drop, list):
            return None
        config = {k: v for k, v in base.items() if k not in drop} if drop else dict(base)
        config.update(diff)
        item["config"] = config
    return item


def _same(a: Any, b: Any) -> bool:
    """Equal and of one type (1, 1.0 and True are not the same value of a config key)."""
    return type(a) is type(b) and a == b


def _valid(item: Any) -> bool:
    """An entry as ``entry`` writes them (an edited one is not trusted)."""
    if not (type(item) is dict and type(item.get("id")) is str and type(item.get("stamps")) is dict
            and type(item.get("attempts")) is int and type(item.get("dir")) is list and len(item["dir"]) == 2
            and type(item["dir"][0]) is int and type(item["dir"][1]) is int
            and type(item.get("read")) in (int, float)):
        return False
    for spec in RUN_FILES.indexed:
        if type(item.get(spec.key)) not in (_OBJECT if spec.kind == OBJECT else (int,) if spec.kind == COUNT else ()):
            return False
    for k, v in item["stamps"].items():
        if k not in RUN_FILES.watched or type(v) is not list or len(v) != 2 or type(v[0]) not in (int, float) \
                or type(v[1]) is not int:
            return False
    return True


_OBJECT = (dict, type(None))


def write_index(project: Path, entries: Iterable[tuple[str, dict[str, Any]]], written: float) -> bool:
    """Replace the index with ``entries`` (run id, entry) atomically; False when it cannot be written (a read-only
    project: the TUI then simply reads every run again next time). Never raises.

    The runs of a project share most of their config: the header holds the first run's config and each entry only
    the keys whose value differs from it (and those it lacks): 7.1 MB instead of 12.6 MB for 10,000 runs."""
    parts: list[bytes] = []
    base: dict[str, Any] | None = None
    for run_id, item in entries:
        config = item["config"]
        if base is None and config is not None:
            base = config
        line = {"id": run_id, **item}  # the id first: load_index finds it without decoding the line
        if config is not None and base is not None:
            line["config"] = None
            line["config_diff"] = {k: v for k, v in config.items() if k not in base or not _same(base[k], v)}
            line["config_drop"] = [k for k in base if k not in config]
        try:
            parts.append(json.dumps(line, separators=(",", ":")).encode())
        except (TypeError, ValueError):  # (only a hand-made file could hold what JSON cannot: left out)
            continue
    body = b"\n".join(parts) + b"\n"
    head = {"unettui_index": FORMAT, "written": written, "files": _held(), "config": base,
            "sha1": hashlib.sha1(body).hexdigest()}
    path = index_path(project)
    try:
        path.parent.mkdir(exist_ok=True)
        atomic_write_bytes(path, json.dumps(head).encode() + b"\n" + body)
    except OSError:
        return False
    return True


def cached_toml(project: Path, text: str, parse: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """``parse(text)`` (tomllib.loads: 0.2 s for a queue file of 10,000 experiments), or the same data kept from the
    last parse of this very text (by its SHA-1) in runs/.index/queue.json. Only for texts of QUEUE_CACHE_MIN bytes
    or more; data JSON cannot hold exactly (TOML dates and times) is not kept. parse's errors propagate; the
    cache's never do."""
    if len(text) < QUEUE_CACHE_MIN:
        return parse(text)
    digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()
    path = index_path(project).with_name(QUEUE_CACHE)
    try:
        kept = parse_json(path.read_bytes())
        if isinstance(kept, dict) and kept.get("sha1") == digest and isinstance(kept.get("data"), dict):
            return kept["data"]
    except (OSError, ValueError):
        pass
    data = parse(text)
    try:
        raw = json.dumps({"sha1": digest, "data": data}, separators=(",", ":")).encode()
        path.parent.mkdir(exist_ok=True)
        atomic_write_bytes(path, raw)
    except (TypeError, ValueError, OSError):  # a date or time in the file, or a read-only project
        pass
    return data


_PACKAGE_ROOT = Path(__file__).resolve().parents[3]  # where this very unettui is imported from: the helper's too


def start_refresh(project: Path, min_runs: int) -> subprocess.Popen | None:
    """``refresh_index`` in a process of its own (``_helper``, imported from this very package), for a project of
    ``min_runs`` run folders or more: the TUI opening a large project without an index reads its first runs from
    their folders meanwhile, and the rest from the index the helper wrote (a second core: the TUI's threads share
    one GIL). None: too few runs, or no process could be started. The helper writes the index atomically, or
    nothing (a read-only project)."""
    if not sys.executable:  # (an embedded interpreter: no python to start)
        return None
    try:
        with os.scandir(Path(project) / RUNS_DIR) as entries:
            if sum(1 for e in entries if not e.name.startswith(".")) < min_runs:
                return None
        code = f"import sys; sys.path.insert(0, {str(_PACKAGE_ROOT)!r}); from {__name__} import _helper; _helper()"
        return subprocess.Popen([sys.executable, "-c", code, str(project), str(min_runs)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return None


def refresh_index(project: Path, min_runs: int = INDEX_MIN) -> int:
    """Write the index from the run folders as they are now (a runner does when its queue is done, so that the TUI
    opened afterwards reads one file: the sweep-over-SSH case). Runs being archived or with a file that cannot be
    read are left out. Returns how many runs it holds; 0: not written (fewer than ``min_runs`` runs, or a read-only
    project). Never raises."""
    root = Path(project) / RUNS_DIR
    try:
        names = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    except OSError:
        return 0
    if len(names) < min_runs:
        return 0
    written = 0

    def entries() -> Iterable[tuple[str, dict[str, Any]]]:
        nonlocal written
        for name in names:
            folder = f"{root}/{name}"
            read_at = time.time()
            stamp = folder_stamp(folder)
            if stamp is None:
                continue
            files, state = read_folder(folder, name, lines=False)
            if not indexable(files):
                continue
            written += 1
            yield name, entry(stamp, read_at, stamps_of(name, state), files)

    return written if write_index(project, entries(), time.time()) else 0


def _helper() -> None:
    """start_refresh's process: refresh_index of the project its first argument names (its second: min_runs)."""
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # (stopped: its temporary file is removed, not left)
    if hasattr(os, "nice"):
        os.nice(10)  # the TUI that started it comes first: its first rows on screen, its keys
    refresh_index(Path(sys.argv[1]), min_runs=int(sys.argv[2]))
