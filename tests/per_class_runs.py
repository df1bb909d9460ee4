"""Run folders of multi-class runs written by hand, in the format the trainers write (core/define/task.py): per-class
keys in metrics.jsonl and summary.json, nulls for classes without a score and the reasons in summary["no_score"].
Shared by tests/cli/test_per_class.py and tests/tui/test_per_class.py."""

from __future__ import annotations

from pathlib import Path

from unettui.core.define.config import Config
from unettui.core.define.task import SUMMARY_PER_CLASS, class_key
from unettui.core.runs.store import RunStore, append_jsonl, atomic_write_json

CLASSES = ("cavity", "myocardium")  # synthetic:heart's foreground classes
NO_VAL = "class 'myocardium' is in no validation image and was never predicted"
NO_TEST = "class 'myocardium' is in no test image and was never predicted"

QUEUE = """[defaults]
dataset = "synthetic:heart"
num_classes = 3
num_images = 16
image_size = 32
base_channels = 4
depth = 2
epochs = 3
batch_size = 4

[[sweep]]
id = "heart"
optimizer = ["adam", "sgd"]
repeats = 2

[[experiment]]
id = "bin"
dataset = "synthetic:nuclei"
num_classes = 2
"""

# each class's val Dice per epoch (None: no score that epoch), and its test Dice; heart-adam-r2's myocardium has no
# score anywhere (it is in none of its validation or test images and was never predicted)
PER_CLASS: dict[str, tuple[dict[str, list[float | None]], dict[str, float | None]]] = {
    "heart-adam": ({"cavity": [0.5, 0.8, 0.9], "myocardium": [0.1, 0.3, 0.5]}, {"cavity": 0.85, "myocardium": 0.45}),
    "heart-adam-r2": ({"cavity": [0.4, 0.7, 0.8], "myocardium": [None, None, None]},
                      {"cavity": 0.75, "myocardium": None}),
    "heart-sgd": ({"cavity": [0.2, 0.3, 0.4], "myocardium": [0.0, 0.05, 0.1]}, {"cavity": 0.35, "myocardium": 0.05}),
    "heart-sgd-r2": ({"cavity": [0.25, 0.35, 0.45], "myocardium": [0.0, 0.1, 0.2]},
                     {"cavity": 0.4, "myocardium": 0.15}),
}


def iou(d: float | None) -> float | None:
    return None if d is None else round(d / (2 - d), 6)


def mean(values) -> float | None:
    scored = [v for v in values if v is not None]
    return sum(scored) / len(scored) if scored else None


def epoch_rows(dice: dict[str, list[float | None]]) -> list[dict]:
    """metrics.jsonl records: val_dice the mean over the classes with a score, val_dice_<c>, val_iou_<c>,
    val_dice_min (null when no class has a score)."""
    rows = []
    for e in range(len(next(iter(dice.values())))):
        per = {c: v[e] for c, v in dice.items()}
        m = mean(per.values())
        rec = {"epoch": e + 1, "train_loss": round(1.0 - 0.1 * e, 4), "train_dice": round(0.3 + 0.1 * e, 4),
               "val_loss": round(1.2 - (m or 0.0), 6), "val_dice": m, "val_iou": mean(iou(v) for v in per.values()),
               "lr": 0.001, "seconds": 2.0}
        for c, v in per.items():
            rec[class_key("val_dice", c)] = v
            rec[class_key("val_iou", c)] = iou(v)
        scored = [v for v in per.values() if v is not None]
        rec["val_dice_min"] = min(scored) if scored else None
        rows.append(rec)
    return rows


def summary_of(rows: list[dict], test: dict[str, float | None]) -> dict:
    """summary.json as a multi-class run writes it: the binary keys (means over the classes with a score),
    best_val_iou, and per class and the worst class: best_, final_ and test_ Dice and IoU; nulls with their reasons."""
    best = max((r for r in rows if r["val_dice"] is not None), key=lambda r: (r["val_dice"], -r["epoch"]))
    last = rows[-1]
    test_iou = {c: iou(v) for c, v in test.items()}
    out = {"best_val_dice": best["val_dice"], "best_val_iou": best["val_iou"], "best_epoch": best["epoch"],
           "best_val_loss": best["val_loss"], "final_train_loss": last["train_loss"],
           "final_train_dice": last["train_dice"], "final_val_loss": last["val_loss"],
           "final_val_dice": last["val_dice"], "final_val_iou": last["val_iou"], "epochs_done": len(rows),
           "epochs": len(rows), "seconds": 2.0 * len(rows), "val_on_train": False,
           "test_dice": mean(test.values()), "test_iou": mean(test_iou.values()), "n_test": 4,
           "classes": {"names": ["background", *CLASSES], "values": [0, 1, 2]}}
    no_score = {}
    for key in SUMMARY_PER_CLASS:
        at, metric = key.rsplit("_", 1)[0], key.rsplit("_", 1)[1]
        for c in CLASSES:
            if at == "test":
                value = test[c] if metric == "dice" else test_iou[c]
            else:
                value = (best if at == "best_val" else last)[class_key(f"val_{metric}", c)]
            out[class_key(key, c)] = value
            if value is None:
                no_score[class_key(key, c)] = NO_TEST if at == "test" else NO_VAL
        scored = [out[class_key(key, c)] for c in CLASSES if out[class_key(key, c)] is not None]
        out[f"{key}_min"] = min(scored) if scored else None
    out["no_score"] = no_score
    return out


def write_run(project: Path, run_id: str, cfg: Config, rows: list[dict], summary: dict | None,
              state: str = "done") -> None:
    run = RunStore(project).run(run_id)
    run.path.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run.file("config.json"), {"id": run_id, **cfg.to_dict(), "resolved_device": "cpu"})
    for r in rows:
        append_jsonl(run.file("metrics.jsonl"), r)
    if summary is not None:
        atomic_write_json(run.file("summary.json"), summary)
    run.write_status(state=state, host="lab", pid=1, heartbeat=1_800_000_000.0, started=1_800_000_000.0,
                     ended=None if state == "running" else 1_800_000_010.0, attempt=1, epoch=len(rows),
                     epochs=cfg.epochs)
    run.log("written by the tests")


def binary_rows() -> list[dict]:
    return [{"epoch": e, "train_loss": 1.0 - 0.1 * e, "train_dice": 0.3 + 0.1 * e, "val_loss": 1.0 - 0.1 * e,
             "val_dice": 0.5 + 0.1 * e, "val_iou": round((0.5 + 0.1 * e) / (1.5 - 0.1 * e), 6), "lr": 0.001,
             "seconds": 2.0} for e in (1, 2, 3)]


def binary_summary(rows: list[dict]) -> dict:
    last = rows[-1]
    return {"best_val_dice": last["val_dice"], "best_val_iou": last["val_iou"], "best_epoch": 3,
            "best_val_loss": last["val_loss"], "final_train_loss": last["train_loss"],
            "final_train_dice": last["train_dice"], "final_val_loss": last["val_loss"],
            "final_val_dice": last["val_dice"], "final_val_iou": last["val_iou"], "epochs_done": 3, "epochs": 3,
            "seconds": 6.0, "val_on_train": False}


def heart_project(root: Path) -> Path:
    """Four finished 3-class runs (two configurations with two repeats each) and a finished binary run."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "experiments.toml").write_text(QUEUE)
    base = dict(dataset="synthetic:heart", num_classes=3, num_images=16, image_size=32, base_channels=4, depth=2,
                epochs=3, batch_size=4)
    for run_id, (dice, test) in PER_CLASS.items():
        cfg = Config(**base, optimizer=run_id.split("-")[1], seed=1000 if run_id.endswith("-r2") else 0, repeats=2)
        rows = epoch_rows(dice)
        write_run(root, run_id, cfg, rows, summary_of(rows, test))
    rows = binary_rows()
    write_run(root, "bin", Config(**{**base, "dataset": "synthetic:nuclei", "num_classes": 2}), rows,
              binary_summary(rows))
    return root
