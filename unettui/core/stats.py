"""Statistics of repeated runs, with no dependency on the run store or the queue: the mean with its seed-to-seed
standard deviation and n, the standard error, the noise-aware comparison a winner is chosen by, and their text.
Shared by the configurations of the read model (core.runs.groups) and the study engine (core.define.study)."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["mean_sd", "mean_sd_text", "pooled_dice", "standard_error", "summed_counts", "t_quantile",
           "within_noise"]


def mean_sd(values: Sequence[float]) -> tuple[float | None, float | None, int]:
    """(mean, sample standard deviation (n - 1), n) of the finite values; sd is None below two values."""
    xs = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    n = len(xs)
    if not n:
        return None, None, 0
    mean = sum(xs) / n
    if n < 2:
        return mean, None, n
    return mean, math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)), n


def standard_error(sd: float | None, n: int) -> float | None:
    """The standard error of a mean of ``n`` values with standard deviation ``sd`` (None below two values)."""
    return sd / math.sqrt(n) if sd is not None and n >= 2 else None


def within_noise(best: float, best_se: float | None, other: float, other_se: float | None) -> bool:
    """Whether ``other`` is within one standard error of the difference of ``best`` (sqrt(se_a^2 + se_b^2)): a
    margin that repeats with other seeds would overturn about one time in three. Without a standard error on both
    sides (single runs) nothing is within noise: there is no noise estimate to be within."""
    if best_se is None or other_se is None:
        return False
    return abs(best - other) <= math.sqrt(best_se**2 + other_se**2)


def mean_sd_text(mean: float | None, sd: float | None, n: int, digits: int = 4, compact: bool = False) -> str:
    """``0.8123 ± 0.0120 (n=3)`` (compact, for narrow tables: ``0.8123±0.0120(3)``), ``0.8123`` for a single run,
    ``-`` without one."""
    if mean is None:
        return "-"
    if n < 2 or sd is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f}±{sd:.{digits}f}({n})" if compact else f"{mean:.{digits}f} ± {sd:.{digits}f} (n={n})"


def t_quantile(p: float, df: int) -> float:
    """Student's t quantile (scipy.stats.t.ppf, imported here: the command line's --help never loads scipy)."""
    from scipy.stats import t

    return float(t.ppf(p, df))


def pooled_dice(sums: Sequence[Sequence[float]]) -> float | None:
    """Dice from (tp, fp, fn) summed per foreground class over a set of images: binary (one class) the foreground's,
    1.0 when nothing is in truth or prediction anywhere; K classes the mean over the classes with a score (None
    without one)."""
    dice = [2 * tp / (2 * tp + fp + fn) for tp, fp, fn in sums if 2 * tp + fp + fn > 0]
    if not dice:
        return 1.0 if len(sums) == 1 else None
    return sum(dice) / len(dice)


def summed_counts(counts: Sequence[Sequence[Sequence[float]]]) -> list[list[float]]:
    """Several sets' [F, 3] (tp, fp, fn) per foreground class summed into one [F, 3] (a set with fewer classes adds
    nothing to the others): the counts of their union, for ``pooled_dice``."""
    classes = max((len(c) for c in counts), default=0)
    return [[sum(float(c[k][j]) for c in counts if len(c) > k) for j in range(3)] for k in range(classes)]
