"""Benchmark: what per-class metrics cost per epoch, at the default model size.

    python scripts/bench_class_metrics.py [--repeat 3] [--classes 3]

Trains one epoch of a K-class run on synthetic:heart at the defaults (UNet base 16, depth 4, 64 px, batch 8, 128
training images) with the trainer's per-class confusion counts, then times the counting alone (Task.counts on the
same epoch's logits and masks, as train_epoch calls it, plus the validation set's), and prints the share of the
epoch it takes, against the binary task's counting on the same tensors (the reference). Each repetition is a fresh
epoch; the figures are min–max over the repetitions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unettui.core.define.config import Config
from unettui.core.learn.task import task_of
from unettui.core.learn.train import Trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--classes", type=int, default=3)
    args = ap.parse_args()
    cfg = Config(dataset="synthetic:heart", num_classes=args.classes, device="cpu", preview_count=0, epochs=1)
    if args.classes != 3:
        cfg = cfg.replace(dataset="synthetic:nuclei")  # (counting cost does not depend on the data)
    trainer = Trainer(cfg)
    binary = task_of(Config())
    shares, binary_shares, epochs = [], [], []
    for _ in range(args.repeat):
        seen: list[tuple[torch.Tensor, torch.Tensor]] = []
        step = trainer.step

        def keep(idx, step=step, seen=seen):
            out = step(idx)
            seen.append((out.logits, out.masks))
            return out

        trainer.step = keep  # (the epoch as it runs; the logits it counted are kept to count them again)
        t0 = time.perf_counter()
        trainer.train_epoch()
        trainer.evaluate()
        epoch = time.perf_counter() - t0
        trainer.step = step
        with torch.no_grad():
            val = [(trainer.model(trainer.val_x[i:i + 8]), trainer.val_y[i:i + 8])
                   for i in range(0, trainer.n_val, 8)]
        batches = seen + val
        t0 = time.perf_counter()
        for logits, masks in batches:
            trainer.task.counts(logits, masks)
        counting = time.perf_counter() - t0
        t0 = time.perf_counter()
        for logits, masks in batches:  # the binary task's counting of the same number of pixels
            binary.counts(logits[:, :1], (masks > 0).float())
        binary_counting = time.perf_counter() - t0
        epochs.append(epoch)
        shares.append(counting / epoch)
        binary_shares.append(binary_counting / epoch)
        print(f"epoch {epoch:.2f} s; per-class counting {counting * 1000:.1f} ms ({100 * counting / epoch:.2f} % of "
              f"the epoch); binary counting {binary_counting * 1000:.1f} ms ({100 * binary_counting / epoch:.2f} %)",
              flush=True)
    print(f"{args.repeat} epochs of {args.classes} classes at the defaults: epoch {min(epochs):.2f}–{max(epochs):.2f} s; "
          f"per-class metrics {100 * min(shares):.2f}–{100 * max(shares):.2f} % of an epoch (median "
          f"{100 * statistics.median(shares):.2f} %); binary counting {100 * min(binary_shares):.2f}–"
          f"{100 * max(binary_shares):.2f} %; ratio per-class / binary "
          f"{statistics.median(shares) / statistics.median(binary_shares):.1f}")


if __name__ == "__main__":
    main()
