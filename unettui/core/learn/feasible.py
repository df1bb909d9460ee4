"""Whether a configuration can train at all, decided up front in microseconds (no data loaded, no torch): the
split and the batch, batch norm's need for two values, and the memory it would take against the machine's.

`unettui check` and the trainer ask the same questions, so a run that check accepts does not fail on them after
minutes of data generation, and one that cannot fit is refused with its estimate instead of swapping a machine
to a halt.
"""

from __future__ import annotations

import math
import os

from ..define.config import Config

# Training memory per image is about this many times the activations autograd keeps for the backward pass (the
# gradients of those activations, and temporaries). Measured on the CPU: the formula in _activation_floats is within
# 0.93-1.25x of the bytes actually saved for base 4-64, depth 2-4, 32-128 px.
BACKWARD_FACTOR = 2.0
# Bytes per pixel while a dataset is built: the synthetic generators' float64 intermediates (measured 73-83 B/px at
# 128 px, 1,000 images), and a folder's decoded files before they are stacked.
SYNTHETIC_BYTES_PER_PIXEL = 96
FOLDER_BYTES_PER_PIXEL = 32
OPTIMIZER_STATES = {"adam": 2, "adamw": 2, "adamax": 2, "adadelta": 2, "rmsprop": 1, "adagrad": 1, "sgd": 1}


def held_out_count(n: int, test_fraction: float) -> int:
    """Images held out for testing, as core.learn.data.split_with_test counts them."""
    if test_fraction <= 0 or n < 3:
        return 0
    return min(max(int(math.floor(test_fraction * n + 0.5)), 1), n - 2)


def split_counts(n: int, train_fraction: float, test_fraction: float = 0.0) -> tuple[int, int]:
    """(training images, validation images) of ``n`` at ``train_fraction`` after ``test_fraction`` is held out, as
    core.learn.data splits them (half-up rounding, at least one on each side; 1.0 validates on the training
    images)."""
    n -= held_out_count(n, test_fraction)
    if n < 1:
        return 0, 0
    if train_fraction >= 1.0:
        return n, n
    if n < 2:
        return n, 0
    n_train = min(max(int(math.floor(train_fraction * n + 0.5)), 1), n - 1)
    return n_train, n - n_train


def widths(cfg: Config) -> list[int]:
    return [cfg.base_channels * 2**i for i in range(cfg.depth + 1)]


def parameter_count(cfg: Config, in_channels: int = 1) -> int:
    """The UNet's parameters (core.model.UNet): 3x3 convs without bias, two batch norms per block, 2x2 transposed
    convs with bias, a 1x1 head with bias. 1,942,289 for base 16, depth 4, one input channel."""
    ws = widths(cfg)

    def block(cin: int, w: int) -> int:
        return 9 * cin * w + 9 * w * w + 4 * w

    total, prev = 0, in_channels
    for w in ws:
        total += block(prev, w)
        prev = w
    for i in range(cfg.depth):
        total += 4 * ws[i + 1] * ws[i] + ws[i] + block(2 * ws[i], ws[i])
    return total + ws[0] + 1


def _activation_floats(cfg: Config, in_channels: int = 1) -> int:
    """Floats autograd keeps per training image: per conv block its input and four maps of its width (conv, batch
    norm, ReLU in place, conv, batch norm), with dropout two more (its mask and the dropped map the next layer keeps:
    measured with saved-tensor hooks, tests/unit/test_pack_memory.py), the max-pool's input, and in the decoder the
    upsampled map and the concatenation."""
    s, ws = cfg.image_size, widths(cfg)
    drop = 2 if cfg.dropout > 0 else 0
    total = 0
    for i, w in enumerate(ws):
        r = s // 2**i
        cin = in_channels if i == 0 else ws[i - 1]
        total += (cin + (4 + drop) * w) * r * r + (0 if i == 0 else cin * (2 * r) ** 2 // 2)
    for i in range(cfg.depth):
        r = s // 2**i
        total += (7 + drop) * ws[i] * r * r
    return total + s * s


def memory_estimate(cfg: Config, n_images: int, in_channels: int = 1, synthetic: bool = True) -> dict[str, int]:
    """Bytes a run needs at its peak, by part: ``model`` (weights, gradients, optimizer state), ``activations`` (a
    training batch), ``data`` (the dataset as it is built). An estimate, within about 25 % of what autograd keeps."""
    states = OPTIMIZER_STATES.get(cfg.optimizer, 2)
    if cfg.optimizer == "sgd" and cfg.momentum == 0:
        states = 0
    params = parameter_count(cfg, in_channels)
    pixels = n_images * cfg.image_size**2
    per_px = SYNTHETIC_BYTES_PER_PIXEL if synthetic else max(FOLDER_BYTES_PER_PIXEL, 8 * (in_channels + 1))
    return {
        "model": params * 4 * (2 + states),
        "activations": int(_activation_floats(cfg, in_channels) * 4 * BACKWARD_FACTOR * cfg.batch_size),
        "data": pixels * per_px,
    }


def smallest_fold_train(m: int, k: int) -> int:
    """The training images of the smallest fold run when ``m`` non-test images are dealt into ``k`` folds: all but
    the largest fold, ``m - ceil(m / k)`` (what every fold's epoch trains on: run_data.fold_epoch)."""
    return m - -(-m // k)


def machine_memory() -> int | None:
    """This machine's RAM in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def size_text(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"  # pragma: no cover


def _fitting_batch(n_train: int, batch_size: int) -> int | None:
    """The batch size nearest ``batch_size`` whose last batch is not a single image."""
    for delta in range(0, n_train):
        for b in (batch_size + delta, batch_size - delta):
            if 2 <= b <= n_train and n_train % b != 1:
                return b
    return None


def problems(cfg: Config, n_images: int | None, memory: int | None = None, where_memory: str = "this machine",
             in_channels: int = 1, synthetic: bool = True) -> list[tuple[str, str]]:
    """(key, reason) for everything that would stop ``cfg`` from training on ``n_images`` images, in the order the
    run would hit them; empty when it can train. ``memory``: bytes available to the run (the RAM, or the GPU's
    memory when it trains on one), checked only when given."""
    out: list[tuple[str, str]] = []
    if n_images is not None:
        if cfg.test_fraction > 0 and n_images < 3:
            out.append(("test_fraction", f"{cfg.test_fraction:g} needs at least 3 images (test, train and "
                                         f"validation), the dataset has {n_images}; use test_fraction = 0 or more images"))
            return out
        n_train, n_val = split_counts(n_images, cfg.train_fraction, cfg.test_fraction)
        if cfg.folds:  # k folds of the non-test images: the smallest trains on all but the largest fold
            rest = n_images - held_out_count(n_images, cfg.test_fraction)
            if rest < cfg.folds:
                held = (f" after test_fraction {cfg.test_fraction:g} holds out {n_images - rest}"
                        if rest < n_images else "")
                out.append(("folds", f"{cfg.folds} folds need at least {cfg.folds} images to validate on, the dataset "
                                     f"has {rest}{held}; use folds = {max(2, rest)} or fewer, or more images"))
                return out
            n_train, n_val = smallest_fold_train(rest, cfg.folds), rest // cfg.folds
        if n_val < 1:
            out.append(("train_fraction", f"{cfg.train_fraction:g} of {n_images} image{'s' if n_images != 1 else ''} "
                                          "leaves no validation image; use train_fraction = 1.0 or more images"))
            return out
        native = cfg.patch_size > 0  # batches of patches: a batch may be larger than the training images
        if cfg.batch_size > n_train and not native:
            held = f", after test_fraction {cfg.test_fraction:g}" if cfg.test_fraction > 0 else ""
            out.append(("batch_size", f"{cfg.batch_size} is larger than the {n_train} training images (train_fraction "
                                      f"{cfg.train_fraction:g} of {n_images}{held}); lower batch_size, raise "
                                      "train_fraction or add images"))
            return out
        bottleneck = (cfg.patch_size or cfg.image_size) // 2**cfg.depth
        last = n_train % cfg.batch_size or cfg.batch_size
        if native:
            if bottleneck == 1 and cfg.batch_size == 1:
                out.append(("batch_size", f"1 with patch_size {cfg.patch_size} at depth {cfg.depth}: the bottleneck "
                                          "is 1x1 pixel and batch norm cannot train on a single value; use batch_size "
                                          f"2 or a patch_size of {cfg.patch_size * 2}"))
        elif bottleneck == 1 and last == 1:
            fix = _fitting_batch(n_train, cfg.batch_size)
            which = "every training batch holds" if cfg.batch_size == 1 else "the last training batch holds"
            ways = ([f"batch_size {fix}"] if fix else []) + [f"image_size {cfg.image_size * 2}"] \
                + ([f"depth {cfg.depth - 1}"] if cfg.depth > 1 else [])
            out.append(("batch_size", f"{cfg.batch_size}: {which} 1 image ({n_train} training images) and the "
                                      f"bottleneck is 1x1 pixel (image_size {cfg.image_size} at depth {cfg.depth}): batch "
                                      f"norm cannot train on a single value; use {', '.join(ways[:-1])} or {ways[-1]}"))
    if memory:
        # native resolution: a training batch is of patches; a folder's own pixels are checked when it is read
        parts = memory_estimate(cfg.replace(image_size=cfg.patch_size) if cfg.patch_size else cfg,
                                n_images or cfg.num_images, in_channels, synthetic)
        if cfg.patch_size:  # the data: built-in images at image_size (their native size); a folder's when it is read
            parts["data"] = memory_estimate(cfg, n_images or cfg.num_images, in_channels, synthetic)["data"] \
                if synthetic else 0
        need = sum(parts.values())
        if need > memory:
            biggest = max(parts, key=lambda k: parts[k])
            key, fix = {"model": ("base_channels", "lower base_channels or depth"),
                        "activations": ("batch_size", "lower batch_size, image_size or base_channels"),
                        "data": ("num_images" if synthetic else "image_size",
                                 "use fewer or smaller images" if synthetic else "lower image_size")}[biggest]
            detail = ", ".join(f"{k} {size_text(v)}" for k, v in parts.items())
            out.append((key, f"{getattr(cfg, key.replace('.', '_'))}: training needs about {size_text(need)} of memory "
                             f"({detail}) and {where_memory} has {size_text(memory)}; {fix}"))
    return out
