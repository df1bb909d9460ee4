"""Result rows for the TUI's results table, and their filter, sort and group-by logic (no Textual here).

A filter is a few terms separated by spaces or commas, all of which must hold::

    optimizer=adam val_dice>0.8 lr<=1e-3 scheduler!=none  cos

``key=value``, ``key!=value``, ``key>n``, ``key>=n``, ``key<n``, ``key<=n``; a bare word keeps
the runs whose id contains it. Keys are the CSV export's column names (``id``, ``status``, every
hyper-parameter such as ``optimizer`` or ``augment.rotate``, and the metric columns such as
``best_val_dice``), the per-class keys of multi-class runs (``best_val_dice_myocardium``,
``best_val_dice_min``: the worst class's; ``val_hd95_max`` for HD95, where lower is better) plus the
short aliases in ``ALIASES``: ``val_dice`` is the *best* validation Dice (the number the table leads
with) and ``val_loss`` the *final* validation loss, as in the study's tables (``val_dice_myocardium``
likewise); ``hd95`` and ``nsd`` are the end-of-run ``val_hd95`` and ``val_nsd``. Numbers compare numerically
(``lr=1e-3`` matches 0.001); text compares without regard to case; a missing value (a class
without a score) matches no comparison and no ``=``, and ``!=`` keeps it.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..core.define.config import DEFAULTS
from ..core.define.task import PER_CLASS_KEYS, SUMMARY_KEYS, VIEWS, class_key, split_class_key, worst_suffix
from ..core.runs.export import COLUMNS, row_dict, varied_keys

ALIASES: dict[str, str] = {**{alias: k.name for k in SUMMARY_KEYS.values() for alias in k.aliases}, "state": "status"}
"""Short filter keys and the export column each one stands for (core.define.task's registry: ``val_dice`` is the best
val Dice, ``val_loss`` the final val loss ...; a class's key follows its metric's: ``val_dice_myocardium`` is
``best_val_dice_myocardium``)."""

# keys whose values are text: only = and != make sense for them
TEXT_KEYS = frozenset({"id", "status", "error"} | {k for k, v in DEFAULTS.to_dict().items() if isinstance(v, str)})
# keys whose values are true/false
BOOL_KEYS = frozenset({"val_on_train"} | {k for k, v in DEFAULTS.to_dict().items() if isinstance(v, bool)})
OPS = ("!=", ">=", "<=", "==", "=", ">", "<")
_TERM = re.compile(r"^([A-Za-z_][\w.\-]*)(!=|>=|<=|==|=|>|<)(.*)$")
_SPACED_OP = re.compile(r"\s*(!=|>=|<=|==|=|>|<)\s*")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


class FilterError(ValueError):
    """A filter that cannot be understood; the message is one line, fit for a status bar."""


@dataclass(frozen=True)
class Condition:
    """One term of a filter: ``key op value``, or (op ``"~"``) a substring of the run id."""

    key: str
    op: str
    value: str
    number: float | None = None  # the value as a number, when it is one

    def __str__(self) -> str:
        return self.value if self.op == "~" else f"{self.key}{self.op}{self.value}"

    def test(self, row: dict[str, Any]) -> bool:
        if self.op == "~":
            return self.value.lower() in str(row.get("id", "")).lower()
        have = row.get(self.key)
        if self.op == "!=":
            return not _equal(have, self)
        if self.op == "=":
            return _equal(have, self)
        number = _as_number(have)
        if number is None or math.isnan(number) or self.number is None:
            return False  # missing values match no comparison
        if self.op == ">":
            return number > self.number
        if self.op == ">=":
            return number >= self.number
        if self.op == "<":
            return number < self.number
        return number <= self.number


def valid_keys(classes: list[str] | tuple[str, ...] = ()) -> tuple[str, ...]:
    """Every key a filter may use: the export columns, the other summary keys, the per-class keys of ``classes`` (the
    foreground classes of the runs), then the aliases."""
    per_class = [class_key(k, n) for k in PER_CLASS_KEYS for n in (*classes, worst_suffix(k))] if classes else []
    return (*COLUMNS, *(k for k in SUMMARY_KEYS if k not in COLUMNS), *per_class, *ALIASES)


def _to_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _equal(have: Any, cond: Condition) -> bool:
    if have is None:
        return False
    if isinstance(have, bool):
        want = cond.value.lower()
        return (want in _TRUE) if have else (want in _FALSE)
    number = _as_number(have)
    if number is not None:
        return cond.number is not None and math.isclose(number, cond.number, rel_tol=1e-9, abs_tol=0.0)
    return str(have).lower() == cond.value.lower()


def _resolve_key(key: str, classes: list[str] | tuple[str, ...] | None = None) -> str:
    if key in ALIASES:
        return ALIASES[key]
    if key in COLUMNS or key in SUMMARY_KEYS:
        return key
    split = split_class_key(key, PER_CLASS_KEYS)
    if split is None:  # a class of an alias: val_dice_myocardium is best_val_dice_myocardium
        alias = split_class_key(key, [a for a, k in ALIASES.items() if k in PER_CLASS_KEYS])
        split = (ALIASES[alias[0]], alias[1]) if alias else None
    if split is not None:
        base, name = split
        worst = worst_suffix(base)  # min, or max where lower is better (HD95)
        if classes is None or (classes and (name == worst or name in classes)):
            return class_key(base, name)
        if not classes:
            raise FilterError(f"'{key}': no run here has classes (num_classes >= 3)")
        near = [worst] if name in ("min", "max") else difflib.get_close_matches(name, [*classes, worst], n=1,
                                                                                  cutoff=0.6)
        raise FilterError(f"unknown class '{name}' in '{key}': "
                          + (f"did you mean '{class_key(base, near[0])}'? " if near else "")
                          + f"the runs' classes are {', '.join(classes)} (or {worst}: the worst)")
    close = difflib.get_close_matches(key, valid_keys(classes or ()), n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'?" if close else "use a column name such as optimizer, lr, best_val_dice (or val_dice, val_loss)"
    raise FilterError(f"unknown filter key '{key}': {hint}")


def parse_filter(text: str, classes: list[str] | tuple[str, ...] | None = None) -> list[Condition]:
    """Parse a filter into conditions that must all hold; raise FilterError naming the faulty term. ``classes``: the
    foreground classes of the runs, which per-class keys may name (None: any name)."""
    text = _SPACED_OP.sub(r"\1", text.strip())  # "val_dice > 0.8" is one term
    conditions: list[Condition] = []
    for term in (t for t in re.split(r"[\s,]+", text) if t):
        m = _TERM.match(term)
        if m is None:
            if any(op in term for op in OPS):
                raise FilterError(f"cannot read '{term}': write key=value, key!=value, key>number or key<number")
            conditions.append(Condition("id", "~", term))
            continue
        raw_key, op, value = m.groups()
        key = _resolve_key(raw_key, classes)
        op = "=" if op == "==" else op
        if value == "":
            raise FilterError(f"'{term}': missing value after '{op}'")
        number = _to_float(value)
        if op in (">", ">=", "<", "<="):
            if key in TEXT_KEYS:
                raise FilterError(f"'{term}': {raw_key} is text; compare it with = or !=")
            if key in BOOL_KEYS:
                raise FilterError(f"'{term}': {raw_key} is true or false; compare it with = or !=")
            if number is None:
                raise FilterError(f"'{term}': '{value}' is not a number")
        elif key in BOOL_KEYS:
            if value.lower() not in _TRUE | _FALSE:
                raise FilterError(f"'{term}': {raw_key} is true or false, not '{value}'")
        elif number is None and key not in TEXT_KEYS:
            raise FilterError(f"'{term}': {raw_key} is a number; '{value}' is not")
        conditions.append(Condition(key, op, value, number))
    return conditions


def matches(row: dict[str, Any], conditions: Iterable[Condition]) -> bool:
    return all(c.test(row) for c in conditions)


# ---- rows --------------------------------------------------------------------------------


def has_epochs(view) -> bool:
    """Whether a run has trained at least one epoch (what the results table shows)."""
    return bool(view.metrics) or bool(view.summary.get("epochs_done")) or (view.epoch or 0) > 0


def row_of(view) -> dict[str, Any]:
    """A flat row of the export's columns for one RunView (the read model's row): the same dict `unettui export`
    writes, so the table, its filter and its CSV agree with the command line."""
    return row_dict(view)


# ---- sorting and grouping ----------------------------------------------------------------


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _order_key(value: Any) -> tuple:
    number = _as_number(value) if not isinstance(value, bool) else float(value)
    if number is not None:
        return (0, number, "")
    return (1, 0.0, str(value).lower())


def sort_rows(rows: list[dict[str, Any]], key: str, descending: bool = False) -> list[dict[str, Any]]:
    """Sort by ``key`` (numbers numerically, text without case); missing and NaN values go last in
    either direction, and equal values keep their order."""
    present = [r for r in rows if not is_missing(r.get(key))]
    missing = [r for r in rows if is_missing(r.get(key))]
    present.sort(key=lambda r: _order_key(r[key]), reverse=descending)
    return present + missing


def varying_keys(rows: list[dict[str, Any]]) -> list[str]:
    """The hyper-parameters the results table shows as columns: those that differ between ``rows`` by the policy
    `unettui results` uses (core's varied_keys), less ``epochs``, which the table's epochs column shows as done/total."""
    return varied_keys(rows, exclude=("epochs",))


def group_means(rows: list[dict[str, Any]], key: str) -> list[tuple[Any, ...]]:
    """``(value, n, mean of each key of VIEWS["results-groups"])`` per value of ``key``, sorted by value: the means of
    the best val Dice and of the final val loss (core.define.task).

    Rows without the first (best_val_dice) are ignored; another's mean is over the rows that have it (None when none
    has), and is NaN when one of them is NaN (a diverged run).
    """
    first, *others = VIEWS["results-groups"]
    groups: dict[Any, list[dict[str, Any]]] = {}
    labels: dict[Any, Any] = {}
    for row in rows:
        if is_missing(row.get(first)):
            continue
        value = row.get(key)
        ident = None if value is None else _order_key(value)
        groups.setdefault(ident, []).append(row)
        labels.setdefault(ident, value)
    out = []
    for ident in sorted(groups, key=lambda i: (i is None, i or ())):
        members = groups[ident]
        means = [sum(r[first] for r in members) / len(members)]
        for other in others:
            values = [r[other] for r in members if r.get(other) is not None]
            means.append(sum(values) / len(values) if values else None)
        out.append((labels[ident], len(members), *means))
    return out
