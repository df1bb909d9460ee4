"""Edits of experiments.toml that keep the user's comments and layout: add, sweep, edit, move, duplicate, rm.

(~620 lines: the six edits share their reading, locking and verification through ``editing``; splitting them
across modules would spread that one invariant thin.)

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
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from filelock import FileLock, Timeout

from ..runs.store import RunStore, atomic_write_text
from .config import ConfigError, check_key, flatten
from .experiment import Experiment
from .names import MAX_ID, nearest_ids, safe_id
from .queue import MAX_SWEEP, QUEUE_FILE, Queue, QueueError, parse_queue
from .setvalues import format_value, sweep_prefix, sweep_size
from .tomltext import (
    SECTIONS,
    Line,
    apply_ops,
    cut,
    inline_text,
    render_entry,
    scan,
    set_line,
    spans,
    split_lines,
    statements,
)

SWEEP_CONFIRM = 100  # a sweep of more experiments than this needs confirm_large=True (the CLI: --yes)
LOCK_FILE = ".experiments.toml.lock"
LOCK_TIMEOUT = 30.0  # seconds to wait for another edit (or the runner's claim) before giving up


class EditError(ValueError):
    """An edit that was refused; the message is one line saying what and what to do. Nothing was written."""


class LargeSweep(EditError):
    """The sweep expands to more than SWEEP_CONFIRM experiments and needs an explicit confirmation."""

    def __init__(self, count: int):
        self.count = count
        super().__init__(f"the sweep expands to {count} experiments (more than {SWEEP_CONFIRM}); "
                         "it needs an explicit confirmation")


# ---------------------------------------------------------------------------------------------
# reading and checking
# ---------------------------------------------------------------------------------------------


def queue_path(project: Path) -> Path:
    return Path(project) / QUEUE_FILE


def require_file(path: Path) -> Path:
    """Refuse before taking the lock, so a mistyped --project leaves no lock file behind."""
    if not path.is_file():
        raise EditError(f"{path}: no queue file here; run `unettui init` first (or pass --project DIR)")
    return path


def read_text(path: Path) -> str:
    require_file(path)
    try:
        with open(path, encoding="utf-8", newline="") as fh:  # keep \r\n line ends as they are
            return fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise EditError(f"{path}: cannot be read: {exc}") from None


def parse_data(text: str, path: Path) -> dict[str, Any]:
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


@dataclass
class Edit:
    """One edit of experiments.toml in progress: the file as read under the lock, and the text to write."""

    path: Path
    text: str
    data: dict[str, Any]
    new_text: str = ""

    def verify(self, new_text: str, expected: dict[str, Any] | Callable[[dict[str, Any]], bool], refusal: str) -> None:
        """Take ``new_text`` if it parses to exactly ``expected`` (the old data with only the intended change; or a
        test of the parsed data), else refuse with ``refusal`` (nothing is written)."""
        try:
            new = tomllib.loads(new_text)
        except tomllib.TOMLDecodeError:
            ok = False
        else:
            ok = expected(new) if callable(expected) else _same(new, expected)
        if not ok:
            raise EditError(f"{self.path}: {refusal}")
        self.new_text = new_text


@contextlib.contextmanager
def editing(project: Path, create: bool = False) -> Iterator[Edit]:
    """The one way experiments.toml is changed: under the edit lock, read and parse it (an empty one when ``create``
    and there is none), let the body build and ``verify`` the new text, and replace the file atomically on a clean
    exit (only if the text changed)."""
    path = queue_path(project)
    if not create:
        require_file(path)
    with locked(project):
        text = read_text(path) if path.exists() or not create else ""
        edit = Edit(path, text, parse_data(text, path), text)
        yield edit
        if edit.new_text != text:
            write_text(path, edit.new_text)


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


def write_text(path: Path, text: str) -> None:
    # a symlinked experiments.toml stays a symlink; atomic_write_text keeps the file's permissions
    atomic_write_text(path.resolve(), text)


@contextlib.contextmanager
def hold(lock_path: Path, timeout: float, busy: str):
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


def locked(project: Path):
    """The edit lock of experiments.toml: every writer re-reads the file inside it, so no edit is lost."""
    return hold(Path(project) / LOCK_FILE, LOCK_TIMEOUT, "another edit of experiments.toml")


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


def _append(edit: Edit, section: str, entry_id: str | None, values: dict[str, Any]) -> list[Experiment]:
    """Append an entry to ``edit`` (verified); returns the experiments it defines; raises on any problem."""
    path, text, old = edit.path, edit.text, edit.data
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
    new_text = base + render_entry(section, entry_id, values, nl)
    try:
        tomllib.loads(new_text)
    except tomllib.TOMLDecodeError as exc:
        raise EditError(f"{path}: appending [[{section}]] would make the file invalid TOML ({exc}); nothing was changed") from None
    # the edited file must hold exactly the old data plus this entry ...
    expected = dict(old)
    expected[section] = [*old.get(section, []), tomllib.loads(render_entry(section, entry_id, values, "\n"))[section][0]]
    edit.verify(new_text, expected, f"cannot append [[{section}]] safely to this file's layout; add it by hand")
    # ... and the entry must be valid where it stands (problems elsewhere in the file are not ours to judge)
    after = _parse(new_text, path)
    added = after.experiments[len(before.experiments):]
    for exp in added:
        if exp.error:
            err = exp.error
            if err.key == "id" and "duplicate" in err.message and entry_id is None:
                raise ConfigError(err.where, err.key, err.message + "; the id is generated from the keys: give one explicitly")
            raise err
    return added


def add_experiment(project: Path, values: dict[str, Any], exp_id: str | None = None) -> str:
    """Append an [[experiment]] setting ``values`` (canonical keys) and return its id (``exp_id`` or the
    one the queue generates from its keys)."""
    _check_keys(values, "add")
    with editing(project) as edit:
        added = _append(edit, "experiment", exp_id, values)
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
    path = require_file(queue_path(project))
    text = read_text(path)
    added = _append(Edit(path, text, parse_data(text, path), text), "sweep", sweep_id, grid)  # nothing written
    return [(e.id, e.overrides) for e in added]


def add_sweep(project: Path, grid: dict[str, Any], sweep_id: str | None = None, confirm_large: bool = False) -> list[str]:
    """Append a [[sweep]] (lists are swept, scalars shared) and return the ids of its experiments.
    Raises LargeSweep for more than SWEEP_CONFIRM experiments unless ``confirm_large``."""
    grid = _grid(grid)
    count = sweep_size(grid)
    _check_size(count)
    if count > SWEEP_CONFIRM and not confirm_large:
        raise LargeSweep(count)
    with editing(project) as edit:
        added = _append(edit, "sweep", sweep_id, grid)
    return [e.id for e in added]


# ---------------------------------------------------------------------------------------------
# removing
# ---------------------------------------------------------------------------------------------


def remove_entries(project: Path, ids: list[str]) -> list[Entry]:
    """Remove [[experiment]] entries by id and whole [[sweep]] and [[study]] entries by their own id; all or nothing.
    Runs in runs/ are not touched. Returns the removed entries."""
    if not ids:
        raise EditError("name the experiments or sweeps to remove")
    with editing(project) as edit:
        path, text, old = edit.path, edit.text, edit.data
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
                raise EditError(f"unknown id '{want}' in {path}; {nearest_ids(want, known)}")
            chosen += [e for e in own if e not in chosen]

        new_text = text
        for e in sorted(chosen, key=lambda e: (e.section, e.index), reverse=True):
            if len(spans(scan(new_text.splitlines(keepends=True)))[e.section]) != len(old.get(e.section, [])):
                raise EditError(f"{path}: cannot find the [[{e.section}]] tables in the text (inline arrays?); "
                                f"remove '{e.id}' by hand")
            new_text = cut(new_text, e.section, e.index)
        expected = dict(old)
        for section in SECTIONS:
            gone = {e.index for e in chosen if e.section == section}
            if gone:
                kept = [x for i, x in enumerate(old[section]) if i not in gone]
                if kept:
                    expected[section] = kept
                else:
                    del expected[section]
        edit.verify(new_text, expected, f"cannot remove {', '.join(e.id for e in chosen)} safely from this file's "
                                        "layout; remove by hand")
        try:
            parse_queue(old, path)
        except QueueError:
            pass  # an already broken file: removing entries cannot make it worse
        else:
            _parse(new_text, path)  # raises QueueError if the removal broke the file as a whole
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
    raise EditError(f"unknown id '{want}' in {path}; {nearest_ids(want, known)}")


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
    old = parse_data(read_text(path), path)
    entry = _experiment_entry(_entries(old), exp_id, path)
    return _own_values(old["experiment"][entry.index])


def _entry_spans(lines: list[Line], data: dict[str, Any], path: Path, what: str) -> dict[str, list[tuple[int, int]]]:
    found = spans(lines)
    for section in SECTIONS:
        if len(found[section]) != len(data.get(section, [])):
            raise EditError(f"{path}: cannot find the [[{section}]] tables in the text (inline arrays?); {what} by hand")
    return found


def _updated_text(text: str, entry: Entry, old: dict[str, Any], values: dict[str, Any], new_id: str | None,
                  path: Path) -> str:
    nl, lines, kinds = split_lines(text)
    start, end = _entry_spans(kinds, old, path, f"edit '{entry.id}'")["experiment"][entry.index]
    try:
        header, stmts, tables = statements(lines, kinds, start, end)
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
            ops.append((s.start, s.end, [] if value is None else [set_line(lines, kinds, s, format_value(value), nl)]))
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
        ops.append((s.start, s.end, [set_line(lines, kinds, s, inline_text(s, now), nl)] if now else []))
    if new_id is not None:
        id_line = f"id = {format_value(new_id)}{nl}"
        if "id" in plain:
            ops.append((plain["id"].start, plain["id"].end, [set_line(lines, kinds, plain["id"], format_value(new_id), nl)]))
        else:
            inserts.setdefault(header + 1, []).insert(0, id_line)
    # a sub-table left without keys goes too (its comments stay)
    gone = {op[0] for op in ops if not op[2]}
    for table, at in tables.items():
        mine = [s for s in stmts if s.table == table]
        if table and mine and all(s.start in gone for s in mine) and table_end(table) not in inserts:
            ops.append((at, at + 1, []))
    ops += [(at, at, new) for at, new in inserts.items()]
    return apply_ops(lines, ops)


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
    with editing(project) as edit:
        path, text, old = edit.path, edit.text, edit.data
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
        others = [x for i, x in enumerate(old["experiment"]) if i != entry.index]

        def only_this_entry_changed(new: dict[str, Any]) -> bool:
            got = new.get("experiment", [])
            return (len(got) == len(old["experiment"]) and _same(flatten(got[entry.index]), want)
                    and _same({**new, "experiment": [x for i, x in enumerate(got) if i != entry.index]},
                              {**old, "experiment": others}))

        edit.verify(new_text, only_this_entry_changed, f"cannot edit '{exp_id}' safely in this file's layout; edit it "
                                                       "by hand")
        # ... and the entry must be valid, under an id of its own
        after = _parse(new_text, path)
        new_entries = _entries(tomllib.loads(new_text))
        mine = next(e for e in new_entries if e.section == "experiment" and e.index == entry.index)
        what = _id_user(mine.id, new_entries, skip=mine)
        if what:
            how = "; choose another id" if new_id is not None or "id" in raw else \
                  ", and it has no id of its own (it is generated from its keys); give it one"
            raise EditError(f"id '{mine.id}' is already used by {what}{how}")
        for exp in after.experiments:
            if exp.id == mine.id and exp.error:
                raise exp.error
    return mine.id


def move(project: Path, entry_id: str, delta: int) -> bool:
    """Move an [[experiment]], or a whole [[sweep]] (by its own id or one of its experiments' ids), ``delta``
    entries down (positive) or up (negative) among the [[experiment]] and [[sweep]] entries, swapping places
    with each neighbour in turn; the runner follows the file order, so this reorders the queue. The entry takes
    the comment block attached to it (as remove defines it); blank lines, free-standing comments and other
    tables stay where they are. Returns False, writing nothing, when it is already first / last."""
    if isinstance(delta, bool) or not isinstance(delta, int):
        raise TypeError(f"delta must be an int, got {delta!r}")
    with editing(project) as edit:
        path, text, old = edit.path, edit.text, edit.data
        entry, _ = _lookup(_entries(old), entry_id, path)
        try:
            before = [e.id for e in parse_queue(old, path, text).experiments]
        except QueueError:
            before = None  # an already broken file: reorder it all the same, the data check below still holds
        expected = {s: list(old.get(s, [])) for s in SECTIONS}
        key = (entry.section, entry.index)
        moved = False
        for _ in range(abs(delta)):
            _, lines, kinds = split_lines(text)
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

        def same_entries_reordered(new: dict[str, Any]) -> bool:
            return _same(new, want) and (before is None or
                                         sorted(e.id for e in _parse(text, path).experiments) == sorted(before))

        edit.verify(text, same_entries_reordered, f"cannot move '{entry_id}' safely in this file's layout; move it by "
                                                  "hand")
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
    with editing(project) as edit:
        path, old = edit.path, edit.data
        entries = _entries(old)
        entry, item = _lookup(entries, entry_id, path)
        raw = old[entry.section][entry.index]
        if item is not None:
            section, values = "experiment", parse_queue({"sweep": [raw]}, _NO_FILE, "").experiments[item].overrides
        else:
            section, values = entry.section, _own_values(raw)
        new_id = _copy_id(entry_id, entries, project)
        _append(edit, section, new_id, values)
    return new_id
