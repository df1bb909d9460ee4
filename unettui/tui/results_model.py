"""What the Results tab shows, computed from the runs (no Textual here): one row per run, or per configuration when
runs have repeats (mean ± sd (n) of each metric over the repeats that have a value), the hyper-parameters that differ,
the per-class columns of multi-class runs when asked for, the filter, the sort and the cells. Incremental: a run whose
view did not change (the same object as before) is not computed again, the varying columns only when a run's
hyper-parameters (or classes) or the set of runs changed, the order only when a sort value did — so a poll that
changed one run of 10,000 costs about as much as one run. A model is used by one thread at a time."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rich.text import Text

from ..core.define.config import KEYS
from ..core.define.task import (
    END_KEYS,
    PER_CLASS_KEYS,
    SUMMARY_KEYS,
    VIEWS,
    direction_of,
    format_value,
    label_of,
    metric_of,
    split_class_key,
)
from ..core.runs.export import class_keys, class_names
from ..core.runs.groups import configuration_columns, configuration_rows, mean_sd_text
from ..core.show.fmt import duration
from ..core.show.fmt import value as fmt_value
from ..core.show.styles import state_style
from .filtering import Condition, group_means, has_epochs, matches, row_of, sort_rows, varying_keys
from .widgets.marks import mark_text

# (row key, header label) of the metric columns, after mark, id, status and the varying hyper-parameters
# (core.define.task: what the tab shows, and the words of each)
METRIC_COLUMNS = tuple((key, label_of(key, short=True)) for key in VIEWS["results-tab"])
# those shown as mean ± sd (n) per configuration: the ones configurations fold over their repeats (the end-of-run
# boundary metrics on demand too: h)
GROUPED_METRICS = tuple(key for key in (*VIEWS["results-tab"], *VIEWS["boundary"]) if SUMMARY_KEYS[key].folded)
# what an export of configuration rows of binary runs writes: the columns of `unettui export --by-configuration`
# (configuration_columns(rows) adds those of multi-class runs)
CONFIGURATION_COLUMNS = configuration_columns()
NO_SCORE = "—"  # a per-class cell without a value: the class has no score (or the run has no classes)

Cell = tuple[str, str, bool]  # text, rich style, right-justified


LABELS = {"mark": " ", **dict(METRIC_COLUMNS), "oof_val_dice": "oof dice"}  # other columns: a hyper-parameter's name, a class's column's words


def label(key: str) -> str:
    """A column's header: the tab's own words for its metric columns, the registry's short words for a per-class one
    (``best dice myocardium``), a hyper-parameter's name."""
    return LABELS.get(key) or label_of(key, short=True)


def descending_first(key: str | None) -> bool:
    """Higher is better (core.define.task's registry: Dice, IoU, per class too): the first sort by it is descending."""
    return key is not None and direction_of(key) == "max"


def no_score_text(row: dict[str, Any] | None, column: str | None) -> str | None:
    """Why ``row``'s cell in ``column`` has no score: ``— best dice myocardium: class 'myocardium' is in no validation
    image and was never predicted``; None for a cell with a value, or without a recorded reason."""
    if row is None or column is None or row.get(column) is not None:
        return None
    why = (row.get("no_score") or {}).get(column)
    return f"{NO_SCORE} {label(column)}: {why}" if why else None


def is_class_column(col: str) -> bool:
    """A per-class column (``best_val_dice_myocardium``, ``best_val_dice_min``, ``val_hd95_max``)."""
    return col not in SUMMARY_KEYS and split_class_key(col, PER_CLASS_KEYS) is not None


def is_end_column(col: str) -> bool:
    """A column of an end-of-run metric (``val_hd95``, ``val_nsd_myocardium``): "—" where a run has none."""
    split = split_class_key(col, PER_CLASS_KEYS) if col not in SUMMARY_KEYS else None
    return (split[0] if split else col) in END_KEYS


def is_score(col: str) -> bool:
    """A column of a metric's value (drawn with 4 decimals), per-class ones too."""
    return bool(SUMMARY_KEYS[col].metric) if col in SUMMARY_KEYS else is_class_column(col)


def cells_of(row: dict[str, Any], columns: tuple[str, ...], marked: bool, grouped: bool) -> tuple[Text, ...]:
    """The table's cells of one row (a run's export row, or a configuration's folded row when ``grouped``)."""
    out: list[Text] = []
    for col in columns:
        value = row.get(col)
        if col == "mark":
            out.append(mark_text(marked))
        elif col == "id":
            out.append(Text(str(value), style="bold"))
        elif col == "status":
            label = str(row.get("label") or value) if grouped else str(value)
            out.append(Text(label, style=state_style(value)))
        elif value is None and (col in (row.get("no_score") or {}) or is_class_column(col) or is_end_column(col)):
            out.append(Text(NO_SCORE, style="dim", justify="right"))  # no score: never a blank that reads as 0
        elif grouped and (col in GROUPED_METRICS or is_class_column(col)) and row.get("runs", 1) > 1:
            n = row.get(f"{col}_n") or 0  # (n) also where one repeat of several has a value (a class's score)
            digits = metric.digits if (metric := metric_of(col)) is not None else 4  # HD95 in px: 2 decimals
            out.append(Text(mean_sd_text(value, row.get(f"{col}_sd"), n, digits, compact=True)
                            + ("(1)" if n == 1 else ""), justify="right"))
        elif col == "oof_val_dice":  # one score per repeat: its mean ± sd (n) over the repeats
            out.append(Text(mean_sd_text(value, row.get(f"{col}_sd"), row.get(f"{col}_n") or 0, compact=True),
                            justify="right"))
        elif is_score(col):
            out.append(Text(format_value(col, value, missing=""), justify="right"))
        elif col == "best_epoch":
            out.append(Text("" if value is None or (grouped and row.get("runs", 1) > 1) else str(value),
                            justify="right"))
        elif col == "epochs_done":
            done, total = value or 0, row.get("epochs")
            out.append(Text(f"{done}/{total}" if total else str(done), justify="right"))
        elif col == "seconds":
            out.append(Text("" if value is None else duration(value), justify="right"))
        else:
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            out.append(Text(fmt_value(value, missing=""), justify="right" if number else "left"))
    return tuple(out)


def _signature(row: dict[str, Any]) -> tuple:
    """What the varying columns (and the per-class ones) depend on in a run's row: its hyper-parameters, its classes."""
    return (*(repr(row.get(k)) for k in KEYS), row.get("classes"))


@dataclass
class Shown:
    """What the table is to show now."""

    columns: tuple[str, ...] = ()
    keys: list[str] = field(default_factory=list)  # row keys, top to bottom (a run id, or a configuration)
    cells: dict[str, tuple[Text, ...]] = field(default_factory=dict)  # of every key in keys
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # of every key in keys
    members: dict[str, list[str]] = field(default_factory=dict)  # key -> its runs (a configuration's repeats)
    varying: list[str] = field(default_factory=list)
    grouped: bool = False
    total: int = 0  # rows before the filter
    groups: list[tuple] = field(default_factory=list)  # (value, n, *means of VIEWS["results-groups"]) per group value
    classes: list[str] = field(default_factory=list)  # the foreground classes of the multi-class runs, if any


class ResultsModel:
    """The runs in, ``shown()`` out. Settings: ``conditions`` (the filter), ``sort_key``/``sort_reverse``, ``grouped``
    (None: by configuration when some configuration has repeats), ``group_key`` (means per value), ``marked``,
    ``class_columns`` (a column per class of the multi-class runs: VIEWS["classes"]' keys, each class's and the
    worst's), ``boundary_columns`` (the end-of-run HD95 and NSD: VIEWS["boundary"], and per class with
    ``class_columns``)."""

    def __init__(self) -> None:
        self.conditions: list[Condition] = []
        self.class_columns = False
        self.boundary_columns = False
        self._classes: list[str] = []  # the foreground classes of the runs, in the order they first appear
        self.sort_key: str | None = None
        self.sort_reverse = False
        self.grouped: bool | None = None
        self.group_key: str | None = None
        self.marked: frozenset[str] = frozenset()
        self._views: dict[str, Any] = {}
        self._runs: dict[str, dict[str, Any]] = {}  # run id -> its export row (runs with at least one epoch)
        self._order: list[str] = []  # those run ids in the order given
        self._sigs: dict[str, tuple] = {}
        self._dirty: set[str] = set()  # run ids computed again since the last shown()
        self._set_changed = True  # runs were added or removed, or a run's hyper-parameters changed
        self._confs: dict[str, dict[str, Any]] = {}  # configuration -> its folded row
        self._members: dict[str, list[str]] = {}
        self._last: tuple = ()  # the settings of the last shown()
        self._varying: list[str] = []
        self._visible: list[str] = []
        self._cells: dict[str, tuple[Text, ...]] = {}
        self._cells_for: tuple = ()
        self._last_shown: tuple[tuple, Shown] | None = None  # ((settings, group_key), the last shown())

    # ---- runs in -------------------------------------------------------------------------
    def set_views(self, views: Iterable[Any]) -> None:
        """The runs (read-model rows, in order); only those whose view object changed are computed again."""
        new: dict[str, Any] = {}
        for v in views:
            new[v.id] = v
            if self._views.get(v.id) is v:
                continue
            if has_epochs(v):
                row = row_of(v)
                if row == self._runs.get(v.id):
                    continue  # a new view with the same row (its curves were read: the selected run's)
                self._dirty.add(v.id)
                sig = _signature(row)
                if v.id not in self._runs or self._sigs.get(v.id) != sig:
                    self._set_changed = True
                self._runs[v.id], self._sigs[v.id] = row, sig
            elif v.id in self._runs:
                self._dirty.add(v.id)
                del self._runs[v.id], self._sigs[v.id]
                self._set_changed = True
        for gone in [i for i in self._views if i not in new]:
            self._dirty.add(gone)
            if self._runs.pop(gone, None) is not None:
                self._sigs.pop(gone, None)
                self._set_changed = True
        self._views = new
        if self._set_changed or len(self._order) != len(self._runs):
            self._order = [i for i in new if i in self._runs]

    def same_rows(self, views: list[Any]) -> bool:
        """``views`` (in order) are the runs last set, each the same object or one whose row is the same: set_views
        with them would change nothing shown()."""
        if len(views) != len(self._views) or [v.id for v in views] != list(self._views):
            return False
        for v in views:
            old = self._views[v.id]
            if old is v:
                continue
            if has_epochs(v) != (v.id in self._runs) or (v.id in self._runs and row_of(v) != self._runs[v.id]):
                return False
        return True

    def has_repeats(self) -> bool:
        seen: set[str] = set()
        for row in self._runs.values():
            conf = row.get("configuration") or row["id"]
            if conf in seen:
                return True
            seen.add(conf)
        return False

    def is_grouped(self) -> bool:
        return self.has_repeats() if self.grouped is None else self.grouped

    # ---- what to show ----------------------------------------------------------------------
    def shown(self) -> Shown:
        """What to show; the very Shown of the last call when nothing it depends on changed since (a new view of a run
        whose row stays the same, such as the selected run's with its curves read, changes nothing here)."""
        grouped = self.is_grouped()
        settings = (grouped, tuple(map(str, self.conditions)), self.sort_key, self.sort_reverse, self.class_columns,
                    self.boundary_columns)
        if not self._dirty and not self._set_changed and self._last_shown is not None \
                and (settings, self.group_key) == self._last_shown[0]:
            return self._last_shown[1]
        dirty, self._dirty = self._dirty, set()
        if grouped:
            rows, members, dirty = self._configurations(dirty, settings != self._last or self._set_changed)
        else:
            rows, members = self._runs, {}
        if self._set_changed or settings[0] != (self._last[0] if self._last else None):
            self._varying = varying_keys(list(rows.values())) if not grouped else \
                [k for k in varying_keys(list(self._runs.values())) if k not in ("seed", "repeats", "fold")]
            self._classes = class_names(self._runs.values())
        self._set_changed = False
        per_class = class_keys([{"classes": self._classes}], VIEWS["classes"]) if self.class_columns else []
        boundary = [*VIEWS["boundary"], *(class_keys([{"classes": self._classes}], VIEWS["boundary"])
                                          if self.class_columns else [])] if self.boundary_columns else []
        # cross-validated configurations: their pooled out-of-fold Dice beside the mean over folds
        oof = ("oof_val_dice",) if grouped and any(r.get("folds") for r in rows.values()) else ()
        columns = ("mark", "id", "status", *self._varying, *(key for key, _ in METRIC_COLUMNS), *oof, *per_class,
                   *boundary)
        resort = settings != self._last or bool(dirty) or not self._visible
        if resort:
            order = [k for k in (self._conf_order() if grouped else self._order) if k in rows]
            visible = [k for k in order if matches(rows[k], self.conditions)]
            if self.sort_key is not None:
                visible = [r["id"] if not grouped else r["configuration"]
                           for r in sort_rows([rows[k] for k in visible], self.sort_key, self.sort_reverse)]
            self._visible = visible
        self._last = settings
        cell_settings = (columns, grouped)
        if cell_settings != self._cells_for:
            self._cells, self._cells_for = {}, cell_settings
        for key in dirty:
            self._cells.pop(key, None)
        cells = {}
        for key in self._visible:
            c = self._cells.get(key)
            if c is None:
                marked = any(m in self.marked for m in members.get(key, [key]))
                c = self._cells[key] = cells_of(rows[key], columns, marked, grouped)
            cells[key] = c
        shown_rows = {k: rows[k] for k in self._visible}
        groups = group_means(list(shown_rows.values()), self.group_key) if self.group_key else []
        shown = Shown(columns, list(self._visible), cells, shown_rows, members, list(self._varying), grouped, len(rows),
                      groups, list(self._classes))
        self._last_shown = ((settings, self.group_key), shown)
        return shown

    def mark_changed(self, keys: Iterable[str]) -> None:
        """These runs' (or configurations') mark changed: their cells are drawn again."""
        for key in keys:
            self._cells.pop(key, None)
            conf = (self._runs.get(key) or {}).get("configuration")
            if conf:
                self._cells.pop(conf, None)

    def _conf_order(self) -> list[str]:
        return list(dict.fromkeys((self._runs[i].get("configuration") or i) for i in self._order))

    def _configurations(self, dirty: set[str], everything: bool) -> tuple[dict, dict, set[str]]:
        """The folded row of each configuration (again only for those with a dirty run, unless ``everything``)."""
        members: dict[str, list[str]] = {}
        for i in self._order:
            members.setdefault(self._runs[i].get("configuration") or i, []).append(i)
        touched = set(members) if everything else {
            (self._runs[i].get("configuration") or i) if i in self._runs else self._conf_of_gone(i) for i in dirty}
        touched |= {c for c in self._confs if c not in members}
        for conf in touched:
            if conf in members:
                self._confs[conf] = configuration_rows([self._runs[i] for i in members[conf]])[0]
            else:
                self._confs.pop(conf, None)
        self._members = members
        return self._confs, members, {c for c in touched if c is not None}

    def _conf_of_gone(self, run_id: str) -> str | None:
        for conf, ids in self._members.items():
            if run_id in ids:
                return conf
        return None
