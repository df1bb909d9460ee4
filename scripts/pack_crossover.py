"""When a pack with frozen slots is worth building again without them (issue 27's crossover, PackTrainer.compact_share).

A member that leaves a pack leaves a frozen slot: it still computes (forward, backward) but costs no rebuild. Building
the pack again without the frozen slots (``PackTrainer._assemble``) makes the steps cheaper but costs a rebuild: new
grouped layers, a new optimizer, the members' states moved over, and on a GPU cuDNN tuning every new convolution
shape again. For a pack of N slots with L members training, this prints the seconds per step with the N - L slots
frozen, per step packed as L, the rebuild's seconds, and the crossover: the steps after which rebuilding has paid.

    python scripts/pack_crossover.py [--slots 16] [--live 12,8,6,4,2] [--rounds 3] [--device cpu] [--threads N]

The CPU proxy of docs/benchmarks.md: UNet base 4, depth 4, 32x32, batch 8, Adam, each member its own lr.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from unettui.core.define.config import Config
from unettui.core.learn.pack_train import PackMember, PackTrainer

STEPS = 20


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def epoch_seconds(pack: PackTrainer, rounds: int) -> float:
    """Median seconds of one epoch (``STEPS`` steps) after a warm-up epoch."""
    pack.train_epoch()
    times = []
    for _ in range(rounds):
        _sync(pack.device)
        t0 = time.perf_counter()
        pack.train_epoch()
        _sync(pack.device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slots", type=int, default=16)
    ap.add_argument("--live", default="12,8,6,4,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfgs = [Config(num_images=STEPS * 8, train_fraction=1.0, image_size=32, batch_size=8, base_channels=4, depth=4,
                   device=args.device, amp="off", seed=i, lr=1e-3 * (1 + 0.1 * i), preview_count=0)
            for i in range(args.slots)]
    members = [PackMember(cfgs[0])]
    members += [PackMember(c, data_from=members[0]) for c in cfgs[1:]]
    print(f"pack crossover: {args.slots} slots, UNet base 4 depth 4, 32x32, batch 8, {STEPS} steps an epoch, "
          f"device {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    full = epoch_seconds(PackTrainer(members), args.rounds) / STEPS
    print(f"{args.slots} training: {full * 1e3:.2f} ms/step")
    for live in (int(x) for x in args.live.split(",")):
        keep = members[:live]
        frozen = PackTrainer(keep, slots=[*keep, *(f"left{i}" for i in range(args.slots - live))])
        t_frozen = epoch_seconds(frozen, args.rounds) / STEPS
        t0 = time.perf_counter()
        frozen._assemble(list(keep))  # the rebuild the pack would make
        _sync(frozen.device)
        rebuild = time.perf_counter() - t0
        t_compact = epoch_seconds(frozen, args.rounds) / STEPS
        gain = t_frozen - t_compact
        cross = f"{rebuild / gain:.0f} steps" if gain > 0 else "never (no gain per step)"
        print(f"{live} of {args.slots} training: frozen slots {t_frozen * 1e3:.2f} ms/step, packed as {live} "
              f"{t_compact * 1e3:.2f} ms/step ({t_frozen / t_compact:.2f}x), rebuild {rebuild * 1e3:.1f} ms: "
              f"rebuilding pays after {cross}")


if __name__ == "__main__":
    main()
