"""Names: filesystem-safe ids, the readable id fragments generated from values, and "did you mean" suggestions."""

from __future__ import annotations

import difflib
import numbers
import re
from collections.abc import Iterable
from typing import Any

MAX_ID = 80
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_id(text: str) -> str:
    """A filesystem-safe id: letters, digits, '.', '_' and '-' only; never empty or hidden."""
    s = _UNSAFE.sub("-", text).strip("-.")
    return (s or "experiment")[:MAX_ID]


def id_value(value: Any) -> str:
    """A value as generated ids write it: ``on``/``off``, ``0.001``, ``1e-06``, ``1e20``."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        # 1e+20 -> "1e20" (safe_id would turn the '+' into '-', naming 1e20 as 1e-20 and 1e6 like 1e-6)
        return re.sub(r"e\+0*(\d)", r"e\1", f"{value:g}")
    return str(value)


def slug(items: dict[str, Any]) -> str:
    """Readable id fragment from keys: strings stand alone ('sgd'), numbers carry their key ('lr0.0001')."""
    parts = []
    for k, v in items.items():
        short = k.split(".")[-1]
        bare = isinstance(v, str) and not v.startswith(("synthetic:", "/", "."))
        parts.append(id_value(v) if bare else f"{short}{id_value(v)}")
    return "-".join(parts)


def is_int(value: object) -> bool:
    """An integer, and not a bool."""
    return type(value) is int or (isinstance(value, numbers.Integral) and not isinstance(value, bool))


def did_you_mean(word: str, options: Iterable[str], cutoff: float = 0.6) -> str:
    """``"did you mean 'optimizer'? "`` for the option nearest ``word`` (with its trailing space), or ``""``."""
    close = difflib.get_close_matches(str(word), list(options), n=1, cutoff=cutoff)
    return f"did you mean '{close[0]}'? " if close else ""


def nearest_ids(word: str, ids: Iterable[str], what: str = "ids in the queue", limit: int = 8) -> str:
    """For an unknown id: the (up to three) nearest ids, by spelling or containing ``word``; else some of the ids;
    else that there are none. ``"did you mean 'a', 'b'?"``."""
    ids = list(dict.fromkeys(ids))
    close = difflib.get_close_matches(word, ids, n=3, cutoff=0.5)
    close += [i for i in ids if word and word in i and i not in close][: max(0, 3 - len(close))]
    if close:
        return "did you mean " + ", ".join(f"'{c}'" for c in close) + "?"
    if ids:
        return f"{what}: " + ", ".join(ids[:limit]) + (", ..." if len(ids) > limit else "")
    return "the queue is empty"
