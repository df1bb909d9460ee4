"""Benchmark: `unettui predict` of one large image at native resolution (sliding window), wall time and peak memory.

    python scripts/bench_predict.py [--sizes 1024 2048 4096] [--repeat 3] [--patch 256] [--threads 2] [--device cpu]

Trains a throwaway native run once (the default model, UNet base 16 depth 4, ``patch_size`` = --patch, one epoch
on a few synthetic images: the weights do not change the cost), then for each size writes a random grey S x S PNG
and runs ``unettui predict RUN IMAGE OUT --probabilities`` --repeat times, each a fresh process under
``/usr/bin/time -v``. Prints per size the wall time and the peak resident memory of the whole command (Python,
torch, reading the PNG, the windows, the blended output, the probability map and writing both PNGs) as
min-max over the repeats, and the worst case. A run of the resize path (``image_size`` = --patch) is timed at the
largest size for contrast.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def measured(cmd: list[str], cwd: Path, env: dict) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of one command under /usr/bin/time -v."""
    t0 = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-v", *cmd], cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr).group(1))
    return seconds, kib / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--patch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    import os

    import imageio.v3 as iio

    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    root = Path(tempfile.mkdtemp(prefix="bench-predict-"))
    try:
        (root / "experiments.toml").write_text(
            "[defaults]\ndataset = \"synthetic:nuclei\"\nnum_images = 8\nepochs = 1\nbatch_size = 4\n"
            f"device = \"{args.device}\"\npreview_count = 0\n\n"
            f"[[experiment]]\nid = \"native\"\nimage_size = {args.patch}\npatch_size = {args.patch}\n\n"
            f"[[experiment]]\nid = \"resize\"\nimage_size = {args.patch}\n")
        subprocess.run([sys.executable, "-m", "unettui", "run", "--headless", "--plain", "--threads",
                        str(args.threads), "-p", str(root)], check=True, capture_output=True, env=env)
        import torch

        print(f"bench_predict: unettui predict, UNet base 16 depth 4, patch {args.patch}, overlap 0.5, batch 4, "
              f"device {args.device}, threads {args.threads}, torch {torch.__version__}, {args.repeat} runs each")
        rng = np.random.default_rng(0)
        cases = [("native", s) for s in args.sizes] + [("resize", max(args.sizes))]
        for run_id, size in cases:
            image = root / f"img{size}.png"
            if not image.exists():
                iio.imwrite(image, (rng.random((size, size)) * 255).astype(np.uint8))
            times, peaks = [], []
            for _ in range(args.repeat):
                out = root / "out"
                shutil.rmtree(out, ignore_errors=True)
                s, mib = measured([sys.executable, "-m", "unettui", "predict", run_id, str(image), str(out),
                                   "--probabilities", "--device", args.device, "-p", str(root)], root, env)
                times.append(s)
                peaks.append(mib)
            print(f"{run_id} {size}x{size}: {min(times):.1f}-{max(times):.1f} s (worst {max(times):.1f} s), "
                  f"peak {min(peaks):.0f}-{max(peaks):.0f} MiB (worst {max(peaks):.0f} MiB)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
