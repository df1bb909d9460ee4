"""Text surgery on experiments.toml: find each entry's lines with a small TOML-aware line scanner, cut an entry
out, rewrite one ``key = value`` keeping its spelling and trailing comment, render a new entry.

Why not tomlkit's document model: it attaches the comments written above a table to the *previous* table and
appends a new ``[[experiment]]`` after the last one of its array (before a later ``[[sweep]]``), so removing or
appending through it moves or eats the wrong comments. Every edit made with these functions is verified by
core.define.edit with a real TOML parser before it is written.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .config import flatten
from .setvalues import format_value

SECTIONS = ("experiment", "sweep", "study")


def render_entry(section: str, entry_id: str | None, values: dict[str, Any], nl: str) -> str:
    lines = [f"[[{section}]]"]
    if entry_id is not None:
        lines.append(f"id = {format_value(entry_id)}")
    lines += [f"{key} = {format_value(v)}" for key, v in values.items()]  # dotted keys stay dotted
    return nl.join(lines) + nl


_HEADER = re.compile(r"^(\[\[?)(.*?)(\]\]?)\s*(#.*)?$")


@dataclass
class Line:
    kind: str  # blank, comment, header, content (a key, or a continuation of a multi-line value)
    name: str | None = None  # header: the table's dotted name
    array: bool = False  # header: [[...]]
    start: bool = False  # content: the line starts a `key = value` (not a continuation of a multi-line value)
    eq: int | None = None  # content that starts a key: where its '=' is
    comment: int | None = None  # content: where a trailing '# comment' starts


def _header(s: str) -> Line:
    m = _HEADER.match(s)
    if not m:
        return Line("header")
    name = ".".join(p.strip().strip("\"'") for p in m[2].split("."))
    return Line("header", name, m[1] == "[[" and m[3] == "]]")


def scan(lines: list[str]) -> list[Line]:
    """Classify each line, following multi-line strings and arrays so their lines are never taken for headers."""
    out: list[Line] = []
    ml, depth = "", 0  # inside a multi-line string (its delimiter) / bracket depth of a value
    for raw in lines:
        line = raw.rstrip("\r\n")
        start = not ml and depth == 0
        if start:
            s = line.strip()
            if not s:
                out.append(Line("blank"))
                continue
            if s.startswith("#"):
                out.append(Line("comment"))
                continue
            if s.startswith("["):
                out.append(_header(s))
                continue
        ml, depth, eq, comment = _scan_line(line, ml, depth)
        out.append(Line("content", start=start, eq=eq if start else None, comment=comment))
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


def spans(kinds: list[Line]) -> dict[str, list[tuple[int, int]]]:
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


def cut(text: str, section: str, index: int) -> str:
    """``text`` without the ``index``-th [[section]] entry, keeping the blank-line rhythm around it."""
    lines = text.splitlines(keepends=True)
    kinds = scan(lines)
    start, end = spans(kinds)[section][index]
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


def split_lines(text: str) -> tuple[str, list[str], list[Line]]:
    """The file's newline, its lines (the last one given a newline if it had none) and their kinds."""
    nl = "\r\n" if "\r\n" in text else "\n"
    if text and not text.endswith("\n"):
        text += nl
    lines = text.splitlines(keepends=True)
    return nl, lines, scan(lines)


@dataclass
class Stmt:
    """One ``key = value`` of an entry (over several lines for a multi-line value)."""

    start: int
    end: int
    table: str  # "" for the entry's own table, else the sub-table below it: "augment" for [experiment.augment]
    key: str  # the canonical key it writes ("augment.rotate"), or an inline table's path ("augment")
    values: dict[str, Any]  # the canonical keys it sets, with their values
    inline: bool  # key = { ... }


def statements(lines: list[str], kinds: list[Line], start: int, end: int) -> tuple[int, list[Stmt], dict[str, int]]:
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
            stmts.append(Stmt(i, j, table, prefix + key, values, inline))
            i = j
            continue
        i += 1
    return header, stmts, tables


def set_line(lines: list[str], kinds: list[Line], s: Stmt, value_text: str, nl: str) -> str:
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


def inline_text(s: Stmt, values: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k[len(s.key) + 1:]} = {format_value(v)}" for k, v in values.items()) + "}"


def apply_ops(lines: list[str], ops: list[tuple[int, int, list[str]]]) -> str:
    """Replace line ranges (start, end) by new lines, bottom up; at one line, a replacement before an insertion
    (start == end), so inserted lines land above it."""
    out = list(lines)
    for start, end, new in sorted(ops, key=lambda op: (op[0], op[1]), reverse=True):
        out[start:end] = new
    return "".join(out)
