"""Benchmark: sliding-window inference (unettui.core.learn.sliding) on large single-channel images, peak memory and time.

    python scripts/bench_sliding.py [--sizes 1024 2048 4096] [--patches 256 128] [--overlaps 0.5] [--repeat 3]
                                    [--batch 4] [--threads 2] [--whole 1024]

Each measurement runs in a fresh subprocess (the peak resident set, ``ru_maxrss``, is a high-water mark of the whole
process, so it cannot be reset between cases): torch imported, ``--threads`` intra-op threads, the default model
(UNet(1, 1, base_channels=16, depth=4), eval mode, random weights), a random S x S image, one warm-up batch of
``--batch`` windows, then one timed ``sliding_window(model, image, patch, overlap, batch)`` on the CPU. Printed per
case over ``--repeat`` subprocesses: the number of windows, the seconds (min–max), the peak RSS (min–max), the RSS
just before the call (torch, the model, the image and the warm-up) and what the accumulators need (output K x H x W
and weights H x W, float32). ``--whole`` sizes also run one whole-image forward pass for contrast (what predicting
without windows costs).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MiB = 1024 * 1024


def rss_now() -> int:
    """The current resident set in bytes (Linux /proc)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss() -> int:
    """The process's peak resident set in bytes (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(size: int, patch: int, overlap: float, batch: int, threads: int, whole: bool) -> dict:
    import torch

    from unettui.core.learn.model import UNet
    from unettui.core.learn.sliding import sliding_window, window_grid

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = UNet(1, 1, base_channels=16, depth=4).eval()
    image = torch.rand(1, size, size)
    with torch.no_grad():
        if whole:
            before = rss_now()
            t0 = time.perf_counter()
            out = model(image[None])[0]
        else:
            model(torch.zeros(batch, 1, patch, patch))  # warm-up: oneDNN primitives, allocator pools
            before = rss_now()
            t0 = time.perf_counter()
            out = sliding_window(model, image, patch=patch, overlap=overlap, batch=batch)
    seconds = time.perf_counter() - t0
    assert out.shape == (1, size, size) and out.dtype == torch.float32
    return {"seconds": seconds, "peak": peak_rss(), "before": before,
            "windows": 1 if whole else len(window_grid(size, size, patch, overlap))}


def run_child(size: int, patch: int, overlap: float, batch: int, threads: int, whole: bool) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, __file__, "--child", json.dumps([size, patch, overlap, batch, threads, whole])]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"child {size} px patch {patch} overlap {overlap} failed (rc {done.returncode}): "
                         f"{done.stderr.strip().splitlines()[-1:] or ''}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def span(values: list[float], fmt: str) -> str:
    return f"{fmt.format(min(values))}–{fmt.format(max(values))}"


def report(label: str, size: int, results: list[dict], whole: bool = False) -> None:
    accumulators = "" if whole else f"; accumulators {2 * size * size * 4 / MiB:.0f} MiB"  # output (K = 1), weights
    print(f"{label}: {results[0]['windows']} window(s), {span([r['seconds'] for r in results], '{:.1f}')} s, "
          f"peak RSS {span([r['peak'] / MiB for r in results], '{:.0f}')} MiB "
          f"(before the call {span([r['before'] / MiB for r in results], '{:.0f}')} MiB{accumulators}) "
          f"over {len(results)} run(s)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    ap.add_argument("--patches", type=int, nargs="+", default=[256, 128])
    ap.add_argument("--overlaps", type=float, nargs="+", default=[0.5])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--whole", type=int, nargs="*", default=[1024], help="sizes to also run as one whole-image pass")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*json.loads(args.child))))
        return
    print(f"sliding_window, UNet(1, 1, base_channels=16, depth=4), CPU, {args.threads} thread(s), batch {args.batch}, "
          f"{os.cpu_count()} CPU(s) on this machine", flush=True)
    for size in args.whole:
        results = [run_child(size, size, 0.0, 1, args.threads, True) for _ in range(args.repeat)]
        report(f"{size}² whole-image forward (no windows)", size, results, whole=True)
    for size in args.sizes:
        for patch in args.patches:
            for overlap in args.overlaps:
                results = [run_child(size, patch, overlap, args.batch, args.threads, False)
                           for _ in range(args.repeat)]
                report(f"{size}² patch {patch} overlap {overlap}", size, results)


if __name__ == "__main__":
    main()
