"""Formatting shared by the CLI and the TUI (no dependencies, so `unettui --help` stays fast)."""

from __future__ import annotations

import math
from typing import Any


def duration(seconds: Any, whole: bool = False) -> str:
    """12.3s (or 12s with ``whole``, for an ETA), 4m05s or 2h03m; '-' for a missing or non-finite value."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not math.isfinite(float(seconds)):
        return "-"
    s = max(0.0, float(seconds))
    if s < 59.5 and not whole:
        return f"{s:.1f}s"
    s = round(s)
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    return f"{m}m{s:02d}s" if m < 60 else f"{m // 60}h{m % 60:02d}m"


def value(v: Any, missing: str = "-") -> str:
    """A hyper-parameter value for tables: floats in %g (1e-4 stays short), booleans lower-case, lists as a,b,c."""
    if v is None:
        return missing
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):  # class_names, mask_values, class_weights: a,b,c; the default () as missing
        return ",".join(value(x) for x in v) or missing
    return str(v)
