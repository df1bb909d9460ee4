"""Diagnose the CUDA behaviour of three trainer tests (device check, not part of the suite)."""
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "unit"))
from test_train import TINY as _TINY
from test_train import easy_folder

from unettui.core.define.config import Config
from unettui.core.learn.train import Trainer
from unettui.core.runs.store import RunStore

TINY = {k: v for k, v in _TINY.items() if k != "device"}


def fit(cfg, root, name):
    run = RunStore(root).run(name)
    run.path.mkdir(parents=True, exist_ok=True)
    r = Trainer(cfg, root).fit(run)
    return run, r

DEV = sys.argv[1] if len(sys.argv) > 1 else "cuda"
for amp in (("off", "bf16", "fp16") if DEV == "cuda" else ("off",)):
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        folder = easy_folder(d / "disks")
        cfg = Config(dataset=str(folder), epochs=12, lr=3e-3, train_fraction=0.75, device=DEV, amp=amp,
                     **{k: v for k, v in TINY.items() if k != "num_images"})
        run, r = fit(cfg, d, "easy")
        print("easy", amp, [round(m["val_dice"], 3) for m in run.metrics()], r.summary["best_val_dice"])
with tempfile.TemporaryDirectory() as d:
    d = Path(d)
    run, _ = fit(Config(epochs=2, device=DEV, **TINY), d, "x")
    run, _ = fit(Config(epochs=3, lr=3e-3, device=DEV, **TINY), d, "x")
    again = run.metrics()
    run, r = fit(Config(epochs=3, lr=3e-3, device=DEV, **TINY), d, "x")
    now = run.metrics()
    print("resume-same", now == again, len(again), len(now))
    for a, b in zip(again, now):
        diff = {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}
        if diff:
            print("  diff", diff)
with tempfile.TemporaryDirectory() as d:
    d = Path(d)
    run, r = fit(Config(epochs=30, early_stop_patience=2, lr=1e-12, device=DEV, **TINY), d, "es")
    print("early", {k: r.summary.get(k) for k in ("stopped_early", "epochs_done", "best_epoch")},
          [m["val_dice"] for m in run.metrics()])
