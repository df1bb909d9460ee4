"""PNG figures of a staged study, per stage: loss curves, a bar chart of the score per configuration, and a grid
of validation predictions (the runs' preview strips at their best epoch). Used by `unettui report`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..runs.store import RunStore
from .figures import bar_chart, image_grid, line_chart
from .fmt import value as fmt_value

__all__ = ["write_study_figures"]

MAX_CURVES_WITH_TRAIN = 8  # above this many configurations a stage's chart shows val loss only


def _label(values: dict[str, Any]) -> str:
    """``lr=0.01`` for one varied key; only the values (``adam, plateau``) for several: the keys are in the title."""
    if len(values) == 1:
        return ", ".join(f"{k}={fmt_value(v)}" for k, v in values.items())
    return ", ".join(fmt_value(v) for v in values.values()) or "base"


def _keys(st) -> str:
    return f" ({', '.join(st.varied)})" if len(st.varied) > 1 else ""


def _representative(cs) -> Any:
    """The run a configuration is pictured by: the one at the largest train fraction (the only one without)."""
    return max(cs.runs, key=lambda r: -1.0 if r.fraction is None else r.fraction)


def _prediction_tile(npz: Path, samples: int = 2, scale: int = 2):
    """input | truth | prediction for the first ``samples`` validation images of a run's preview arrays."""
    import numpy as np

    from .preview import read_preview

    pv, _ = read_preview(npz)
    if pv is None:
        return None
    images, truth, prob = pv["images"][:samples], pv["truth"][:samples], pv["prob"][:samples]
    rows = []
    for im, t, p in zip(images, truth, prob):
        im = np.repeat(im[..., None], 3, axis=2) if im.ndim == 2 else im[..., :3]
        t3 = np.repeat((t > 0).astype(np.uint8)[..., None] * 255, 3, axis=2)
        p3 = np.repeat((p > 127).astype(np.uint8)[..., None] * 255, 3, axis=2)
        gap = np.full((im.shape[0], 2, 3), 128, np.uint8)
        rows.append(np.concatenate([im, gap, t3, gap, p3], axis=1))
        rows.append(np.full((2, rows[-1].shape[1], 3), 128, np.uint8))
    if not rows:
        return None
    return np.concatenate(rows[:-1], axis=0).repeat(scale, axis=0).repeat(scale, axis=1)


def write_study_figures(status, store: RunStore, folder: Path) -> dict[str, list[Path]]:
    """Write each started stage's figures into ``folder``; returns {stage name: [paths]} (stages with no finished
    run are left out)."""
    folder = Path(folder)
    out: dict[str, list[Path]] = {}
    metric = status.study.metric
    for n, st in enumerate(status.stages, 1):
        if st.state == "waiting" or not st.configs:
            continue
        stem = f"stage{n}-{st.name}"
        paths: list[Path] = []
        finished = [c for c in st.configs if any(r.state in ("done", "failed") for r in c.runs)]
        if not finished:
            continue
        # loss curves of each configuration's pictured run
        series = []
        with_train = len(finished) <= MAX_CURVES_WITH_TRAIN
        for c in finished:
            hist = store.run(_representative(c).id).metrics()
            xs = [h.get("epoch") for h in hist]
            tag = _label(c.values)
            if c.pruned_at:
                tag += f" (pruned @{c.pruned_at})"
            series.append((tag + (" val" if with_train else ""), xs, [h.get("val_loss") for h in hist]))
            if with_train:
                series.append((tag + " train", xs, [h.get("train_loss") for h in hist]))
        fr = _representative(finished[0]).fraction
        at = f" at train_fraction {fmt_value(fr)}" if fr is not None else ""
        ys = [y for _, _, vals in series for y in vals if isinstance(y, (int, float)) and math.isfinite(y)]
        log_y = bool(ys) and min(ys) > 0 and max(ys) / min(ys) > 30  # one diverging epoch must not flatten the rest
        paths.append(line_chart(series, f"Stage {n}: {st.name}{_keys(st)} - {'train and ' if with_train else ''}val loss{at}"
                                + (" (log scale)" if log_y else ""), "epoch", "loss", folder / f"{stem}-loss.png",
                                log_y=log_y))
        # the score of every configuration, the winner highlighted
        labels = [_label(c.values) + (f" (pruned @{c.pruned_at})" if c.pruned_at else "") for c in st.configs]
        scores = [c.score for c in st.configs]
        win = next((i for i, c in enumerate(st.configs) if st.winner == c.values), None) if st.state == "done" else None
        mean = " (mean over train fractions)" if any(len(c.runs) > 1 for c in st.configs) else ""
        paths.append(bar_chart(labels, scores, f"Stage {n}: {st.name}{_keys(st)} - {metric}{mean}", metric,
                               folder / f"{stem}-scores.png", highlight=win))
        # validation predictions at each configuration's best epoch
        tiles = []
        for c in finished:
            tile = _prediction_tile(store.run(_representative(c).id).file("preview_best.npz"))
            if tile is not None:
                score = "-" if c.score is None else f"{c.score:.3f}"
                tiles.append((f"{_label(c.values)}: {score}" + (" (winner)" if win is not None and st.configs[win] is c else ""),
                              tile))
        if tiles:
            paths.append(image_grid(tiles, f"Stage {n}: {st.name}{_keys(st)} - the same validation images at each configuration's "
                                           "best epoch (input | truth | prediction)", folder / f"{stem}-predictions.png",
                                    columns=min(4, len(tiles)) if len(tiles) > 3 else None))
        out[st.name] = paths
    return out
