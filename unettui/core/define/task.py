"""What "the task" is, without torch: the classes of a definition (their names and their pixel values in the mask
files) and the metric registry every face reads its metric names, labels and directions from.

A definition with ``num_classes = 2`` and no ``mask_values`` is the binary task, exactly as unettui has always
trained it: one output channel, sigmoid, any mask value > 0 is foreground, and its run files hold the metrics they
always held (``val_dice`` is the foreground's Dice). With ``num_classes = K >= 3`` the model has K output channels
(softmax), a mask pixel's value is its class (``mask_values``, default ``0 ... K-1``), and the run files hold, beside
the binary task's keys, one key per foreground class and metric (``val_dice_<class>``, ``test_iou_<class>``,
``best_val_dice_<class>`` ...) and the worst class's (``val_dice_min``). ``val_dice`` is then the mean over the
foreground classes that have a score: a class that is in no image of the set, in truth or prediction, has none
(``None`` in JSON, an empty CSV cell, "—" on screen, never NaN and never a silent 0 in the mean).

The torch side (targets, losses, confusion counts per class, decoding logits) is ``core.learn.task``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["BINARY_NAMES", "Classes", "classes_of", "Metric", "METRICS", "class_key", "per_class_keys",
           "metric_value", "no_score_reason", "NAME_RE", "Key", "SUMMARY_KEYS", "EPOCH_KEYS",
           "SUMMARY_PER_CLASS", "END_PER_CLASS", "PER_CLASS_KEYS", "END_KEYS", "VIEWS", "AT_ORDER", "split_class_key",
           "key_of", "label_of", "direction_of", "foreground_of", "epoch_value", "worst_suffix", "worst_key",
           "metric_of", "spread_keys", "format_value", "aggregation_text", "describe_key", "EMPTY_POLICY",
           "IMAGES_TEXT"]

BINARY_NAMES = ("background", "foreground")
# the built-in datasets and their classes (mask value = class index): a definition of one of them must have as many
# classes, and takes these names unless it gives its own
SYNTHETIC_DATASETS: dict[str, tuple[str, ...]] = {
    "ventricle": BINARY_NAMES,
    "nuclei": BINARY_NAMES,
    # a cavity inside a thin ring (a ventricle inside its myocardium): the ring is the class a mean Dice hides
    "heart": ("background", "cavity", "myocardium"),
}
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
# words a class may not be called: a per-class key would read as another metric's (val_dice_min, val_dice_mean)
RESERVED_NAMES = ("min", "mean", "max", "sd", "n")


@dataclass(frozen=True)
class Classes:
    """The classes of one definition, resolved: ``names`` (background first), ``values`` (each class's pixel value in
    the mask files; None: the binary rule, any value > 0 is foreground)."""

    names: tuple[str, ...]
    values: tuple[int, ...] | None

    @property
    def k(self) -> int:
        return len(self.names)

    @property
    def binary(self) -> bool:
        """The binary task: one output channel, sigmoid (K = 2, whatever its values)."""
        return self.k == 2

    @property
    def foreground(self) -> tuple[str, ...]:
        return self.names[1:]

    @property
    def per_class(self) -> bool:
        """Whether run files hold a key per class (K >= 3; with 2 classes the foreground's is the metric itself)."""
        return self.k >= 3

    def describe(self) -> str:
        if self.values is None:
            return "binary: any mask value > 0 is foreground"
        return ", ".join(f"{n} = {v}" for n, v in zip(self.names, self.values))


def classes_of(cfg: Any) -> Classes:
    """The classes of a Config, or of a recorded config (config.json's dict; keys a run recorded before classes
    existed mean the binary task)."""
    get = cfg.get if isinstance(cfg, Mapping) else (lambda key, default=None: getattr(cfg, key, default))
    k = int(get("num_classes", 2) or 2)
    names = tuple(get("class_names", ()) or ())
    values = tuple(int(v) for v in (get("mask_values", ()) or ()))
    builtin = SYNTHETIC_DATASETS.get(synthetic_kind(str(get("dataset", "") or "")) or "")
    if not names:
        names = builtin if builtin and len(builtin) == k else (
            BINARY_NAMES if k == 2 else ("background", *(f"c{i}" for i in range(1, k))))
    if not values:
        return Classes(names, None if k == 2 else tuple(range(k)))
    return Classes(names, values)


def synthetic_kind(dataset: str) -> str | None:
    """``synthetic:heart`` -> ``heart``; None for a folder."""
    return dataset.split(":", 1)[1].strip().lower() if dataset.lower().startswith("synthetic:") else None


def check_classes(num_classes: int, names: Sequence[str], values: Sequence[int], weights: Sequence[float],
                  dataset: str = "") -> tuple[str, str] | None:
    """(key, what is wrong) of the first problem among a definition's class keys, or None."""
    k = num_classes
    builtin = SYNTHETIC_DATASETS.get(synthetic_kind(dataset) or "")
    if builtin and len(builtin) != k:
        return "num_classes", (f"{dataset} has {len(builtin)} classes ({', '.join(builtin)}): set num_classes = "
                               f"{len(builtin)}")
    if builtin and values and tuple(values) != tuple(range(k)):
        return "mask_values", f"{dataset}'s masks hold the class indices 0 ... {k - 1}: leave mask_values out"
    if names:
        if len(names) != k:
            return "class_names", (f"has {len(names)} name(s) for num_classes = {k}: give one per class, background "
                                   f"first (e.g. {', '.join(repr(n) for n in ('background', *(f'c{i}' for i in range(1, k))))})")
        for n in names:
            if not NAME_RE.match(n) or n in RESERVED_NAMES:
                return "class_names", (f"{n!r} cannot name a class: use lower-case letters, digits and _ (a letter "
                                       f"first; not {', '.join(RESERVED_NAMES)}): it becomes a column name")
        dup = sorted({n for n in names if list(names).count(n) > 1})
        if dup:
            return "class_names", f"{dup[0]!r} names two classes; every class needs its own name"
    if values:
        if len(values) != k:
            return "mask_values", (f"has {len(values)} value(s) for num_classes = {k}: give the pixel value of each "
                                   "class in the mask files, background first (e.g. [0, 128, 255])")
        if any(v < 0 or v > 65535 for v in values):
            return "mask_values", f"{list(values)}: pixel values must be in [0, 65535]"
        if len(set(values)) != len(values):
            return "mask_values", f"{list(values)} gives two classes the same pixel value"
    if weights:
        if len(weights) != k:
            return "class_weights", f"has {len(weights)} weight(s) for num_classes = {k}: give one per class"
        if any(w < 0 for w in weights) or not any(w > 0 for w in weights):
            return "class_weights", f"{list(weights)}: weights must be >= 0 and at least one > 0"
    return None


# ---- the metric registry ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Metric:
    """One metric every face knows by ``name``: its ``label`` on screen, its ``direction`` (max: higher is better),
    ``when`` it is computed (epoch: every epoch on validation, and on test at the best epoch; end: once, at the end of
    a run on its best weights), how it aggregates over ``images`` (pooled: counts summed over every pixel of the set;
    mean: a per-image value averaged, with its sd and n over the images that scored), over ``classes`` (mean over the
    foreground classes that have a score; the worst of them under ``<key>_<worst>``: ``_min`` for a metric where
    higher is better, ``_max`` for one where lower is), and over repeats (always: mean ± sd over the repeats that have
    a value). ``unit``: what its numbers are in ("px" for a distance); ``digits``: the decimals faces show; ``count``:
    the stem of the key a per-image metric's n is recorded under (``val_boundary_n``, ``val_boundary_n_<class>``)."""

    name: str
    label: str
    direction: str = "max"
    when: str = "epoch"
    images: str = "pooled"
    classes: str = "mean"
    per_class: bool = True  # a key per foreground class (K >= 3)
    aggregates: tuple[str, ...] = ("min",)  # over classes, besides the mean: keys <name>_<worst>
    unit: str = ""
    digits: int = 4
    count: str = ""

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "max"

    @property
    def worst(self) -> str:
        """The suffix of the worst class's key: ``min`` (the lowest Dice, NSD) or ``max`` (the highest HD95)."""
        return "min" if self.higher_is_better else "max"


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("dice", "Dice"),
    Metric("iou", "IoU"),
    Metric("loss", "loss", direction="min", per_class=False, aggregates=()),
    # end-of-run boundary metrics (core.learn.boundary): per image and class, then the mean over the images that scored
    Metric("hd95", "HD95", direction="min", when="end", images="mean", aggregates=("max",), unit="px", digits=2,
           count="boundary_n"),
    Metric("nsd", "NSD", when="end", images="mean", count="boundary_n"),
)}

# how a metric aggregates over the images of a set, in words (a Metric's ``images``): what reports say beside it
IMAGES_TEXT = {
    "pooled": "pooled counts (true and false positives and false negatives summed over every pixel of the set, then "
              "the score)",
    "mean": "per image, then the mean over the images that scored (with its sd and n)",
}
# the one policy for the empty cases of the per-image metrics (core.learn.boundary's docstring), in one sentence
EMPTY_POLICY = ("an image where a class is in neither the truth nor the prediction is left out of that class's mean "
                "(n counts the images that scored); a missed or a false structure scores HD95 = the image's diagonal "
                "and NSD 0; never NaN")


def class_key(key: str, name: str) -> str:
    """``val_dice`` and ``myocardium`` -> ``val_dice_myocardium`` (a class's key beside an aggregate's)."""
    return f"{key}_{name}"


def per_class_keys(key: str, classes: Classes) -> list[str]:
    """The keys beside ``key`` (e.g. ``best_val_dice``) that a run of ``classes`` records: one per foreground class
    and the worst class's (``_min``; ``_max`` for a metric where lower is better: ``val_hd95_max``), in that order;
    none for the binary task."""
    if not classes.per_class:
        return []
    return [*(class_key(key, n) for n in classes.foreground), worst_key(key)]


# ---- the keys run files hold, and what each face shows of them --------------------------------------------------------
@dataclass(frozen=True)
class Key:
    """A number a run file holds under ``name`` (summary.json, or one metrics.jsonl record): its ``label`` in words
    ("best val Dice"), its ``short`` header in narrow tables ("best dice"), the ``metric`` of METRICS it is a value of
    ("" for counts, times and the learning rate: they have no direction), and for summary keys ``at`` which epoch
    (best: the epoch of the best val_dice; final: the last; test: the test split at the best epoch, or on the best
    epoch's weights at the end of the run; end: the validation split on the best epoch's weights at the end of the
    run; "": the run as a whole) and ``source``, the metrics.jsonl key read at that epoch while a run has no
    summary.json yet.

    ``column``: an export column of every project (False: only in projects with multi-class runs, beside the
    per-class columns: a binary project exports the columns it always did); ``folded``: configurations fold it over
    their repeats (mean, ``_sd``, ``_n``); ``per_class``: a run with K >= 3 classes also records ``<name>_<class>`` and
    the worst class's ``<name>_min`` (``_max`` for a metric where lower is better); ``curve``: a per-epoch key
    `compare` can draw; ``aliases``: shorter names a filter accepts."""

    name: str
    label: str
    short: str
    metric: str = ""
    at: str = ""
    source: str = ""
    column: bool = True
    folded: bool = False
    per_class: bool = False
    curve: bool = False
    aliases: tuple[str, ...] = ()

    @property
    def direction(self) -> str | None:
        """max (higher is better), min, or None (a count, a time, the learning rate)."""
        return METRICS[self.metric].direction if self.metric else None


# summary.json's numbers, in the order of the export's columns
SUMMARY_KEYS: dict[str, Key] = {k.name: k for k in (
    Key("best_val_dice", "best val Dice", "best dice", "dice", "best", "val_dice", folded=True, per_class=True,
        aliases=("val_dice", "dice")),
    Key("best_val_iou", "best val IoU", "best iou", "iou", "best", "val_iou", column=False, folded=True,
        per_class=True),
    Key("best_epoch", "best epoch", "best ep", at="best", source="epoch"),
    Key("best_val_loss", "val loss at best", "best loss", "loss", "best", "val_loss", folded=True),
    Key("final_train_loss", "train loss", "train loss", "loss", "final", "train_loss", aliases=("train_loss",)),
    Key("final_train_dice", "train Dice", "train dice", "dice", "final", "train_dice", aliases=("train_dice",)),
    Key("final_val_loss", "val loss", "final loss", "loss", "final", "val_loss", folded=True, aliases=("val_loss",)),
    Key("final_val_dice", "val Dice", "final dice", "dice", "final", "val_dice", folded=True, per_class=True),
    Key("final_val_iou", "val IoU", "final iou", "iou", "final", "val_iou", folded=True, per_class=True,
        aliases=("val_iou",)),
    Key("epochs_done", "epochs", "epochs"),
    Key("seconds", "time", "time", aliases=("time",)),
    Key("test_dice", "test Dice", "test dice", "dice", "test", folded=True, per_class=True),
    Key("test_iou", "test IoU", "test iou", "iou", "test", folded=True, per_class=True),
    Key("n_test", "test images", "n test"),
    # the end-of-run boundary metrics (core.learn.boundary), on the best epoch's weights: the mean over the images
    # that scored (multi-class runs: the mean over the classes that have a score)
    Key("val_hd95", "val HD95", "val hd95", "hd95", "end", folded=True, per_class=True, aliases=("hd95",)),
    Key("val_nsd", "val NSD", "val nsd", "nsd", "end", folded=True, per_class=True, aliases=("nsd",)),
    Key("test_hd95", "test HD95", "test hd95", "hd95", "test", folded=True, per_class=True),
    Key("test_nsd", "test NSD", "test nsd", "nsd", "test", folded=True, per_class=True),
    # their spread over the images and n (a binary run's; a multi-class run records them per class:
    # val_hd95_sd_<class>, val_boundary_n_<class>)
    Key("val_hd95_sd", "val HD95 sd over images", "val hd95 sd", at="end", column=False),
    Key("val_nsd_sd", "val NSD sd over images", "val nsd sd", at="end", column=False),
    Key("val_boundary_n", "val images scored", "val n", at="end", column=False),
    Key("test_hd95_sd", "test HD95 sd over images", "test hd95 sd", at="test", column=False),
    Key("test_nsd_sd", "test NSD sd over images", "test nsd sd", at="test", column=False),
    Key("test_boundary_n", "test images scored", "test n", at="test", column=False),
)}

# a metrics.jsonl record's numbers (besides ``epoch``), in the order `compare --metric` lists them
EPOCH_KEYS: dict[str, Key] = {k.name: k for k in (
    Key("val_dice", "val Dice", "val dice", "dice", per_class=True, curve=True),
    Key("val_loss", "val loss", "val loss", "loss", curve=True),
    Key("train_loss", "train loss", "train loss", "loss", curve=True),
    Key("train_dice", "train Dice", "train dice", "dice", curve=True),
    Key("val_iou", "val IoU", "val iou", "iou", per_class=True, curve=True),
    Key("lr", "learning rate", "lr", curve=True),
    Key("seconds", "time", "time"),
)}

# the summary keys of the per-epoch metrics that have per-class companions, in the order faces show them
SUMMARY_PER_CLASS = tuple(k.name for k in SUMMARY_KEYS.values() if k.per_class and METRICS[k.metric].when == "epoch")
# ("best_val_dice", "best_val_iou", "final_val_dice", "final_val_iou", "test_dice", "test_iou")
# the end-of-run metrics' summary keys (every one has per-class companions): ("val_hd95", "val_nsd", "test_hd95",
# "test_nsd")
END_KEYS = tuple(k.name for k in SUMMARY_KEYS.values() if k.metric and METRICS[k.metric].when == "end")
END_PER_CLASS = tuple(k for k in END_KEYS if SUMMARY_KEYS[k].per_class)
# every summary key with per-class companions: the per-epoch metrics', then the end-of-run ones'
PER_CLASS_KEYS = (*SUMMARY_PER_CLASS, *END_PER_CLASS)
# the keys of a per-image metric's spread over the images (its sd and n: val_hd95_sd_<class>, val_boundary_n_<class>)
SUMMARY_SPREAD = tuple(k.name for k in SUMMARY_KEYS.values() if k.at in ("end", "test") and not k.metric)

# What each face shows of them by default, in its order (every face also takes any key above where asked: export,
# sorting, filters, `compare --metric`). A new metric is a METRICS entry, its keys above, and here where it shows.
VIEWS: dict[str, tuple[str, ...]] = {
    # the TUI's Results tab: its metric columns (those folded over repeats show mean ± sd (n) per configuration)
    "results-tab": ("best_val_dice", "best_epoch", "final_val_dice", "final_val_loss", "epochs_done", "seconds"),
    # the TUI's Results tab grouped by a key (g): the means per value (rows without the first are left out)
    "results-groups": ("best_val_dice", "final_val_loss"),
    # `unettui results`: the score columns (a configuration: mean ± sd (n); a run: the best with its epoch)
    "results": ("best_val_dice", "final_val_dice", "test_dice"),
    # per-class columns on demand (`results --classes`, the TUI's k): each class's value of these, then the worst's
    "classes": ("best_val_dice",),
    # the end-of-run boundary metrics on demand (`results --boundary`, the TUI's h; per class with --classes / k)
    "boundary": ("val_hd95", "val_nsd"),
    # `unettui show`: the per-epoch table, the curves, and the per-class table's columns (multi-class runs)
    "epochs": ("train_loss", "train_dice", "val_loss", "val_dice", "lr", "seconds"),
    "curves": ("train_loss", "val_loss", "train_dice", "val_dice", "lr"),
    "class-table": ("best_val_dice", "best_val_iou", "final_val_dice", "final_val_iou", "test_dice", "test_iou"),
    # ... and beside them, where the run recorded them, the end-of-run boundary metrics (a binary run's: one line)
    "class-boundary": ("val_hd95", "val_nsd", "test_hd95", "test_nsd"),
    # a study report's table of runs (the course report's: the last epoch's) and its means per value of a key
    "study-table": ("final_train_loss", "final_train_dice", "final_val_loss", "final_val_dice"),
    "study-groups": ("final_val_loss", "final_val_dice"),
    # a study report's end-of-run table per stage (mean ± sd (n) over a configuration's runs), its per-class tables
    # of multi-class runs, and the final configuration's scores
    "study-end": ("val_hd95", "val_nsd", "test_hd95", "test_nsd"),
    "study-end-classes": ("val_hd95", "val_nsd"),
    # the TUI's Compare tab: the curves drawn together (the first takes the left half of a wide window)
    "compare-tab": ("val_dice", "val_loss", "train_loss"),
}

# which epoch a summary key is taken at, in the order configurations fold them (Dice first within each: what a
# study compares by; the end-of-run metrics after every per-epoch one)
AT_ORDER = ("best", "final", "end", "test", "")


def split_class_key(name: str, bases: Sequence[str] | None = None) -> tuple[str, str] | None:
    """``best_val_dice_myocardium`` -> ``("best_val_dice", "myocardium")``, ``val_dice_min`` -> ``("val_dice",
    "min")``, ``val_hd95_max`` -> ``("val_hd95", "max")``: a per-class key split into the key it is a class's value
    of (one of ``bases``, by default every summary or per-epoch key with per-class companions, and the per-image
    spreads: ``val_hd95_sd_myocardium`` -> ``("val_hd95_sd", "myocardium")``) and the class name (or the worst's
    suffix); None for any other name. The longest base wins."""
    if bases is None:
        bases = [*PER_CLASS_KEYS, *SUMMARY_SPREAD, *(k.name for k in EPOCH_KEYS.values() if k.per_class)]
    best = None
    for base in bases:
        if name.startswith(base + "_") and len(name) > len(base) + 1 and (best is None or len(base) > len(best)):
            best = base
    return (best, name[len(best) + 1:]) if best is not None else None


def key_of(name: str) -> Key | None:
    """The registry entry of a key a run file may hold, per-class keys too (a class's entry is its base's, named and
    labelled for the class: ``best val Dice myocardium``, ``best dice min``); None for an unknown name."""
    known = SUMMARY_KEYS.get(name) or EPOCH_KEYS.get(name)
    if known is not None:
        return known
    split = split_class_key(name)
    if split is None:
        return None
    base = SUMMARY_KEYS.get(split[0]) or EPOCH_KEYS[split[0]]
    suffix = "(worst class)" if split[1] in ("min", "max") else split[1]
    return Key(name, f"{base.label} {suffix}", f"{base.short} {split[1]}", base.metric, base.at,
               class_key(base.source, split[1]) if base.source else "", column=False, folded=base.folded,
               curve=base.curve)


def label_of(name: str, short: bool = False) -> str:
    """A key's words (or its narrow header); the name itself for a key the registry does not know."""
    key = key_of(name)
    return name if key is None else key.short if short else key.label


def direction_of(name: str) -> str | None:
    """max, min or None of any key (per-class keys: their base's)."""
    key = key_of(name)
    return None if key is None else key.direction


def foreground_of(summary: Mapping[str, Any] | None, config: Any = None) -> tuple[str, ...]:
    """The foreground classes a run has per-class keys for: the names its summary.json recorded (``classes``), else
    its config's; () for a binary run."""
    recorded = (summary or {}).get("classes")
    if isinstance(recorded, Mapping) and isinstance(recorded.get("names"), (list, tuple)):
        names = tuple(str(n) for n in recorded["names"])
        return names[1:] if len(names) >= 3 else ()
    if config is None:
        return ()
    k = config.get("num_classes", 2) if isinstance(config, Mapping) else getattr(config, "num_classes", 2)
    if isinstance(k, int) and k < 3:  # binary (the common case: no need to resolve names)
        return ()
    classes = classes_of(config)
    return classes.foreground if classes.per_class else ()


def epoch_value(record: Mapping[str, Any], key: str) -> float | None:
    """A metrics.jsonl record's finite value of ``key`` (None-safe, never NaN); ``<key>_min`` that the record lacks
    is the smallest of its ``<key>_<class>`` values that have a score, or, for a binary record, ``<key>`` itself."""
    value = _number(record.get(key))
    if value is not None or not key.endswith("_min"):
        return value
    base = key[:-4]
    classes = [k for k in record if k.startswith(base + "_") and k[len(base) + 1:] not in RESERVED_NAMES]
    if not classes:  # a binary record: its only foreground class is the worst
        return _number(record.get(base))
    scored = [v for v in (_number(record.get(k)) for k in classes) if v is not None]
    return min(scored) if scored else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def metric_value(summary: Mapping[str, Any], key: str) -> float | None:
    """A summary's value under ``key``, None when it has none; the worst class's ``<key>_min`` (``<key>_max``) of a
    binary run is its ``<key>`` (the only foreground class is the worst)."""
    value = summary.get(key)
    base = key[:-4]
    if value is None and key.endswith(("_min", "_max")) and base in summary and not any(
            k.startswith(base + "_") and k[len(base) + 1:] not in RESERVED_NAMES for k in summary):
        value = summary.get(base)  # (val_hd95_sd, val_nsd_sd: a binary run's spreads, not classes)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def no_score_reason(summary: Mapping[str, Any], key: str) -> str | None:
    """Why a per-class key has no value (the run recorded it), or None."""
    reasons = summary.get("no_score")
    if isinstance(reasons, Mapping):
        why = reasons.get(key)
        return str(why) if why else None
    return None


def metric_of(name: str) -> Metric | None:
    """The METRICS entry of any key (per-class ones too: their base's); None for a count, a time, an unknown name."""
    key = key_of(name)
    return METRICS.get(key.metric) if key is not None and key.metric else None


def worst_suffix(name: str) -> str:
    """The suffix of the worst class's key beside ``name`` (a key with per-class companions): ``min`` where higher is
    better (Dice, IoU, NSD), ``max`` where lower is (HD95)."""
    metric = metric_of(name)
    return metric.worst if metric is not None else "min"


def worst_key(name: str) -> str:
    """``best_val_dice`` -> ``best_val_dice_min``, ``val_hd95`` -> ``val_hd95_max``: the worst class's key."""
    return class_key(name, worst_suffix(name))


def spread_keys(name: str) -> tuple[str, str] | None:
    """(sd key, n key) of a per-image metric's value over the images: ``val_hd95`` -> ``("val_hd95_sd",
    "val_boundary_n")`` (a binary run's), ``val_nsd_cavity`` -> ``("val_nsd_sd_cavity", "val_boundary_n_cavity")``;
    None for a pooled metric, the worst class's key, or a name the registry does not know."""
    metric = metric_of(name)
    if metric is None or metric.images != "mean" or not metric.count:
        return None
    split = split_class_key(name, PER_CLASS_KEYS)
    base, cls = split if split is not None else (name, "")
    if base not in SUMMARY_KEYS or cls in ("min", "max"):
        return None
    prefix = base[:-len(metric.name) - 1]
    sd, n = f"{base}_sd", f"{prefix}_{metric.count}"
    return (class_key(sd, cls), class_key(n, cls)) if cls else (sd, n)


def format_value(name: str, value: Any, missing: str = "-", unit: bool = False) -> str:
    """A key's value with its metric's decimals (HD95 2, the others 4), ``missing`` without one (None, NaN, text);
    ``unit``: with the metric's unit (``3.41 px``)."""
    number = _number(value)
    if number is None:
        return missing
    metric = metric_of(name)
    digits = metric.digits if metric is not None else 4
    text = f"{number:.{digits}f}"
    return f"{text} {metric.unit}" if unit and metric is not None and metric.unit else text


def aggregation_text(metric: str) -> str:
    """How a metric (a METRICS name) aggregates over a set's images, in words (the report's)."""
    return IMAGES_TEXT[METRICS[metric].images]


def describe_key(name: str) -> str:
    """A key in words with its direction and how it aggregates: ``best val Dice (worst class): higher is better; the
    lowest foreground class's ...; pooled counts ...``; the name itself for a key the registry does not know."""
    key = key_of(name)
    metric = metric_of(name)
    if key is None or metric is None:
        return name
    parts = ["higher is better" if metric.higher_is_better else "lower is better"]
    if metric.unit:
        parts[0] = f"in {metric.unit}, {parts[0]}"
    split = split_class_key(name)
    if split is not None and split[1] in ("min", "max"):
        parts.append(f"the {'lowest' if split[1] == 'min' else 'highest'} foreground class's (a binary run's: its "
                     "foreground's)")
    elif split is None and metric.per_class:
        parts.append("a multi-class run's: the mean over the foreground classes that have a score")
    if metric.when == "end":
        parts.append("on the best epoch's weights at the end of the run")
    parts.append(aggregation_text(metric.name))
    return f"{key.label}: {'; '.join(parts)}"
