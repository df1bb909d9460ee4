"""Edits of experiments.toml that keep the user's comments and layout: add, sweep, rm, retry, init, --set parsing.

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

from .config import DEFAULTS, ConfigError, check_key, coerce, flatten, key_to_field
from .queue import QUEUE_FILE, Experiment, Queue, QueueError, load_queue, parse_queue, safe_id
from .queue import sweep_prefix as queue_sweep_prefix
from .store import RunStore, atomic_write_text

SWEEP_CONFIRM = 100  # a sweep of more experiments than this needs confirm_large=True (the CLI: --yes)
LOCK_FILE = ".experiments.toml.lock"
LOCK_TIMEOUT = 30.0  # seconds to wait for another edit (or the runner's claim) before giving up
SECTIONS = ("experiment", "sweep")
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
    seen: list[Any] = []
    for v in values:
        coerce(key, v, where)
        if any(v == s for s in seen):
            raise ConfigError(where, key, f"value {format_value(v)} appears twice")
        seen.append(v)
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
        if not ml and depth == 0:
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
            if c in "[{":
                depth += 1
            elif c in "]}":
                depth = max(0, depth - 1)
            i += 1
        out.append(_Line("content"))
    return out


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
        if safe_id(entry_id) != entry_id or not entry_id.strip():
            raise ConfigError("id", None, f"{entry_id!r} is not filesystem-safe; use letters, digits, '.', '_' and '-' "
                                          f"(e.g. {safe_id(entry_id)!r})")
        for e in _entries(old):
            if entry_id == e.id or entry_id in e.experiments:
                what = f"[[{e.section}]] '{e.id}'" + ("" if entry_id == e.id else " (one of its experiments)")
                raise EditError(f"id '{entry_id}' is already used by {what}; choose another id")

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


def expand_preview(project: Path, grid: dict[str, Any], sweep_id: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """The (id, overrides) of every experiment ``add_sweep`` would add, in order; writes nothing."""
    grid = _grid(grid)
    _, added = _plan_append(project, "sweep", sweep_id, grid)
    return [(e.id, e.overrides) for e in added]


def add_sweep(project: Path, grid: dict[str, Any], sweep_id: str | None = None, confirm_large: bool = False) -> list[str]:
    """Append a [[sweep]] (lists are swept, scalars shared) and return the ids of its experiments.
    Raises LargeSweep for more than SWEEP_CONFIRM experiments unless ``confirm_large``."""
    grid = _grid(grid)
    count = sweep_size(grid)
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
    """Remove [[experiment]] entries by id and whole [[sweep]] entries by the sweep's own id; all or nothing.
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
            state = run.state()
            if state == "running":
                st = run.status() or {}
                raise EditError(f"'{exp_id}' is running on host {st.get('host', '?')} pid {st.get('pid', '?')}; stop it first")
            if state == "queued":
                raise EditError(f"'{exp_id}' has not run yet (queued); `unettui run` trains it")
            chosen.append(exp_id)
        if failed:
            chosen += [e.id for e in queue.experiments
                       if e.valid and e.id not in chosen and store.run(e.id).state() == "failed"]
        for exp_id in chosen:
            store.run(exp_id).archive_attempt()
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
    if path.exists() or path.is_symlink():
        raise EditError(f"{path} already exists; edit it, or add to it with `unettui add` / `unettui sweep`")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with open(path, "x", encoding="utf-8") as fh:
            fh.write(STARTER)
    except FileExistsError:
        raise EditError(f"{path} already exists; edit it, or add to it with `unettui add` / `unettui sweep`") from None
    except OSError as exc:
        raise EditError(f"cannot create {path}: {exc.strerror or exc}") from None
    return path
