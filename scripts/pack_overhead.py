"""Per-epoch overhead of a pack: where an epoch's time goes (training, validation/test/previews, writing every
member's files) with writes after every epoch (as a solo run writes: "every epoch") and on the pack's cadence
(PackTrainer.max_write_share, the default: "cadence"), and the checkpoint bytes per member.

    python scripts/pack_overhead.py [--members 8] [--epochs 4] [--device cpu] [--threads 1] [--model tiny|default]

Prints one line per mode; the numbers for docs/benchmarks.md (packs).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

from unettui.core.define.config import Config
from unettui.core.learn.pack_train import PackTrainer
from unettui.core.runs.store import RunStore

MODELS = {
    "tiny": dict(base_channels=4, depth=2, image_size=32, batch_size=8, num_images=80),
    "default": dict(base_channels=16, depth=4, image_size=64, batch_size=8, num_images=160),
}


def measure(model: str, members: int, epochs: int, device: str, share: float) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="pack_overhead_"))
    try:
        cfgs = [Config(seed=i, lr=1e-3 * (1 + 0.1 * i), epochs=epochs, device=device, amp="off", preview_count=4,
                       **MODELS[model]) for i in range(members)]
        store = RunStore(folder)
        runs = [store.run(f"m{i}") for i in range(members)]
        for run in runs:
            run.path.mkdir(parents=True)
        pack = PackTrainer.from_configs(cfgs, folder, device)
        pack.max_write_share = share
        t0 = time.perf_counter()
        pack.fit(runs)
        wall = time.perf_counter() - t0
        t = dict(pack.timing)
        t["wall"] = wall
        return t
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--model", choices=sorted(MODELS), default="tiny")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"pack of {args.members}, model {args.model} {MODELS[args.model]}, {args.epochs} epochs, device {args.device}, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    for label, share in (("every epoch", 1.0), ("cadence", PackTrainer.max_write_share)):
        t = measure(args.model, args.members, args.epochs, args.device, share)
        e = t["epochs"]
        work = t["train"] + t["eval"] + t["write"]
        per_member_ckpt = t["checkpoint_bytes"] / max(1, t["checkpoints"])
        print(f"{label:>11}: per epoch train {t['train'] / e * 1000:.0f} ms, validation+test+previews "
              f"{t['eval'] / e * 1000:.0f} ms, writes {t['write'] / e * 1000:.0f} ms "
              f"({t['write_rounds']} rounds of writes in {e} epochs; writes {100 * t['write'] / work:.1f} % of the "
              f"time; per member and write: checkpoint {per_member_ckpt / 1e6:.2f} MB, "
              f"{t['write'] / max(1, t['checkpoints']) * 1000:.1f} ms for all its files)")


if __name__ == "__main__":
    main()
