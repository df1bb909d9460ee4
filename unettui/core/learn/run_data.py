"""A run's data, as its trainer holds it: the dataset read once (resized to ``image_size``, or at its own resolution
when ``patch_size`` is set), preprocessed, split into training, validation and test images, and what reading it
noted for the run's log. Pack members share one RunData (``Trainer(data_from=...)``); the folds of a pack each split
the one dataset read (``Source``) their own way (``split_source``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..define.config import Config
from .data import equalize_histogram, split_folds, split_with_test
from .datasets import load_dataset
from .feasible import smallest_fold_train
from .task import Task

__all__ = ["RunData", "Source", "load_run_data", "read_source", "split_source", "decoded_cache", "split_of"]


@dataclass
class Source:
    """A run's dataset as read and preprocessed, before any split: ``images``/``masks`` a tensor [N, ...] on the CPU
    (resized) or lists of [C, H, W] / [1, H, W] tensors (native); ``names`` the loader's, ``files`` split.json's."""

    images: Any
    masks: Any
    names: list[str]
    files: list[str]
    notes: list[str]
    native: bool


@dataclass
class RunData:
    """Resized runs: ``train_x`` ... ``test_y`` are tensors [N, C, S, S] / [N, 1, S, S] on the run's device. Native
    runs: lists of [C, H, W] / [1, H, W] tensors on the CPU, one per image at its own size (training patches are cut
    from them; the rest is predicted by sliding window). ``names``: the validation images'. ``padded``: some mask
    holds ignored pixels (letterboxed non-square images; native runs: the patch sampler decides)."""

    names: list[str]
    split: dict[str, list[str]]  # the images of each part by name, as runs/<id>/split.json records them
    train_x: Any
    train_y: Any
    val_x: Any
    val_y: Any
    test_x: Any
    test_y: Any
    n_train: int
    n_val: int
    n_test: int
    val_on_train: bool
    channels: int
    data_notes: list[str]
    padded: bool
    source: Source  # what it was split from: a fold's pack mates split the same Source (split_source)


def split_of(cfg: Config, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]:
    """(train_idx, val_idx, test_idx, val_on_train) of a run of ``cfg`` on ``n`` images: a fold run validates on its
    fold and trains on the others (data.split_folds), any other run splits by train_fraction (data.split_with_test);
    the test images are the same either way. What training and `evaluate --split` both use."""
    if cfg.folds and cfg.fold:
        return split_folds(n, cfg.folds, cfg.fold, cfg.data_seed, cfg.test_fraction)
    return split_with_test(n, cfg.train_fraction, cfg.data_seed, cfg.test_fraction)


def fold_epoch(data: Any) -> int:
    """What an epoch of a fold run trains on, the same for every fold of its configuration so that they pack (0: not a
    fold run, the epoch is the run's own). Folds differ in size by at most one image, so their training sets do too:
    resized, an epoch is the smallest fold's training set, ``m - ceil(m / k)`` of the ``m`` non-test images (a fold
    with one image more leaves a different one out each epoch); native (patch_size) with ``patches_per_epoch = 0``,
    the patches that cover ``(k - 1) / k`` of the non-test pixels once. ``data``: a trainer (cfg, n_train, n_val,
    train_x, val_x)."""
    cfg = data.cfg
    if not (cfg.folds and cfg.fold):
        return 0
    k, m = cfg.folds, data.n_train + data.n_val
    if not cfg.patch_size:
        return smallest_fold_train(m, k)
    pixels = sum(int(im.shape[-2]) * int(im.shape[-1]) for im in [*data.train_x, *data.val_x])
    return max(1, -(-(k - 1) * pixels // (k * cfg.patch_size ** 2)))


def decoded_cache(project: Path | None) -> Path | None:
    """Where a project keeps decoded images of its folder datasets (native runs): ``runs/.cache/decoded/``."""
    return None if project is None else Path(project) / "runs" / ".cache" / "decoded"


def _class_notes(task: Task, everywhere: torch.Tensor, seen: torch.Tensor) -> list[str]:
    """A note per class that some mask has but no training mask (the model can only learn not to predict it)."""
    names, values = task.classes.names, task.classes.values
    return [f"class '{names[c]}' (mask value {values[c]}) occurs in no training mask: the model cannot learn it"
            for c in range(task.k) if everywhere[c] and not seen[c]]


def _present(masks: Any, k: int) -> torch.Tensor:
    """Which of the k classes any of ``masks`` (a tensor, or a list of tensors) has, as a bool [k] tensor."""
    seen = torch.zeros(k, dtype=torch.bool)
    for m in (masks if isinstance(masks, list) else [masks]):
        seen |= torch.bincount(m.reshape(-1).clamp(min=0).long().cpu(), minlength=k)[:k] > 0
    return seen


def load_run_data(cfg: Config, project: Path | None, device: torch.device, dtype: torch.dtype | None,
                  task: Task) -> RunData:
    """Read ``cfg``'s dataset and split it as every run of the definition does (``split_of``)."""
    return split_source(read_source(cfg, project, dtype, task), cfg, device, task)


def read_source(cfg: Config, project: Path | None, dtype: torch.dtype | None, task: Task) -> Source:
    """Read ``cfg``'s dataset (resized, or at its own resolution when ``patch_size`` is set) and preprocess it.
    Histogram equalisation is preprocessing of every input (train, validation and test), never of masks."""
    native = bool(cfg.patch_size)
    data = load_dataset(cfg.dataset, cfg.image_size, cfg.num_images, cfg.data_seed, base_dir=project,
                        tiff_pages=cfg.tiff_pages, classes=task.classes, native=native,
                        **({"cache_dir": decoded_cache(project)} if native else {}))
    if native:
        images = [im if dtype is None else im.to(dtype) for im in data.images]
        if cfg.augment_histeq:
            images = [equalize_histogram(im[None])[0] for im in images]
    else:
        images = data.images if dtype is None else data.images.to(dtype)
        if cfg.augment_histeq:
            images = equalize_histogram(images)
    return Source(images, data.masks, list(data.names), _file_names(cfg, project, data.names), list(data.notes),
                  native)


def split_source(src: Source, cfg: Config, device: torch.device, task: Task) -> RunData:
    """``src`` split as ``cfg``'s runs split it (``split_of``): resized parts moved to ``device``, native ones kept
    on the CPU as lists. The test images are held out before the train/validation split and never used to choose
    anything."""
    train_idx, val_idx, test_idx, val_on_train = split_of(cfg, len(src.names))
    if src.native:
        def part(idx: torch.Tensor, seq: list) -> list:
            return [seq[i] for i in idx.tolist()]

        padded = False  # (the patch sampler says whether patches need padding)
        channels = int(src.images[0].shape[0])
    else:
        def part(idx: torch.Tensor, seq: torch.Tensor) -> torch.Tensor:
            return seq[idx].to(device)

        padded = bool((src.masks < 0).any())  # letterboxed non-square images: the padding is ignored
        channels = int(src.images.shape[1])
    images, masks, files = src.images, src.masks, src.files
    split = {part_name: [files[i] for i in idx.tolist()]
             for part_name, idx in (("train", train_idx), ("val", val_idx), ("test", test_idx))}
    out = RunData([src.names[i] for i in val_idx.tolist()], split, part(train_idx, images), part(train_idx, masks),
                  part(val_idx, images), part(val_idx, masks), part(test_idx, images), part(test_idx, masks),
                  len(train_idx), len(val_idx), len(test_idx), val_on_train, channels, list(src.notes), padded, src)
    if not task.binary:  # (classes no mask has at all: the loader's notes name these already)
        out.data_notes += _class_notes(task, _present(masks, task.k), _present(out.train_y, task.k))
    return out


def _file_names(cfg: Config, project: Path | None, stems: list[str]) -> list[str]:
    """Each image's name as split.json records it: a folder's file names relative to its images/ folder (the stem
    and its extension), a built-in dataset's generated names."""
    from .dataset_id import folder_of, image_files, is_synthetic

    if is_synthetic(cfg.dataset):
        return list(stems)
    by_stem = image_files(folder_of(cfg.dataset, project) / "images")
    return [by_stem[s][0].name if by_stem.get(s) else s for s in stems]

