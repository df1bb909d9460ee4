"""Benchmark: open the TUI on projects of N finished runs and measure how it keeps up while a runner writes.

Usage: python scripts/bench_tui.py [--runs 1000 10000] [--repeat 5] [--seconds 8]

For each N (a project built once: N finished runs of 20 epochs, the last one running), ``--repeat`` times:

- first open: runs/.index removed (a project never opened in the TUI, or opened by an older version): the time until
  the queue table shows its first rows, and until it holds every run with its state (every run's files read, every
  row added); the TUI then writes the index;
- open: the same, the next time (the index written by the first open: one file instead of three per run);
- poll: one poll of runs/ with nothing changed (the median of five in a row, after a first poll read everything);
- keys: while a separate process appends a metrics line to the running run every 0.2 s, a "down" key is sent every
  20-80 ms for ``--seconds``; a key's latency is the time from sending it until the app has handled it and the run
  it moved to is the selected one (its live panel updated) — median and worst over all presses; also the longest
  stall of the UI's event loop meanwhile (no key can wait longer than that plus its own handling);
- pilot: the same presses through Textual's test pilot, ``press`` + ``pause`` — the instrument of the figures
  measured before this benchmark was extended; it also waits until the whole process (the polling thread too) is
  idle, so it is an upper bound of what a user waits;
- Results tab: the time from "2" until its table holds every run with an epoch (computed in a worker thread, then
  added), then the same "down" keys in its table (the runner still writing): median, worst, longest stall.

Prints every repetition and, per N, the range over the repetitions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from textual import events

from tests.tui.fixtures import metric_rows, write_run
from unettui.core.define.config import Config
from unettui.core.runs import index as run_index
from unettui.tui.app import make_app
from unettui.tui.data import ProjectMonitor
from unettui.tui.widgets.queue import QueuePanel
from unettui.tui.widgets.results import ResultsTable

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
    """N finished runs of 20 epochs (the last one running at epoch 5), written with the run store's own functions
    (fsync skipped while building: the benchmark needs the files, not their durability), their folders dated an hour
    back."""
    lines = ['[defaults]\ndataset = "synthetic:nuclei"\nepochs = 20\n']
    lines += [f"[[experiment]]\nid = 'r{i:05d}'\nseed = {i}\n" for i in range(n)]
    (root / "experiments.toml").write_text("\n".join(lines))
    fsync, os.fsync = os.fsync, lambda fd: None
    try:
        for i in range(n):
            cfg = Config(dataset="synthetic:nuclei", epochs=20, seed=i)
            running = i == n - 1
            write_run(root, f"r{i:05d}", cfg, metric_rows(0.5 + (i % 97) / 200, 5 if running else 20),
                      state="running" if running else "done", epochs=20)
    finally:
        os.fsync = fsync
    then = time.time() - 3600  # finished an hour ago, as finished runs are (the running one is rewritten below)
    for d in (root / "runs").iterdir():
        for f in d.iterdir():  # the files too: the index trusts an entry only for files still 2 s before the read
            os.utime(f, (then, then))
        os.utime(d, (then, then))
    return root


def poll_times(project: Path) -> tuple[float, float]:
    """(first poll, median of five polls with nothing changed), seconds."""
    mon = ProjectMonitor(project)
    t = time.perf_counter()
    mon.poll()
    first = time.perf_counter() - t
    idle = []
    for _ in range(5):
        t = time.perf_counter()
        mon.poll()
        idle.append(time.perf_counter() - t)
    return first, statistics.median(idle)


async def watch_loop(stalls: list[float], stop: asyncio.Event) -> None:
    """The event loop's stalls: how late a 5 ms sleep wakes up."""
    while not stop.is_set():
        t = time.perf_counter()
        await asyncio.sleep(0.005)
        stalls.append(time.perf_counter() - t - 0.005)


async def opened(app, n: int, t0: float, out: dict[str, float]) -> QueuePanel:
    """Wait until the queue table shows its first rows, then every run; ``out``: when (since ``t0``), and the event
    loop's longest stall meanwhile."""
    table = app.query_one(QueuePanel)
    while table.row_count == 0:
        await asyncio.sleep(0.005)
    out["first_rows"] = time.perf_counter() - t0
    stalls: list[float] = []
    stop = asyncio.Event()
    watcher = asyncio.get_running_loop().create_task(watch_loop(stalls, stop))
    while table.row_count < n or not table.complete:
        await asyncio.sleep(0.005)
    out["open"] = time.perf_counter() - t0
    stop.set()
    await watcher
    out["open_stall"] = max(stalls, default=0.0)
    return table


async def first_open(project: Path, n: int) -> dict[str, float]:
    """Open a project without its index: first rows, every row, and when the index has been written."""
    shutil.rmtree(project / "runs" / run_index.INDEX_DIR, ignore_errors=True)
    app = make_app(project, poll_interval=1.0)
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    async with app.run_test(size=(120, 40)):
        await opened(app, n, t0, out)
        while not run_index.index_path(project).exists() and time.perf_counter() - t0 < 60:
            await asyncio.sleep(0.01)
        out["indexed"] = time.perf_counter() - t0
    return out


async def session(project: Path, n: int, seconds: float) -> dict[str, float]:
    app = make_app(project, poll_interval=1.0)
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    async with app.run_test(size=(120, 40)) as pilot:
        table = await opened(app, n, t0, out)
        table.focus()
        await pilot.pause(0.3)
        running = project / "runs" / f"r{n - 1:05d}" / "metrics.jsonl"
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(running), str(3 * seconds + 5)])
        out["key_median"], out["key_worst"], out["stall"], out["keys"] = await key_presses(app, table, seconds, True)
        pil = []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t = time.perf_counter()
            await pilot.press("down")
            await pilot.pause()
            pil.append(time.perf_counter() - t)
            await asyncio.sleep(0.05)
        out["pilot_median"], out["pilot_worst"] = statistics.median(pil), max(pil)
        # the Results tab: shown (every run's row computed and added), then the same keys in its table
        t = time.perf_counter()
        await pilot.press("2")
        results = app.query_one(ResultsTable)
        while (results.row_count < n - 1 or not results.complete) and time.perf_counter() - t < 60:
            await asyncio.sleep(0.005)
        out["results_shown"] = time.perf_counter() - t
        results.focus()
        await pilot.pause(0.3)
        out["results_median"], out["results_worst"], out["results_stall"] = await key_presses(app, results, seconds)
        writer.wait()
        await pilot.pause(1.5)
        out["epochs_shown"] = len(app.views[f"r{n - 1:05d}"].metrics)
    return out


async def key_presses(app, table, seconds: float, count: bool = False) -> tuple:
    """"down" sent to ``table`` every 20-80 ms for ``seconds``: the median and worst latency (until the run it moved
    to is the selected one), the event loop's longest stall meanwhile (and how many keys, with ``count``)."""
    stalls: list[float] = []
    stop = asyncio.Event()
    watcher = asyncio.get_running_loop().create_task(watch_loop(stalls, stop))
    lat = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        row = table.cursor_row
        want = table.keys[min(row + 1, len(table.keys) - 1)]
        t = time.perf_counter()
        app._driver.send_message(events.Key("down", None))
        while app.selected != want and time.perf_counter() - t < 30:
            await asyncio.sleep(0.001)
        lat.append(time.perf_counter() - t)
        await asyncio.sleep(random.uniform(0.02, 0.08))
    stop.set()
    await watcher
    got = (statistics.median(lat), max(lat), max(stalls))
    return got + (len(lat),) if count else got


def rng(values: list[float], scale: float = 1.0, fmt: str = "{:.2f}") -> str:
    lo, hi = min(values) * scale, max(values) * scale
    return fmt.format(lo) if fmt.format(lo) == fmt.format(hi) else f"{fmt.format(lo)}–{fmt.format(hi)}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=8.0)
    args = ap.parse_args()
    for n in args.runs:
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            project = build(Path(tmp), n)
            print(f"--- {n} runs (built in {time.perf_counter() - t:.1f} s)", flush=True)
            results = []
            for k in range(args.repeat):
                cold = asyncio.run(first_open(project, n))
                first, idle = poll_times(project)
                r = asyncio.run(session(project, n, args.seconds))
                r["poll_first"], r["poll_idle"] = first, idle
                r["cold_open"], r["cold_first_rows"], r["indexed"] = cold["open"], cold["first_rows"], cold["indexed"]
                r["cold_open_stall"] = cold["open_stall"]
                results.append(r)
                print(f"  #{k + 1}: first open {r['cold_open']:.2f} s (first rows {r['cold_first_rows']:.2f} s, longest "
                      f"UI stall meanwhile {r['cold_open_stall'] * 1000:.0f} ms, index written at {r['indexed']:.2f} s); "
                      f"open {r['open']:.2f} s (first rows {r['first_rows']:.2f} s, stall "
                      f"{r['open_stall'] * 1000:.0f} ms); poll: first "
                      f"{first * 1000:.0f} ms, nothing changed {idle * 1000:.1f} ms; {r['keys']} keys: median "
                      f"{r['key_median'] * 1000:.1f} ms, worst {r['key_worst'] * 1000:.0f} ms; longest UI stall "
                      f"{r['stall'] * 1000:.0f} ms; pilot press+pause median {r['pilot_median'] * 1000:.0f} ms, worst "
                      f"{r['pilot_worst'] * 1000:.0f} ms; Results tab shown in {r['results_shown']:.2f} s, its keys: median "
                      f"{r['results_median'] * 1000:.1f} ms, worst {r['results_worst'] * 1000:.0f} ms, stall "
                      f"{r['results_stall'] * 1000:.0f} ms; the running run shows {r['epochs_shown']} epochs", flush=True)
            col = {key: [r[key] for r in results] for key in results[0]}
            print(f"  {n} runs, {len(results)} repetitions: first open {rng(col['cold_open'])} s (first rows "
                  f"{rng(col['cold_first_rows'])} s, UI stall {rng(col['cold_open_stall'], 1000, '{:.0f}')} ms); open "
                  f"{rng(col['open'])} s (first rows {rng(col['first_rows'])} s, UI stall "
                  f"{rng(col['open_stall'], 1000, '{:.0f}')} ms); poll with nothing changed {rng(col['poll_idle'], 1000, '{:.0f}')} ms "
                  f"(first {rng(col['poll_first'], 1000, '{:.0f}')} ms); key median {rng(col['key_median'], 1000, '{:.0f}')} "
                  f"ms, worst {rng(col['key_worst'], 1000, '{:.0f}')} ms; longest UI stall "
                  f"{rng(col['stall'], 1000, '{:.0f}')} ms; pilot press+pause median "
                  f"{rng(col['pilot_median'], 1000, '{:.0f}')} ms, worst {rng(col['pilot_worst'], 1000, '{:.0f}')} ms; "
                  f"Results tab shown in {rng(col['results_shown'])} s, its keys: median "
                  f"{rng(col['results_median'], 1000, '{:.0f}')} ms, worst {rng(col['results_worst'], 1000, '{:.0f}')} ms, "
                  f"stall {rng(col['results_stall'], 1000, '{:.0f}')} ms", flush=True)


if __name__ == "__main__":
    main()
