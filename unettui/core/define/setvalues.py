"""Values given on the command line or in forms: ``--set key=value`` parsing, sweep lists and ranges
(``1e-4..1e-1:log4``), and writing values back as TOML text."""

from __future__ import annotations

import json
import math
import re
import sys
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import tomlkit

from .config import DEFAULTS, LIST_KEYS, ConfigError, check_key, coerce, flatten, key_to_field
from .queue import sweep_prefix as queue_sweep_prefix

MAX_RANGE = 10_000  # values one START..STOP:N range may give
RANGE_SYNTAX = "START..STOP:N (N evenly spaced values) or START..STOP:logN (N log-spaced values)"


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
    if key in LIST_KEYS and isinstance(value, str):  # class_names=a,b,c: written to the file as a TOML array
        try:
            return list(coerce(key, value, "--set"))
        except ConfigError:
            return value  # (refused with its message by the check that follows)
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
        if key not in LIST_KEYS and (isinstance(value, list) or (isinstance(value, str) and "," in value)):
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
