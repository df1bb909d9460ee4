"""The experiment configuration: canonical keys, defaults, types, and validation with clear messages."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from .names import did_you_mean, is_int
from .task import SYNTHETIC_DATASETS, check_classes

OPTIMIZERS = ("adam", "adamw", "adagrad", "adamax", "rmsprop", "sgd", "adadelta")
SCHEDULERS = ("none", "step", "plateau", "cosine", "onecycle")
LOSSES = ("bce", "dice", "dice_bce", "inv_dice_bce", "switching")
AMP_MODES = ("auto", "off", "fp16", "bf16")
# what the pages of a multi-page TIFF are: refused (the default: a z-stack or a time series is not one 2-D image),
# the first page only, or one channel each
TIFF_PAGES = ("error", "first", "channels")


class ConfigError(ValueError):
    """One problem with a definition: where it is, which key, what is wrong and what is valid."""

    def __init__(self, where: str, key: str | None, message: str):
        self.where, self.key, self.message = where, key, message
        super().__init__(str(self))

    def __str__(self) -> str:
        key = f": {self.key}" if self.key else ""
        return f"{self.where}{key}: {self.message}"


@dataclass(frozen=True)
class Config:
    """Every hyper-parameter of one experiment, by its canonical key (TOML, --set, config.json, CSV).

    Keys with a dot (``augment.rotate``) are written as nested tables in TOML and as the
    dotted name everywhere else; the dataclass field uses an underscore.
    """

    # data
    dataset: str = "synthetic:ventricle"
    num_images: int = 160  # synthetic datasets only: how many images to generate
    data_seed: int = 0  # synthetic generation and the train/validation split
    image_size: int = 64
    train_fraction: float = 0.8
    # share of the images held out for testing before the train/validation split (never used to choose anything);
    # 0 keeps a project's earlier runs valid and comparable: their splits had no test part
    test_fraction: float = 0.0
    # k-fold cross-validation (issue 26): folds = k >= 2 splits the non-test images into k folds and makes a
    # configuration k runs, <id>-f1 ... <id>-fk; run fold i validates on fold i and trains on the others (fold: set
    # by the queue for each of them; 0 without folds)
    folds: int = 0
    fold: int = 0
    tiff_pages: str = "error"  # a folder's multi-page TIFFs: "error" (refused, naming the file), "first", "channels"
    # the task (core/define/task.py): 2 classes is binary segmentation (any mask value > 0 is foreground); K >= 3
    # classes read each mask pixel's value as its class (mask_values, default 0 ... K-1)
    num_classes: int = 2
    class_names: tuple = ()  # K names, background first (default background, c1, c2, ...)
    mask_values: tuple = ()  # the pixel value of each class in the mask files (default: binary rule, or 0 ... K-1)
    class_weights: tuple = ()  # the loss's weight of each class (default: all equal)
    nsd_tolerance: float = 2.0  # px: the normalised surface Dice's tolerance (end-of-run boundary metrics)
    # native resolution (issue 25): patch_size > 0 trains on random P x P patches of the images at their own size and
    # predicts whole images by sliding window; 0 resizes whole images to image_size (letterboxed when not square)
    patch_size: int = 0
    foreground_oversample: float = 1 / 3  # share of each epoch's patches forced to contain foreground
    patches_per_epoch: int = 0  # 0: enough patches to cover the training pixels once (ceil(pixels / P^2))
    overlap: float = 0.5  # sliding window: the share of a window its neighbours overlap
    # model
    base_channels: int = 16
    depth: int = 4
    dropout: float = 0.0
    # optimisation
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0
    scheduler: str = "none"
    lr_step_size: int = 10  # step: epochs between decays
    lr_gamma: float = 0.1  # step: decay factor
    lr_patience: int = 5  # plateau: epochs without val-loss improvement
    lr_factor: float = 0.1  # plateau: decay factor
    lr_min: float = 0.0  # cosine: final rate; plateau: floor
    loss: str = "dice_bce"
    switch_lambda: float = 0.75
    switch_tau: float = 0.05
    # augmentation (training batches only; histeq is preprocessing of every input)
    augment_rotate: float = 0.0
    augment_hflip: float = 0.0
    augment_vflip: float = 0.0
    augment_histeq: bool = False
    # loop
    epochs: int = 20
    early_stop_patience: int = 0  # stop after this many epochs without a better val Dice; 0: never
    batch_size: int = 8
    seed: int = 0
    amp: str = "auto"
    device: str = "auto"
    preview_count: int = 4
    # train each configuration this many times, seeds seed, seed + 1000, seed + 2000, ... (ids <id>, <id>-r2, ...)
    repeats: int = 1

    # ---- conversions -------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Flat dict keyed by canonical (dotted) key names, in declaration order (a new dict each call)."""
        return {key: getattr(self, name) for name, key in _FIELD_KEYS}

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **{key_to_field(k): v for k, v in changes.items()})

    def fingerprint(self) -> str:
        """Stable hash of the definition of a run, every key but ``device`` (where it runs doesn't change what it is;
        ``amp = "auto"`` is hashed as written, so such a run resumes on a CPU or a GPU alike)."""
        d = {k: v for k, v in self.to_dict().items()
             if k not in ("device",) and not (k in HASHED_IF_SET and v == HASHED_IF_SET[k])}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


# keys added after fingerprints were first recorded: left out of the hash at these values (their defaults), so a
# definition that does not set them keeps the fingerprint it had
HASHED_IF_SET: dict[str, Any] = {"num_classes": 2, "class_names": (), "mask_values": (), "class_weights": (),
                                 "nsd_tolerance": 2.0, "patch_size": 0, "foreground_oversample": 1 / 3,
                                 "patches_per_epoch": 0, "overlap": 0.5, "folds": 0, "fold": 0}


def field_to_key(name: str) -> str:
    return name.replace("augment_", "augment.", 1) if name.startswith("augment_") else name


def key_to_field(key: str) -> str:
    return key.replace(".", "_")


_FIELDS = {f.name: f for f in dataclasses.fields(Config)}
KEYS: tuple[str, ...] = tuple(field_to_key(n) for n in _FIELDS)
# (field name, key) of every Config field, in declaration order
_FIELD_KEYS = tuple((f.name, field_to_key(f.name)) for f in dataclasses.fields(Config))
DEFAULTS = Config()
MAX_LR = 100.0
MAX_SEED = 2**63 - 2  # torch seeds are 64-bit; augmentation uses seed + 1
MAX_REPEATS = 100
REPEAT_SEED_STRIDE = 1000  # repeat k of a configuration trains with seed + (k - 1) * 1000


def _type_name(t: Any) -> str:
    return {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
            "tuple": "a list"}[t]


# the element type of each list-valued key, and an example
LIST_KEYS: dict[str, tuple[type, str]] = {"class_names": (str, '["background", "cavity", "ring"]'),
                                          "mask_values": (int, "[0, 128, 255]"),
                                          "class_weights": (float, "[0.2, 1.0, 2.0]")}


def _number_text(text: str, kind: type) -> Any:
    """One element of a list given as text (--set mask_values=0,128,255): a number for a numeric list, else the text."""
    if kind is str:
        return text
    try:
        return int(text) if kind is int else float(text)
    except ValueError:
        return text  # (refused by the element check, naming the list)


def _coerce_list(key: str, value: Any, where: str) -> tuple:
    kind, example = LIST_KEYS[key]
    if isinstance(value, str):  # --set class_names=a,b,c (or [a, b, c]: not TOML, bare words) arrives as one text
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        value = [_number_text(v.strip().strip("'\""), kind) for v in text.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(where, key, f"must be a list, e.g. {key} = {example}; got {value!r}")
    out = []
    for v in value:
        ok = (isinstance(v, str) if kind is str else
              isinstance(v, int) and not isinstance(v, bool) if kind is int else
              isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))
        if not ok:
            what = {str: "names (strings)", int: "integers", float: "numbers"}[kind]
            raise ConfigError(where, key, f"must be a list of {what}, e.g. {key} = {example}; got {list(value)!r}")
        out.append(float(v) if kind is float else v)
    return tuple(out)


def flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Turn nested TOML tables ({'augment': {'rotate': 20}}) into dotted keys ('augment.rotate')."""
    out: dict[str, Any] = {}
    for k, v in table.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, name + "."))
        else:
            out[name] = v
    return out


def check_key(key: str, where: str) -> None:
    if key not in KEYS:
        hint = did_you_mean(key, KEYS)
        raise ConfigError(where, key, f"unknown key; {hint.strip()}" if hint else f"unknown key; valid keys: {', '.join(KEYS)}")


_TYPE_OF = {key: _FIELDS[key_to_field(key)].type for key in KEYS}
_ACCEPTED: dict[tuple[str, type, Any], Any] = {}  # (key, type, value) coerce accepted -> what it returned
_ACCEPTED_MAX = 4096


def coerce(key: str, value: Any, where: str) -> Any:
    """Check one value's type and range; return it in the field's type (ints accepted for floats). A value accepted
    once is not checked again (a queue of 10,000 experiments repeats few values: a sweep's handful per key)."""
    # (-0.0 equals 0.0: a float zero is remembered by its text, so that each is returned as given)
    memo = (key, type(value), value) if value != 0.0 or type(value) is not float else (key, float, str(value))
    try:
        return _ACCEPTED[memo]
    except (KeyError, TypeError):  # (TypeError: an unhashable value, a list: refused below)
        pass
    check_key(key, where)
    ftype = _TYPE_OF[key]
    if ftype == "tuple":
        value = _coerce_list(key, value, where)
    elif ftype == "bool":
        if not isinstance(value, bool):
            raise ConfigError(where, key, f"must be true or false, got {value!r}")
    elif ftype == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(where, key, f"must be {_type_name('int')}, got {value!r}")
    elif ftype == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(where, key, f"must be {_type_name('float')}, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(where, key, f"must be a finite number, got {value!r}")
    elif ftype == "str":
        if not isinstance(value, str):
            raise ConfigError(where, key, f"must be {_type_name('str')}, got {value!r}")
    _check_range(key, value, where)
    if ftype == "tuple":
        return value  # (not remembered: a list given is not hashable)
    if len(_ACCEPTED) >= _ACCEPTED_MAX:
        _ACCEPTED.clear()
    _ACCEPTED[memo] = value
    return value


def _choice(key: str, value: str, options: tuple[str, ...], where: str) -> None:
    if value not in options:
        raise ConfigError(where, key, f"unknown value {value!r}; {did_you_mean(value, options)}valid: {', '.join(options)}")


_CHOICES = {"optimizer": OPTIMIZERS, "scheduler": SCHEDULERS, "loss": LOSSES, "amp": AMP_MODES,
            "tiff_pages": TIFF_PAGES}
# key -> (test, what a value failing it must be) of the numeric keys' ranges, in the order they are tested
_LIMITS: dict[str, tuple[tuple[Any, str], ...]] = {
    "lr": ((lambda v: v > 0, "must be > 0"),
           (lambda v: v <= MAX_LR, f"must be <= {MAX_LR:g} (a larger rate diverges in the first steps with every optimizer)")),
    "weight_decay": ((lambda v: v >= 0, "must be >= 0"),),
    "nsd_tolerance": ((lambda v: 0 <= v <= 1000, "is a distance in pixels and must be in [0, 1000]"),),
    "lr_min": ((lambda v: v >= 0, "must be >= 0"),),
    "momentum": ((lambda v: 0 <= v < 1, "must be in [0, 1)"),),
    "augment.rotate": ((lambda v: 0 <= v <= 180, "is the largest rotation in degrees either way and must be in [0, 180]"),),
    "test_fraction": ((lambda v: 0 <= v <= 0.5, "must be in [0, 0.5]: the share of the images held out for testing (0: none)"),),
    "repeats": ((lambda v: 1 <= v <= MAX_REPEATS, f"must be in [1, {MAX_REPEATS}]"),),
    "train_fraction": ((lambda v: 0 < v <= 1, "must be in (0, 1]: the share of images used for training (1.0 validates on the training images)"),),
    "dropout": ((lambda v: 0 <= v < 1, "must be in [0, 1)"),),
    "augment.hflip": ((lambda v: 0 <= v <= 1, "is a probability and must be in [0, 1]"),),
    "augment.vflip": ((lambda v: 0 <= v <= 1, "is a probability and must be in [0, 1]"),),
    "lr_gamma": ((lambda v: 0 < v < 1, "must be in (0, 1)"),),
    "lr_factor": ((lambda v: 0 < v < 1, "must be in (0, 1)"),),
    "switch_lambda": ((lambda v: 0 <= v <= 1, "must be in [0, 1]"),),
    "switch_tau": ((lambda v: 0 <= v < 1, "must be in [0, 1)"),),
    **{k: ((lambda v: v >= 1, "must be >= 1"),)
       for k in ("epochs", "batch_size", "base_channels", "depth", "lr_step_size", "num_images")},
    "image_size": ((lambda v: v >= 2, "must be >= 2"),),
    "patch_size": ((lambda v: v >= 0, "must be >= 0 (0: resize whole images to image_size; P > 0: P x P patches at "
                    "the images' own resolution)"),),
    "foreground_oversample": ((lambda v: 0 <= v <= 1, "is the share of patches forced to contain foreground and must "
                               "be in [0, 1]"),),
    "patches_per_epoch": ((lambda v: v >= 0, "must be >= 0 (0: enough patches to cover the training pixels once)"),),
    "folds": ((lambda v: v != 1, "must be 0 (no cross-validation) or at least 2: one fold would validate on the images "
               "it trains on; use folds = 0, or 3 to 10"), (lambda v: 0 <= v <= 100, "must be in [2, 100], or 0")),
    "fold": ((lambda v: v >= 0, "must be >= 0 (the queue sets it for each fold of a configuration)"),),
    "overlap": ((lambda v: 0 <= v <= 0.9, "is the share of a sliding window its neighbours overlap and must be in "
                 "[0, 0.9]"),),
    "num_classes": ((lambda v: 2 <= v <= 255, "must be in [2, 255]: 2 is binary segmentation (background and "
                     "foreground), K >= 3 a label map of K classes, background included"),),
    "seed": ((lambda v: 0 <= v <= MAX_SEED, f"must be in [0, {MAX_SEED}]"),),
    "data_seed": ((lambda v: 0 <= v <= MAX_SEED, f"must be in [0, {MAX_SEED}]"),),
    **{k: ((lambda v: v >= 0, "must be >= 0"),) for k in ("lr_patience", "preview_count", "early_stop_patience")},
}


def _builtin_list() -> str:
    return ", ".join(f"synthetic:{k}" for k in SYNTHETIC_DATASETS)


def _check_range(key: str, v: Any, where: str) -> None:
    if key in _CHOICES:
        _choice(key, v, _CHOICES[key], where)
    elif key == "device":
        if not (v in ("auto", "cpu", "cuda", "mps") or (v.startswith("cuda:") and v[5:].isdigit())):
            raise ConfigError(where, key, f"must be auto, cpu, cuda or cuda:N, got {v!r}")
    elif key == "dataset":
        if not v.strip():
            raise ConfigError(where, key, f"must name a dataset: {_builtin_list()} or a folder, got {v!r}")
        if v.startswith("synthetic:"):
            kinds = tuple(SYNTHETIC_DATASETS)
            kind = v.split(":", 1)[1]
            if kind not in kinds:
                raise ConfigError(where, key, f"unknown built-in dataset {v!r}; {did_you_mean(kind, kinds)}valid: {_builtin_list()}")
    else:
        for ok, what in _LIMITS.get(key, ()):
            if not ok(v):
                raise ConfigError(where, key, f"{what}, got {v!r}")


def check_image_size(image_size: int, depth: int) -> str | None:
    """Return None if a UNet of ``depth`` poolings accepts ``image_size`` x ``image_size`` inputs, else a one-line reason.

    Every one of the ``depth`` MaxPool2d(2) steps halves the size and the decoder
    must restore it exactly, so the size has to be a positive multiple of
    ``2**depth`` (the bottleneck is then ``image_size / 2**depth`` >= 1 pixel wide).
    The message names the nearest valid sizes, e.g.
    ``'image_size 100 is not divisible by 2**4 = 16 (depth 4): use 96 or 112, or change depth'``.
    """
    if not is_int(depth):
        return f"depth must be an integer, got {depth!r}"
    if depth < 1:
        return f"depth must be >= 1, got {depth}"
    if not is_int(image_size):
        return f"image_size must be an integer, got {image_size!r}"
    step = 2**depth
    if image_size < step:
        return (
            f"image_size {image_size} is smaller than 2**{depth} = {step} (depth {depth}): "
            f"the bottleneck would be smaller than 1 pixel; use {step}, or reduce depth"
        )
    if image_size % step:
        below = image_size // step * step
        above = below + step
        return (
            f"image_size {image_size} is not divisible by 2**{depth} = {step} (depth {depth}): "
            f"use {below} or {above}, or change depth"
        )
    return None


def build_config(values: dict[str, Any], where: str, base: Config = DEFAULTS) -> Config:
    """Apply flat, canonical-key ``values`` on top of ``base``; raise ConfigError on the first problem."""
    changes = {key_to_field(k): coerce(k, v, where) for k, v in values.items()}
    # dataclasses.replace, without its per-field __init__ (half the time of reading a queue of 10,000 experiments):
    # Config has no __post_init__ and every value was checked by coerce, so a copy of base's fields with the changes
    # is what replace would build
    cfg = object.__new__(Config)
    fields = base.__dict__.copy()  # (a copy of a dict is one block copy; update() into an empty one grows it in steps)
    fields.update(changes)
    object.__setattr__(cfg, "__dict__", fields)
    problem = _cross_check(cfg)
    if problem:
        raise ConfigError(where, problem[0], problem[1])
    return cfg


def _cross_check(cfg: Config) -> tuple[str, str] | None:
    """Checks that involve several keys."""
    problem = check_image_size(cfg.image_size, cfg.depth)
    if problem:
        return "image_size", problem.removeprefix("image_size ")
    if cfg.patch_size:
        problem = check_image_size(cfg.patch_size, cfg.depth)
        if problem:
            return "patch_size", problem.replace("image_size", "patch_size").removeprefix("patch_size ")
        if cfg.image_size != DEFAULTS.image_size and not cfg.dataset.startswith("synthetic:"):
            return "image_size", (f"{cfg.image_size} is set together with patch_size {cfg.patch_size}: image_size "
                                  "resizes whole images, patch_size trains on patches of the images at their own "
                                  "resolution; keep one (remove image_size, or set patch_size = 0)")
    if cfg.amp == "fp16" and cfg.device == "cpu":
        return "amp", "fp16 needs a CUDA device; use amp = \"off\" or \"bf16\" on the CPU"
    if cfg.seed + (cfg.repeats - 1) * REPEAT_SEED_STRIDE > MAX_SEED:
        return "seed", f"{cfg.seed} leaves no room for {cfg.repeats} repeats (seed + {REPEAT_SEED_STRIDE} per repeat)"
    if cfg.fold and not cfg.folds:
        return "fold", f"{cfg.fold} is set without folds: fold N is the validation fold of folds = k; set folds"
    if cfg.fold > cfg.folds:
        return "fold", f"{cfg.fold} is above folds = {cfg.folds}: the folds are 1 ... {cfg.folds}"
    if cfg.folds and cfg.train_fraction != DEFAULTS.train_fraction:
        return "train_fraction", (f"{cfg.train_fraction:g} is set together with folds = {cfg.folds}: with folds each run "
                                  f"validates on one fold of {cfg.folds} and trains on the others, so train_fraction "
                                  "is not used; remove it (or set folds = 0)")
    problem = check_classes(cfg.num_classes, cfg.class_names, cfg.mask_values, cfg.class_weights, cfg.dataset)
    if problem:
        return problem
    if cfg.scheduler in ("cosine", "plateau") and cfg.lr_min > cfg.lr:
        use = "the final rate of cosine" if cfg.scheduler == "cosine" else "the floor of plateau"
        return "lr_min", f"{cfg.lr_min:g} is above lr {cfg.lr:g}; lr_min is {use} and must not exceed lr"
    return None


# ---- what a run's definition is --------------------------------------------------------

# Keys that do not change what a run computes: where it ran, how many validation images its previews draw, and the
# tolerance its end-of-run NSD is counted at (the summary records it; the weights are the same).
NOT_DEFINITION = ("device", "preview_count", "repeats", "nsd_tolerance")
# Keys added after runs were first recorded, with the value an older config.json that lacks them implies (a key
# missing from a recorded config otherwise means its default).
LEGACY: dict[str, Any] = {"test_fraction": 0.0}


# (field, key, the value a recorded config that lacks the key implies) of every key that defines a run
_DEFINITION_NAMES, _DEFINITION_KEYS, _DEFINITION_MISSING = zip(*(
    (name, key, LEGACY.get(key, getattr(DEFAULTS, name))) for name, key in _FIELD_KEYS if key not in NOT_DEFINITION))


def recorded_value(v: Any) -> Any:
    """A value as a recorded config (config.json, a checkpoint) holds it, as Config holds it: JSON has no tuples, so a
    list key's list is its tuple."""
    return tuple(v) if type(v) is list else v


def definition_changes(recorded: dict[str, Any], cfg: Config) -> list[tuple[str, Any, Any]]:
    """(key, recorded value, value now) for every key of ``cfg`` that differs from a run's recorded config (its
    config.json, or a checkpoint's config), ignoring NOT_DEFINITION. Empty: the run is of this very definition."""
    now = tuple(map(cfg.__dict__.__getitem__, _DEFINITION_NAMES))  # (a frozen dataclass's fields: what getattr reads)
    was = tuple(map(recorded_value, map(recorded.get, _DEFINITION_KEYS, _DEFINITION_MISSING)))
    if was == now:  # the common case, compared in C (a project of 10,000 runs is judged at every start)
        return []
    return [(key, w, n) for key, w, n in zip(_DEFINITION_KEYS, was, now) if w != n]


def describe_changes(changes: list[tuple[str, Any, Any]], limit: int = 3) -> str:
    """``lr 0.001 -> 0.01, epochs 20 -> 30`` (at most ``limit`` keys, then how many more)."""
    def show(v: Any) -> str:
        return f"{v:g}" if isinstance(v, float) else str(v).lower() if isinstance(v, bool) else str(v)

    parts = [f"{k} {show(a)} -> {show(b)}" for k, a, b in changes[:limit]]
    if len(changes) > limit:
        parts.append(f"{len(changes) - limit} more")
    return ", ".join(parts)
