"""Boundary metrics per class: HD95 (the 95th percentile Hausdorff distance) and NSD (normalised surface Dice at a
tolerance), computed once at the end of a run on its best weights. numpy and scipy only (no torch): the distance
transform is scipy's ``scipy.ndimage.distance_transform_edt``.

Definitions (the policy every face quotes; one policy for the empty cases, never NaN):

* A mask is the set of pixels of one class: for one image and one class c, truth T = (truth == c) and prediction
  P = (pred == c) (label maps of class indices; 0 = background, 1 ... K-1 the foreground classes; binary = {0, 1}).
* The boundary (surface) of a mask is its pixels that have at least one 4-neighbour (up, down, left, right) outside
  the mask; a pixel on the image border has a neighbour outside the image, which counts as outside the mask. (This
  is ``mask & ~binary_erosion(mask)`` with scipy's cross-shaped structuring element and border value 0, as medpy
  computes it; a one-pixel structure is its own boundary.)
* Distances are Euclidean, in pixels, between pixel centres. d(t, ∂P) is the distance from a boundary pixel t of T
  to the nearest boundary pixel of P; d(T→P) is the set of d(t, ∂P) over every t in ∂T, and d(P→T) likewise.
* Per image and class, three cases:

  - truth and prediction both empty: no score; the image is left out of the class's mean, and the class's ``n``
    counts the images that scored;
  - truth empty and prediction not (a false structure), or truth not empty and prediction empty (a missed
    structure): Dice 0, HD95 = the image diagonal sqrt(H² + W²) in pixels, NSD 0;
  - both not empty: HD95 = the 95th percentile of the two directed sets taken together (d(T→P) concatenated with
    d(P→T)), with numpy's default percentile method ('linear': interpolation between the two nearest ranks); NSD at
    tolerance τ (default 2 px) = (|{t ∈ ∂T : d(t, ∂P) ≤ τ}| + |{p ∈ ∂P : d(p, ∂T) ≤ τ}|) / (|∂T| + |∂P|).

  (The percentile over the concatenation is medpy's ``hd95``, which nnU-Net (v1)'s evaluation calls; MONAI's
  ``compute_hausdorff_distance(percentile=95)`` takes the larger of the two directed 95th percentiles instead, so its
  numbers are not comparable with these. The NSD counts boundary pixels, as MONAI's ``compute_surface_dice`` does
  without sub-voxel surfaces.)

* Ignored pixels: truth may hold -1 (data.IGNORE_INDEX) on pixels that are not part of the image; each image is
  scored on the bounding box of its truth >= 0 pixels, as if it were the whole image (BoundaryAccumulator.add).
* Aggregation: per image first (the scores above), then per class the mean over the images that scored with its
  sd (ddof = 1; none with fewer than 2 images) and n, then over classes the mean over the classes that have a score
  (``hd95``, ``nsd``) and the worst class (``hd95_max``: the largest mean HD95; ``nsd_min``: the smallest mean NSD).
  A class no image scored has no value (None), and is left out of the means over classes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.ndimage import binary_erosion, distance_transform_edt

__all__ = ["PERCENTILE", "PERCENTILE_METHOD", "DEFAULT_TOLERANCE", "boundary", "surface_distances",
           "mask_boundary_scores", "image_boundary_scores", "BoundaryAccumulator", "run_keys"]

PERCENTILE = 95.0
PERCENTILE_METHOD = "linear"  # numpy's default: interpolation between the two nearest ranks
DEFAULT_TOLERANCE = 2.0  # px, NSD's tolerance unless the run's nsd_tolerance says otherwise

# the 4-neighbourhood: a pixel stays in the erosion iff its 4 neighbours are all in the mask
_CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)


def boundary(mask: np.ndarray) -> np.ndarray:
    """The boundary of a 2-D binary mask: its pixels with at least one 4-neighbour outside it (outside the image
    counts as outside the mask: scipy's erosion takes border_value = 0)."""
    mask = np.asarray(mask, dtype=bool)
    return mask & ~binary_erosion(mask, structure=_CROSS, border_value=0)


def _union_box(a: np.ndarray, b: np.ndarray) -> tuple[slice, slice]:
    union = a | b
    rows = np.flatnonzero(union.any(axis=1))
    cols = np.flatnonzero(union.any(axis=0))
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


def surface_distances(truth_mask: np.ndarray, pred_mask: np.ndarray, *,
                      crop: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(d(T→P), d(P→T)): for each boundary pixel of the truth, the Euclidean distance in pixels to the nearest
    boundary pixel of the prediction, and the other way round (float64 arrays, in row-major order of the pixels).
    Both masks must be 2-D, of one shape, and not empty.

    ``crop`` (default) computes on the union bounding box of both masks padded by one background pixel, which is
    exact, not an approximation:

    * every boundary pixel of either mask is a pixel of that mask, so it lies inside the union box: the sets of
      boundary pixels, of both masks, are inside the crop;
    * boundaries are the same: a mask pixel on the edge of the union box has, beyond that edge, a pixel that is in
      neither mask (the box holds every mask pixel) or is outside the image, both outside the mask; the one-pixel
      pad of zeros gives it exactly that outside neighbour, so erosion inside the crop marks the same pixels;
    * the EDT of the complement of ∂P inside the crop gives, at each pixel, the distance to the nearest ∂P pixel
      inside the crop; as every ∂P pixel is inside the crop, that is the nearest over the whole image. It is read
      only at ∂T pixels, which are inside the crop too. (The crop only cuts off pixels where no distance is read and
      no boundary pixel lies; however large the distances, none is clipped.)

    ``crop=False`` computes on the whole image (the tests check both give the same numbers)."""
    t = np.asarray(truth_mask, dtype=bool)
    p = np.asarray(pred_mask, dtype=bool)
    if t.ndim != 2 or t.shape != p.shape:
        raise ValueError(f"surface_distances: two 2-D masks of one shape, got {list(t.shape)} and {list(p.shape)}")
    if not t.any() or not p.any():
        raise ValueError("surface_distances: both masks must have a pixel (the empty cases are scored by policy, "
                         "see mask_boundary_scores)")
    if crop:
        box = _union_box(t, p)
        t = np.pad(t[box], 1)
        p = np.pad(p[box], 1)
    bt = boundary(t)
    bp = boundary(p)
    # distance_transform_edt gives each non-zero pixel its distance to the nearest zero: the zeros of ~bp are ∂P
    d_t_to_p = distance_transform_edt(~bp)[bt]
    d_p_to_t = distance_transform_edt(~bt)[bp]
    return np.asarray(d_t_to_p, dtype=np.float64), np.asarray(d_p_to_t, dtype=np.float64)


def _check_tolerance(tolerance: float) -> float:
    tol = float(tolerance)
    if not math.isfinite(tol) or tol < 0:
        raise ValueError(f"NSD tolerance must be a finite number of pixels >= 0, got {tolerance!r}")
    return tol


def mask_boundary_scores(truth_mask: np.ndarray, pred_mask: np.ndarray,
                         tolerance: float = DEFAULT_TOLERANCE) -> tuple[float, float] | None:
    """(HD95, NSD at ``tolerance``) of one image's binary masks, by the module's policy: None when both are empty;
    (the image diagonal, 0.0) when exactly one is empty; never NaN."""
    tol = _check_tolerance(tolerance)
    t = np.asarray(truth_mask, dtype=bool)
    p = np.asarray(pred_mask, dtype=bool)
    if t.ndim != 2 or t.shape != p.shape:
        raise ValueError(f"boundary scores: two 2-D masks of one shape, got {list(t.shape)} and {list(p.shape)}")
    has_t, has_p = bool(t.any()), bool(p.any())
    if not has_t and not has_p:
        return None
    if not has_t or not has_p:
        h, w = t.shape
        return math.hypot(h, w), 0.0
    d_tp, d_pt = surface_distances(t, p)
    hd95 = float(np.percentile(np.concatenate([d_tp, d_pt]), PERCENTILE, method=PERCENTILE_METHOD))
    within = int(np.count_nonzero(d_tp <= tol)) + int(np.count_nonzero(d_pt <= tol))
    nsd = within / (d_tp.size + d_pt.size)
    return hd95, float(nsd)


def image_boundary_scores(truth: np.ndarray, pred: np.ndarray, classes: Sequence[int],
                          tolerance: float = DEFAULT_TOLERANCE) -> dict[int, tuple[float, float] | None]:
    """Per class index c of ``classes``: (HD95, NSD) of (truth == c) against (pred == c), or None when the class is
    in neither (both label maps [H, W] of class indices)."""
    truth = np.asarray(truth)
    pred = np.asarray(pred)
    if truth.ndim != 2 or truth.shape != pred.shape:
        raise ValueError(f"image_boundary_scores: two [H, W] label maps of one shape, got {list(truth.shape)} and "
                         f"{list(pred.shape)}")
    return {int(c): mask_boundary_scores(truth == c, pred == c, tolerance) for c in classes}


def _mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    arr = np.asarray(values, dtype=np.float64)
    mean = float(arr.mean())
    sd = float(arr.std(ddof=1)) if arr.size >= 2 else None
    return mean, sd


def _valid_crop(truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(truth, pred) cropped to the bounding box of truth's valid pixels (>= 0), with ignored pixels left inside it
    set to background (0) in both; None when no pixel is valid (see BoundaryAccumulator.add)."""
    valid = truth >= 0
    if not valid.any():
        return None
    box = _union_box(valid, valid)
    truth, pred, valid = truth[box], pred[box], valid[box]
    if not valid.all():
        truth, pred = np.where(valid, truth, 0), np.where(valid, pred, 0)
    return truth, pred


class BoundaryAccumulator:
    """Boundary scores of a set of images, batch by batch: ``add`` each batch of label maps, then ``result``.

    ``class_names`` are the foreground classes' names, in class-index order: class_names[c] is class index c + 1
    (binary: ("foreground",), class 1)."""

    def __init__(self, class_names: Sequence[str], tolerance: float = DEFAULT_TOLERANCE):
        self.class_names = tuple(str(n) for n in class_names)
        if not self.class_names:
            raise ValueError("BoundaryAccumulator: give the foreground classes' names (at least one)")
        if len(set(self.class_names)) != len(self.class_names):
            raise ValueError(f"BoundaryAccumulator: class names must differ, got {list(self.class_names)}")
        self.tolerance = _check_tolerance(tolerance)
        self._hd95: dict[str, list[float]] = {n: [] for n in self.class_names}
        self._nsd: dict[str, list[float]] = {n: [] for n in self.class_names}
        self.images = 0
        keys = ["hd95", "hd95_max", "nsd", "nsd_min"]
        for n in self.class_names:
            keys += [f"hd95_{n}", f"nsd_{n}", f"hd95_sd_{n}", f"nsd_sd_{n}", f"n_{n}"]
        if len(set(keys)) != len(keys):
            dup = sorted({k for k in keys if keys.count(k) > 1})
            raise ValueError(f"BoundaryAccumulator: class names {list(self.class_names)} give two values one key "
                             f"({', '.join(dup)})")

    def add(self, truth_batch: np.ndarray, pred_batch: np.ndarray) -> None:
        """Score a batch: two int arrays [B, H, W] of class indices (one [H, W] image is taken as a batch of one).

        ``truth`` may hold -1 (data.IGNORE_INDEX; any value < 0) on pixels that are not part of the image (padding
        around a letterboxed image or a small training patch). Each image is then scored on the bounding box of its
        valid (truth >= 0) pixels only, truth and prediction both cropped to it: that box is the image, so its edges
        are the image border of the module's boundary rule and the one-empty case scores the box's diagonal, and a
        padded image scores exactly what the image alone does, whatever was predicted on the padding. Should ignored
        pixels remain inside the box (the valid pixels are not one rectangle), they are background in truth and
        prediction alike. An image with no valid pixel is skipped (not scored, not counted in ``images``)."""
        truth_batch = np.asarray(truth_batch)
        pred_batch = np.asarray(pred_batch)
        if truth_batch.ndim == 2:
            truth_batch, pred_batch = truth_batch[None], pred_batch[None]
        if truth_batch.ndim != 3 or truth_batch.shape != pred_batch.shape:
            raise ValueError(f"BoundaryAccumulator.add: two [B, H, W] label maps of one shape, got "
                             f"{list(truth_batch.shape)} and {list(pred_batch.shape)}")
        indices = range(1, len(self.class_names) + 1)
        for truth, pred in zip(truth_batch, pred_batch):
            if truth.size and truth.min() < 0:
                cropped = _valid_crop(truth, pred)
                if cropped is None:
                    continue
                truth, pred = cropped
            scores = image_boundary_scores(truth, pred, indices, self.tolerance)
            for c, name in zip(indices, self.class_names):
                score = scores[c]
                if score is not None:
                    self._hd95[name].append(score[0])
                    self._nsd[name].append(score[1])
            self.images += 1

    def per_class(self) -> dict[str, dict[str, float | int | None]]:
        """Per class name: {"hd95": mean over the images that scored, "hd95_sd", "nsd", "nsd_sd", "n"}."""
        out: dict[str, dict[str, float | int | None]] = {}
        for name in self.class_names:
            hd, hd_sd = _mean_sd(self._hd95[name])
            nsd, nsd_sd = _mean_sd(self._nsd[name])
            out[name] = {"hd95": hd, "hd95_sd": hd_sd, "nsd": nsd, "nsd_sd": nsd_sd, "n": len(self._hd95[name])}
        return out

    def result(self) -> dict[str, float | int | None]:
        """One flat dict for summary.json: ``hd95`` / ``nsd`` (mean over the classes that have a score),
        ``hd95_max`` / ``nsd_min`` (the worst class), and per class ``hd95_<name>``, ``nsd_<name>``,
        ``hd95_sd_<name>``, ``nsd_sd_<name>``, ``n_<name>`` (an int). Values are floats or None, never NaN."""
        per = self.per_class()
        hds = [v["hd95"] for v in per.values() if v["hd95"] is not None]
        nsds = [v["nsd"] for v in per.values() if v["nsd"] is not None]
        out: dict[str, float | int | None] = {
            "hd95": float(np.mean(hds)) if hds else None,
            "hd95_max": float(max(hds)) if hds else None,
            "nsd": float(np.mean(nsds)) if nsds else None,
            "nsd_min": float(min(nsds)) if nsds else None,
        }
        for name, v in per.items():
            out[f"hd95_{name}"] = v["hd95"]
            out[f"nsd_{name}"] = v["nsd"]
            out[f"hd95_sd_{name}"] = v["hd95_sd"]
            out[f"nsd_sd_{name}"] = v["nsd_sd"]
            out[f"n_{name}"] = v["n"]
        return out


def run_keys(result: dict[str, Any], names: tuple[str, ...], binary: bool) -> dict[str, Any]:
    """BoundaryAccumulator.result()'s keys as a run records them (without the val_/test_ prefix): a binary run's
    foreground as the task's own (hd95, hd95_sd, nsd, nsd_sd, boundary_n); a multi-class run's classes, their
    sd and n (boundary_n_<class>), the means over classes and the worst class's."""
    if binary:
        (name,) = names
        return {"hd95": result[f"hd95_{name}"], "hd95_sd": result[f"hd95_sd_{name}"], "nsd": result[f"nsd_{name}"],
                "nsd_sd": result[f"nsd_sd_{name}"], "boundary_n": result[f"n_{name}"]}
    out = {k: result[k] for k in ("hd95", "hd95_max", "nsd", "nsd_min")}
    for name in names:
        out.update({f"hd95_{name}": result[f"hd95_{name}"], f"hd95_sd_{name}": result[f"hd95_sd_{name}"],
                    f"nsd_{name}": result[f"nsd_{name}"], f"nsd_sd_{name}": result[f"nsd_sd_{name}"],
                    f"boundary_n_{name}": result[f"n_{name}"]})
    return out

