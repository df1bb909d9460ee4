"""The figures of a staged study, per stage (loss curves, the score per configuration, the validation predictions of
each configuration) and for the whole study (the metric of every setting, grouped as the course study's Figure 10),
written by `unettui report`. This module gathers what they show from the study's status and the run folders — with
one style per configuration, so that a configuration has the same colour in every figure — and
:mod:`unettui.core.show.figures` draws them with matplotlib."""

from __future__ import annotations

import colorsys
from pathlib import Path
from typing import Any

from ..runs.store import RunStore
from ..stats import mean_sd
from . import figures
from .curves import PALETTE, hex_colour
from .figure_model import ConfigFigure, StageFigure, Style
from .fmt import value as fmt_value

__all__ = ["OVERVIEW", "VECTOR_FORMATS", "ConfigFigure", "StageFigure", "Style", "stage_styles", "study_model",
           "write_study_figures"]

OVERVIEW = ""  # the key of the study's overview in write_study_figures' answer (no stage has an empty name)
VECTOR_FORMATS = ("svg", "pdf")
LINESTYLES: tuple[Any, ...] = ("-", "--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)))
MARKERS = "osD^vP*Xph"


def _shade(rgb: tuple[int, int, int], j: int, m: int) -> str:
    """Level ``j`` of ``m`` of one hue: from darker (first) to lighter (last), keeping the hue."""
    if m <= 1:
        return hex_colour(rgb)
    h, lightness, s = colorsys.rgb_to_hls(*(c / 255 for c in rgb))
    lo, hi = max(0.18, lightness - 0.2), min(0.72, lightness + 0.22)
    r, g, b = colorsys.hls_to_rgb(h, lo + (hi - lo) * j / (m - 1), s)
    return hex_colour((round(r * 255), round(g * 255), round(b * 255)))


def _levels(items: list[Any]) -> list[Any]:
    """The distinct items in order of appearance, or sorted when they are all numbers (a shade then follows the value)."""
    seen = list(dict.fromkeys(items))
    flat = [v for t in seen for v in (t if isinstance(t, tuple) else (t,))]
    if flat and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
        return sorted(seen)
    return seen


def stage_styles(configs: list[dict[str, Any]], varied: list[str]) -> list[Style]:
    """A style per configuration of a stage: a hue (and marker) per value of the first varied key; with more keys, a
    shade and a line style per combination of the others (adam/step and adam/plateau: two blues, solid and
    dashed), so that the grid reads in the curves and in the overview's groups alike."""
    first, rest = (varied[0], varied[1:]) if varied else (None, [])
    outer = list(dict.fromkeys(_key(c.get(first)) for c in configs))
    inner = _levels([tuple(_key(c.get(k)) for k in rest) for c in configs])
    out = []
    for c in configs:
        i, j = outer.index(_key(c.get(first))), inner.index(tuple(_key(c.get(k)) for k in rest))
        cycle = i // len(PALETTE)  # past the palette: the same hues again, in another line style
        out.append(Style(colour=_shade(PALETTE[i % len(PALETTE)], j, len(inner)),
                         linestyle=LINESTYLES[(j + cycle) % len(LINESTYLES)], marker=MARKERS[i % len(MARKERS)]))
    return out


def _key(v: Any) -> Any:
    return v if isinstance(v, (int, float, str, bool)) or v is None else str(v)


def label_of(values: dict[str, Any], keys: list[str]) -> str:
    """``optimizer=adam, scheduler=none``: the configuration by the keys its stage varies (all of them, never cut)."""
    return ", ".join(f"{k}={fmt_value(values.get(k))}" for k in keys) or "base"


def _representative(fractions: list[float | None]) -> float | None:
    """The train fraction a configuration's curves and predictions are pictured at: the largest."""
    return max(fractions, key=lambda f: -1.0 if f is None else f)


def _config(st, cs, style: Style, store: RunStore, winner: bool) -> ConfigFigure:
    by_fraction: dict[float | None, list[Any]] = {}
    for r in cs.runs:  # several runs at one fraction are repeats of the configuration
        by_fraction.setdefault(r.fraction, []).append(r)
    fractions = list(by_fraction)
    shown = by_fraction[_representative(fractions)]
    finished = [r for r in shown if r.state in ("done", "failed", "interrupted", "running")]
    cf = ConfigFigure(label=label_of(cs.values, list(st.varied)), values=dict(cs.values), style=style, winner=winner,
                      pruned_at=cs.pruned_at, score=cs.score, states=[r.state for r in cs.runs])
    cf.histories = [h for h in (store.run(r.id).metrics() for r in finished) if h]
    if shown:
        npz = store.run(shown[0].id).file("preview_best.npz")
        cf.preview = npz if npz.exists() else None
    for f, runs in by_fraction.items():
        m, sd, n = mean_sd([r.value for r in runs if r.value is not None])
        cf.points.append((f, m, sd, n))
    # the study's own spread of the score over repeats (core.define.study.score), the one the tables and the winner use
    cf.sd, cf.n = getattr(cs, "sd", None), getattr(cs, "n", 1) or 1
    return cf


def study_model(status, store: RunStore) -> list[StageFigure]:
    """Each stage with at least one finished run, as its figures show it."""
    out = []
    for n, st in enumerate(status.stages, 1):
        if st.state == "waiting" or not st.configs:
            continue
        if not any(r.state in ("done", "failed") for c in st.configs for r in c.runs):
            continue
        styles = stage_styles([c.values for c in st.configs], list(st.varied))
        fractions = list(dict.fromkeys(r.fraction for c in st.configs for r in c.runs))
        configs = [_config(st, c, s, store, st.state == "done" and st.winner == c.values)
                   for c, s in zip(st.configs, styles)]
        out.append(StageFigure(n, st.name, list(st.varied), status.study.metric, fractions, configs,
                               done=st.state == "done"))
    return out


def write_study_figures(status, store: RunStore, folder: Path, vector: str | None = "svg") -> dict[str, list[Path]]:
    """Draw every started stage's figures and the study's overview into ``folder``, each as PNG and (``vector``: svg or
    pdf; None for none) a vector file; returns {stage name: [paths]} and the overview's paths under OVERVIEW."""
    if vector is not None and vector not in VECTOR_FORMATS:
        raise ValueError(f"unknown vector format {vector!r}; use one of {', '.join(VECTOR_FORMATS)}")
    folder = Path(folder)
    stages = study_model(status, store)
    out: dict[str, list[Path]] = {}
    for sf in stages:
        paths = figures.save(figures.loss_figure(sf), folder / f"{sf.stem}-loss.png", vector)
        paths += figures.save(figures.score_figure(sf), folder / f"{sf.stem}-scores.png", vector)
        grid = figures.predictions_figure(sf)
        if grid is not None:
            paths += figures.save(grid, folder / f"{sf.stem}-predictions.png", vector)
        out[sf.name] = paths
    if stages:
        out[OVERVIEW] = figures.save(figures.overview_figure(stages, status.id), folder / "overview.png", vector)
    return out
