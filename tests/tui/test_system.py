"""What keeps the TUI responsive and what it says about the machines: the runners' figures files (device, GPU memory
and utilisation, images/s, the queue's ETA), a poll that reads nothing when nothing changed, curves read on demand, and
one polling thread whose polls never overlap."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
import types

from textual.widgets import Static

from tests.tui.fixtures import metric_rows, seeded_project, select, wait_for, write_run
from unettui.core.define.config import Config
from unettui.core.runs import runners
from unettui.core.runs.store import HOST, RunStore, append_jsonl, atomic_write_json
from unettui.tui import data as tui_data
from unettui.tui.app import make_app
from unettui.tui.data import ProjectMonitor, RunView, images_per_second, queue_eta
from unettui.tui.widgets.live import LivePanel
from unettui.tui.widgets.queue import QueuePanel

GIB = 1024**3
CFG = Config(dataset="synthetic:nuclei", num_images=16, image_size=32, base_channels=4, depth=2, epochs=4, batch_size=4)


def run(coro):
    return asyncio.run(coro)


def fake_torch(monkeypatch, util: bool = True) -> None:
    """A torch whose CUDA device 0 is an 80 GiB GPU with 12 GiB in use (8 of them this process's), 97 % busy."""
    def utilization(i):
        if not util:
            raise ModuleNotFoundError("pynvml")
        return 97

    cuda = types.SimpleNamespace(
        is_available=lambda: True, current_device=lambda: 0, mem_get_info=lambda i: (68 * GIB, 80 * GIB),
        get_device_name=lambda i: "NVIDIA H100 80GB HBM3", memory_reserved=lambda i: 8 * GIB, utilization=utilization)
    torch = types.SimpleNamespace(cuda=cuda, device=lambda d: types.SimpleNamespace(index=int(d.split(":")[1])
                                                                                     if ":" in d else None))
    monkeypatch.setitem(sys.modules, "torch", torch)


def test_a_runner_writes_its_figures_and_the_faces_read_the_fresh_ones(tmp_path, monkeypatch):
    fake_torch(monkeypatch)
    runners.write_figures(tmp_path, "cuda:0", ["a", "b"])
    (fig,) = runners.read_figures(tmp_path)
    assert (fig.host, fig.device, fig.runs, fig.gpu) == (HOST, "cuda:0", ("a", "b"), "NVIDIA H100 80GB HBM3")
    assert (fig.mem_used, fig.mem_total, fig.mem_process, fig.util) == (12 * GIB, 80 * GIB, 8 * GIB, 97)
    # without an NVML binding: no utilisation, the rest as before; on a CPU: the device alone
    fake_torch(monkeypatch, util=False)
    runners.write_figures(tmp_path, "cuda:0", ["a"])
    assert runners.read_figures(tmp_path)[0].util is None and runners.read_figures(tmp_path)[0].mem_used == 12 * GIB
    runners.write_figures(tmp_path, "cpu", ["a"])
    assert runners.read_figures(tmp_path)[0].gpu is None and runners.read_figures(tmp_path)[0].device == "cpu"
    # a file nobody rewrote for 30 s, a process of this machine that is gone, garbage: left out
    folder = tmp_path / "runs" / ".runners"
    atomic_write_json(folder / "far-1.json", {"host": "far", "pid": 1, "time": time.time() - 60, "device": "cuda:0"})
    atomic_write_json(folder / f"{HOST}-999999.json", {"host": HOST, "pid": 999999, "time": time.time()})
    (folder / "x.json").write_text("[1, 2")
    atomic_write_json(folder / "near-2.json", {"host": "near", "pid": 2, "time": time.time(), "device": "mps"})
    assert sorted(f.name for f in runners.read_figures(tmp_path)) == sorted([f"{HOST} pid {fig.pid}", "near pid 2"])
    runners.remove_figures(tmp_path)
    assert [f.host for f in runners.read_figures(tmp_path)] == ["near"]


def test_the_live_panel_shows_each_runner_its_speed_and_the_queues_eta(tmp_path, monkeypatch):
    """A runner on another machine (its figures file) training a run of 16 images per 2-second epoch: device, GPU
    memory and utilisation, 8 img/s; the queue: base and the running run left, at the mean epoch time of the project."""
    proj = seeded_project(tmp_path / "p")
    write_run(proj, "base", CFG, metric_rows(0.5, 2), state="running", epochs=4)
    config = RunStore(proj).run("base").file("config.json")
    atomic_write_json(config, {**json.loads(config.read_text()), "n_train": 16, "resolved_device": "cuda:0"})
    folder = proj / "runs" / ".runners"
    folder.mkdir()
    atomic_write_json(folder / "gpu-box-4242.json", {
        "host": "gpu-box", "pid": 4242, "time": time.time() + 3600, "device": "cuda:0", "runs": ["base"],
        "gpu": "NVIDIA H100", "mem_used": 12 * GIB, "mem_total": 80 * GIB, "mem_process": 8 * GIB, "util": 97})

    async def go():
        app = make_app(proj, poll_interval=0.2)
        async with app.run_test(size=(160, 45)) as pilot:
            live = app.query_one(LivePanel)
            system = live.query_one("#live-system", Static)
            assert await wait_for(pilot, lambda: "gpu-box" in str(system.render()))
            text = str(system.render())
            assert ("gpu-box pid 4242 · cuda:0 NVIDIA H100 · GPU mem 12.0/80.0 GiB (this 8.0) · util 97% · base 8.0 img/s"
                    in text)
            assert "queue: 1 run to train · ETA 4s" in text  # base: 2 epochs left x 2 s (its own ETA)
            # the runner stops writing: its line goes once the file is stale
            atomic_write_json(folder / "gpu-box-4242.json", {"host": "gpu-box", "pid": 4242, "time": time.time() - 99})
            assert await wait_for(pilot, lambda: "gpu-box" not in str(system.render()))
            assert "base on cuda:0 · 8.0 img/s" in str(system.render())  # the running run, from its own files

    run(go())


def test_images_per_second_and_queue_eta():
    done = RunView(id="d", state="done", epochs=4, epoch=4, summary={"seconds": 40.0, "epochs_done": 4})
    running = RunView(id="r", state="running", epochs=4, epoch=1, config={"n_train": 30},
                      metrics=[{"epoch": 1, "seconds": 6.0}])
    pending = RunView(id="p", state="pending", epochs=4)
    gone = RunView(id="g", state="pending", epochs=4, in_queue=False)
    assert images_per_second(running) == 5.0 and images_per_second(done) is None
    # running: 3 epochs x 6 s; pending: 4 epochs x 10 s (the mean epoch time of the finished run)
    assert queue_eta([done, running, pending, gone]) == (2, 18.0 + 40.0)
    assert queue_eta([done, running, pending], workers=2) == (2, 29.0)
    assert queue_eta([pending]) == (1, None)  # nothing timed yet
    # a pack of three training at once with one worker: they end together, not one after the other
    packed = [RunView(id=f"k{i}", state="running", epochs=4, epoch=1, metrics=[{"epoch": 1, "seconds": 6.0}])
              for i in range(3)]
    assert queue_eta([done, *packed]) == (3, 18.0)
    assert queue_eta([done, *packed, pending]) == (4, (3 * 18.0 + 40.0) / 3)
    assert queue_eta([done]) == (0, 0.0)


def test_a_poll_with_nothing_changed_reads_no_file_and_curves_are_read_when_wanted(tmp_path, monkeypatch):
    proj = seeded_project(tmp_path / "p")
    write_run(proj, "base", CFG, metric_rows(0.5, 2), state="running", epochs=4)
    mon = ProjectMonitor(proj)
    mon.poll()
    # a finished run's row comes from its summary: its metrics.jsonl is read when its curves are wanted
    assert mon.runs["opt-adam-none"].metrics == [] and mon.runs["opt-adam-none"].best_val_dice == 0.82
    assert len(mon.runs["base"].metrics) == 2  # a running run's are followed
    reads = []
    real_open, real_os_open = open, os.open
    monkeypatch.setattr("builtins.open", lambda f, *a, **k: reads.append(str(f)) or real_open(f, *a, **k))
    monkeypatch.setattr(os, "open", lambda f, *a, **k: reads.append(str(f)) or real_os_open(f, *a, **k))
    assert mon.poll() == set() and reads == []
    assert mon.want(["opt-adam-none"]) is True
    assert mon.load_wanted() == {"opt-adam-none"} and len(mon.runs["opt-adam-none"].metrics) == 4
    assert reads == [str(proj / "runs" / "opt-adam-none" / "metrics.jsonl")]
    assert mon.want(["opt-adam-none"]) is False and mon.load_wanted() == set()
    # a line appended to the running run: that file alone is read, from where it was left
    append_jsonl(RunStore(proj).run("base").file("metrics.jsonl"), metric_rows(0.5, 4)[2])
    reads.clear()  # (the append's own os.open)
    assert mon.poll() == {"base"} and len(mon.runs["base"].metrics) == 3
    assert reads == [str(proj / "runs" / "base" / "metrics.jsonl")]
    # a status replaced (renamed into the folder) is seen at once; a file edited in place by the rotating full check
    RunStore(proj).run("opt-sgd-none").write_status(state="failed", error="boom")
    assert "opt-sgd-none" in mon.poll() and mon.runs["opt-sgd-none"].state.value == "failed"


def test_a_first_poll_with_a_budget_reads_part_and_the_rest_next(tmp_path):
    proj = seeded_project(tmp_path / "p")
    mon = ProjectMonitor(proj)
    first = mon.poll(budget=3)
    assert not mon.complete and len(mon.runs) == 3 and len(first - {"__queue__", "__studies__", "__runners__"}) == 3
    assert mon.order()[:3] == list(mon.runs)  # the first ones in queue order: the top of the table
    first, second = mon.order()[:2]  # finished runs: the curves of the first (the one selected first) come with it
    assert mon.runs[first].state.value == mon.runs[second].state.value == "done"
    assert len(mon.runs[first].metrics) == 4 and mon.runs[second].metrics == []
    mon.poll()
    assert mon.complete and len(mon.runs) == 7


def test_polls_never_overlap_even_when_one_takes_longer_than_the_interval(tmp_path, monkeypatch):
    """The 17-20 s freezes: a poll slower than the interval (10,000 runs, a loaded machine) had the next one start
    beside it (an exclusive Textual worker is cancelled but its thread runs on), and they piled up. One polling
    thread now; a slow poll delays the next, never doubles it."""
    proj = seeded_project(tmp_path / "p")
    real = tui_data.ProjectMonitor.poll
    active, peak, calls = [0], [0], [0]
    lock = threading.Lock()

    def slow_poll(self, budget=None):
        with lock:
            active[0] += 1
            calls[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            time.sleep(0.3)  # three poll intervals
            return real(self, budget)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(tui_data.ProjectMonitor, "poll", slow_poll)

    async def go():
        app = make_app(proj, poll_interval=0.1)
        async with app.run_test(size=(100, 30)) as pilot:
            assert await wait_for(pilot, lambda: app.query_one(QueuePanel).row_count == 7)
            await select(pilot, app, "opt-sgd-none")
            await pilot.press("down", "down", "up")  # keys are answered while a poll runs
            assert app.selected == "opt-sgd-plateau"
            await pilot.pause(1.5)

    run(go())
    assert calls[0] >= 3 and peak[0] == 1
