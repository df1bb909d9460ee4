"""Synthetic segmentation data drawn with numpy: the ventricle, nuclei (binary) and heart (3 classes) generators, their
difficulty knobs and helpers.

Over 600 lines: three generators whose scenes share the numpy helpers (coordinate grid, blur, smooth fields,
ellipses, per-image generators, normalisation) and whose knobs are kept side by side at the top."""

from __future__ import annotations

import math

import numpy as np

from .data import DatasetError
from .dataset_id import MIN_SYNTHETIC_SIZE

__all__ = ["check_synthetic_args", "synthetic_heart", "synthetic_ventricle", "synthetic_nuclei"]


# ---------------------------------------------------------------------------
# Synthetic data: difficulty knobs
# ---------------------------------------------------------------------------
# All geometry is defined in normalised coordinates (the image spans [-1, 1] in
# x and y), so the same seed draws the same scene at every image size; blur
# sigmas are given in pixels *at 64 px* and scale with the image size.

# --- synthetic:ventricle (short-axis cardiac MRI, right-ventricle target) ----
VENTRICLE_NOISE_SIGMA = 0.07        # additive Gaussian noise (image range ~[0, 1]); main difficulty knob
VENTRICLE_BLUR_SIGMA_PX = 0.8       # Gaussian blur sigma in pixels at 64 px (partial-volume edges)
VENTRICLE_INHOMOGENEITY = 0.30      # multiplicative bias field amplitude: up to +/-30 % (quadratic polynomial)
VENTRICLE_DISTRACTORS = (1, 3)      # inclusive range of bright non-target blobs (vessels, bowel, ...)
VENTRICLE_DISTRACTOR_LEVEL = (0.80, 1.05)  # their grey level relative to the LV blood pool
VENTRICLE_CURVED_DISTRACTORS = 0.35  # chance that a distractor is a curved tube (crescent-like) instead of a blob
VENTRICLE_DARK_STRUCTURES = (0, 2)  # inclusive range of dark regions (lung, air) anywhere, also next to the heart
VENTRICLE_RV_LEVEL = (0.85, 1.05)   # RV grey level relative to the LV blood pool (~same: shape matters)
VENTRICLE_FAT_RIM = True            # bright subcutaneous fat ring around the body (a ring-shaped distractor)
VENTRICLE_TEXTURE = 0.05            # amplitude of low-frequency texture in the body tissue
VENTRICLE_ANGLE_SPREAD = math.pi / 2  # RV direction = left of the LV +/- this (pi: any direction)
VENTRICLE_RV_FRACTION = (0.01, 0.05, 0.12)  # RV (target) share of the image: min, median, max
VENTRICLE_RV_FRACTION_SPREAD = 0.5  # log-normal sigma of that share (0: every image alike)
VENTRICLE_LV_RADIUS = 0.20          # LV blood-pool radius for a median-sized heart (normalised; image half-width = 1)
VENTRICLE_RV_WRAP = (0.30, 0.60)    # how far the crescent wraps round the LV on each side (fraction of pi)
VENTRICLE_RV_MIN_TIP = 0.06         # crescent tips thinner than this are cut (normalised units; >= 1.5 px)

# --- synthetic:nuclei (fluorescence microscopy) ------------------------------
NUCLEI_NOISE_SIGMA = 0.06           # additive Gaussian noise
NUCLEI_BLUR_SIGMA_PX = 1.0          # Gaussian blur sigma in pixels at 64 px (out-of-focus edges)
NUCLEI_COUNT_AT_64 = (12, 26)       # inclusive nucleus count range at 64 px (scales linearly with the image size)
NUCLEI_RADIUS = (0.06, 0.13)        # semi-major axis range (normalised units at 64 px; shrinks ~1/sqrt(size))
NUCLEI_DIM_FRACTION = 0.15          # share of dim nuclei, only slightly above the background
NUCLEI_DIM_CONTRAST = (0.05, 0.14)  # brightness of a dim nucleus above the background
NUCLEI_TOUCH_PROBABILITY = 0.35     # chance that a nucleus is placed touching/overlapping an earlier one
NUCLEI_HAZE = (0, 3)                # inclusive range of out-of-focus haze blobs (not in the mask)
NUCLEI_BACKGROUND_VARIATION = 0.08  # strength of the background gradient + low-frequency variation

# --- synthetic:heart (3 classes: background 0, cavity 1, myocardium 2) -------
HEART_CAVITY_RADIUS = (0.30, 0.56)  # mean cavity radius (normalised; image half-width = 1): about 10-18 px at 64 px
HEART_CAVITY_SHAPE = (0.18, 0.08)   # largest amplitudes of the boundary's 2nd and 3rd harmonics (relative to radius)
HEART_RING_PX = (1.3, 2.4)          # myocardium ring thickness in pixels at 64 px (scales with the image size)
HEART_RING_VARIATION = 0.30         # thickness varies round the ring by up to +/- this share (about 0.9-3.1 px)
HEART_TISSUE = (0.35, 0.50)         # grey level of the surrounding tissue
HEART_RING_CONTRAST = (0.03, 0.08)  # how much darker the ring is than the tissue: low, so its outer edge is faint
HEART_CAVITY_LEVEL = (0.75, 0.95)   # bright blood pool: its edge is easy
HEART_DARK_BLOBS = (0, 2)           # inclusive range of dark blobs as dark as the ring, elsewhere (not in the mask)
HEART_BRIGHT_BLOBS = (0, 1)         # inclusive range of bright blobs like the cavity but with no ring (not in the mask)
HEART_PAPILLARY = (0, 2)            # inclusive range of dark dots inside the cavity (labelled cavity)
HEART_TEXTURE = 0.05                # amplitude of low-frequency texture
HEART_INHOMOGENEITY = 0.20          # multiplicative bias field amplitude (quadratic polynomial)
HEART_BLUR_SIGMA_PX = 0.7           # Gaussian blur sigma in pixels at 64 px
HEART_NOISE_SIGMA = 0.08            # additive Gaussian noise

_TEXTURE_GRID = 32  # coarse grid of the smooth random fields (resolution independent)


# ---------------------------------------------------------------------------
# Synthetic data: numpy helpers
# ---------------------------------------------------------------------------


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1]: X has shape (1, 1, S), Y (1, S, 1)."""
    c = ((np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0).astype(np.float32)
    return c.reshape(1, 1, size), c.reshape(1, size, 1)


def _blur(imgs: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur of a batch [..., S, S] (sigma in pixels), mirror boundary.

    Done with numpy's FFT (pocketfft: single-threaded, deterministic) on a
    symmetrically padded copy; no BLAS, so it does not fight for cores with
    torch's thread pool or other processes.
    """
    if sigma_px <= 1e-3:
        return imgs.astype(np.float32, copy=False)
    size = imgs.shape[-1]
    pad = int(math.ceil(4.0 * sigma_px))
    widths = [(0, 0)] * (imgs.ndim - 2) + [(pad, pad), (pad, pad)]
    x = np.pad(imgs.astype(np.float32, copy=False), widths, mode="symmetric")
    length = size + 2 * pad
    d = np.arange(length, dtype=np.float64)
    d = np.minimum(d, length - d)
    k = np.exp(-0.5 * (d / sigma_px) ** 2)
    k /= k.sum()
    h_full = np.fft.fft(k).real
    h_half = np.fft.rfft(k).real
    transfer = (h_full[:, None] * h_half[None, :]).astype(np.complex64)
    out = np.fft.irfft2(np.fft.rfft2(x) * transfer, s=(length, length))
    return np.ascontiguousarray(out[..., pad : pad + size, pad : pad + size], dtype=np.float32)


def _upsample_bilinear(coarse: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a batch [..., G, G] to [..., size, size] (pixel-centre aligned), no BLAS."""
    g = coarse.shape[-1]
    pos = np.clip((np.arange(size) + 0.5) * g / size - 0.5, 0.0, g - 1.0)
    i0 = np.floor(pos).astype(np.int64)
    i1 = np.minimum(i0 + 1, g - 1)
    w1 = (pos - i0).astype(np.float32)
    w0 = 1.0 - w1
    rows = coarse[..., i0, :] * w0[:, None] + coarse[..., i1, :] * w1[:, None]
    return rows[..., :, i0] * w0 + rows[..., :, i1] * w1


def _smooth_field(coarse_noise: np.ndarray, sigma_coarse: float, size: int) -> np.ndarray:
    """Smooth random field [n, size, size] with unit std per image from white noise [n, G, G].

    The noise is blurred on the coarse grid and upsampled, so the field is cheap
    and the same for a given seed at every image size.
    """
    f = _blur(coarse_noise, sigma_coarse)
    f = f - f.reshape(f.shape[0], -1).mean(axis=1).reshape(-1, 1, 1)
    f = f / (f.reshape(f.shape[0], -1).std(axis=1).reshape(-1, 1, 1) + 1e-6)
    return _upsample_bilinear(f, size).astype(np.float32)


def _ellipse_level(X, Y, cx, cy, a, b, phi):
    """((x'/a)^2 + (y'/b)^2) in the ellipse frame; <= 1 inside. All args broadcast."""
    dx = X - cx
    dy = Y - cy
    c, s = np.cos(phi), np.sin(phi)
    u = (dx * c + dy * s) / a
    v = (-dx * s + dy * c) / b
    return u * u + v * v


def _image_rng(seed: int, i: int) -> np.random.Generator:
    """Generator for image i: image i depends only on (seed, i), not on n."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(i),)))


def _normalise01(imgs: np.ndarray, lo_pct: float = 0.5, hi_pct: float = 99.5) -> np.ndarray:
    """Per-image robust min-max to [0, 1] (percentiles), clipped."""
    flat = imgs.reshape(imgs.shape[0], -1)
    lo = np.percentile(flat, lo_pct, axis=1).reshape(-1, 1, 1)
    hi = np.percentile(flat, hi_pct, axis=1).reshape(-1, 1, 1)
    out = (imgs - lo) / np.maximum(hi - lo, 1e-6)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def check_synthetic_args(n: int, size: int) -> None:
    """Raise DatasetError when the generators cannot draw ``n`` images of ``size`` px (without drawing any)."""
    if int(n) < 0:
        raise DatasetError(f"number of synthetic images must be >= 0, got {n}")
    if int(size) < MIN_SYNTHETIC_SIZE:
        raise DatasetError(f"synthetic images need image_size >= {MIN_SYNTHETIC_SIZE}, got {size}")


# ---------------------------------------------------------------------------
# synthetic:ventricle
# ---------------------------------------------------------------------------


def _ventricle_params(rng: np.random.Generator) -> dict:
    """Draw the scene of one short-axis slice (scalars, normalised coordinates)."""
    p: dict = {}
    # body (thorax cross-section) and its fat rim
    # (a crop around the heart: the body fills most of the field of view, air in some corners)
    p["bcx"], p["bcy"] = rng.uniform(-0.10, 0.10, 2)
    p["bax"] = rng.uniform(0.95, 1.35)
    p["bay"] = rng.uniform(0.80, 1.15)
    p["bphi"] = rng.uniform(-0.30, 0.30)
    p["fat_t"] = rng.uniform(0.03, 0.07)
    p["bg"] = rng.uniform(0.0, 0.06)
    p["tissue"] = rng.uniform(0.24, 0.40)
    p["fat"] = rng.uniform(0.55, 0.80) if VENTRICLE_FAT_RIM else p["tissue"]
    p["myo"] = rng.uniform(0.10, 0.20)
    p["blood"] = rng.uniform(0.72, 0.92)
    p["rv"] = p["blood"] * rng.uniform(*VENTRICLE_RV_LEVEL)

    # heart: LV pool radius r, myocardium ring out to R, RV crescent on side theta.
    # The crescent is a band hugging the ring: R <= rho <= R + T(alpha), alpha the angle
    # from theta, T(alpha) = w * sqrt(1 - |alpha / alpha_max|^pexp), with its own
    # alpha_max on each side (asymmetric wrap); tips thinner than a minimum are cut (blunt).
    lo_f, med_f, hi_f = VENTRICLE_RV_FRACTION
    frac = float(np.clip(med_f * math.exp(VENTRICLE_RV_FRACTION_SPREAD * rng.standard_normal()), lo_f, hi_f))
    scale = (frac / med_f) ** 0.35 * rng.uniform(0.85, 1.15)  # bigger RV: somewhat bigger heart
    r = VENTRICLE_LV_RADIUS * scale
    R = r * (1.0 + rng.uniform(0.35, 0.60))
    theta = math.pi + rng.uniform(-VENTRICLE_ANGLE_SPREAD, VENTRICLE_ANGLE_SPREAD)
    am_pos = math.pi * rng.uniform(*VENTRICLE_RV_WRAP)  # how far it wraps on each side
    am_neg = math.pi * rng.uniform(*VENTRICLE_RV_WRAP)
    pexp = rng.uniform(1.5, 4.0)                      # larger: fuller, blunter crescent
    # thickness w from the target area: area = w R G1 + w^2 G2 / 2, G_k = integral of g^k
    alpha = np.concatenate([np.linspace(-am_neg, 0, 65), np.linspace(0, am_pos, 65)[1:]])
    g = np.sqrt(1.0 - np.minimum(np.abs(alpha) / np.where(alpha < 0, am_neg, am_pos), 1.0) ** pexp)
    da = np.diff(alpha)
    g1 = float(np.sum(0.5 * (g[1:] + g[:-1]) * da))
    g2 = float(np.sum(0.5 * (g[1:] ** 2 + g[:-1] ** 2) * da))
    area = 4.0 * frac
    w = (-R * g1 + math.sqrt((R * g1) ** 2 + 2.0 * g2 * area)) / g2
    w = float(np.clip(w, 0.15 * R, 1.4 * R))
    wall = rng.uniform(0.015, 0.035)                  # thin RV free wall (dark rim)
    p.update(r=r, R=R, theta=theta, w=w, am_pos=am_pos, am_neg=am_neg, pexp=pexp, wall=wall)

    # place the LV so that the whole heart stays well inside the body and the image
    heart_r = R + w + wall + 0.03
    ang = np.linspace(0, 2 * math.pi, 16, endpoint=False)
    ring = np.stack([np.cos(ang), np.sin(ang)], 1) * heart_r
    cand = np.array([p["bcx"], p["bcy"]]) + rng.uniform(-0.30, 0.30, (40, 1, 2))
    pts = cand + ring[None]                                             # [40, 16, 2]
    inner = (p["bcx"], p["bcy"], p["bax"] - p["fat_t"], p["bay"] - p["fat_t"], p["bphi"])
    lvl = _ellipse_level(pts[..., 0], pts[..., 1], *inner)
    hit = np.flatnonzero(np.all(np.abs(pts) < 0.95, axis=(1, 2)) & np.all(lvl < 1.0, axis=1))
    c = cand[hit[0], 0] if hit.size else np.array([p["bcx"], p["bcy"]])
    p["cx"], p["cy"] = float(c[0]), float(c[1])

    # papillary muscles: 0-2 small dark dots inside the LV pool
    pap = []
    for _ in range(int(rng.integers(0, 3))):
        ang = rng.uniform(0, 2 * math.pi)
        rr = r * rng.uniform(0.35, 0.65)
        pap.append((c[0] + rr * math.cos(ang), c[1] + rr * math.sin(ang), r * rng.uniform(0.12, 0.22)))
    p["pap"] = pap

    # distractors: bright structures of blood-like grey level elsewhere in the body,
    # ellipses (round or elongated) or curved tubes (an arc of an annulus); and dark
    # structures (lung, air) that may touch the heart.
    # Each is a row: kind (0 ellipse, 1 tube), x, y, a, b, phi, level, half_angle.
    body = inner
    lv = np.array([c[0], c[1]])

    def place(shape_pts: np.ndarray, clear: float) -> np.ndarray | None:
        """First of 40 random centres where the shape is in the image and body, clear of the heart."""
        q = rng.uniform(-0.85, 0.85, (40, 1, 2))
        pts = q + shape_pts[None]                                       # [40, P, 2]
        ok = (
            np.all(np.abs(pts) < 0.97, axis=(1, 2))
            & np.all(_ellipse_level(pts[..., 0], pts[..., 1], *body) < 0.95, axis=1)
            & np.all(np.hypot(pts[..., 0] - lv[0], pts[..., 1] - lv[1]) > clear, axis=1)
        )
        hit = np.flatnonzero(ok)
        return q[hit[0], 0] if hit.size else None

    ang12 = np.linspace(0, 2 * math.pi, 12, endpoint=False)
    dis = []
    lo, hi = VENTRICLE_DISTRACTORS
    for _ in range(int(rng.integers(lo, hi + 1))):
        level = p["blood"] * rng.uniform(*VENTRICLE_DISTRACTOR_LEVEL)
        phi = rng.uniform(0, 2 * math.pi)
        if rng.random() < VENTRICLE_CURVED_DISTRACTORS:
            rho0, half_t, half_ang = rng.uniform(0.12, 0.30), rng.uniform(0.025, 0.06), rng.uniform(0.4, 1.3)
            t = phi + np.linspace(-half_ang, half_ang, 9)
            shape = np.stack([np.cos(t), np.sin(t)], 1) * (rho0 + half_t)
            row = (1.0, 0.0, 0.0, rho0, half_t, phi, level, half_ang)
        else:
            a = rng.uniform(0.06, 0.17)
            b = a * rng.uniform(0.35, 1.0)
            ca, sa = math.cos(phi), math.sin(phi)
            ex, ey = a * np.cos(ang12), b * np.sin(ang12)
            shape = np.stack([ex * ca - ey * sa, ex * sa + ey * ca], 1)
            row = (0.0, 0.0, 0.0, a, b, phi, level, 0.0)
        q = place(shape, heart_r + 0.02)
        if q is not None:
            dis.append((row[0], q[0], q[1]) + row[3:])
    p["dis"] = dis
    dark = []
    lo, hi = VENTRICLE_DARK_STRUCTURES
    for _ in range(int(rng.integers(lo, hi + 1))):
        a = rng.uniform(0.15, 0.35)
        b = a * rng.uniform(0.4, 0.8)
        q = rng.uniform(-0.9, 0.9, 2)
        dark.append((0.0, q[0], q[1], a, b, rng.uniform(0, math.pi), p["bg"] + rng.uniform(0.02, 0.08), 0.0))
    p["dark"] = dark
    # smooth multiplicative bias field: quadratic polynomial
    p["poly"] = rng.standard_normal(5)
    p["inh"] = VENTRICLE_INHOMOGENEITY * rng.uniform(0.5, 1.0)
    return p


def synthetic_ventricle(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 images [n,size,size] in [0,1], bool masks [n,size,size].

    Short-axis cardiac MRI in spirit, as a crop around the heart: textured body
    tissue with a bright fat rim and air in some corners, 0-2 dark regions
    (lung), a left ventricle (bright blood pool, dark myocardium ring,
    papillary muscles) and the target, the right ventricle: a bright crescent
    hugging the myocardium ring on one side (a band R <= rho <= R + T(angle)
    around the LV centre, asymmetric wrap, blunt tips, thin dark free wall).
    Its grey level matches the LV pool and 1-3 distractors (blobs, or curved
    tubes that look like crescents), so shape and position relative to the LV
    must be used. The RV share of the image is drawn per image (log-normal,
    see VENTRICLE_RV_FRACTION). A quadratic bias field, a Gaussian blur and
    additive Gaussian noise follow; each image is then normalised to [0, 1]
    (0.5 / 99.5 percentiles, clipped). The mask is the crescent before blur
    and noise; one connected region (at sizes >= 32). Image i depends only on (seed, i): a
    larger ``n`` extends the dataset without changing earlier images.
    """
    check_synthetic_args(n, size)
    n, size = int(n), int(size)
    if n == 0:
        return np.zeros((0, size, size), np.float32), np.zeros((0, size, size), bool)
    X, Y = _grid(size)
    rngs = [_image_rng(seed, i) for i in range(n)]
    ps = [_ventricle_params(r) for r in rngs]

    def col(key):
        return np.array([p[key] for p in ps], dtype=np.float32).reshape(n, 1, 1)

    bg, tissue, fat, myo, blood, rv = (col(k) for k in ("bg", "tissue", "fat", "myo", "blood", "rv"))
    bcx, bcy, bax, bay, bphi, fat_t = (col(k) for k in ("bcx", "bcy", "bax", "bay", "bphi", "fat_t"))
    cx, cy, r, R = col("cx"), col("cy"), col("r"), col("R")
    wall = col("wall")

    # per-image noise fields, drawn after the scene from each image's own generator
    tex_noise = np.stack([g.standard_normal((_TEXTURE_GRID, _TEXTURE_GRID), dtype=np.float32) for g in rngs])
    add_noise = np.stack([g.standard_normal((size, size), dtype=np.float32) for g in rngs])

    # body with low-frequency texture, fat rim, air outside
    tex = _smooth_field(tex_noise, 0.05 * _TEXTURE_GRID, size)
    body_out = _ellipse_level(X, Y, bcx, bcy, bax, bay, bphi) <= 1.0
    body_in = _ellipse_level(X, Y, bcx, bcy, bax - fat_t, bay - fat_t, bphi) <= 1.0
    img = np.where(body_out, fat, bg)
    img = np.where(body_in, tissue + VENTRICLE_TEXTURE * tex, img)

    # dark structures, then bright distractors (each padded to the max count per batch)
    for key in ("dark", "dis"):
        for j in range(max(len(p[key]) for p in ps)):
            rows = np.zeros((n, 8), np.float32)
            rows[:, 1:3] = 10.0     # inactive: far outside the image
            rows[:, 3:5] = 1e-3
            for i, p in enumerate(ps):
                if j < len(p[key]):
                    rows[i] = p[key][j]
            sl = rows.reshape(n, 8, 1, 1)
            _kind, qx, qy, a, b, phi, level, half_ang = (sl[:, k] for k in range(8))
            inside = _ellipse_level(X, Y, qx, qy, a, b, phi) <= 1.0
            tubes = np.flatnonzero(rows[:, 0] == 1.0)
            if tubes.size:  # curved tubes: only for the images that have one in this slot
                t = tubes
                rho = np.sqrt((X - qx[t]) ** 2 + (Y - qy[t]) ** 2)
                dang = (np.arctan2(Y - qy[t], X - qx[t]) - phi[t] + np.pi) % (2 * np.pi) - np.pi
                inside[t] = (np.abs(rho - a[t]) <= b[t]) & (np.abs(dang) <= half_ang[t])
            img = np.where(inside, level, img)

    # left ventricle: myocardium disk, blood pool, papillary muscles
    dist2 = (X - cx) ** 2 + (Y - cy) ** 2
    lv_wall = dist2 <= R * R
    img = np.where(lv_wall, myo, img)
    img = np.where(dist2 <= r * r, blood, img)
    img = _paint_dots(img, X, Y, [p["pap"] for p in ps], myo)

    # right ventricle: crescent band outside the myocardium ring, thin dark free wall
    alpha = np.arctan2(Y - cy, X - cx) - col("theta")
    alpha = (alpha + np.pi) % (2 * np.pi) - np.pi                       # (-pi, pi]
    am = np.where(alpha >= 0, col("am_pos"), col("am_neg"))
    u = np.minimum(np.abs(alpha) / am, 1.0)
    thick = col("w") * np.sqrt(1.0 - u ** col("pexp"))
    tip = np.minimum(max(VENTRICLE_RV_MIN_TIP, 3.0 / size), 0.7 * col("w"))  # never cut it all
    thick = np.where(thick >= tip, thick, 0.0)
    rho = np.sqrt(dist2)
    crescent = (rho > R) & (rho <= R + thick)
    img = np.where((rho > R) & (rho <= R + thick + wall) & (thick > 0), myo, img)
    img = np.where(crescent, rv, img)

    # multiplicative bias field (quadratic polynomial, normalised to +/- inh)
    poly = np.array([p["poly"] for p in ps], np.float32).reshape(n, 5, 1, 1)
    field = poly[:, 0] * X + poly[:, 1] * Y + poly[:, 2] * X * X + poly[:, 3] * X * Y + poly[:, 4] * Y * Y
    field = field - field.reshape(n, -1).mean(axis=1).reshape(n, 1, 1)
    field /= np.abs(field).reshape(n, -1).max(axis=1).reshape(n, 1, 1) + 1e-6
    img = img * (1.0 + col("inh") * field)

    # blur, noise, normalise
    img = _blur(img.astype(np.float32), VENTRICLE_BLUR_SIGMA_PX * size / 64.0)
    img = img + VENTRICLE_NOISE_SIGMA * add_noise
    return _normalise01(img), crescent


# ---------------------------------------------------------------------------
# synthetic:nuclei
# ---------------------------------------------------------------------------


def _nuclei_count_range(size: int) -> tuple[int, int]:
    f = size / 64.0
    lo = max(6, int(round(NUCLEI_COUNT_AT_64[0] * f)))
    hi = max(lo + 2, int(round(NUCLEI_COUNT_AT_64[1] * f)))
    return lo, min(hi, 80)


def synthetic_nuclei(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 images [n,size,size] in [0,1], bool masks [n,size,size].

    Fluorescence nuclei: many small ellipses of varying size, eccentricity,
    orientation and brightness (some touching or overlapping, a few dim ones
    barely above the background) with a dome-shaped profile and chromatin
    texture, on an uneven background (gradient, low-frequency variation and
    out-of-focus haze blobs that are not in the mask); blurred, noisy, and
    normalised per image to [0, 1]. The mask is the union of the nuclei.
    The count grows with ``size`` (more, relatively smaller nuclei at larger
    sizes). Image i depends only on (seed, i).
    """
    check_synthetic_args(n, size)
    n, size = int(n), int(size)
    if n == 0:
        return np.zeros((0, size, size), np.float32), np.zeros((0, size, size), bool)
    X, Y = _grid(size)
    sig_fine = 0.6 * size / 64.0
    cnt_lo, cnt_hi = _nuclei_count_range(size)
    rscale = math.sqrt(64.0 / size)
    bgs = np.empty((n, size, size), np.float32)     # base + gradient + haze
    low_noise = np.empty((n, _TEXTURE_GRID, _TEXTURE_GRID), np.float32)
    chrom_noise = np.empty((n, size, size), np.float32)
    noises = np.empty((n, size, size), np.float32)
    params: list[np.ndarray] = []  # per image: [k, 8] = image, cx, cy, a, b, phi, brightness, dome

    for i in range(n):
        rng = _image_rng(seed, i)
        # background: base + linear gradient + haze (low-frequency variation added below)
        base = rng.uniform(0.03, 0.12)
        g = rng.standard_normal(2) * NUCLEI_BACKGROUND_VARIATION * 0.6
        bgi = base + g[0] * X[0] + g[1] * Y[0]
        for _ in range(int(rng.integers(NUCLEI_HAZE[0], NUCLEI_HAZE[1] + 1))):
            hx, hy = rng.uniform(-1, 1, 2)
            hs = rng.uniform(0.10, 0.25)
            bgi = bgi + rng.uniform(0.05, 0.18) * np.exp(-((X[0] - hx) ** 2 + (Y[0] - hy) ** 2) / (2 * hs * hs))
        bgs[i] = bgi

        # nuclei: sizes, shapes, positions (some placed touching an earlier one), brightness
        k = int(rng.integers(cnt_lo, cnt_hi + 1))
        a = rng.uniform(*NUCLEI_RADIUS, size=k) * rscale
        b = a * rng.uniform(0.55, 1.0, size=k)
        phi = rng.uniform(0, math.pi, size=k)
        cxy = np.empty((k, 2))
        for j in range(k):
            if j > 0 and rng.random() < NUCLEI_TOUCH_PROBABILITY:
                m = int(rng.integers(0, j))
                ang = rng.uniform(0, 2 * math.pi)
                dist = (0.5 * (a[m] + b[m]) + 0.5 * (a[j] + b[j])) * rng.uniform(0.75, 1.05)
                cxy[j] = cxy[m] + dist * np.array([math.cos(ang), math.sin(ang)])
            else:
                cxy[j] = rng.uniform(-0.95, 0.95, 2)
        dim = rng.random(k) < NUCLEI_DIM_FRACTION
        bright = np.where(dim, rng.uniform(*NUCLEI_DIM_CONTRAST, size=k), rng.uniform(0.30, 1.0, size=k))
        dome = rng.uniform(0.15, 0.45, size=k)
        low_noise[i] = rng.standard_normal((_TEXTURE_GRID, _TEXTURE_GRID), dtype=np.float32)
        chrom_noise[i] = rng.standard_normal((size, size), dtype=np.float32)
        noises[i] = rng.standard_normal((size, size), dtype=np.float32)
        params.append(np.column_stack([np.full(k, i), cxy, a, b, phi, bright, dome]))

    # render every nucleus of every image at once in small patches around its centre,
    # then combine per image with a maximum (overlaps keep the brighter nucleus)
    allp = np.concatenate(params)
    half = int(math.ceil(NUCLEI_RADIUS[1] * rscale * size / 2.0)) + 1
    offs = np.arange(-half, half + 2)
    px = np.floor((allp[:, 1] + 1.0) * size / 2.0).astype(np.int64)  # pixel column of the centre
    py = np.floor((allp[:, 2] + 1.0) * size / 2.0).astype(np.int64)
    cols = (px[:, None] + offs[None, :])[:, None, :]                   # [K, 1, P]
    rows = (py[:, None] + offs[None, :])[:, :, None]                   # [K, P, 1]
    xs = ((cols + 0.5) / size * 2.0 - 1.0).astype(np.float32)
    ys = ((rows + 0.5) / size * 2.0 - 1.0).astype(np.float32)
    q = lambda j: allp[:, j].astype(np.float32).reshape(-1, 1, 1)  # noqa: E731
    lvl = _ellipse_level(xs, ys, q(1), q(2), q(3), q(4), q(5))
    keep = (lvl <= 1.0) & (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)
    kk, rr, cc = np.nonzero(keep)
    ii = allp[kk, 0].astype(np.int64)
    yy = rows[kk, rr, 0]
    xx = cols[kk, 0, cc]
    vals = (q(6) * (1.0 - q(7) * lvl))[kk, rr, cc]
    profs = np.zeros((n, size, size), np.float32)
    np.maximum.at(profs, (ii, yy, xx), vals)
    masks = np.zeros((n, size, size), bool)
    masks[ii, yy, xx] = True

    def unit(x: np.ndarray) -> np.ndarray:
        return x / (x.reshape(n, -1).std(axis=1).reshape(n, 1, 1) + 1e-6)

    low = _smooth_field(low_noise, 0.12 * _TEXTURE_GRID, size)
    chrom = unit(_blur(chrom_noise, sig_fine))
    imgs = bgs + NUCLEI_BACKGROUND_VARIATION * 0.5 * low + profs * (1.0 + 0.12 * chrom)
    img = _blur(imgs, NUCLEI_BLUR_SIGMA_PX * size / 64.0) + NUCLEI_NOISE_SIGMA * noises
    return _normalise01(img), masks


# ---------------------------------------------------------------------------
# synthetic:heart
# ---------------------------------------------------------------------------


def _heart_params(rng: np.random.Generator) -> dict:
    """Draw the scene of one image (scalars, normalised coordinates)."""
    p: dict = {}
    p["tissue"] = rng.uniform(*HEART_TISSUE)
    p["ring_level"] = p["tissue"] - rng.uniform(*HEART_RING_CONTRAST)
    p["cavity_level"] = rng.uniform(*HEART_CAVITY_LEVEL)
    r0 = rng.uniform(*HEART_CAVITY_RADIUS)
    a2, a3 = rng.uniform(0.0, HEART_CAVITY_SHAPE[0]), rng.uniform(0.0, HEART_CAVITY_SHAPE[1])
    phi2, phi3 = rng.uniform(0.0, 2 * math.pi, 2)
    t0 = rng.uniform(*HEART_RING_PX) * 2.0 / 64.0
    var = rng.uniform(0.0, HEART_RING_VARIATION)
    phit = rng.uniform(0.0, 2 * math.pi)
    extent = r0 * (1.0 + a2 + a3) + t0 * (1.0 + var)
    room = max(0.0, 0.92 - extent)
    cx, cy = rng.uniform(-room, room, 2)
    p.update(r0=r0, a2=a2, a3=a3, phi2=phi2, phi3=phi3, t0=t0, var=var, phit=phit, cx=cx, cy=cy)

    # papillary muscles: small dark dots inside the pool, labelled cavity (as annotators draw them)
    pap = []
    for _ in range(int(rng.integers(HEART_PAPILLARY[0], HEART_PAPILLARY[1] + 1))):
        ang = rng.uniform(0, 2 * math.pi)
        rr = r0 * (1.0 - a2 - a3) * rng.uniform(0.35, 0.6)
        pap.append((cx + rr * math.cos(ang), cy + rr * math.sin(ang), r0 * rng.uniform(0.10, 0.17)))
    p["pap"] = pap

    # blobs elsewhere, clear of the heart: dark ones as dark as the ring, bright ones like the pool (no ring round
    # them), so neither class is a grey level alone. Each row: x, y, a, b, phi, level.
    blobs = []
    for count, size_range, level in ((HEART_DARK_BLOBS, (0.08, 0.22), lambda: p["ring_level"] + rng.uniform(-0.03, 0.03)),
                                     (HEART_BRIGHT_BLOBS, (0.06, 0.14), lambda: p["cavity_level"] * rng.uniform(0.75, 0.95))):
        for _ in range(int(rng.integers(count[0], count[1] + 1))):
            a = rng.uniform(*size_range)
            b = a * rng.uniform(0.4, 1.0)
            cand = rng.uniform(-0.9, 0.9, (24, 2))
            ok = np.flatnonzero(np.hypot(cand[:, 0] - cx, cand[:, 1] - cy) > extent + a + 0.04)
            lv = level()
            if ok.size:
                q = cand[ok[0]]
                blobs.append((q[0], q[1], a, b, rng.uniform(0, math.pi), lv))
    p["blobs"] = blobs
    p["poly"] = rng.standard_normal(5)
    p["inh"] = HEART_INHOMOGENEITY * rng.uniform(0.5, 1.0)
    return p


def _paint_dots(img: np.ndarray, X: np.ndarray, Y: np.ndarray, dots: list, level) -> np.ndarray:
    """``img`` [n, S, S] with image i's dots (x, y, radius rows of ``dots[i]``: papillary muscles) painted ``level``."""
    n = img.shape[0]
    max_p = max(1, max(len(d) for d in dots))
    pap = np.full((n, max_p, 3), 10.0, np.float32)  # (missing dots: far outside the image, radius 1e-3)
    pap[:, :, 2] = 1e-3
    for i, d in enumerate(dots):
        for j, t in enumerate(d):
            pap[i, j] = t
    for j in range(max_p):
        sl = pap[:, j].reshape(n, 3, 1, 1)
        img = np.where((X - sl[:, 0]) ** 2 + (Y - sl[:, 1]) ** 2 <= sl[:, 2] ** 2, level, img)
    return img


def synthetic_heart(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 images [n,size,size] in [0,1], uint8 masks [n,size,size] of class indices: 0 background, 1 cavity,
    2 myocardium.

    A short-axis slice in spirit: a bright cavity (a filled blob of varying size, position and shape: a circle with
    2nd and 3rd harmonics on its boundary, 0-2 dark papillary dots inside that belong to it) inside a thin, darker
    myocardium ring (about 1-3 px thick at 64 px, its thickness varying round it and from image to image) on
    textured tissue whose grey is only a little lighter than the ring's, so the ring's outer edge is faint while the
    cavity's edge is sharp. 0-2 dark blobs as dark as the ring and 0-1 bright blobs like the cavity (no ring round
    them) lie elsewhere and are background. A quadratic bias field, a Gaussian blur and additive Gaussian noise
    follow; each image is normalised to [0, 1] (0.5 / 99.5 percentiles, clipped). The ring is the class a mean Dice
    hides: it covers about 2-7 % of an image (4 % on average), the cavity about 7-25 %. Image i depends
    only on (seed, i).
    """
    check_synthetic_args(n, size)
    n, size = int(n), int(size)
    if n == 0:
        return np.zeros((0, size, size), np.float32), np.zeros((0, size, size), np.uint8)
    X, Y = _grid(size)
    rngs = [_image_rng(seed, i) for i in range(n)]
    ps = [_heart_params(r) for r in rngs]

    def col(key):
        return np.array([p[key] for p in ps], dtype=np.float32).reshape(n, 1, 1)

    tex_noise = np.stack([g.standard_normal((_TEXTURE_GRID, _TEXTURE_GRID), dtype=np.float32) for g in rngs])
    add_noise = np.stack([g.standard_normal((size, size), dtype=np.float32) for g in rngs])

    img = col("tissue") + HEART_TEXTURE * _smooth_field(tex_noise, 0.05 * _TEXTURE_GRID, size)
    for j in range(max(len(p["blobs"]) for p in ps)):
        rows = np.zeros((n, 6), np.float32)
        rows[:, 0:2] = 10.0  # inactive: far outside the image
        rows[:, 2:4] = 1e-3
        for i, p in enumerate(ps):
            if j < len(p["blobs"]):
                rows[i] = p["blobs"][j]
        sl = rows.reshape(n, 6, 1, 1)
        inside = _ellipse_level(X, Y, sl[:, 0], sl[:, 1], sl[:, 2], sl[:, 3], sl[:, 4]) <= 1.0
        img = np.where(inside, sl[:, 5], img)

    dx, dy = X - col("cx"), Y - col("cy")
    rho = np.sqrt(dx * dx + dy * dy)
    th = np.arctan2(dy, dx)
    edge = col("r0") * (1.0 + col("a2") * np.cos(2.0 * (th - col("phi2"))) + col("a3") * np.cos(3.0 * (th - col("phi3"))))
    thick = col("t0") * (1.0 + col("var") * np.cos(th - col("phit")))
    cavity = rho <= edge
    ring = ~cavity & (rho <= edge + thick)
    img = np.where(ring, col("ring_level"), img)
    img = np.where(cavity, col("cavity_level"), img)
    img = _paint_dots(img, X, Y, [p["pap"] for p in ps], col("ring_level"))

    poly = np.array([p["poly"] for p in ps], np.float32).reshape(n, 5, 1, 1)
    field = poly[:, 0] * X + poly[:, 1] * Y + poly[:, 2] * X * X + poly[:, 3] * X * Y + poly[:, 4] * Y * Y
    field = field - field.reshape(n, -1).mean(axis=1).reshape(n, 1, 1)
    field /= np.abs(field).reshape(n, -1).max(axis=1).reshape(n, 1, 1) + 1e-6
    img = img * (1.0 + col("inh") * field)

    img = _blur(img.astype(np.float32), HEART_BLUR_SIGMA_PX * size / 64.0)
    img = img + HEART_NOISE_SIGMA * add_noise
    masks = np.where(ring, 2, np.where(cavity, 1, 0)).astype(np.uint8)
    return _normalise01(img), masks
