"""Benchmark: what the end-of-run boundary metrics (HD95 and NSD per class on the best weights) cost.

    python scripts/bench_end_metrics.py [--repeat 3]

Two cases, each timed ``--repeat`` times after one warm-up: the default job's data and model (synthetic:ventricle,
160 images at 64 px, UNet base 16 depth 4: 32 validation images), against one training epoch of that run; and one
1024 x 1024 image of 3 classes (synthetic:heart) through the default model. Each time is the whole end_of_run: the
best weights loaded, the forward passes, the distance transforms, the summary keys. Prints min–max.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unettui.core.define.config import Config
from unettui.core.learn.train import Trainer
from unettui.core.runs.store import RunStore


def timed(trainer: Trainer, run, repeat: int) -> list[float]:
    trainer.end_of_run(run)  # warm-up
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        trainer.end_of_run(run)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp))
        cases = [("default job (32 val images, 64 px, binary)", Config(device="cpu", epochs=1, preview_count=0)),
                 ("one 1024 x 1024 image, 3 classes", Config(device="cpu", epochs=1, preview_count=0,
                                                             dataset="synthetic:heart", num_classes=3, num_images=5,
                                                             image_size=1024, train_fraction=0.8, batch_size=4))]
        for i, (what, cfg) in enumerate(cases):
            run = store.run(f"r{i}")
            run.path.mkdir(parents=True)
            trainer = Trainer(cfg)
            t0 = time.perf_counter()
            trainer.fit(run, run_id=run.id)
            epoch = time.perf_counter() - t0
            times = timed(trainer, run, args.repeat)
            out = trainer.best["end"]
            print(f"{what}: end-of-run metrics {min(times):.3f}–{max(times):.3f} s over {args.repeat} runs "
                  f"({trainer.n_val} validation image(s), {trainer.n_test} test); one training epoch (with its "
                  f"end-of-run) {epoch:.2f} s; val HD95 {out.get('val_hd95')}, NSD {out.get('val_nsd')}", flush=True)


if __name__ == "__main__":
    main()
