"""One reader of run folders for every face: the files of a run declared once (``RUN_FILES``: each file's name, how it
is read and where it goes in RunFiles), read whole (``read_run``: the CLI, ``collect``, the run index's refresh) or
followed (``RunReader``: the TUI's monitor: a file read again only when its stamp moved, JSON lines read on from where
they were left). The run index (core.runs.index) takes the files its entries hold from the same declaration, so a new
run file is one line of ``RUN_FILES`` (plus whatever shows it).

Nothing in a run folder makes a read raise: a file that is not UTF-8, not JSON, torn, or JSON of the wrong kind is
named (``runs/x/config.json holds a list, not a JSON object``) and the rest is read.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .store import (
    ARCHIVING,
    ATTEMPTS,
    CONFIG,
    METRICS,
    RUNS_DIR,
    STATUS,
    SUMMARY,
    Run,
    parse_json,
    parse_lines,
    read_json_checked,
)

# how a run file is read
OBJECT = "object"  # one JSON object: None when absent; a file that cannot be read is named (a problem)
LINES = "lines"  # JSON lines, one object per line, appended to: read on from where they were left
MARKER = "marker"  # only whether it is there: a run holding one is in the middle of an operation (not indexed)
COUNT = "count"  # a folder of numbered folders, counted

_NO_MORE: Mapping[str, Any] = MappingProxyType({})
_EMPTY = {OBJECT: None, LINES: None, MARKER: False, COUNT: 0}  # what a file not there reads as (LINES: [])


@dataclass(frozen=True)
class RunFile:
    """One file (or folder) of a run folder, and how it is read: ``kind`` (OBJECT, LINES, MARKER, COUNT); ``field``:
    RunFiles' attribute that holds what was read (None: ``RunFiles.more[name]``); ``damages``: an unreadable file
    makes the run damaged (RunFiles.status_problem) instead of being a problem listed beside it."""

    name: str
    kind: str
    field: str | None = None
    damages: bool = False

    @property
    def key(self) -> str:
        """Its name in a run index entry."""
        return self.field or self.name

    def value(self, files: RunFiles) -> Any:
        if self.field:
            return getattr(files, self.field)
        return files.more.get(self.name, [] if self.kind == LINES else _EMPTY[self.kind])

    def put(self, files: RunFiles, value: Any) -> None:
        if self.field:
            setattr(files, self.field, value)
        else:  # (a new dict: a copy of RunFiles shares its ``more``)
            files.more = {**files.more, self.name: value}


class RunFileTable:
    """The declared run files, in order (problems are listed in it), with the groups readers use kept ready; ``add``
    and ``remove`` change it in place (everything that reads runs sees the change)."""

    def __init__(self, files: Iterable[RunFile]):
        self._files: list[RunFile] = []
        for f in files:
            self.add(f)

    def add(self, spec: RunFile) -> None:
        if spec.kind not in _EMPTY:
            raise ValueError(f"run file {spec.name!r}: unknown kind {spec.kind!r} (one of {', '.join(_EMPTY)})")
        if any(f.name == spec.name for f in self._files):
            raise ValueError(f"run file {spec.name!r} is declared already")
        self._files.append(spec)
        self._group()

    def remove(self, name: str) -> None:
        self._files = [f for f in self._files if f.name != name]
        self._group()

    def __iter__(self) -> Iterator[RunFile]:
        return iter(self.all)

    def _group(self) -> None:
        self.all = tuple(self._files)
        self.objects = tuple(f for f in self.all if f.kind == OBJECT)
        # stat-ed with their folder by RunReader.still (a file rewritten in place moves its own stamp, not the
        # folder's), stamped in a run index entry
        self.watched = tuple(f.name for f in self.objects)
        self.lines = tuple(f for f in self.all if f.kind == LINES)
        self.markers = tuple(f for f in self.all if f.kind == MARKER)
        self.counts = tuple(f for f in self.all if f.kind == COUNT)
        self.stamped = tuple(f for f in self.all if f.kind != COUNT)  # what a refresh compares the stamps of
        self.indexed = tuple(f for f in self.all if f.kind in (OBJECT, COUNT))  # what an index entry holds
        self.problem_names = tuple(f.name for f in self.objects if not f.damages)  # (problems_of: the order of problems)
        self.lines_names = tuple(f.name for f in self.lines)


RUN_FILES = RunFileTable([
    RunFile(STATUS, OBJECT, "status", damages=True),
    RunFile(CONFIG, OBJECT, "config"),
    RunFile(SUMMARY, OBJECT, "summary"),
    RunFile(METRICS, LINES, "metrics"),
    RunFile(ARCHIVING, MARKER, "archiving"),  # the plan of an archive in progress (store.Run.archive_attempt)
    RunFile(ATTEMPTS, COUNT, "attempts"),  # earlier attempts kept (attempts/<n>/)
])


@dataclass
class RunFiles:
    """What was read of one run folder."""

    exists: bool = False
    status: dict[str, Any] | None = None
    status_problem: str | None = None
    config: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # files other than status.json that cannot be read
    archiving: bool = False
    attempts: int = 0
    # files declared without a field of their own, by name (RunFile.put makes a new dict: one shared empty mapping
    # until then, not a dict per run: 10,000 more objects for the garbage collector to walk)
    more: Mapping[str, Any] = field(default_factory=lambda: _NO_MORE)


@dataclass
class FileState:
    """What was last seen of one file of a run."""

    mtime: float = -1.0
    size: int = -1
    offset: int = 0  # bytes of a LINES file already read
    bad: int = 0  # its lines that could not be read
    problem: str | None = None  # what is wrong with an OBJECT file (not one that damages the run)
    recheck: float = 0.0  # 0: the file had been still for SETTLED seconds when it was last read (or is absent), so
    # (mtime, size) stand for what was read; else a rewrite within the clock tick of its mtime may hide behind the
    # same stamp, and this is the time.time() from which the file is read once more (then it has settled)


SETTLED = 2.0  # seconds a file (or folder) must have been still before it was read for its stamp to vouch for it
UNSEEN = (-2, -2)  # the stamp of a folder never looked at (no folder_stamp returns it)
_NONE = (-1.0, -1)  # FileState's stamp of a file not there


# ---- reading one file ------------------------------------------------------------------------------------------


def file_stamp(path: str | os.PathLike) -> tuple[float, int] | None:
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


def read_json_stamped(path: str) -> tuple[dict[str, Any] | None, str | None, tuple[float, int] | None]:
    """store.read_json_checked's answer and the file's stamp, in four system calls (open, fstat, read, close): what a
    first read of 10,000 runs does 30,000 times (Python's open() adds an isatty ioctl and a second fstat, and a
    separate stat for the stamp; each call also hands the GIL to the UI thread and waits to get it back). The stamp
    is that of the very file read."""
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
        value = parse_json(data)
        if type(value) is dict:
            return value, None, stamp
    except ValueError:  # (UnicodeDecodeError too)
        pass
    value, problem = read_json_checked(Path(path))  # which says what is wrong with it
    return value, problem, stamp


def read_lines(path: str, fs: FileState, stamp: tuple[float, int] | None,
               records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A JSON lines file from where ``fs`` says it was left (whole lines only; from the start when it shrank or
    ``records`` is empty), appended to ``records``; ``stamp``: the file's, taken before."""
    if not stamp:
        fs.offset, fs.bad = 0, 0
        return []
    size = stamp[1]
    if size < fs.offset or not records:  # rewritten (a resumed run), or not read yet: from the start
        fs.offset, fs.bad, records = 0, 0, []
    try:
        with open(path, "rb") as fh:
            fh.seek(fs.offset)
            chunk = fh.read(size - fs.offset)
    except OSError:
        return records
    got, bad, end = parse_lines(chunk)  # a line being written is read next time
    records.extend(got)
    fs.bad += bad
    fs.offset += end
    return records


def count_folders(path: str) -> int:
    """The numbered folders in ``path`` (a run's earlier attempts: attempts/<n>/)."""
    try:
        return sum(1 for e in os.scandir(path) if e.is_dir() and e.name.isdigit())
    except OSError:
        return 0


def recheck_at(stamp: tuple[float, int] | None, read_at: float) -> float:
    """FileState.recheck of a file of this (mtime, size) (None: absent) read at ``read_at`` (``time.time()``, taken
    before its stamp): 0 when it had been still for SETTLED seconds (no change of it can hide behind that stamp), else
    when it will have been (a read from then on is sure)."""
    return 0.0 if stamp is None or stamp[0] <= read_at - SETTLED else stamp[0] + SETTLED


def problems_of(run_id: str, state: dict[Any, FileState], run_key: bool = False) -> list[str]:
    """The problems of a run's files, in the order of RUN_FILES: each unreadable OBJECT file (but the one that
    damages the run), then each LINES file's unreadable lines; ``state``: each file's FileState by its name (by
    (run, name) with ``run_key``: RunReader.files)."""
    out = []
    get = state.get
    for name in RUN_FILES.problem_names:
        fs = get((run_id, name) if run_key else name)
        if fs is not None and fs.problem:
            out.append(fs.problem)
    for name in RUN_FILES.lines_names:
        fs = get((run_id, name) if run_key else name)
        if fs is not None and (bad := fs.bad):
            out.append(f"{RUNS_DIR}/{run_id}/{name}: {bad} unreadable line{'s' if bad > 1 else ''} skipped")
    return out


def summary_final(files: RunFiles) -> bool:
    """A finished run whose summary has its best val Dice: its metrics.jsonl (its LINES files) adds nothing to its
    row, and is read only when asked for."""
    best = (files.summary or {}).get("best_val_dice")
    return ((files.status or {}).get("state") in ("done", "failed") and isinstance(best, (int, float))
            and not isinstance(best, bool) and math.isfinite(best))


def indexable(files: RunFiles) -> bool:
    """Read whole and without a problem, and not in the middle of an operation (a MARKER): what a run index entry
    may stand for."""
    return (files.exists and not files.status_problem and not files.problems
            and not any(spec.value(files) for spec in RUN_FILES.markers))


# ---- a run folder read whole ---------------------------------------------------------------------------------


def _read_object(files: RunFiles, spec: RunFile, folder: str, rel: str) -> FileState:
    """An OBJECT file read into ``files``; its FileState (stamp and problem)."""
    value, problem, stamp = read_json_stamped(f"{folder}/{spec.name}")
    spec.put(files, value)
    text = f"{rel}/{spec.name} {problem}" if problem else None
    fs = FileState(*(stamp or _NONE))
    if spec.damages:
        files.status_problem = text
    else:
        fs.problem = text
    return fs


def _read_lines_whole(files: RunFiles, spec: RunFile, folder: str, fs: FileState) -> None:
    path = f"{folder}/{spec.name}"
    stamp = file_stamp(path)
    spec.put(files, read_lines(path, fs, stamp, []))
    fs.mtime, fs.size = stamp or _NONE


def read_folder(folder: str, run_id: str, lines: bool = True) -> tuple[RunFiles, dict[str, FileState]]:
    """The folder ``folder`` of run ``run_id`` read whole as it is now: every declared file (LINES files only with
    ``lines``), and what was seen of each file read (its stamp, its problem, how far lines were read)."""
    rel = f"{RUNS_DIR}/{run_id}"
    files = RunFiles(exists=True)
    state: dict[str, FileState] = {}
    for spec in RUN_FILES.objects:
        state[spec.name] = _read_object(files, spec, folder, rel)
    for spec in RUN_FILES.markers:
        stamp = file_stamp(f"{folder}/{spec.name}")
        state[spec.name] = FileState(*(stamp or _NONE))
        spec.put(files, stamp is not None)
    for spec in RUN_FILES.counts:
        spec.put(files, count_folders(f"{folder}/{spec.name}"))
    if lines:
        for spec in RUN_FILES.lines:
            _read_lines_whole(files, spec, folder, state.setdefault(spec.name, FileState()))
    files.problems = problems_of(run_id, state)
    return files, state


def stamps_of(run_id: str, state: dict[Any, FileState], run_key: bool = False) -> dict[str, tuple[float, int]]:
    """The (mtime, size) of each OBJECT file there when read (what a run index entry records); ``state``: each file's
    FileState by its name (by (run, name) with ``run_key``: RunReader.files)."""
    get = state.get
    return {name: (fs.mtime, fs.size) for name in RUN_FILES.watched
            if (fs := get((run_id, name) if run_key else name)) is not None and fs.size >= 0}


def read_run(run: Run, metrics: bool = True) -> RunFiles:
    """Read a run folder as it is now (its metrics.jsonl, its LINES files, only with ``metrics``); nothing in it can
    make this raise."""
    if not run.exists():
        return RunFiles()
    return read_folder(str(run.path), run.id, lines=metrics)[0]


# ---- run folders followed ---------------------------------------------------------------------------------------


class RunReader:
    """Run folders read again as they change, cheaply (the TUI's monitor, core.runs.index's entries aside): what was
    last seen of each file of each run (FileState: stamp, lines read so far), so that a run is read again only when a
    file's stamp moved, LINES files are read on from where they were left (from the start when one shrank, as a
    resumed run's metrics.jsonl does), and a file read less than SETTLED seconds after it changed is read once more
    when they have passed (a rewrite within the clock tick of its mtime keeps its stamp). LINES files are followed
    for runs that are not finished (``summary_final``) or whose lines are wanted; the others' are read on demand
    (``follow``). Not thread-safe: its owner holds a lock."""

    def __init__(self, root: str):
        self.root = root  # runs/
        self.files: dict[tuple[str, str], FileState] = {}  # (run, file) -> what was last seen of it
        self.snaps: dict[str, RunFiles] = {}  # run -> what was read of it (replaced, never changed in place)
        self.dirs: dict[str, tuple[int, int] | None] = {}  # run -> its folder_stamp when its files were last stat-ed
        self.read_at: dict[str, tuple[Any, float]] = {}  # run -> (folder_stamp, time.time()) when its files were read
        self.followed: set[str] = set()  # runs whose LINES files have been read (and are followed)
        self.dirty: set[str] = set()  # runs read from their folders (not from a run index entry); its owner empties it

    def still(self, run_id: str, folder: str, now: float) -> bool:
        """Each OBJECT file of the run in ``folder`` is as it was read: of the same (mtime, size), or still absent (a
        file rewritten in place moves its own mtime and size, not its folder's), and not due to be read once more
        (FileState.recheck), at ``now`` (``time.time()``). A stat each."""
        stat, files = os.stat, self.files
        for name in RUN_FILES.watched:
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

    def unchanged(self, run_id: str, folder: str, dir_now: tuple[int, int] | None, now: float) -> bool:
        """The run's folder has the stamp ``dir_now`` it had when its files were last stat-ed, and its files are
        ``still``."""
        return dir_now == self.dirs.get(run_id, UNSEEN) and (dir_now is None or self.still(run_id, folder, now))

    def read(self, run_id: str, has_run: bool, dir_now: tuple[int, int] | None, read_at: float, wanted: bool,
             must: bool) -> RunFiles | None:
        """What is in the run's folder now (``has_run``: it has one; ``dir_now``: its folder_stamp, taken at
        ``read_at``, ``time.time()``): a run seen for the first time is read whole, any other only in the files
        whose stamp moved (or due to be read once more); None when none did and not ``must``. ``wanted``: its LINES
        files are wanted (followed even for a finished run)."""
        self.dirs[run_id] = dir_now
        folder = f"{self.root}/{run_id}"
        old = self.snaps.get(run_id)
        if old is None and dir_now is not None:
            return self._first_read(run_id, folder, dir_now, read_at, wanted)
        files = old or RunFiles()
        follow = run_id in self.followed or wanted or not summary_final(files)
        stamps: list[tuple[RunFile, bool, FileState, tuple[float, int] | None]] = []
        for spec in RUN_FILES.stamped:
            fs = self.files.setdefault((run_id, spec.name), FileState())
            stamp = file_stamp(f"{folder}/{spec.name}") if has_run else None
            differs = (stamp or _NONE) != (fs.mtime, fs.size) or 0.0 < fs.recheck <= read_at
            stamps.append((spec, differs and (spec.kind != LINES or follow), fs, stamp))
        if old is not None and not must and not any(differs for _, differs, _, _ in stamps):
            return None
        files = copy.copy(files)
        files.exists = has_run
        rel = f"{RUNS_DIR}/{run_id}"
        self.read_at[run_id] = (dir_now, read_at)
        self.dirty.add(run_id)
        counted = False
        for spec, differs, fs, _ in stamps:
            if spec.kind == OBJECT and (differs or old is None):
                got = _read_object(files, spec, folder, rel)
                fs.problem = got.problem
                counted = True
        if counted:  # (an attempt archived moves status.json)
            for spec in RUN_FILES.counts:
                spec.put(files, count_folders(f"{folder}/{spec.name}") if has_run else 0)
        if run_id in self.followed or wanted or not summary_final(files):
            before = run_id in self.followed
            for spec, differs, fs, stamp in stamps:
                if spec.kind == LINES and (differs or not before):
                    records = list(spec.value(files)) if before else []
                    spec.put(files, read_lines(f"{folder}/{spec.name}", fs, stamp, records))
            self.followed.add(run_id)
        files.problems = problems_of(run_id, self.files, run_key=True)
        for spec, differs, fs, stamp in stamps:
            if spec.kind == MARKER:
                spec.put(files, stamp is not None)
            elif spec.kind == LINES and run_id not in self.followed:
                continue  # not read: the first time it is, its whole file is
            fs.mtime, fs.size = stamp or _NONE
            if spec.kind == OBJECT and (differs or old is None):
                fs.recheck = recheck_at(stamp, read_at)
        self.snaps[run_id] = files
        return files

    def _first_read(self, run_id: str, folder: str, dir_now: tuple[int, int], read_at: float,
                    wanted: bool) -> RunFiles:
        """A run folder seen for the first time: each file read with its stamp (read_folder)."""
        files, state = read_folder(folder, run_id, lines=False)
        for spec in RUN_FILES.stamped:
            fs = state.get(spec.name)
            if fs is not None:
                if spec.kind == OBJECT:
                    fs.recheck = recheck_at(None if fs.size < 0 else (fs.mtime, fs.size), read_at)
                self.files[(run_id, spec.name)] = fs
        self.read_at[run_id] = (dir_now, read_at)
        self.dirty.add(run_id)
        return self._first_view(run_id, folder, files, wanted)

    def adopt(self, run_id: str, dir_now: tuple[int, int], files: RunFiles, stamps: dict[str, Any],
              read_at: tuple[Any, float], wanted: bool) -> RunFiles:
        """A run seen for the first time whose folder was read elsewhere (a run index entry it still stands for):
        ``files`` and the ``stamps`` of its OBJECT files then, ``read_at``: (folder_stamp, time.time()) of that
        read; its LINES files are read when followed."""
        self.dirs[run_id] = dir_now
        for name, (mtime, size) in stamps.items():  # (a file not there: no FileState until there is one)
            self.files[(run_id, name)] = FileState(mtime, size)
        self.read_at[run_id] = read_at
        return self._first_view(run_id, f"{self.root}/{run_id}", files, wanted)

    def _first_view(self, run_id: str, folder: str, files: RunFiles, wanted: bool) -> RunFiles:
        """(A run seen for the first time, its other files read.) Its LINES files when they are followed (a run
        not finished, or wanted), its problems."""
        if wanted or not summary_final(files):
            self._follow(run_id, folder, files)
        files.problems = problems_of(run_id, self.files, run_key=True)
        self.snaps[run_id] = files
        return files

    def _follow(self, run_id: str, folder: str, files: RunFiles) -> None:
        """A run's LINES files read whole into ``files``; from now on they are followed."""
        for spec in RUN_FILES.lines:
            _read_lines_whole(files, spec, folder, self.files.setdefault((run_id, spec.name), FileState()))
        self.followed.add(run_id)

    def follow(self, run_id: str) -> RunFiles | None:
        """A run's LINES files read (its curves, asked for), and followed from now on; what is read of the run then
        (None: a run never read)."""
        files = self.snaps.get(run_id)
        if files is None:
            return None
        files = copy.copy(files)
        self._follow(run_id, f"{self.root}/{run_id}", files)
        files.problems = problems_of(run_id, self.files, run_key=True)
        self.snaps[run_id] = files
        return files

    def forget(self, run_id: str) -> None:
        """A run gone (no folder, no experiment): nothing of it is kept."""
        self.snaps.pop(run_id, None)
        self.dirs.pop(run_id, None)
        self.read_at.pop(run_id, None)
        self.followed.discard(run_id)
        for spec in RUN_FILES.all:
            self.files.pop((run_id, spec.name), None)

    def readings(self) -> Iterator[tuple[str, Any, float, dict[str, tuple[float, int]], RunFiles]]:
        """(run, its folder_stamp, time.time() of the read, the stamps of its OBJECT files, what was read) for every
        run read whole that a run index entry may stand for (``indexable``)."""
        for run_id, files in list(self.snaps.items()):
            at = self.read_at.get(run_id)
            if at is None or not indexable(files):
                continue
            yield run_id, at[0], at[1], stamps_of(run_id, self.files, run_key=True), files
