"""The dataset container (SegData), DatasetError, train/val splits and histogram equalisation."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

__all__ = ["DatasetError", "SegData", "split_indices", "fold_of", "split_folds", "equalize_histogram", "IGNORE_INDEX"]

IGNORE_INDEX = -1
"""The mask value of a pixel that is not part of the user's image: padding added when a non-square image is letterboxed
to a square, or around a training patch cut from an image smaller than the patch. Such a pixel is neither background
nor foreground: the ignore-aware losses (``losses.make_loss(..., ignore=True)``), the counts (``metrics``, ``task``),
augmentation (``augment``, ``ignore=True``) and the boundary metrics leave it out. Any mask value < 0 is read as
ignored; masks hold it as the float -1.0, like every class index."""


class DatasetError(ValueError):
    """A dataset could not be loaded; the message names the folder/files and what to do."""


# ---------------------------------------------------------------------------
# The dataset container
# ---------------------------------------------------------------------------


@dataclass
class SegData:
    """A whole (small) dataset held as two tensors.

    ``images``: float32 ``[N, C, S, S]`` in [0, 1], C the channels the images have (1 grey, 3 RGB, 2 or 4 when their
    second or fourth channel is data; see folders.load_folder).
    ``masks``: float32 ``[N, 1, S, S]`` holding each pixel's class index: exactly 0.0 or 1.0 for the binary task,
    0.0 ... K-1 for K classes (core.define.task); IGNORE_INDEX (-1.0) on pixels that are not part of the image.
    ``names``: one per image (file stem, or ``f"{kind}-{i:04d}"`` for synthetic data).
    ``source``: the dataset spec string it came from.
    ``notes``: what reading it changed, for the run's log (an alpha channel dropped, grey replicated to RGB).
    """

    images: torch.Tensor
    masks: torch.Tensor
    names: list[str]
    source: str
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    def to(self, device) -> SegData:
        """A copy with both tensors on ``device`` (no copy when already there)."""
        return SegData(self.images.to(device), self.masks.to(device), list(self.names), self.source, list(self.notes))

    def subset(self, idx) -> SegData:
        """The images at ``idx`` (a 1-D LongTensor or a list of ints), in that order."""
        if isinstance(idx, torch.Tensor):
            idx_list = [int(i) for i in idx.reshape(-1).tolist()]
        else:
            idx_list = [int(i) for i in idx]
        index = torch.as_tensor(idx_list, dtype=torch.long, device=self.images.device)
        return SegData(
            self.images.index_select(0, index),
            self.masks.index_select(0, index.to(self.masks.device)),
            [self.names[i] for i in idx_list],
            self.source,
            list(self.notes),
        )


# ---------------------------------------------------------------------------
# Splits and histogram equalisation
# ---------------------------------------------------------------------------


def split_indices(n: int, train_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """(train_idx, val_idx, val_on_train). Seeded random permutation (torch.Generator with manual_seed(seed)); n_train = round(f*n) clamped to [1, n-1] when f < 1; f == 1.0 -> train = all, val = all, val_on_train True. Raise DatasetError if f < 1 and n < 2, or if f not in (0, 1]. Same inputs -> identical indices; train/val disjoint when f < 1, sorted ascending each.

    Rounding is half-up (floor(f*n + 0.5)), not Python's banker's rounding.
    """
    n = int(n)
    f = float(train_fraction)
    if not (0.0 < f <= 1.0):  # also rejects NaN
        raise DatasetError(f"train_fraction must be in (0, 1], got {train_fraction}")
    if n < 1:
        raise DatasetError(f"cannot split an empty dataset (n = {n})")
    if f == 1.0:
        all_idx = torch.arange(n, dtype=torch.long)
        return all_idx, all_idx.clone(), True
    if n < 2:
        raise DatasetError(
            f"train_fraction {f:g} needs at least 2 images to hold some out for validation, "
            f"the dataset has {n}; use train_fraction = 1.0 or more images"
        )
    n_train = min(max(int(math.floor(f * n + 0.5)), 1), n - 1)
    g = torch.Generator(device="cpu")
    g.manual_seed(int(seed))
    perm = torch.randperm(n, generator=g)
    train = torch.sort(perm[:n_train]).values
    val = torch.sort(perm[n_train:]).values
    return train, val, False


# The test split's permutation is seeded apart from the train/validation one, so it depends only on (n, test_fraction,
# data_seed): every experiment of a study, at every train_fraction, holds out the same test images.
TEST_SEED_OFFSET = 104_729


def split_with_test(n: int, train_fraction: float, seed: int, test_fraction: float = 0.0
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]:
    """(train_idx, val_idx, test_idx, val_on_train): ``test_fraction`` of the images (half-up rounding, at least one
    when > 0, leaving at least two) are held out first, then the rest is split by ``split_indices``. With
    test_fraction 0 the split is exactly ``split_indices``'s (and test_idx is empty)."""
    n = int(n)
    tf = float(test_fraction)
    if tf <= 0.0:
        train, val, vot = split_indices(n, train_fraction, seed)
        return train, val, torch.zeros(0, dtype=torch.long), vot
    if not tf < 1.0:
        raise DatasetError(f"test_fraction must be below 1, got {test_fraction}")
    if n < 3:
        raise DatasetError(f"test_fraction {tf:g} needs at least 3 images (test, train and validation), the dataset "
                           f"has {n}; use test_fraction = 0 or more images")
    n_test = min(max(int(math.floor(tf * n + 0.5)), 1), n - 2)
    g = torch.Generator(device="cpu")
    g.manual_seed(int(seed) + TEST_SEED_OFFSET)
    perm = torch.randperm(n, generator=g)
    test = torch.sort(perm[:n_test]).values
    rest = torch.sort(perm[n_test:]).values
    tr, va, vot = split_indices(len(rest), train_fraction, seed)
    return rest[tr], rest[va], test, vot


# The folds' permutation is seeded apart from the train/validation split's and the test split's
FOLD_SEED_OFFSET = 7_919


def fold_of(n: int, k: int, seed: int, test_fraction: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(fold, test_idx): ``fold`` [n] long, the validation fold (1 ... k) of every image, 0 for the test images
    (held out first, exactly as ``split_with_test`` holds them out, so runs with and without folds share their test
    images). The other images are permuted (seeded by ``seed``) and dealt to the folds in turn, so the folds are
    disjoint, cover every non-test image exactly once and differ in size by at most one (the first ``m mod k``
    folds have one image more). The same (n, k, seed, test_fraction) always gives the same folds."""
    n, k = int(n), int(k)
    if k < 2:
        raise DatasetError(f"folds must be at least 2, got {k}")
    _, _, test, _ = split_with_test(n, 0.5, seed, test_fraction) if test_fraction > 0 else (
        None, None, torch.zeros(0, dtype=torch.long), False)
    rest = torch.tensor(sorted(set(range(n)) - set(test.tolist())), dtype=torch.long)
    if len(rest) < k:
        held = f" after test_fraction {test_fraction:g} holds out {len(test)}" if len(test) else ""
        raise DatasetError(f"folds = {k} needs at least {k} images to validate on, the dataset has {len(rest)}"
                           f"{held}; use folds = {max(2, len(rest))} or fewer, or more images")
    g = torch.Generator(device="cpu")
    g.manual_seed(int(seed) + FOLD_SEED_OFFSET)
    order = rest[torch.randperm(len(rest), generator=g)]
    fold = torch.zeros(n, dtype=torch.long)
    fold[order] = torch.arange(len(order)) % k + 1
    return fold, test


def split_folds(n: int, k: int, fold: int, seed: int, test_fraction: float = 0.0
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]:
    """(train_idx, val_idx, test_idx, False) of the run that validates on fold ``fold`` (1 ... k) of ``fold_of``'s
    folds and trains on the other k - 1; each sorted ascending."""
    folds, test = fold_of(n, k, seed, test_fraction)
    if not 1 <= int(fold) <= k:
        raise DatasetError(f"fold must be in 1 ... {k}, got {fold}")
    val = torch.nonzero(folds == int(fold)).reshape(-1)
    train = torch.nonzero((folds > 0) & (folds != int(fold))).reshape(-1)
    return train, val, torch.sort(test).values, False


def equalize_histogram(images: torch.Tensor, bins: int = 256) -> torch.Tensor:
    """Histogram equalisation of a batch [N,C,H,W] in [0,1], per image and per channel, vectorised on the tensor's device (no Python loop over images): output in [0,1], monotone in the input values of each image.

    Values are quantised to ``bins`` levels; each level maps to
    (cdf(level) - cdf(min level)) / (pixels - cdf(min level)), so the darkest
    level goes to 0 and the brightest to 1. A constant image/channel is
    returned unchanged. The cumulative counts come from a sort and
    ``searchsorted`` (deterministic on CUDA, no host synchronisation); the
    result has the input's dtype.
    """
    if images.ndim != 4:
        raise ValueError(f"equalize_histogram expects [N, C, H, W], got shape {tuple(images.shape)}")
    bins = int(bins)
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    n, c, h, w = images.shape
    if images.numel() == 0:
        return images.clone()
    x = images.reshape(n * c, h * w).float()
    q = (x.clamp(0.0, 1.0) * bins).long().clamp_(0, bins - 1)  # [R, P] bin index
    sorted_q = torch.sort(q, dim=1).values
    levels = torch.arange(bins, device=x.device, dtype=q.dtype).expand(n * c, bins).contiguous()
    cdf = torch.searchsorted(sorted_q, levels, right=True).to(torch.float32)  # [R, bins] count <= level
    total = float(h * w)
    cdf_min = torch.gather(cdf, 1, sorted_q[:, :1])  # count at the darkest occupied level
    denom = total - cdf_min
    mapped = torch.gather(cdf, 1, q)
    out = (mapped - cdf_min) / denom.clamp_min(1.0)
    out = torch.where(denom > 0, out, x).clamp_(0.0, 1.0)
    return out.reshape(n, c, h, w).to(images.dtype)
