"""Boundary metrics (unettui.core.learn.boundary) against an independent reference: boundaries found by comparing each
pixel with its 4 neighbours by array slicing, distances by brute force over every pair of boundary pixels, the
percentile by hand. The reference shares no code with the module (no scipy, no np.percentile)."""

import math
import statistics
import subprocess
import sys

import numpy as np
import pytest

from unettui.core.learn.boundary import (
    BoundaryAccumulator,
    boundary,
    image_boundary_scores,
    mask_boundary_scores,
    surface_distances,
)

TOL = 1e-6


# ---- the reference -----------------------------------------------------------------------------------------------------
def ref_boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels of the mask with a 4-neighbour outside it (outside the image is outside)."""
    m = np.pad(np.asarray(mask, dtype=bool), 1)
    inner = m[1:-1, 1:-1]
    all_in = m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    return inner & ~all_in


def ref_distances(t: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.argwhere(ref_boundary(t)).astype(np.float64)
    b = np.argwhere(ref_boundary(p)).astype(np.float64)
    diff = a[:, None, :] - b[None, :, :]
    d = np.sqrt((diff ** 2).sum(axis=-1))
    return d.min(axis=1), d.min(axis=0)


def ref_percentile_linear(values: np.ndarray, q: float) -> float:
    x = sorted(float(v) for v in values)
    rank = q / 100 * (len(x) - 1)
    lo = math.floor(rank)
    hi = min(lo + 1, len(x) - 1)
    return x[lo] + (rank - lo) * (x[hi] - x[lo])


def ref_scores(t: np.ndarray, p: np.ndarray, tol: float = 2.0) -> tuple[float, float] | None:
    t = np.asarray(t, dtype=bool)
    p = np.asarray(p, dtype=bool)
    if not t.any() and not p.any():
        return None
    if not t.any() or not p.any():
        return math.sqrt(t.shape[0] ** 2 + t.shape[1] ** 2), 0.0
    d_tp, d_pt = ref_distances(t, p)
    hd95 = ref_percentile_linear(np.concatenate([d_tp, d_pt]), 95)
    nsd = (sum(1 for d in d_tp if d <= tol) + sum(1 for d in d_pt if d <= tol)) / (len(d_tp) + len(d_pt))
    return hd95, nsd


def assert_scores(got, want):
    if want is None:
        assert got is None
        return
    assert got is not None
    assert abs(got[0] - want[0]) <= TOL, (got, want)
    assert abs(got[1] - want[1]) <= TOL, (got, want)
    assert not math.isnan(got[0]) and not math.isnan(got[1])


def disc(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2


def ellipse(shape, cy, cx, ry, rx):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1


def blobs(rng, shape, n):
    m = np.zeros(shape, dtype=bool)
    for _ in range(n):
        m |= disc(shape, rng.integers(0, shape[0]), rng.integers(0, shape[1]), rng.integers(1, 8))
    return m


# ---- boundaries ------------------------------------------------------------------------------------------------------
def test_boundary_is_the_4_neighbour_rule_and_the_image_border_is_outside():
    m = np.zeros((9, 9), dtype=bool)
    m[2:7, 2:7] = True
    assert boundary(m).sum() == 16  # a 5x5 square: its ring of 16 pixels
    full = np.ones((4, 6), dtype=bool)
    b = boundary(full)
    assert b.sum() == 2 * 6 + 2 * 2 and not b[1:-1, 1:-1].any()  # the whole image: its frame
    one = np.zeros((5, 5), dtype=bool)
    one[0, 0] = True
    assert np.array_equal(boundary(one), one)
    rng = np.random.default_rng(0)
    for _ in range(20):
        m = blobs(rng, (23, 31), 4) | (rng.random((23, 31)) < 0.05)
        assert np.array_equal(boundary(m), ref_boundary(m))


# ---- ordinary cases --------------------------------------------------------------------------------------------------
def test_square_against_a_shifted_square_on_a_non_square_image():
    t = np.zeros((30, 47), dtype=bool)
    p = np.zeros((30, 47), dtype=bool)
    t[5:15, 8:20] = True
    p[7:17, 11:23] = True
    got = mask_boundary_scores(t, p)
    assert_scores(got, ref_scores(t, p))
    assert 0 < got[1] < 1 and got[0] > 0
    assert_scores(mask_boundary_scores(t, t), (0.0, 1.0))


def test_disc_against_an_ellipse():
    shape = (64, 80)
    t = disc(shape, 30, 38, 14)
    p = ellipse(shape, 32, 40, 10, 19)
    d_tp, d_pt = surface_distances(t, p)
    r_tp, r_pt = ref_distances(t, p)
    np.testing.assert_allclose(d_tp, r_tp, atol=TOL, rtol=0)
    np.testing.assert_allclose(d_pt, r_pt, atol=TOL, rtol=0)
    for tol in (0.0, 1.0, 2.0, 3.5):
        assert_scores(mask_boundary_scores(t, p, tol), ref_scores(t, p, tol))


def test_random_label_maps_per_class_against_the_reference():
    rng = np.random.default_rng(1)
    for shape in ((32, 32), (17, 45), (50, 21)):
        for _ in range(8):
            truth = np.zeros(shape, dtype=np.int64)
            pred = np.zeros(shape, dtype=np.int64)
            for c in (1, 2, 3):
                if rng.random() < 0.8:
                    truth[blobs(rng, shape, rng.integers(1, 3))] = c
                if rng.random() < 0.8:
                    pred[blobs(rng, shape, rng.integers(1, 3))] = c
            got = image_boundary_scores(truth, pred, [1, 2, 3])
            assert set(got) == {1, 2, 3}
            for c in (1, 2, 3):
                assert_scores(got[c], ref_scores(truth == c, pred == c))


# ---- the empty cases -------------------------------------------------------------------------------------------------
def test_both_empty_is_no_score():
    z = np.zeros((12, 20), dtype=np.int64)
    assert mask_boundary_scores(z == 1, z == 1) is None
    assert image_boundary_scores(z, z, [1, 2]) == {1: None, 2: None}


@pytest.mark.parametrize("missed", [False, True])
def test_one_empty_scores_the_diagonal_and_nsd_zero(missed):
    shape = (12, 20)  # non-square: the diagonal is sqrt(12² + 20²), not 12·√2
    mask = np.zeros(shape, dtype=bool)
    mask[3:6, 4:9] = True
    empty = np.zeros(shape, dtype=bool)
    t, p = (mask, empty) if missed else (empty, mask)
    got = mask_boundary_scores(t, p)
    assert got == (pytest.approx(math.sqrt(12 ** 2 + 20 ** 2), abs=TOL), 0.0)
    assert_scores(got, ref_scores(t, p))
    with pytest.raises(ValueError):
        surface_distances(t, p)


# ---- small structures, borders, crops -----------------------------------------------------------------------------------
def test_one_pixel_structures():
    t = np.zeros((10, 14), dtype=bool)
    p = np.zeros((10, 14), dtype=bool)
    t[3, 4] = True
    p[6, 8] = True
    assert mask_boundary_scores(t, p) == (pytest.approx(5.0, abs=TOL), 0.0)
    assert mask_boundary_scores(t, p, tolerance=5.0)[1] == 1.0
    assert mask_boundary_scores(t, t) == (0.0, 1.0)
    q = np.zeros((10, 14), dtype=bool)
    q[2:9, 6:13] = True
    for tol in (0.0, 2.0, 4.0):
        assert_scores(mask_boundary_scores(t, q, tol), ref_scores(t, q, tol))
        assert_scores(mask_boundary_scores(q, t, tol), ref_scores(q, t, tol))


def test_structures_on_the_image_border():
    t = np.zeros((16, 24), dtype=bool)
    p = np.zeros((16, 24), dtype=bool)
    t[0:5, :] = True  # a band across the whole width: its first row and both ends are boundary
    p[0:7, 0:20] = True
    assert_scores(mask_boundary_scores(t, p), ref_scores(t, p))
    full = np.ones((16, 24), dtype=bool)
    assert_scores(mask_boundary_scores(full, p), ref_scores(full, p))


def test_the_crop_gives_exactly_the_uncropped_distances():
    rng = np.random.default_rng(2)
    shape = (70, 90)
    cases = []
    for _ in range(25):
        cases.append((blobs(rng, shape, rng.integers(1, 4)), blobs(rng, shape, rng.integers(1, 4))))
    a = np.zeros(shape, dtype=bool)
    b = np.zeros(shape, dtype=bool)
    a[0:3, 0:3] = True  # far apart, in opposite corners, both touching the border: large distances
    b[-2:, -4:] = True
    cases.append((a, b))
    for t, p in cases:
        cropped = surface_distances(t, p)
        whole = surface_distances(t, p, crop=False)
        for c, w in zip(cropped, whole):
            assert c.shape == w.shape
            np.testing.assert_allclose(c, w, atol=1e-12, rtol=0)
        r_tp, r_pt = ref_distances(t, p)
        np.testing.assert_allclose(cropped[0], r_tp, atol=TOL, rtol=0)
        np.testing.assert_allclose(cropped[1], r_pt, atol=TOL, rtol=0)


def test_tolerance_changes_nsd_as_expected():
    t = np.zeros((40, 40), dtype=bool)
    p = np.zeros((40, 40), dtype=bool)
    t[10:25, 10:25] = True
    p[10:25, 13:28] = True  # shifted 3 px right: the left and right edges are 3 px off, top and bottom rows partly 0
    d_tp, d_pt = ref_distances(t, p)
    worst = max(d_tp.max(), d_pt.max())
    values = []
    for tol in (0.0, 0.5, 1.0, 2.0, 2.99, 3.0, worst, 100.0):
        got = mask_boundary_scores(t, p, tol)
        assert_scores(got, ref_scores(t, p, tol))
        values.append(got[1])
        assert got[0] == mask_boundary_scores(t, p)[0]  # HD95 does not depend on the tolerance
    assert values == sorted(values)
    assert values[0] > 0 and values[4] < values[5]  # the 3-px edges count from τ = 3 on
    assert values[-2] == values[-1] == 1.0
    with pytest.raises(ValueError):
        mask_boundary_scores(t, p, -1.0)
    with pytest.raises(ValueError):
        mask_boundary_scores(t, p, float("nan"))


# ---- the accumulator ---------------------------------------------------------------------------------------------------
def test_accumulator_means_sd_n_and_worst_class():
    rng = np.random.default_rng(3)
    shape = (32, 40)
    names = ("cavity", "ring", "rare", "never")
    truths, preds = [], []
    for i in range(5):
        truth = np.zeros(shape, dtype=np.int64)
        pred = np.zeros(shape, dtype=np.int64)
        truth[blobs(rng, shape, 2)] = 1
        pred[blobs(rng, shape, 2)] = 1
        if i != 2:  # image 2: "ring" in neither truth nor prediction: left out of its mean
            truth[disc(shape, 16, 20, 6) & ~disc(shape, 16, 20, 4)] = 2
            if i != 4:  # image 4: the ring is missed (scored: the diagonal, NSD 0)
                pred[disc(shape, 17, 20, 6) & ~disc(shape, 17, 20, 3)] = 2
        if i == 1:  # "rare": a false structure in one image only (n = 1: no sd)
            pred[0:2, 0:2] = 3
        truths.append(truth)
        preds.append(pred)
    acc = BoundaryAccumulator(names, tolerance=2.0)
    acc.add(np.stack(truths[:3]), np.stack(preds[:3]))
    acc.add(np.stack(truths[3:]), np.stack(preds[3:]))
    assert acc.images == 5
    out = acc.result()

    expected = {}
    for c, name in enumerate(names, start=1):
        scores = [s for s in (ref_scores(t == c, p == c) for t, p in zip(truths, preds)) if s is not None]
        hd = [s[0] for s in scores]
        nsd = [s[1] for s in scores]
        expected[name] = (hd, nsd)
        assert out[f"n_{name}"] == len(scores)
        if scores:
            assert out[f"hd95_{name}"] == pytest.approx(statistics.mean(hd), abs=TOL)
            assert out[f"nsd_{name}"] == pytest.approx(statistics.mean(nsd), abs=TOL)
        if len(scores) >= 2:
            assert out[f"hd95_sd_{name}"] == pytest.approx(statistics.stdev(hd), abs=TOL)
            assert out[f"nsd_sd_{name}"] == pytest.approx(statistics.stdev(nsd), abs=TOL)
        else:
            assert out[f"hd95_sd_{name}"] is None and out[f"nsd_sd_{name}"] is None
    assert out["n_cavity"] == 5 and out["n_ring"] == 4 and out["n_rare"] == 1 and out["n_never"] == 0
    assert out["hd95_never"] is None and out["nsd_never"] is None
    diagonal = math.hypot(*shape)
    assert out["hd95_rare"] == pytest.approx(diagonal) and out["nsd_rare"] == 0.0
    assert diagonal in [pytest.approx(v) for v in expected["ring"][0]]  # the missed ring counts, as the diagonal

    scored = [n for n in names if out[f"n_{n}"]]
    assert out["hd95"] == pytest.approx(statistics.mean(out[f"hd95_{n}"] for n in scored), abs=TOL)
    assert out["nsd"] == pytest.approx(statistics.mean(out[f"nsd_{n}"] for n in scored), abs=TOL)
    assert out["hd95_max"] == max(out[f"hd95_{n}"] for n in scored)
    assert out["nsd_min"] == min(out[f"nsd_{n}"] for n in scored)

    nested = acc.per_class()
    assert nested["ring"]["n"] == 4 and nested["ring"]["hd95"] == out["hd95_ring"]
    assert_no_nan(out)


def assert_no_nan(out):
    for key, value in out.items():
        assert value is None or isinstance(value, (int, float)), key
        if value is not None:
            assert not math.isnan(value) and not math.isinf(value), key


def test_accumulator_with_nothing_scored_and_a_model_that_predicts_nothing():
    shape = (20, 30)
    empty = np.zeros((3, *shape), dtype=np.int64)
    acc = BoundaryAccumulator(["foreground"])
    acc.add(empty, empty)
    out = acc.result()
    assert out == {"hd95": None, "hd95_max": None, "nsd": None, "nsd_min": None, "hd95_foreground": None,
                   "nsd_foreground": None, "hd95_sd_foreground": None, "nsd_sd_foreground": None, "n_foreground": 0}
    truth = empty.copy()
    truth[:, 5:10, 5:12] = 1
    acc = BoundaryAccumulator(["foreground"])
    acc.add(truth, empty)  # every structure missed
    out = acc.result()
    assert out["hd95_foreground"] == pytest.approx(math.hypot(*shape)) and out["nsd_foreground"] == 0.0
    assert out["hd95_sd_foreground"] == 0.0 and out["n_foreground"] == 3
    assert out["hd95_max"] == out["hd95"] and out["nsd_min"] == out["nsd"] == 0.0
    assert_no_nan(out)


def test_accumulator_takes_one_image_and_refuses_bad_input():
    acc = BoundaryAccumulator(["a", "b"])
    truth = np.zeros((8, 8), dtype=np.int64)
    truth[2:5, 2:5] = 1
    acc.add(truth, truth)
    assert acc.images == 1 and acc.result()["hd95_a"] == 0.0 and acc.result()["nsd_a"] == 1.0
    with pytest.raises(ValueError):
        acc.add(np.zeros((2, 8, 8)), np.zeros((2, 8, 9)))
    with pytest.raises(ValueError):
        BoundaryAccumulator(["a", "a"])
    with pytest.raises(ValueError):
        BoundaryAccumulator(["x", "sd_x"])  # hd95_sd_x would be both x's sd and sd_x's mean
    with pytest.raises(ValueError):
        BoundaryAccumulator([])


def test_imports_without_torch():
    code = ("import sys; sys.modules['torch'] = None; import unettui.core.learn.boundary as b; "
            "print(b.mask_boundary_scores.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-500:]
