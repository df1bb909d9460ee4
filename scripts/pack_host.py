"""The host's work per step of a pack as N grows (issue 27): a model so small that its kernels cost next to nothing,
so what is left is Python and dispatch, the critical path once a GPU step takes milliseconds.

    python scripts/pack_host.py [--packs 1,4,16,64] [--rounds 3] [--threads 1]

For each N: microseconds per optimizer step (PackOptimizer.step, Adam, each member its own lr) and per whole
training step (PackTrainer.train_epoch / steps: data, forward, loss, backward, optimizer, schedules, progress), median
of ``--rounds`` epochs of 50 steps after a warm-up epoch. Runs against older commits too (it finds PackOptimizer in
pack.py where pack_optim.py does not exist), for a before/after.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from unettui.core.define.config import Config
from unettui.core.learn.pack_train import PackMember, PackTrainer

STEPS = 50


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packs", default="1,4,16,64")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"pack host work: UNet base 1 depth 1, 16x16, batch 1, Adam, {STEPS} steps an epoch, torch "
          f"{torch.__version__}, threads {torch.get_num_threads()}")
    for n in (int(x) for x in args.packs.split(",")):
        cfgs = [Config(num_images=STEPS, train_fraction=1.0, image_size=16, batch_size=1, base_channels=1, depth=1,
                       device="cpu", amp="off", seed=i, lr=1e-3 * (1 + 0.01 * i), preview_count=0) for i in range(n)]
        members = [PackMember(cfgs[0])]
        members += [PackMember(c, data_from=members[0]) for c in cfgs[1:]]
        pack = PackTrainer(members)
        pack.train_epoch()
        steps, opts = [], []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            pack.train_epoch()
            steps.append((time.perf_counter() - t0) / STEPS)
            t0 = time.perf_counter()
            for _ in range(STEPS):
                pack.popt.step()
            opts.append((time.perf_counter() - t0) / STEPS)
        print(f"N={n}: optimizer step {statistics.median(opts) * 1e6:.0f} us ({min(opts) * 1e6:.0f}-"
              f"{max(opts) * 1e6:.0f}), training step {statistics.median(steps) * 1e6:.0f} us "
              f"({min(steps) * 1e6:.0f}-{max(steps) * 1e6:.0f})")


if __name__ == "__main__":
    main()
