"""Edits of experiments.toml that keep the user's comments and layout: add, sweep, edit, move, duplicate, rm, retry, init, --set parsing.

Every edit takes the project's edit lock (``<project>/.experiments.toml.lock``), re-reads the file inside
it, changes only the text of the entry it appends or removes, checks the result (TOML, the exact data
it should now hold, and the queue's validation of the touched entries) and replaces the file
atomically. A refused edit writes nothing.

Why text surgery rather than tomlkit's document model: tomlkit attaches the comments written above a
table to the *previous* table and appends a new ``[[experiment]]`` after the last one of its array
(before a later ``[[sweep]]``), so removing or appending through it moves or eats the wrong comments.
Here a small TOML-aware line scanner finds each entry's lines, and tomllib verifies that the edited
text holds exactly the data intended; tomlkit renders the values.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import math
import re
import sys
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import tomlkit
from filelock import FileLock, Timeout

from ..runs.status import State, judge_run
from ..runs.store import RunStore, atomic_write_text
from .config import DEFAULTS, ConfigError, check_key, coerce, flatten, key_to_field
from .queue import (
    MAX_ID,
    MAX_SWEEP,
    QUEUE_FILE,
    Experiment,
    Queue,
    QueueError,
    load_queue,
    parse_queue,
    safe_id,
)
from .queue import sweep_prefix as queue_sweep_prefix

SWEEP_CONFIRM = 100  # a sweep of more experiments than this needs confirm_large=True (the CLI: --yes)
MAX_RANGE = 10_000  # values one START..STOP:N range may give
LOCK_FILE = ".experiments.toml.lock"
LOCK_TIMEOUT = 30.0  # seconds to wait for another edit (or the runner's claim) before giving up
SECTIONS = ("experiment", "sweep", "study")
RANGE_SYNTAX = "START..STOP:N (N evenly spaced values) or START..STOP:logN (N log-spaced values)"


class EditError(ValueError):
    """An edit that was refused; the message is one line saying what and what to do. Nothing was written."""


class LargeSweep(EditError):
    """The sweep expands to more than SWEEP_CONFIRM experiments and needs an explicit confirmation."""

    def __init__(self, count: int):
        self.count = count
        super().__init__(f"the sweep expands to {count} experiments (more than {SWEEP_CONFIRM}); "
                         "it needs an explicit confirmation")


# ---------------------------------------------------------------------------------------------
# --set values
# ---------------------------------------------------------------------------------------------

_DECIMAL = re.compile(r"^[+-]?(\d+\.\d*|\.\d+)([eE][+-]?\d+)?$")  # '1.' and '.5': not TOML, still numbers


def parse_value(text: str) -> Any:
    """A --set value as a TOML value (``1e-4`` float, ``20`` int, ``true`` bool, ``"adam"`` str, ``[1, 2]`` list);
    a bare word that is not TOML (``adam``, ``data/scans``) is the string itself."""
    s = text.strip()
    if not s or "\n" in s or "\r" in s:
        return s
    try:
        value = tomllib.loads(f"v = {s}")["v"]
    except tomllib.TOMLDecodeError:
        return float(s) if _DECIMAL.match(s) else s
    if isinstance(value, (datetime, date, time)):  # '2024-05-01' is a folder name here, not a date
        return s
    return value


def _split(item: str, where: str) -> tuple[str, str]:
    if "=" not in item:
        raise ConfigError(where, None, f"{item!r} is not key=value; e.g. {where} lr=1e-4")
    key, text = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(where, None, f"{item!r} has no key before '='; e.g. {where} lr=1e-4")
    if key == "id":
        raise ConfigError(where, "id", "the id is not a hyper-parameter; give it with --id ID")
    check_key(key, where)
    return key, text


def _for_key(key: str, value: Any, text: str) -> Any:
    """Read a value the way its key expects: text keys keep the literal text (``dataset=2024``), and
    ``True``/``False`` are accepted for booleans."""
    ftype = type(getattr(DEFAULTS, key_to_field(key)))
    if ftype is str and not isinstance(value, str):
        return text.strip()
    if ftype is bool and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def _check_value(key: str, value: Any, where: str, text: str) -> Any:
    value = _for_key(key, value, text)
    try:
        coerce(key, value, where)
    except ConfigError as exc:
        if isinstance(value, list) or (isinstance(value, str) and "," in value):
            raise ConfigError(where, key, f"{exc.message} (several values make a sweep: `unettui sweep --set {key}=a,b`)") from None
        raise
    return value  # as given: an int stays an int in the file even for a float key


def parse_setting(key: str, text: str, where: str = "--set") -> Any:
    """One value typed for ``key`` (``lr`` + ``"1e-4"`` -> 0.0001), read and checked exactly as ``--set key=text``;
    raises ConfigError with the CLI's message (the TUI's form validates its fields with it)."""
    check_key(key, where)
    return _check_value(key, parse_value(text), where, text)


def parse_assignments(items: list[str], where: str = "--set") -> dict[str, Any]:
    """``["lr=1e-4", "optimizer=adam"]`` -> ``{"lr": 0.0001, "optimizer": "adam"}``, each key and value checked."""
    out: dict[str, Any] = {}
    for item in items:
        key, text = _split(item, where)
        if key in out:
            raise ConfigError(where, key, "given twice; set each key once")
        out[key] = _check_value(key, parse_value(text), where, text)
    return out


def _split_commas(text: str) -> list[str]:
    """Split at commas outside quotes and brackets."""
    parts, depth, quote, cur = [], 0, "", []
    for c in text:
        if quote:
            quote = "" if c == quote else quote
        elif c in "\"'":
            quote = c
        elif c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(c)
    parts.append("".join(cur))
    return parts


def _number(text: str) -> int | float | None:
    v = parse_value(text)
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


_RANGE = re.compile(r"^\s*(?P<a>\S+?)\s*\.\.\s*(?P<b>[^\s:]+)\s*:\s*(?P<log>log)?\s*(?P<n>\d+)\s*$")


def _round(x: float) -> float:
    return float(f"{x:.12g}")  # 12 significant digits: 0.30000000000000004 -> 0.3


def expand_range(text: str, key: str = "value", where: str = "--set") -> list[int | float]:
    """``1..5:5`` -> [1, 2, 3, 4, 5]; ``0..1:5`` -> [0.0, 0.25, 0.5, 0.75, 1.0]; ``1e-4..1e-1:log4`` ->
    [0.0001, 0.001, 0.01, 0.1]. Both ends included. Integer ends give integers when every value is whole."""
    m = _RANGE.match(text)
    a = _number(m["a"]) if m else None
    b = _number(m["b"]) if m else None
    if m is None or a is None or b is None or int(m["n"]) < 2:
        raise ConfigError(where, key, f"bad range {text.strip()!r}: use {RANGE_SYNTAX}, with N >= 2; "
                                      f"e.g. {key}=1e-4..1e-1:log4 or {key}=0..0.5:6")
    n, log = int(m["n"]), bool(m["log"])
    if n > MAX_RANGE:
        raise ConfigError(where, key, f"bad range {text.strip()!r}: {n} values; a range gives at most {MAX_RANGE}")
    ints = isinstance(a, int) and isinstance(b, int)
    if log:
        if a <= 0 or b <= 0:
            raise ConfigError(where, key, f"bad range {text.strip()!r}: a log range needs START > 0 and STOP > 0")
        la, lb = math.log10(a), math.log10(b)
        values = [float(a)] + [_round(10 ** (la + (lb - la) * i / (n - 1))) for i in range(1, n - 1)] + [float(b)]
    else:
        if ints and (b - a) % (n - 1) == 0:
            return [a + (b - a) // (n - 1) * i for i in range(n)]
        values = [float(a)] + [_round(a + (b - a) * i / (n - 1)) for i in range(1, n - 1)] + [float(b)]
    if ints and all(v == round(v) for v in values):
        return [round(v) for v in values]
    return values


def _is_range(item: str) -> bool:
    return ".." in item and _number(item.split("..", 1)[0]) is not None


def parse_sweep_value(key: str, text: str, where: str = "--set") -> Any:
    """One sweep --set value: ``a,b,c``, a range (see expand_range), a TOML array, or one shared scalar."""
    items = _split_commas(text)
    if len(items) == 1 and not _is_range(items[0]):
        value = parse_value(text)
        if isinstance(value, list):
            return _check_list(key, [_for_key(key, v, str(v)) for v in value], where)
        return _check_value(key, value, where, text)
    values: list[Any] = []
    for item in items:
        if not item.strip():
            raise ConfigError(where, key, f"empty value in {text!r}; separate values with commas: {key}=a,b,c")
        if _is_range(item):
            values.extend(expand_range(item, key, where))
        else:
            values.append(_for_key(key, parse_value(item), item))
    return _check_list(key, values, where)


def _check_list(key: str, values: list[Any], where: str) -> list[Any]:
    if not values:
        raise ConfigError(where, key, f"no values; e.g. {key}=a,b,c")
    seen: set[str] = set()
    for v in values:
        coerce(key, v, where)
        text = json.dumps(float(v) if isinstance(v, int) and not isinstance(v, bool) else v, default=str)
        if text in seen:  # 1 and 1.0 are the same value, as == says
            raise ConfigError(where, key, f"value {format_value(v)} appears twice")
        seen.add(text)
    return values


def parse_sweep_assignments(items: list[str], where: str = "--set") -> dict[str, Any]:
    """``["optimizer=adam,sgd", "lr=1e-4..1e-2:log3", "epochs=5"]`` -> lists for swept keys, scalars for shared ones."""
    out: dict[str, Any] = {}
    for item in items:
        key, text = _split(item, where)
        if key in out:
            raise ConfigError(where, key, "given twice; list every value in one --set key=a,b,c")
        out[key] = parse_sweep_value(key, text, where)
    return out


def sweep_size(grid: dict[str, Any]) -> int:
    """How many experiments a sweep expands to: the product of its lists' lengths."""
    return math.prod(len(v) for v in grid.values() if isinstance(v, (list, tuple)))


def sweep_prefix(values: dict[str, Any]) -> str:
    """The id of a [[sweep]] without one, as the queue generates it (the prefix of its experiments' ids)."""
    flat = flatten({k: v for k, v in values.items() if k != "id"})
    return queue_sweep_prefix({k: v for k, v in flat.items() if isinstance(v, list)})


# ---------------------------------------------------------------------------------------------
# rendering values
# ---------------------------------------------------------------------------------------------


def _float(v: float) -> str:
    """Readable TOML floats: 0.001, 0.5, 20.0, but 1e-4 and 2.5e-5 rather than 0.0001 and 2.5e-05."""
    if not math.isfinite(v) or v == 0 or 1e-3 <= abs(v) < 1e6:
        return repr(v)
    sign, digits, exp = Decimal(repr(v)).normalize().as_tuple()
    mant = str(digits[0]) + ("." + "".join(map(str, digits[1:])) if len(digits) > 1 else "")
    text = f"{'-' if sign else ''}{mant}e{exp + len(digits) - 1}"
    return text if float(text) == v else repr(v)


def format_value(v: Any) -> str:
    """A value as TOML text (strings quoted); for the file and for messages."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _float(v)
    if isinstance(v, str):
        return tomlkit.string(v).as_string()
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(format_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} to experiments.toml")


def _render(section: str, entry_id: str | None, values: dict[str, Any], nl: str) -> str:
    lines = [f"[[{section}]]"]
    if entry_id is not None:
        lines.append(f"id = {format_value(entry_id)}")
    lines += [f"{key} = {format_value(v)}" for key, v in values.items()]  # dotted keys stay dotted
    return nl.join(lines) + nl


# ---------------------------------------------------------------------------------------------
# the file's structure: which lines belong to which [[experiment]] / [[sweep]]
# ---------------------------------------------------------------------------------------------

_HEADER = re.compile(r"^(\[\[?)(.*?)(\]\]?)\s*(#.*)?$")


@dataclass
class _Line:
    kind: str  # blank, comment, header, content (a key, or a continuation of a multi-line value)
    name: str | None = None  # header: the table's dotted name
    array: bool = False  # header: [[...]]
    start: bool = False  # content: the line starts a `key = value` (not a continuation of a multi-line value)
    eq: int | None = None  # content that starts a key: where its '=' is
    comment: int | None = None  # content: where a trailing '# comment' starts


def _header(s: str) -> _Line:
    m = _HEADER.match(s)
    if not m:
        return _Line("header")
    name = ".".join(p.strip().strip("\"'") for p in m[2].split("."))
    return _Line("header", name, m[1] == "[[" and m[3] == "]]")


def _scan(lines: list[str]) -> list[_Line]:
    """Classify each line, following multi-line strings and arrays so their lines are never taken for headers."""
    out: list[_Line] = []
    ml, depth = "", 0  # inside a multi-line string (its delimiter) / bracket depth of a value
    for raw in lines:
        line = raw.rstrip("\r\n")
        start = not ml and depth == 0
        if start:
            s = line.strip()
            if not s:
                out.append(_Line("blank"))
                continue
            if s.startswith("#"):
                out.append(_Line("comment"))
                continue
            if s.startswith("["):
                out.append(_header(s))
                continue
        ml, depth, eq, comment = _scan_line(line, ml, depth)
        out.append(_Line("content", start=start, eq=eq if start else None, comment=comment))
    return out


def _scan_line(line: str, ml: str, depth: int) -> tuple[str, int, int | None, int | None]:
    """Follow one line of a value: the multi-line string and bracket depth it leaves open, and where its
    first '=' and its trailing comment are (outside strings)."""
    eq = comment = None
    i, n = 0, len(line)
    while i < n:
        if ml:
            if ml == '"""' and line[i] == "\\":
                i += 2
                continue
            if line.startswith(ml, i):
                i += 3
                while i < n and line[i] == ml[0]:  # up to two quotes may end the string's content
                    i += 1
                ml = ""
                continue
            i += 1
            continue
        c = line[i]
        if c == "#":
            comment = i
            break
        if line.startswith('"""', i) or line.startswith("'''", i):
            ml, i = line[i:i + 3], i + 3
            continue
        if c in "\"'":
            j = i + 1
            while j < n and line[j] != c:
                j += 2 if (c == '"' and line[j] == "\\") else 1
            i = j + 1
            continue
        if c == "=" and eq is None and depth == 0:
            eq = i
        if c in "[{":
            depth += 1
        elif c in "]}":
            depth = max(0, depth - 1)
        i += 1
    return ml, depth, eq, comment


def _spans(kinds: list[_Line]) -> dict[str, list[tuple[int, int]]]:
    """For every [[experiment]] and [[sweep]] in file order: (first line, end line) of the text it owns —
    the comment block right above its header when a blank line separates that block from what precedes it,
    its header, keys and sub-tables, and comments directly below its last key. Free-standing comment blocks
    (separated by blank lines) belong to no entry and are never removed."""
    spans: dict[str, list[tuple[int, int]]] = {s: [] for s in SECTIONS}
    headers = [i for i, k in enumerate(kinds) if k.kind == "header"]
    for n, i in enumerate(headers):
        h = kinds[i]
        if not h.array or h.name not in SECTIONS:
            continue
        stop = next((j for j in headers[n + 1:] if not (kinds[j].name or "").startswith(h.name + ".")), len(kinds))
        start = i
        while start > 0 and kinds[start - 1].kind == "comment":
            start -= 1
        if start == i or start == 0 or kinds[start - 1].kind != "blank":
            start = i
        end = max(j for j in range(i, stop) if kinds[j].kind in ("header", "content")) + 1
        while end < stop and kinds[end].kind == "comment":
            end += 1
        spans[h.name].append((start, end))
    return spans


def _cut(text: str, section: str, index: int) -> str:
    """``text`` without the ``index``-th [[section]] entry, keeping the blank-line rhythm around it."""
    lines = text.splitlines(keepends=True)
    kinds = _scan(lines)
    start, end = _spans(kinds)[section][index]
    after = end
    while after < len(lines) and kinds[after].kind == "blank":
        after += 1
    if after == len(lines):  # last in the file: drop the blank lines around it too
        end = after
        while start > 0 and kinds[start - 1].kind == "blank":
            start -= 1
    elif start == 0 or kinds[start - 1].kind == "blank":
        end = after
    return "".join(lines[:start] + lines[end:])


# ---------------------------------------------------------------------------------------------
# reading and checking
# ---------------------------------------------------------------------------------------------


def queue_path(project: Path) -> Path:
    return Path(project) / QUEUE_FILE


def _require(path: Path) -> Path:
    """Refuse before taking the lock, so a mistyped --project leaves no lock file behind."""
    if not path.is_file():
        raise EditError(f"{path}: no queue file here; run `unettui init` first (or pass --project DIR)")
    return path


def _read(path: Path) -> str:
    _require(path)
    try:
        with open(path, encoding="utf-8", newline="") as fh:  # keep \r\n line ends as they are
            return fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise EditError(f"{path}: cannot be read: {exc}") from None


def _data(text: str, path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise EditError(f"{path}: not valid TOML: {exc}; fix it by hand first") from None
    for section in SECTIONS:
        if section in data and not isinstance(data[section], list):
            raise EditError(f"{path}: '{section}' must be an array of tables: [[{section}]]; fix it by hand first")
    return data


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The same TOML data: tables compared regardless of key order, arrays in order (NaN equal to NaN)."""
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _parse(text: str, path: Path) -> Queue:
    """The queue that ``text`` would be, as the runner will read it."""
    return parse_queue(tomllib.loads(text), path, text)


@dataclass
class Entry:
    """One [[experiment]] or [[sweep]] of the file: its own id and the ids of the experiments it defines."""

    section: str
    index: int  # among the entries of its section, in file order
    id: str
    experiments: list[str] = field(default_factory=list)


_NO_FILE = Path(QUEUE_FILE)  # one entry on its own: no text needed for order or lines


def _entries(data: dict[str, Any]) -> list[Entry]:
    out = []
    for section in SECTIONS:
        for index, raw in enumerate(data.get(section, [])):
            exps = parse_queue({section: [raw]}, _NO_FILE, "").experiments if isinstance(raw, dict) else []
            if not exps or exps[0].id.startswith(f"invalid-{section}-"):
                out.append(Entry(section, index, f"invalid-{section}-{index + 1}"))
            elif section == "experiment":
                out.append(Entry(section, index, exps[0].id, [exps[0].id]))
            else:
                out.append(Entry(section, index, raw.get("id") or sweep_prefix(raw), [e.id for e in exps]))
    return out


def _write(path: Path, text: str) -> None:
    # a symlinked experiments.toml stays a symlink; atomic_write_text keeps the file's permissions
    atomic_write_text(path.resolve(), text)


@contextlib.contextmanager
def _held(lock_path: Path, timeout: float, busy: str):
    """Hold a FileLock on ``lock_path``; a lock still busy after ``timeout`` seconds is an EditError."""
    lock = FileLock(str(lock_path), timeout=timeout)
    try:
        lock.acquire()
    except Timeout:
        raise EditError(f"{lock_path}: {busy} has held the lock for {timeout:.0f} s; try again") from None
    except OSError as exc:
        raise EditError(f"cannot lock {lock_path}: {exc.strerror or exc}") from None
    try:
        yield
    finally:
        lock.release()


def _locked(project: Path):
    """The edit lock of experiments.toml: every writer re-reads the file inside it, so no edit is lost."""
    return _held(Path(project) / LOCK_FILE, LOCK_TIMEOUT, "another edit of experiments.toml")


# ---------------------------------------------------------------------------------------------
# appending: add and sweep
# ---------------------------------------------------------------------------------------------


def _check_keys(values: dict[str, Any], where: str) -> None:
    for key in values:
        check_key(key, where)


def check_id(entry_id: str) -> str:
    """Refuse an id that is not filesystem-safe (it names the run folder); return it unchanged."""
    if safe_id(entry_id) != entry_id or not entry_id.strip():
        raise ConfigError("id", None, f"{entry_id!r} is not filesystem-safe; use letters, digits, '.', '_' and '-' "
                                      f"(e.g. {safe_id(entry_id)!r})")
    return entry_id


def _id_user(entry_id: str, entries: list[Entry], skip: Entry | None = None) -> str | None:
    """Which other entry (not ``skip``) uses ``entry_id``, as its own id or as one of a sweep's experiments."""
    for e in entries:
        if e is not skip and (entry_id == e.id or entry_id in e.experiments):
            return f"[[{e.section}]] '{e.id}'" + ("" if entry_id == e.id else " (one of its experiments)")
    return None


def _check_id_free(entry_id: str, entries: list[Entry], skip: Entry | None = None) -> None:
    what = _id_user(entry_id, entries, skip)
    if what:
        raise EditError(f"id '{entry_id}' is already used by {what}; choose another id")


def _plan_append(project: Path, section: str, entry_id: str | None, values: dict[str, Any]) -> tuple[str, list[Experiment]]:
    """The new file text with the entry appended, and the experiments the entry defines; raises on any problem."""
    path = queue_path(project)
    text = _read(path)
    old = _data(text, path)
    try:
        before = parse_queue(old, path)
    except QueueError as exc:
        raise EditError(f"{exc}; fix experiments.toml before adding to it") from None
    if entry_id is not None:
        check_id(entry_id)
        _check_id_free(entry_id, _entries(old))

    nl = "\r\n" if "\r\n" in text else "\n"
    base = text if not text or text.endswith("\n") else text + nl
    if base.strip() and not base.endswith(nl + nl):
        base += nl  # one blank line between entries
    new_text = base + _render(section, entry_id, values, nl)

    # the edited file must hold exactly the old data plus this entry ...
    try:
        new = tomllib.loads(new_text)
    except tomllib.TOMLDecodeError as exc:
        raise EditError(f"{path}: appending [[{section}]] would make the file invalid TOML ({exc}); nothing was changed") from None
    expected = dict(old)
    expected[section] = [*old.get(section, []), tomllib.loads(_render(section, entry_id, values, "\n"))[section][0]]
    if not _same(new, expected):
        raise EditError(f"{path}: cannot append [[{section}]] safely to this file's layout; add it by hand")
    # ... and the entry must be valid where it stands (problems elsewhere in the file are not ours to judge)
    after = _parse(new_text, path)
    added = after.experiments[len(before.experiments):]
    for exp in added:
        if exp.error:
            err = exp.error
            if err.key == "id" and "duplicate" in err.message and entry_id is None:
                raise ConfigError(err.where, err.key, err.message + "; the id is generated from the keys: give one explicitly")
            raise err
    return new_text, added


def add_experiment(project: Path, values: dict[str, Any], exp_id: str | None = None) -> str:
    """Append an [[experiment]] setting ``values`` (canonical keys) and return its id (``exp_id`` or the
    one the queue generates from its keys)."""
    _check_keys(values, "add")
    _require(queue_path(project))
    with _locked(project):
        new_text, added = _plan_append(project, "experiment", exp_id, values)
        _write(queue_path(project), new_text)
    return added[0].id


def _grid(grid: dict[str, Any]) -> dict[str, Any]:
    if not grid:
        raise EditError("a sweep needs at least one key with several values, e.g. --set lr=1e-4,1e-3")
    _check_keys(grid, "sweep")
    return {k: list(v) if isinstance(v, tuple) else v for k, v in grid.items()}


def _check_size(count: int) -> None:
    if count > MAX_SWEEP:
        raise EditError(f"the sweep expands to {count:,} experiments; one sweep can hold at most {MAX_SWEEP:,} "
                        "(split it, or sweep fewer values)")


def expand_preview(project: Path, grid: dict[str, Any], sweep_id: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """The (id, overrides) of every experiment ``add_sweep`` would add, in order; writes nothing."""
    grid = _grid(grid)
    _check_size(sweep_size(grid))
    _, added = _plan_append(project, "sweep", sweep_id, grid)
    return [(e.id, e.overrides) for e in added]


def add_sweep(project: Path, grid: dict[str, Any], sweep_id: str | None = None, confirm_large: bool = False) -> list[str]:
    """Append a [[sweep]] (lists are swept, scalars shared) and return the ids of its experiments.
    Raises LargeSweep for more than SWEEP_CONFIRM experiments unless ``confirm_large``."""
    grid = _grid(grid)
    count = sweep_size(grid)
    _check_size(count)
    if count > SWEEP_CONFIRM and not confirm_large:
        raise LargeSweep(count)
    _require(queue_path(project))
    with _locked(project):
        new_text, added = _plan_append(project, "sweep", sweep_id, grid)
        _write(queue_path(project), new_text)
    return [e.id for e in added]


# ---------------------------------------------------------------------------------------------
# removing
# ---------------------------------------------------------------------------------------------


def _nearest(word: str, ids: list[str]) -> str:
    close = difflib.get_close_matches(word, ids, n=3, cutoff=0.5)
    close += [i for i in ids if word and word in i and i not in close][: max(0, 3 - len(close))]
    if close:
        return "did you mean " + ", ".join(f"'{c}'" for c in close) + "?"
    if ids:
        shown = ", ".join(ids[:8]) + (", ..." if len(ids) > 8 else "")
        return f"ids in the queue: {shown}"
    return "the queue is empty"


def remove_entries(project: Path, ids: list[str]) -> list[Entry]:
    """Remove [[experiment]] entries by id and whole [[sweep]] and [[study]] entries by their own id; all or nothing.
    Runs in runs/ are not touched. Returns the removed entries."""
    if not ids:
        raise EditError("name the experiments or sweeps to remove")
    path = _require(queue_path(project))
    with _locked(project):
        text = _read(path)
        old = _data(text, path)
        entries = _entries(old)
        known = [*dict.fromkeys([e.id for e in entries] + [x for e in entries for x in e.experiments])]
        chosen: list[Entry] = []
        for want in dict.fromkeys(ids):
            own = [e for e in entries if e.id == want]
            if len({e.section for e in own}) > 1:
                raise EditError(f"'{want}' names both an [[experiment]] and a [[sweep]]; remove one by hand in {path}")
            if not own:
                sweep = next((e for e in entries if e.section == "sweep" and want in e.experiments), None)
                if sweep:
                    k = sweep.experiments.index(want) + 1
                    raise EditError(f"'{want}' is item {k} of {len(sweep.experiments)} of [[sweep]] '{sweep.id}'; remove "
                                    f"the whole sweep (`unettui rm {sweep.id}`) or edit its lists in {path.name}")
                study = next((e for e in entries if e.section == "study" and want.startswith(e.id + "-")), None)
                if study:
                    raise EditError(f"'{want}' is an experiment of [[study]] '{study.id}'; remove the whole study "
                                    f"(`unettui rm {study.id}`; its runs stay in runs/), change its stages in {path.name}, "
                                    f"or train it again with `unettui retry {want}`")
                raise EditError(f"unknown id '{want}' in {path}; {_nearest(want, known)}")
            chosen += [e for e in own if e not in chosen]

        new_text = text
        for e in sorted(chosen, key=lambda e: (e.section, e.index), reverse=True):
            if len(_spans(_scan(new_text.splitlines(keepends=True)))[e.section]) != len(old.get(e.section, [])):
                raise EditError(f"{path}: cannot find the [[{e.section}]] tables in the text (inline arrays?); "
                                f"remove '{e.id}' by hand")
            new_text = _cut(new_text, e.section, e.index)
        expected = dict(old)
        for section in SECTIONS:
            gone = {e.index for e in chosen if e.section == section}
            if gone:
                kept = [x for i, x in enumerate(old[section]) if i not in gone]
                if kept:
                    expected[section] = kept
                else:
                    del expected[section]
        try:
            ok = _same(tomllib.loads(new_text), expected)
        except tomllib.TOMLDecodeError:
            ok = False
        if not ok:
            raise EditError(f"{path}: cannot remove {', '.join(e.id for e in chosen)} safely from this file's layout; "
                            "remove by hand")
        try:
            parse_queue(old, path)
        except QueueError:
            pass  # an already broken file: removing entries cannot make it worse
        else:
            _parse(new_text, path)  # raises QueueError if the removal broke the file as a whole
        _write(path, new_text)
    return chosen


def remove(project: Path, ids: list[str]) -> list[str]:
    """Remove experiments and whole sweeps by id (see remove_entries); returns the ids removed."""
    return [e.id for e in remove_entries(project, ids)]


# ---------------------------------------------------------------------------------------------
# changing one entry in place: edit, move, duplicate
# ---------------------------------------------------------------------------------------------


def _lookup(entries: list[Entry], want: str, path: Path) -> tuple[Entry, int | None]:
    """The entry ``want`` names — an experiment's id, a sweep's own id, or one of a sweep's experiments
    (then also its position in the sweep)."""
    own = [e for e in entries if e.id == want]
    if len(own) > 1:
        raise EditError(f"'{want}' names {len(own)} entries of {path}; give them different ids by hand first")
    if own:
        return own[0], None
    for e in entries:
        if e.section == "sweep" and want in e.experiments:
            return e, e.experiments.index(want)
    known = [*dict.fromkeys([e.id for e in entries] + [x for e in entries for x in e.experiments])]
    raise EditError(f"unknown id '{want}' in {path}; {_nearest(want, known)}")


def _experiment_entry(entries: list[Entry], want: str, path: Path) -> Entry:
    """The [[experiment]] entry of id ``want``; a sweep or one of its experiments is refused, naming the sweep."""
    entry, item = _lookup(entries, want, path)
    if item is not None:
        raise EditError(f"'{want}' is item {item + 1} of {len(entry.experiments)} of [[sweep]] '{entry.id}'; edit the "
                        f"sweep's lists in {path.name}, or duplicate it as an [[experiment]] to change it alone")
    if entry.section != "experiment":
        raise EditError(f"'{want}' is a [[sweep]] of {len(entry.experiments)} experiments; edit its lists in {path.name}")
    return entry


def _own_values(raw: dict[str, Any]) -> dict[str, Any]:
    return flatten({k: v for k, v in raw.items() if k != "id"})


def experiment_values(project: Path, exp_id: str) -> dict[str, Any]:
    """The keys an [[experiment]] entry sets itself (canonical, flattened; [defaults] not applied), e.g. to fill
    in a form for update_experiment. A sweep's experiment is refused like update_experiment refuses it."""
    path = queue_path(project)
    old = _data(_read(path), path)
    entry = _experiment_entry(_entries(old), exp_id, path)
    return _own_values(old["experiment"][entry.index])


def _lines(text: str) -> tuple[str, list[str], list[_Line]]:
    """The file's newline, its lines (the last one given a newline if it had none) and their kinds."""
    nl = "\r\n" if "\r\n" in text else "\n"
    if text and not text.endswith("\n"):
        text += nl
    lines = text.splitlines(keepends=True)
    return nl, lines, _scan(lines)


def _entry_spans(lines: list[_Line], data: dict[str, Any], path: Path, what: str) -> dict[str, list[tuple[int, int]]]:
    spans = _spans(lines)
    for section in SECTIONS:
        if len(spans[section]) != len(data.get(section, [])):
            raise EditError(f"{path}: cannot find the [[{section}]] tables in the text (inline arrays?); {what} by hand")
    return spans


@dataclass
class _Stmt:
    """One ``key = value`` of an entry (over several lines for a multi-line value)."""

    start: int
    end: int
    table: str  # "" for the entry's own table, else the sub-table below it: "augment" for [experiment.augment]
    key: str  # the canonical key it writes ("augment.rotate"), or an inline table's path ("augment")
    values: dict[str, Any]  # the canonical keys it sets, with their values
    inline: bool  # key = { ... }


def _statements(lines: list[str], kinds: list[_Line], start: int, end: int) -> tuple[int, list[_Stmt], dict[str, int]]:
    """An entry's header line, its statements, and the header line of each of its tables ("" = its own)."""
    header = next(i for i in range(start, end) if kinds[i].kind == "header")
    section = kinds[header].name or ""
    tables, stmts, table = {"": header}, [], ""
    i = header + 1
    while i < end:
        k = kinds[i]
        if k.kind == "header":
            if k.array or not (k.name or "").startswith(section + "."):
                raise ValueError(f"sub-table {lines[i].strip()}")
            table = k.name[len(section) + 1:]
            tables[table] = i
        elif k.kind == "content" and k.start:
            j = i + 1
            while j < end and kinds[j].kind == "content" and not kinds[j].start:
                j += 1
            if k.eq is None:
                raise ValueError(f"line {i + 1}")
            prefix = f"{table}." if table else ""
            (key,) = flatten(tomllib.loads(lines[i][:k.eq] + "= 0"))  # TOMLDecodeError is a ValueError
            values = {prefix + name: v for name, v in flatten(tomllib.loads("".join(lines[i:j]))).items()}
            inline = lines[i][k.eq + 1:].lstrip().startswith("{")
            stmts.append(_Stmt(i, j, table, prefix + key, values, inline))
            i = j
            continue
        i += 1
    return header, stmts, tables


def _set_line(lines: list[str], kinds: list[_Line], s: _Stmt, value_text: str, nl: str) -> str:
    """Statement ``s`` as one line with a new value, its key written as before and a trailing comment kept
    (at the same column when the new value leaves room)."""
    first, last = lines[s.start], lines[s.end - 1]
    eq = kinds[s.start].eq
    after = first.rstrip("\r\n")[eq + 1:]
    new = first[:eq + 1] + after[:len(after) - len(after.lstrip())] + value_text
    body = last.rstrip("\r\n")
    at = kinds[s.end - 1].comment
    if at is not None:
        gap = len(body[:at]) - len(body[:at].rstrip())
        pad = max(at - len(new), 1 if gap else 0) if s.end - s.start == 1 else 1
        new += " " * pad + body[at:]
    return new + (last[len(body):] or nl)


def _inline_text(s: _Stmt, values: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k[len(s.key) + 1:]} = {format_value(v)}" for k, v in values.items()) + "}"


def _apply(lines: list[str], ops: list[tuple[int, int, list[str]]]) -> str:
    """Replace line ranges (start, end) by new lines, bottom up; at one line, a replacement before an insertion
    (start == end), so inserted lines land above it."""
    out = list(lines)
    for start, end, new in sorted(ops, key=lambda op: (op[0], op[1]), reverse=True):
        out[start:end] = new
    return "".join(out)


def _updated_text(text: str, entry: Entry, old: dict[str, Any], values: dict[str, Any], new_id: str | None,
                  path: Path) -> str:
    nl, lines, kinds = _lines(text)
    start, end = _entry_spans(kinds, old, path, f"edit '{entry.id}'")["experiment"][entry.index]
    try:
        header, stmts, tables = _statements(lines, kinds, start, end)
    except ValueError as exc:
        raise EditError(f"{path}: cannot read [[experiment]] '{entry.id}' ({exc}); edit it by hand") from None
    ops: list[tuple[int, int, list[str]]] = []
    inserts: dict[int, list[str]] = {}
    plain = {s.key: s for s in stmts if not s.inline}
    inline: dict[int, dict[str, Any]] = {}  # statement index -> its new values

    def table_end(table: str) -> int:
        return max((s.end for s in stmts if s.table == table), default=tables[table] + 1)

    for key, value in values.items():
        s = plain.get(key)
        if s is not None:
            ops.append((s.start, s.end, [] if value is None else [_set_line(lines, kinds, s, format_value(value), nl)]))
            continue
        owner = next((n for n, s in enumerate(stmts) if s.inline and key.startswith(s.key + ".")), None)
        if owner is not None:
            now = inline.setdefault(owner, dict(stmts[owner].values))
            if value is None:
                now.pop(key, None)
            else:
                now[key] = value
        elif value is not None:  # a new key: at the end of its table ([experiment.augment] for augment.*, if any)
            table = max((t for t in tables if t and key.startswith(t + ".")), key=len, default="")
            inserts.setdefault(table_end(table), []).append(f"{key[len(table) + 1:] if table else key} = "
                                                            f"{format_value(value)}{nl}")
    for n, now in inline.items():
        s = stmts[n]
        ops.append((s.start, s.end, [_set_line(lines, kinds, s, _inline_text(s, now), nl)] if now else []))
    if new_id is not None:
        id_line = f"id = {format_value(new_id)}{nl}"
        if "id" in plain:
            ops.append((plain["id"].start, plain["id"].end, [_set_line(lines, kinds, plain["id"], format_value(new_id), nl)]))
        else:
            inserts.setdefault(header + 1, []).insert(0, id_line)
    # a sub-table left without keys goes too (its comments stay)
    gone = {op[0] for op in ops if not op[2]}
    for table, at in tables.items():
        mine = [s for s in stmts if s.table == table]
        if table and mine and all(s.start in gone for s in mine) and table_end(table) not in inserts:
            ops.append((at, at + 1, []))
    ops += [(at, at, new) for at, new in inserts.items()]
    return _apply(lines, ops)


def update_experiment(project: Path, exp_id: str, values: dict[str, Any], new_id: str | None = None) -> str:
    """Change the keys of one [[experiment]] in place and return its id afterwards (``new_id``, or the one
    generated from its new keys when the entry has no ``id =``).

    ``values`` maps canonical keys to new values; ``None`` removes the key (so [defaults] applies). A key the
    entry sets keeps its line, spelling (dotted, in a sub-table or an inline table) and trailing comment; a
    new key goes at the end of its table. Everything else in the file stays byte for byte. ``new_id`` renames
    the entry. A sweep's experiment, an unknown id or a result that does not validate is refused."""
    values = dict(values)
    if "id" in values:
        raise ConfigError("edit", "id", "the id is not a hyper-parameter; rename with new_id")
    _check_keys({k: v for k, v in values.items() if v is not None}, "edit")  # None may clear a misspelt key
    if new_id is not None:
        check_id(new_id)
    path = _require(queue_path(project))
    with _locked(project):
        text = _read(path)
        old = _data(text, path)
        try:
            parse_queue(old, path, text)
        except QueueError as exc:
            raise EditError(f"{exc}; fix experiments.toml before editing it") from None
        entries = _entries(old)
        entry = _experiment_entry(entries, exp_id, path)
        raw = old["experiment"][entry.index]
        if new_id == raw.get("id"):
            new_id = None
        if new_id is not None:
            _check_id_free(new_id, entries, skip=entry)
        own = _own_values(raw)
        for key, value in values.items():
            if value is None and key not in own:
                check_key(key, "edit")
        new_text = _updated_text(text, entry, old, values, new_id, path)

        # the edited file must hold the old data with only this entry's keys changed ...
        want = flatten(raw)
        for key, value in values.items():
            if value is None:
                want.pop(key, None)
            else:
                want[key] = value
        if new_id is not None:
            want["id"] = new_id
        try:
            new = tomllib.loads(new_text)
        except tomllib.TOMLDecodeError:
            new = {}
        others = [x for i, x in enumerate(old["experiment"]) if i != entry.index]
        got = new.get("experiment", [])
        if not (len(got) == len(old["experiment"]) and _same(flatten(got[entry.index]), want)
                and _same({**new, "experiment": [x for i, x in enumerate(got) if i != entry.index]},
                          {**old, "experiment": others})):
            raise EditError(f"{path}: cannot edit '{exp_id}' safely in this file's layout; edit it by hand")
        # ... and the entry must be valid, under an id of its own
        after = _parse(new_text, path)
        new_entries = _entries(new)
        mine = next(e for e in new_entries if e.section == "experiment" and e.index == entry.index)
        what = _id_user(mine.id, new_entries, skip=mine)
        if what:
            how = "; choose another id" if new_id is not None or "id" in raw else \
                  ", and it has no id of its own (it is generated from its keys); give it one"
            raise EditError(f"id '{mine.id}' is already used by {what}{how}")
        for exp in after.experiments:
            if exp.id == mine.id and exp.error:
                raise exp.error
        if new_text != text:
            _write(path, new_text)
    return mine.id


def move(project: Path, entry_id: str, delta: int) -> bool:
    """Move an [[experiment]], or a whole [[sweep]] (by its own id or one of its experiments' ids), ``delta``
    entries down (positive) or up (negative) among the [[experiment]] and [[sweep]] entries, swapping places
    with each neighbour in turn; the runner follows the file order, so this reorders the queue. The entry takes
    the comment block attached to it (as remove defines it); blank lines, free-standing comments and other
    tables stay where they are. Returns False, writing nothing, when it is already first / last."""
    if isinstance(delta, bool) or not isinstance(delta, int):
        raise TypeError(f"delta must be an int, got {delta!r}")
    path = _require(queue_path(project))
    with _locked(project):
        text = _read(path)
        old = _data(text, path)
        entry, _ = _lookup(_entries(old), entry_id, path)
        try:
            before = [e.id for e in parse_queue(old, path, text).experiments]
        except QueueError:
            before = None  # an already broken file: reorder it all the same, the data check below still holds
        expected = {s: list(old.get(s, [])) for s in SECTIONS}
        key = (entry.section, entry.index)
        moved = False
        for _ in range(abs(delta)):
            _, lines, kinds = _lines(text)
            spans = _entry_spans(kinds, old, path, f"move '{entry_id}'")
            order = sorted(((s, i) for s in SECTIONS for i in range(len(spans[s]))), key=lambda k: spans[k[0]][k[1]][0])
            pos = order.index(key)
            other = pos + (1 if delta > 0 else -1)
            if not 0 <= other < len(order):
                break
            (a_sec, a_i), (b_sec, b_i) = sorted([key, order[other]], key=lambda k: spans[k[0]][k[1]][0])
            (a0, a1), (b0, b1) = spans[a_sec][a_i], spans[b_sec][b_i]
            text = "".join(lines[:a0] + lines[b0:b1] + lines[a1:b0] + lines[a0:a1] + lines[b1:])
            if a_sec == b_sec:
                arr = expected[a_sec]
                arr[a_i], arr[b_i] = arr[b_i], arr[a_i]
                key = (entry.section, b_i if key == (a_sec, a_i) else a_i)
            moved = True
        if not moved:
            return False
        want = {**old, **{s: v for s, v in expected.items() if s in old}}
        try:
            ok = _same(tomllib.loads(text), want)
        except tomllib.TOMLDecodeError:
            ok = False
        if ok and before is not None:
            ok = sorted(e.id for e in _parse(text, path).experiments) == sorted(before)
        if not ok:
            raise EditError(f"{path}: cannot move '{entry_id}' safely in this file's layout; move it by hand")
        _write(path, text)
    return True


def _copy_id(base: str, entries: list[Entry], project: Path) -> str:
    """``<base>-copy``, ``-copy2``, ...: the first id no entry, sweep experiment or run folder uses (a run
    folder left by an earlier copy would otherwise pass for the new copy's results)."""
    taken = {e.id for e in entries} | {x for e in entries for x in e.experiments}
    store = RunStore(project)
    n = 1
    while True:
        suffix = "-copy" if n == 1 else f"-copy{n}"
        candidate = safe_id(base[:MAX_ID - len(suffix)] + suffix)
        if candidate not in taken and not store.run(candidate).exists():
            return candidate
        n += 1


def duplicate(project: Path, entry_id: str) -> str:
    """Append a copy of an entry's own keys (not [defaults]) under a new id, ``<id>-copy`` (``-copy2``, ...),
    and return that id. A sweep's experiment becomes an [[experiment]] with that experiment's keys; a
    sweep's own id copies the whole [[sweep]]."""
    path = _require(queue_path(project))
    with _locked(project):
        text = _read(path)
        old = _data(text, path)
        entries = _entries(old)
        entry, item = _lookup(entries, entry_id, path)
        raw = old[entry.section][entry.index]
        if item is not None:
            section, values = "experiment", parse_queue({"sweep": [raw]}, _NO_FILE, "").experiments[item].overrides
        else:
            section, values = entry.section, _own_values(raw)
        new_id = _copy_id(entry_id, entries, project)
        new_text, _ = _plan_append(project, section, new_id, values)
        _write(path, new_text)
    return new_id


# ---------------------------------------------------------------------------------------------
# retry
# ---------------------------------------------------------------------------------------------


def retry(project: Path, ids: list[str] | None = None, failed: bool = False) -> list[str]:
    """Make finished runs train again from scratch on the next `unettui run`: each run's files move to
    runs/<id>/attempts/<n>/ (log, status, metrics, summary, config kept; checkpoint and previews dropped).

    Named ids may be failed, interrupted or done runs (a done run is re-trained); ``failed`` adds every
    failed run of the queue. A running run, an experiment that has not run, or an id not in the queue is
    refused — all or nothing. Done under the runner's queue lock, so no runner claims a run meanwhile."""
    ids = list(dict.fromkeys(ids or []))
    if not ids and not failed:
        raise EditError("name the experiments to retry, or pass --failed for every failed run")
    queue = load_queue(project)  # QueueError: no or broken queue file
    store = RunStore(project)
    # no runs/ yet: nothing to archive and nothing to race with (and no empty runs/ left behind by a refusal)
    held = _held(store.lock_path(), 60.0, "a runner claiming a run") if store.root.is_dir() else contextlib.nullcontext()
    with held:
        chosen: list[str] = []
        for exp_id in ids:
            exp = queue.get(exp_id)
            run = store.run(exp_id)
            if exp is None:
                if run.exists():
                    raise EditError(f"'{exp_id}' is not in the queue (its run folder stays in runs/); add it back "
                                    "to experiments.toml to train it again")
                raise EditError(f"unknown id '{exp_id}'; {_nearest(exp_id, [e.id for e in queue.experiments])}")
            if not exp.valid:
                raise EditError(f"'{exp_id}' has an invalid definition ({exp.error}); fix it first")
            state = judge_run(run, exp.config).state
            if state is State.RUNNING:
                st = run.status() or {}
                raise EditError(f"'{exp_id}' is running on host {st.get('host', '?')} pid {st.get('pid', '?')}; stop it first")
            if state is State.PENDING and not run.file("status.json").exists():
                raise EditError(f"'{exp_id}' has not run yet (pending); `unettui run` trains it")
            chosen.append(exp_id)
        if failed:
            chosen += [e.id for e in queue.experiments
                       if e.valid and e.id not in chosen and judge_run(store.run(e.id), e.config).state is State.FAILED]
        for exp_id in chosen:
            store.run(exp_id).archive_attempt("retried by `unettui retry`")
    return chosen


# ---------------------------------------------------------------------------------------------
# init
# ---------------------------------------------------------------------------------------------

STARTER = '''\
# unettui queue: the experiments of this project.
#
# `unettui run --headless` trains, in file order, every experiment below that has no
# finished run yet, writes each run to runs/<id>/ and resumes interrupted ones.
# Then: `unettui results` for a table, `unettui export results.csv` for a CSV.
# Add entries with `unettui add --set key=value`, `unettui sweep --set key=a,b,c`,
# or by hand; every key is documented in the README ("Configuration keys").

[defaults]                      # applied to every experiment unless it overrides them
dataset = "synthetic:ventricle" # built-in, nothing to download; or a folder with images/ and masks/
image_size = 64
train_fraction = 0.8            # share of the images used for training; the rest validate
base_channels = 16              # 16 = the original UNet widths divided by 4
depth = 4
epochs = 20
batch_size = 8
loss = "dice_bce"
seed = 0

# The reference: Adam at its usual learning rate.
[[experiment]]
id = "baseline"                 # optional: generated from the keys an entry sets
optimizer = "adam"
lr = 1e-3

# A sweep is a grid: every list expands, scalars are shared. Uncomment to queue
# opt-at-1e-4-adam, opt-at-1e-4-sgd and opt-at-1e-4-adagrad:
# [[sweep]]
# id = "opt-at-1e-4"
# optimizer = ["adam", "sgd", "adagrad"]
# lr = 1e-4
'''


def init_project(directory: Path) -> Path:
    """Write a commented starter experiments.toml in ``directory`` (created if needed); never overwrites."""
    directory = Path(directory)
    path = queue_path(directory)
    if directory.exists() and not directory.is_dir():
        raise EditError(f"{directory} is a file, not a folder")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with _locked(directory):
            if path.is_symlink() or (path.exists() and (not path.is_file() or path.read_bytes().strip())):
                raise EditError(f"{path} already exists; edit it, or add to it with `unettui add` / `unettui sweep`")
            # written whole or not at all; an empty file (nothing a user could have written) is replaced
            atomic_write_text(path, STARTER)
    except OSError as exc:
        raise EditError(f"cannot create {path}: {exc.strerror or exc}") from None
    return path
