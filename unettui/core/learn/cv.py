"""A cross-validated configuration's own results (issue 26), once every fold of a repeat is done: written to
``runs/.configurations/<configuration>.json``, outside the run folders (every folder in runs/ that looks like a run is
one), by the runner after the last fold of a repeat ends (``unettui cv ID`` writes it again by hand).

Per repeat (the k folds that share its seed):

- ``oof``: the pooled out-of-fold score: every non-test image predicted once, by the fold that did not train on it,
  at that fold's best epoch; the (tp, fp, fn) of the folds' validation images summed per class, Dice from the sums;
- ``folds``: each fold's best val Dice, and their mean, sd and n (the mean over folds);
- ``images``: each non-test image's out-of-fold Dice (from each fold's images.json), so two configurations can be
  compared image by image;
- ``test`` (with a test split): the ensemble of the k folds (the mean of their probabilities, as ``unettui predict``
  uses it) scored on the held-out test images, beside the mean of the single folds' test Dice.

The file names the runs it was computed from with their best epochs (``runs``): a fold trained again makes it stale
(``stale``), and the runner writes it again when that fold ends.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..runs.store import CONFIGURATIONS, IMAGES, SPLIT, RunStore, atomic_write_json, read_json
from ..show.study_text import num as _num
from ..stats import mean_sd, mean_sd_text, pooled_dice, summed_counts

__all__ = ["cross_validate", "cv_line", "stale"]


def _stale_runs(repeat: dict[str, Any], store: RunStore) -> list[str]:
    return [rid for rid, epoch in (repeat.get("runs") or {}).items()
            if (store.run(rid).summary() or {}).get("best_epoch") != epoch]


def stale(data: dict[str, Any], store: RunStore) -> list[str]:
    """The runs ``data`` (a configuration file) was computed from whose best epoch has changed since."""
    return [rid for repeat in data.get("repeats") or [] for rid in _stale_runs(repeat, store)]


def _repeat(project: Path, store: RunStore, configuration: str, repeat: int, fold_ids: list[str], device: str
            ) -> dict[str, Any]:
    from .predict import ensemble, load_model, run_split, score

    summaries = [store.run(rid).summary() or {} for rid in fold_ids]
    sums = summed_counts([s.get("best_val_counts") or [] for s in summaries])
    images = []
    for fold, rid in enumerate(fold_ids, 1):
        for im in (read_json(store.run(rid).file(IMAGES)) or {}).get("val") or []:
            images.append({"name": im.get("name"), "fold": fold, "run": rid, "dice": im.get("dice")})
    out: dict[str, Any] = {
        "repeat": repeat, "runs": {rid: s.get("best_epoch") for rid, s in zip(fold_ids, summaries)},
        "oof": {"dice": pooled_dice(sums), "counts": sums,
                "images": sum(len((read_json(store.run(rid).file(SPLIT)) or {}).get("val") or ()) for rid in fold_ids)},
        "folds": dict(zip(("mean", "sd", "n"), mean_sd([s.get("best_val_dice") for s in summaries])),
                      values=[s.get("best_val_dice") for s in summaries]),
        "images": sorted(images, key=lambda r: str(r["name"])),
    }
    n_test = int(summaries[0].get("n_test") or 0)
    if n_test:
        models = [load_model(store.run(rid), device=device) for rid in fold_ids]
        ens = ensemble(models, configuration)
        test_images, test_masks = run_split(models[0], project, "test")
        scored = score(ens, test_images, test_masks)
        single = mean_sd([s.get("test_dice") for s in summaries])
        out["test"] = {"ensemble_dice": scored.dice, "ensemble_iou": scored.iou, "n_test": scored.images,
                       "ensemble_counts": [scored.tp, scored.fp, scored.fn],
                       "mean_fold_dice": dict(zip(("mean", "sd", "n"), single)),
                       "fold_dice": [s.get("test_dice") for s in summaries]}
    return out


def cross_validate(project: Path, configuration: str, folds: dict[int, list[str]], device: str = "cpu",
                   again: bool = False) -> dict[str, Any] | None:
    """Compute and write ``configuration``'s file from ``folds`` ({repeat: its fold runs' ids, fold 1 first}) for
    every repeat whose folds are all done; None (and nothing written) while none is. Done runs only: a fold that
    failed leaves its repeat out. A repeat the file already holds for the same runs and best epochs is kept as it is
    (its ensemble is not scored again) unless ``again``."""
    store = RunStore(project)
    done = {r: ids for r, ids in sorted(folds.items())
            if ids and all((store.run(i).status() or {}).get("state") == "done" for i in ids)}
    if not done:
        return None
    kept = {} if again else {rep.get("repeat"): rep for rep in (store.configuration(configuration) or {}).get(
        "repeats") or [] if not _stale_runs(rep, store)}
    data = {"configuration": configuration, "folds": len(next(iter(done.values()))), "written": time.time(),
            "repeats": [kept[r] if r in kept and list(kept[r]["runs"]) == ids else
                        _repeat(project, store, configuration, r, ids, device) for r, ids in done.items()]}
    path = store.configuration_file(configuration)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, data)
    return data


def cv_line(data: dict[str, Any], repeat: int = 1) -> str:
    """One line of a configuration's results for ``repeat``: pooled out-of-fold Dice, the mean over folds, and with a
    test split the ensemble's test Dice beside the single folds' mean."""
    rep = next((r for r in data.get("repeats") or [] if r.get("repeat") == repeat), None)
    if rep is None:
        return f"cross-validation of {data.get('configuration')}: repeat {repeat} not done"
    f = rep["folds"]
    line = (f"cross-validation of {data.get('configuration')} (repeat {repeat}, {data.get('folds')} folds): pooled "
            f"out-of-fold Dice {_num(rep['oof']['dice'])} ({rep['oof']['images']} images), mean over folds "
            f"{mean_sd_text(f['mean'], f['sd'], f['n'])}")
    test = rep.get("test")
    if test:
        m = test["mean_fold_dice"]
        line += (f"; held-out test Dice ({test['n_test']} images): ensemble of the folds {_num(test['ensemble_dice'])}"
                 f", single folds {mean_sd_text(m['mean'], m['sd'], m['n'])}")
    return line + f" (runs/{CONFIGURATIONS}/{data.get('configuration')}.json)"
