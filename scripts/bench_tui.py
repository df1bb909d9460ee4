"""Benchmark: open the TUI on a project with N finished runs and measure how it keeps up while a runner writes.

Usage: python scripts/bench_tui.py [--runs 1000] [--seconds 10]

Prints: the time until the queue table shows every run; the time of one poll of runs/ with nothing
changed and with one metrics line appended; and, while a separate process appends a metrics line
to a running run every 0.2 s, the key-press round trip (cursor down, processed) — median and worst.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.tui.fixtures import metric_rows, write_run  # noqa: E402
from unettui.core.define.config import Config  # noqa: E402
from unettui.tui.app import make_app  # noqa: E402
from unettui.tui.data import ProjectMonitor  # noqa: E402
from unettui.tui.widgets.queue import QueuePanel  # noqa: E402

WRITER = textwrap.dedent("""
    import sys, time
    from unettui.core.runs.store import append_jsonl
    path, seconds = sys.argv[1], float(sys.argv[2])
    end, e = time.time() + seconds, 5
    while time.time() < end:
        e += 1
        append_jsonl(path, {"epoch": e, "train_loss": 1.0 / e, "train_dice": 0.5, "val_loss": 1.0 / e,
                            "val_dice": 0.5, "val_iou": 0.3, "lr": 0.001, "seconds": 0.2})
        time.sleep(0.2)
""")


def build(root: Path, n: int) -> Path:
    lines = ['[defaults]\ndataset = "synthetic:nuclei"\nepochs = 20\n']
    lines += [f"[[experiment]]\nid = 'r{i:04d}'\nseed = {i}\n" for i in range(n)]
    (root / "experiments.toml").write_text("\n".join(lines))
    for i in range(n):
        cfg = Config(dataset="synthetic:nuclei", epochs=20, seed=i)
        running = i == n - 1
        write_run(root, f"r{i:04d}", cfg, metric_rows(0.5 + (i % 97) / 200, 5 if running else 20),
                  state="running" if running else "done", epochs=20)
    return root


async def measure(project: Path, seconds: float) -> float:
    app = make_app(project, poll_interval=1.0)
    t0 = time.perf_counter()
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.query_one(QueuePanel)
        while table.row_count < n_runs:
            await pilot.pause(0.05)
        opened = time.perf_counter() - t0
        print(f"open: {opened:.2f} s until the queue table shows {table.row_count} runs")
        last = project / "runs" / f"r{n_runs - 1:04d}" / "metrics.jsonl"
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(last), str(seconds)])
        lat = []
        end = time.time() + seconds
        while time.time() < end:
            t = time.perf_counter()
            await pilot.press("down")
            await pilot.pause()
            lat.append((time.perf_counter() - t) * 1000)
            await asyncio.sleep(0.05)
        writer.wait()
        await pilot.pause(1.5)
        shown = app.views[f"r{n_runs - 1:04d}"]
        print(f"while a runner appends a metrics line every 0.2 s for {seconds:.0f} s: {len(lat)} key presses, "
              f"round trip median {statistics.median(lat):.1f} ms, worst {max(lat):.1f} ms; "
              f"the running run shows {len(shown.metrics)} epochs")
        return statistics.median(lat)


def main() -> None:
    global n_runs
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    medians = {}
    for n in (10, args.runs):  # a 10-run project is the reference for the pilot's own round trip
        n_runs = n
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            project = build(Path(tmp), n)
            print(f"--- {n} runs (built in {time.perf_counter() - t:.1f} s)")
            mon = ProjectMonitor(project)
            t = time.perf_counter()
            mon.poll()
            first = time.perf_counter() - t
            t = time.perf_counter()
            mon.poll()
            idle = time.perf_counter() - t
            print(f"poll of runs/: first (reads everything) {first * 1000:.0f} ms, then with nothing changed {idle * 1000:.0f} ms")
            medians[n] = asyncio.run(measure(project, args.seconds))
    print(f"ratio = key round trip with {args.runs} runs / with 10 runs = {medians[args.runs] / medians[10]:.2f}")

n_runs = 0

if __name__ == "__main__":
    main()
