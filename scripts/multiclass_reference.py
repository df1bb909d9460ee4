"""Reference: unettui's multi-class training against a bare PyTorch loop on the same data and budget.

    python scripts/multiclass_reference.py [--seeds 0 1 2] [--epochs 20] [--dataset synthetic:heart]

For each seed it trains unettui's Trainer at the defaults (UNet base 16 depth 4, Adam lr 1e-3, batch 8, dice_bce,
20 epochs, 64 px; num_classes 3, test_fraction 0.2) and a loop a person would write by hand: the same images and
split, the same UNet class, Adam, cross-entropy + mean foreground soft Dice written out here, the epoch with the best
mean validation Dice kept, per-class Dice counted here with numpy from argmax predictions. It prints per-class
validation and test Dice for both, and the ranges over the seeds.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unettui.core.define.config import Config
from unettui.core.define.task import classes_of
from unettui.core.learn.data import split_with_test
from unettui.core.learn.datasets import load_dataset
from unettui.core.learn.model import UNet
from unettui.core.learn.train import Trainer


def class_dice(pred: np.ndarray, truth: np.ndarray, k: int) -> list[float]:
    """Pooled Dice of each foreground class (counts summed over every pixel of the set)."""
    out = []
    for c in range(1, k):
        tp = np.sum((pred == c) & (truth == c))
        fp = np.sum((pred == c) & (truth != c))
        fn = np.sum((pred != c) & (truth == c))
        out.append(float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else float("nan"))
    return out


def bare_loop(cfg: Config) -> tuple[list[float], list[float], float]:
    """(val per-class Dice at the best epoch, test per-class Dice of that epoch's model, seconds)."""
    k = cfg.num_classes
    data = load_dataset(cfg.dataset, cfg.image_size, cfg.num_images, cfg.data_seed, classes=classes_of(cfg))
    tr, va, te, _ = split_with_test(len(data), cfg.train_fraction, cfg.data_seed, cfg.test_fraction)
    x, y = data.images, data.masks[:, 0].long()
    torch.manual_seed(cfg.seed)
    model = UNet(x.shape[1], k, cfg.base_channels, cfg.depth)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)

    def predict(idx):
        model.eval()
        with torch.no_grad():
            return torch.cat([model(x[idx[i:i + 8]]).argmax(1) for i in range(0, len(idx), 8)]).numpy()

    best, best_state = -1.0, None
    t0 = time.perf_counter()
    for _ in range(cfg.epochs):
        model.train()
        order = tr[torch.randperm(len(tr), generator=gen)]
        for i in range(0, len(order), cfg.batch_size):
            b = order[i:i + cfg.batch_size]
            logits = model(x[b])
            p = logits.softmax(1)
            onehot = F.one_hot(y[b], k).permute(0, 3, 1, 2).float()
            inter = (p * onehot).sum((0, 2, 3))
            dice = (2 * inter + 1) / (p.sum((0, 2, 3)) + onehot.sum((0, 2, 3)) + 1)
            loss = F.cross_entropy(logits, y[b]) + 1 - dice[1:].mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        val = np.nanmean(class_dice(predict(va), y[va].numpy(), k))
        if val > best:
            best, best_state = val, copy.deepcopy(model.state_dict())
    seconds = time.perf_counter() - t0
    model.load_state_dict(best_state)
    return class_dice(predict(va), y[va].numpy(), k), class_dice(predict(te), y[te].numpy(), k), seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--dataset", default="synthetic:heart")
    ap.add_argument("--classes", type=int, default=3)
    args = ap.parse_args()
    names = None
    rows: dict[str, list[list[float]]] = {"unettui val": [], "unettui test": [], "bare val": [], "bare test": []}
    for seed in args.seeds:
        cfg = Config(dataset=args.dataset, num_classes=args.classes, test_fraction=0.2, epochs=args.epochs,
                     seed=seed, device="cpu", preview_count=0)
        names = classes_of(cfg).foreground
        t0 = time.perf_counter()
        trainer = Trainer(cfg)
        summary = trainer.fit().summary
        t_unettui = time.perf_counter() - t0
        ours_val = [summary[f"best_val_dice_{n}"] for n in names]
        ours_test = [summary[f"test_dice_{n}"] for n in names]
        bare_val, bare_test, t_bare = bare_loop(cfg)
        rows["unettui val"].append(ours_val)
        rows["unettui test"].append(ours_test)
        rows["bare val"].append(bare_val)
        rows["bare test"].append(bare_test)
        fmt = lambda v, names=names: " ".join(f"{n} {x:.3f}" for n, x in zip(names, v))  # noqa: E731
        print(f"seed {seed}: unettui val {fmt(ours_val)} | test {fmt(ours_test)} ({t_unettui:.0f} s incl. data); "
              f"bare loop val {fmt(bare_val)} | test {fmt(bare_test)} ({t_bare:.0f} s)", flush=True)
    print(f"{len(args.seeds)} seeds, {args.dataset}, {args.epochs} epochs, per-class Dice min–max:")
    for what, vals in rows.items():
        cols = list(zip(*vals))
        print(f"  {what:13s} " + ", ".join(f"{n} {min(c):.3f}–{max(c):.3f} (mean {statistics.fmean(c):.3f})"
                                          for n, c in zip(names, cols)))


if __name__ == "__main__":
    main()
