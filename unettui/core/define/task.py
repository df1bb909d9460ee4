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

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["BINARY_NAMES", "Classes", "classes_of", "Metric", "METRICS", "class_key", "per_class_keys",
           "summary_class_keys", "metric_value", "no_score_reason", "NAME_RE"]

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
    mean: a per-image value averaged, with its sd) and over ``classes`` (mean over the foreground classes that have a
    score; min: the worst of them), and over repeats (always: mean ± sd over the repeats that have a value)."""

    name: str
    label: str
    direction: str = "max"
    when: str = "epoch"
    images: str = "pooled"
    classes: str = "mean"
    per_class: bool = True  # a key per foreground class (K >= 3)
    aggregates: tuple[str, ...] = ("min",)  # over classes, besides the mean: keys <name>_min

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "max"


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("dice", "Dice"),
    Metric("iou", "IoU"),
    Metric("loss", "loss", direction="min", per_class=False, aggregates=()),
)}


def class_key(key: str, name: str) -> str:
    """``val_dice`` and ``myocardium`` -> ``val_dice_myocardium`` (a class's key beside an aggregate's)."""
    return f"{key}_{name}"


def per_class_keys(key: str, classes: Classes) -> list[str]:
    """The keys beside ``key`` (e.g. ``best_val_dice``) that a run of ``classes`` records: one per foreground class
    and the worst class's (``_min``), in that order; none for the binary task."""
    if not classes.per_class:
        return []
    return [*(class_key(key, n) for n in classes.foreground), f"{key}_min"]


# the summary keys that have per-class companions, in the order faces show them
SUMMARY_PER_CLASS = ("best_val_dice", "best_val_iou", "final_val_dice", "final_val_iou", "test_dice", "test_iou")


def summary_class_keys(classes: Classes) -> list[str]:
    """Every per-class summary key a run of ``classes`` writes (empty for the binary task)."""
    return [k for key in SUMMARY_PER_CLASS for k in per_class_keys(key, classes)]


def metric_value(summary: Mapping[str, Any], key: str) -> float | None:
    """A summary's value under ``key``, None when it has none; ``<key>_min`` of a binary run is its ``<key>`` (the
    only foreground class is the worst)."""
    value = summary.get(key)
    if value is None and key.endswith("_min") and key[:-4] in summary and not any(
            k.startswith(key[:-4] + "_") and k != key for k in summary):
        value = summary.get(key[:-4])
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def no_score_reason(summary: Mapping[str, Any], key: str) -> str | None:
    """Why a per-class key has no value (the run recorded it), or None."""
    reasons = summary.get("no_score")
    if isinstance(reasons, Mapping):
        why = reasons.get(key)
        return str(why) if why else None
    return None
