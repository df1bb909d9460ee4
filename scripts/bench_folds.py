"""Wall time of the k folds of one configuration trained as one pack, against one fold alone and the k folds one after
the other (issue 26's CPU proxy): whole fits (data, training, validation every epoch, end-of-run metrics), no files.

    python scripts/bench_folds.py --folds 3 --rounds 3        # base 4, 32 x 32, the issue's proxy

Prints one line per round and, last, ``ratio = packed k folds / one fold = ...`` (lowest-highest over the rounds).
"""

from __future__ import annotations

import argparse
import time

import torch

from unettui.core.define.config import Config
from unettui.core.learn.pack_train import PackTrainer
from unettui.core.learn.train import Trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--images", type=int, default=120)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--base-channels", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    base = dict(dataset="synthetic:nuclei", num_images=args.images, image_size=args.image_size,
                base_channels=args.base_channels, depth=4, batch_size=8, epochs=args.epochs, test_fraction=0.2,
                folds=args.folds, preview_count=0, device=args.device, augment_hflip=0.5, dropout=0.1)
    cfgs = [Config(**base, fold=i) for i in range(1, args.folds + 1)]
    print(f"bench folds: {args.folds} folds of {args.images} images ({args.image_size}x{args.image_size}), UNet base "
          f"{args.base_channels} depth 4, batch 8, {args.epochs} epochs, device {args.device}, torch "
          f"{torch.__version__}, threads {torch.get_num_threads()}")

    def one() -> None:
        Trainer(cfgs[0]).fit()

    def sequential() -> None:
        for c in cfgs:
            Trainer(c).fit()

    def packed() -> None:
        PackTrainer.from_configs(cfgs).fit()

    ratios, seq_ratios = [], []
    one()  # warm-up
    for r in range(1, args.rounds + 1):
        times = {}
        for name, fn in (("one fold", one), ("sequential", sequential), ("packed", packed)):
            t0 = time.perf_counter()
            fn()
            times[name] = time.perf_counter() - t0
        ratios.append(times["packed"] / times["one fold"])
        seq_ratios.append(times["packed"] / times["sequential"])
        print(f"round {r}: one fold {times['one fold']:.1f} s, {args.folds} folds one after the other "
              f"{times['sequential']:.1f} s, {args.folds} folds packed {times['packed']:.1f} s")
    print(f"ratio = packed {args.folds} folds / one fold = {min(ratios):.2f}-{max(ratios):.2f}; packed / sequential = "
          f"{min(seq_ratios):.2f}-{max(seq_ratios):.2f}")


if __name__ == "__main__":
    main()
