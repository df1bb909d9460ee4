"""A study's publication figures drawn with matplotlib: per stage the train and validation loss curves, the score of
each configuration, and the validation predictions of each configuration; for the study, the overview of the metric
per setting. :func:`save` writes a figure as PNG plus SVG or PDF.

matplotlib is imported only inside these functions (never by `unettui --help`, the TUI or the rest of the core) and
used through its object API on an explicit Agg canvas — no pyplot, no global backend — so drawing is safe in a worker
thread. Text stays text in SVG (``svg.fonttype = none``) and TrueType in PDF, so the labels can be edited and searched.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..runs.store import atomic_write_bytes
from .curves import finite, group_curve, wants_log
from .fmt import value as _fmt

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from .figure_model import ConfigFigure, StageFigure

DPI = 150
RC = {"svg.fonttype": "none", "svg.hashsalt": "unettui", "pdf.fonttype": 42, "font.size": 9, "axes.titlesize": 10,
      "legend.fontsize": 8, "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
      "grid.color": "#e4e4e4", "grid.linewidth": 0.6, "axes.axisbelow": True}
WINNER_EDGE = "#000000"
CHAR_IN = 0.062  # the width of an average character of the 8-pt legend font, in inches (to size figures for labels)
SAMPLES = 2  # validation images per configuration in the predictions figure
HATCHES = ("", "//", "..", "xx", "\\\\", "++", "--", "oo")  # the overview's bars within a group
METADATA = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None, "Producer": None}}


def _rc():
    import matplotlib

    return matplotlib.rc_context(RC)


def new_figure(width: float, height: float) -> Figure:
    """An empty figure of ``width`` x ``height`` inches on its own Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, png: Path, vector: str | None = "svg") -> list[Path]:
    """Write ``fig`` to ``png`` and, unless ``vector`` is None, beside it as .svg or .pdf (atomically, reproducibly);
    returns the paths written."""
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    out = []
    with _rc():
        for fmt in ("png", vector) if vector else ("png",):
            path = png.with_suffix("." + fmt)
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt, dpi=DPI, metadata=METADATA.get(fmt), facecolor="white")
            atomic_write_bytes(path, buf.getvalue())
            out.append(path)
    return out


def _width_for(labels: list[str], columns: int = 1) -> float:
    return columns * (0.55 + CHAR_IN * max((len(s) for s in labels), default=0))


def _is_unit(metric: str, values: list[float]) -> bool:
    """A Dice- or IoU-like metric whose values lie in [0, 1]: its axis shows all of 0..1."""
    return "loss" not in metric and all(0.0 <= v <= 1.0 for v in values)


def _points(history: list[dict[str, Any]], key: str) -> list[tuple[float, float]]:
    out = []
    for i, m in enumerate(history, 1):
        x, y = finite(m.get("epoch", i)), finite(m.get(key))
        if x is not None and y is not None:
            out.append((x, y))
    return out


def loss_figure(stage: StageFigure) -> Figure:
    """Train and validation loss per epoch, a panel each on a shared y axis, one line per configuration (a
    configuration with repeats: their mean and a band from the lowest to the highest); log scale when the losses span
    decades."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    configs = [c for c in stage.configs if c.histories]
    labels = [c.legend_label for c in configs]
    columns = 1 if len(labels) <= 22 else 2
    with _rc():
        fig = new_figure(8.0 + _width_for(labels, columns), max(4.0, 0.6 + 0.17 * len(labels) / columns))
        axes = fig.subplots(1, 2, sharey=True)
        shown: list[float] = []
        for c in configs:
            for ax, key in zip(axes, ("train_loss", "val_loss")):
                mean, band = group_curve([_points(h, key) for h in c.histories])
                if not mean:
                    continue
                xs, ys = [x for x, _ in mean], [y for _, y in mean]
                (line,) = ax.plot(xs, ys, color=c.style.colour, linestyle=c.style.linestyle, marker=c.style.marker,
                                  markersize=3.5, markevery=max(1, math.ceil(len(xs) / 12)), linewidth=1.6)
                line.set_gid(f"{c.gid}-{key}")
                shown += ys
                if len(c.histories) > 1:
                    poly = ax.fill_between(xs, [lo for _, lo, _ in band], [hi for _, _, hi in band],
                                           color=c.style.colour, alpha=0.18, linewidth=0)
                    poly.set_gid(f"{c.gid}-{key}-band")
                    shown += [v for _, lo, hi in band for v in (lo, hi)]
        log = wants_log(shown)
        for ax, what in zip(axes, ("train loss", "validation loss")):
            if log:
                ax.set_yscale("log")
            ax.set_title(what)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[0].set_ylabel("loss (log scale)" if log else "loss")
        handles = [Line2D([], [], color=c.style.colour, linestyle=c.style.linestyle, marker=c.style.marker,
                          markersize=4, linewidth=1.6) for c in configs]
        if configs:
            fig.legend(handles, labels, loc="outside right upper", ncols=columns, frameon=False,
                       title=", ".join(stage.varied) or None)
        at = _representative_text(stage)
        fig.suptitle(f"{stage.title}: train and validation loss{at}" + (" (log scale)" if log else ""))
    return fig


def _representative_text(stage: StageFigure) -> str:
    known = [f for f in stage.fractions if f is not None]
    return f" at train_fraction {max(known):g}" if known else ""


def score_figure(stage: StageFigure) -> Figure:
    """The stage's score per configuration as horizontal bars with the full labels, the winner outlined and starred; a
    configuration with repeats shows their mean with an error bar of one standard deviation, and n."""
    configs = stage.configs
    labels = [c.legend_label for c in configs]
    scores = [c.score for c in configs if c.score is not None]
    unit = _is_unit(stage.metric, scores)
    with _rc():
        fig = new_figure(6.5 + _width_for(labels), max(2.8, 1.3 + 0.3 * len(configs)))
        ax = fig.subplots()
        for i, c in enumerate(configs):
            if c.score is None:
                ax.text(0, i, "  no score (" + ", ".join(sorted(set(c.states))) + ")", va="center", fontsize=8,
                        color="#666666")
                continue
            bars = ax.barh(i, c.score, height=0.7, color=c.style.colour,
                           edgecolor=WINNER_EDGE if c.winner else c.style.colour, linewidth=2.0 if c.winner else 0.0,
                           xerr=c.sd if c.sd is not None else None, capsize=3, error_kw={"elinewidth": 1.0})
            bars.patches[0].set_gid(f"{c.gid}-score")
            text = f"{c.score:.4f}" + (f" ± {c.sd:.4f} (n={c.n})" if c.sd is not None else "")
            ax.text(c.score + (c.sd or 0.0), i, "  " + text + ("  ★ winner" if c.winner else ""), va="center",
                    fontsize=8, fontweight="bold" if c.winner else "normal")
        ax.set_yticks(range(len(configs)), labels=labels)
        for tick, c in zip(ax.get_yticklabels(), configs):
            if c.winner:
                tick.set_fontweight("bold")
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        top = max([(c.score or 0.0) + (c.sd or 0.0) for c in configs] + [0.0])
        ax.set_xlim(0, 1.3 if unit else max(top * 1.35, 1e-6))
        mean = " (mean over train fractions)" if len(stage.fractions) > 1 else ""
        ax.set_xlabel(stage.metric + mean)
        fig.suptitle(f"{stage.title}: {stage.metric} per configuration" + ("" if stage.done else " (so far)"))
    return fig


def _tile(pv: dict[str, Any], samples: int, what: str):
    """The first ``samples`` validation images stacked: the input (grey), the truth (white on black), or the
    prediction as an overlay on the input (hits, false positives, misses in their colours). A multi-class preview:
    the truth with each class in its colour, the prediction as its errors (the right pixels in their class's colour
    dimmed, the wrong ones white: ``render.errors_rgb``)."""
    import numpy as np

    from .preview import class_rgb, errors_rgb, preview_classes, preview_masks
    from .render import overlay_rgb

    classes = preview_classes(pv)
    tiles = []
    for i in range(min(samples, len(pv["truth"]))):
        image = pv["images"][i]
        truth, pred = preview_masks(pv, i)
        if what == "input":
            blank = np.zeros(truth.shape, bool)
            a = overlay_rgb(image, blank, blank)
        elif classes is not None:
            a = class_rgb(truth, len(classes)) if what == "truth" else errors_rgb(truth, pred, len(classes))
        elif what == "truth":
            a = np.repeat(truth[..., None].astype(np.float64) * 255.0, 3, axis=2)
        else:
            a = overlay_rgb(image, truth, pred)
        tiles.append(a / 255.0)
        tiles.append(np.ones((max(1, a.shape[0] // 16), a.shape[1], 3)))
    return np.concatenate(tiles[:-1], axis=0)


def predictions_figure(stage: StageFigure) -> Figure | None:
    """The same validation images predicted by every configuration (at its best epoch, its largest train fraction),
    with the input and the truth first; a tile per configuration framed in its colour, the grid laid out as the stage's
    (rows: the first varied key, columns: the others). None when no configuration has a preview."""
    from matplotlib.patches import Patch

    from .preview import ERROR_COLOUR, class_colours, preview_classes, read_preview
    from .render import FN_COLOUR, FP_COLOUR, TP_COLOUR

    shown: list[tuple[ConfigFigure, dict[str, Any]]] = []
    for c in stage.configs:
        pv, _ = read_preview(c.preview) if c.preview is not None else (None, None)
        if pv is not None:
            shown.append((c, pv))
    if not shown:
        return None
    first = stage.varied[0] if len(stage.varied) > 1 else None
    rows_of = list(dict.fromkeys(c.values.get(first) for c, _ in shown)) if first else [None]
    per_row = [[(c, pv) for c, pv in shown if first is None or c.values.get(first) == v] for v in rows_of]
    if first is None and len(shown) > 6:  # one key: wrap into rows of up to 6
        per_row = [shown[i:i + 6] for i in range(0, len(shown), 6)]
    refs = 2 if len(per_row) == 1 else 1  # input and truth: side by side before a single row, else stacked
    ncols = refs + max(len(r) for r in per_row)
    with _rc():
        fig = new_figure(1.75 * ncols + 0.3, 2.35 * len(per_row) + 0.9)
        grid = fig.subplots(len(per_row), ncols, squeeze=False)
        ref = shown[0][1]
        for r, row in enumerate(per_row):
            for col in range(ncols):
                ax = grid[r][col]
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
                if col < refs:
                    for spine in ax.spines.values():
                        spine.set_visible(False)
                    what = ("input", "truth")[col + r] if col + r < 2 else None
                    if what is None:
                        ax.set_axis_off()
                    else:
                        ax.imshow(_tile(ref, SAMPLES, what), interpolation="nearest")
                        ax.set_title(what, fontsize=8)
                    continue
                if col - refs >= len(row):
                    ax.set_axis_off()
                    continue
                c, pv = row[col - refs]
                ax.imshow(_tile(pv, SAMPLES, "prediction"), interpolation="nearest")
                for spine in ax.spines.values():
                    spine.set_visible(True)
                    spine.set_edgecolor(c.style.colour)
                    spine.set_linewidth(4.0 if c.winner else 2.5)
                score = "-" if c.score is None else f"{c.score:.3f}"
                title = c.label.replace(", ", ",\n") + f"\n{score}" + ("  ★ winner" if c.winner else "")
                ax.set_title(title, fontsize=7, fontweight="bold" if c.winner else "normal")
        classes = preview_classes(ref)
        if classes is None:
            colours = [("hit", TP_COLOUR), ("false positive", FP_COLOUR), ("missed", FN_COLOUR)]
            fig.legend([Patch(color=[v / 255 for v in rgb]) for _, rgb in colours], [w for w, _ in colours],
                       loc="outside lower center", ncols=3, frameon=False)
        else:  # the classes (background black), and the errors in white (edged, on the white page): right pixels dim
            colours = [*zip(classes, class_colours(len(classes))),
                       ("prediction ≠ truth (right pixels dimmed)", ERROR_COLOUR)]
            fig.legend([Patch(facecolor=[v / 255 for v in rgb], edgecolor="#444444", linewidth=0.6)
                        for _, rgb in colours], [w for w, _ in colours],
                       loc="outside lower center", ncols=min(len(colours), 4), frameon=False)
        fig.suptitle(f"{stage.title}: the same validation images predicted by each configuration "
                     f"(best epoch{_representative_text(stage)})", fontsize=9)
    return fig


def overview_figure(stages: list[StageFigure], study: str) -> Figure:
    """The study at a glance, a panel per stage: the metric of every setting as bars grouped by the stage's first
    varied key, a bar per combination of the others (and per train fraction) — the course study's Figure 10
    ("LR schedulers at different learning rates": val Dice per optimizer, a bar per scheduler). Bars keep their
    configuration's colour, hatches tell the combinations apart, the winner is outlined, error bars are the repeats'
    standard deviation."""
    from matplotlib.patches import Patch

    with _rc():
        panels = [st for st in stages if any(m is not None for c in st.configs for _, m, _, _ in c.points)]
        width = 10.0 + max([_width_for([_inner_label(st, c, f) for c in st.configs for f, *_ in c.points])
                            for st in panels] + [0.0])
        fig = new_figure(width, 0.6 + 3.0 * max(1, len(panels)))
        axes = fig.subplots(max(1, len(panels)), 1, squeeze=False)[:, 0]
        for ax, st in zip(axes, panels):
            bars = [(c, f, m, sd, n) for c in st.configs for f, m, sd, n in c.points]
            outer_key = st.dims[0] if st.dims else None
            groups = list(dict.fromkeys(_value(c, f, outer_key) for c, f, *_ in bars))
            inner = list(dict.fromkeys(_inner_label(st, c, f) for c, f, *_ in bars))
            w = 0.8 / max(1, len(inner))
            hatch_of = {lab: HATCHES[i % len(HATCHES)] for i, lab in enumerate(inner)}
            values = []
            for c, f, m, sd, n in bars:
                if m is None:
                    continue
                x = groups.index(_value(c, f, outer_key)) + (inner.index(_inner_label(st, c, f)) - (len(inner) - 1) / 2) * w
                hatch = hatch_of[_inner_label(st, c, f)] if len(inner) > 1 else ""
                b = ax.bar(x, m, width=w * 0.92, color=c.style.colour, hatch=hatch,
                           edgecolor=WINNER_EDGE if c.winner else "#ffffff", linewidth=1.8 if c.winner else 0.0,
                           yerr=sd, capsize=2, error_kw={"elinewidth": 0.9})
                b.patches[0].set_gid(f"{c.gid}-overview" + (f"-f{f:g}" if f is not None and len(st.fractions) > 1 else ""))
                values.append(m + (sd or 0.0))
                if n > 1:
                    ax.text(x, m + (sd or 0.0), f"n={n}", ha="center", va="bottom", fontsize=6)
            ax.set_xticks(range(len(groups)), labels=[f"{outer_key}={_fmt(v)}" if outer_key else "base" for v in groups],
                          rotation=0 if len(groups) <= 6 else 30, ha="center" if len(groups) <= 6 else "right")
            ax.grid(axis="x", visible=False)
            if _is_unit(st.metric, values):
                ax.set_ylim(0, 1.05)
            ax.set_ylabel(st.metric)
            winner = next((c.label for c in st.configs if c.winner), None)
            ax.set_title(f"{st.title}" + (f" — winner {winner} (outlined)" if winner else ""), loc="left")
            if len(inner) > 1:
                ax.legend([Patch(facecolor="#d9d9d9", edgecolor="#555555", hatch=hatch_of[lab]) for lab in inner], inner,
                          loc="upper left", bbox_to_anchor=(1.005, 1.0), frameon=False,
                          title=", ".join(st.dims[1:]))
        fig.suptitle(f"Study {study}: {stages[0].metric if stages else ''} per setting, stage by stage"
                     + (" (error bars: sd of the repeats)" if any(c.sd is not None or any(p[2] is not None for p in c.points)
                                                               for st in panels for c in st.configs) else ""))
    return fig


def _value(c: ConfigFigure, fraction: float | None, key: str | None) -> Any:
    if key is None:
        return None
    return fraction if key == "train_fraction" else c.values.get(key)


def _inner_label(st: StageFigure, c: ConfigFigure, fraction: float | None) -> str:
    return ", ".join(f"{k}={_fmt(_value(c, fraction, k))}" for k in st.dims[1:])
