"""The run index (runs/.index): a reopened project reads one file instead of every run's, and never shows a run as
it was when its folder has changed since; a damaged index is ignored. The queue file's parse cache."""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from pathlib import Path

import pytest
import tomllib
from rich.text import Text

from unettui.core.define.config import Config
from unettui.core.runs import index as run_index
from unettui.core.runs.store import RunStore
from unettui.tui.data import ProjectMonitor
from unettui.tui.widgets.keyed_table import KeyedTable

from .fixtures import metric_rows, seeded_project, write_run

CFG = Config(dataset="synthetic:nuclei", num_images=16, image_size=32, base_channels=4, depth=2, epochs=4, batch_size=4)
RUN_FILES = ("status.json", "config.json", "summary.json")


def settle(proj: Path, seconds: float = 60.0) -> None:
    """Date every run folder and the files in it ``seconds`` back: runs that have been still for a while (what the
    index trusts; a file changed within SETTLED seconds of its read is not)."""
    then = time.time() - seconds
    for d in (proj / "runs").iterdir():
        if d.is_dir() and not d.name.startswith("."):
            for f in d.iterdir():
                os.utime(f, (then, then))
            os.utime(d, (then, then))


def monitor(proj: Path) -> ProjectMonitor:
    mon = ProjectMonitor(proj)
    mon.INDEX_MIN = 3  # the tests' projects are small; the real threshold keeps small projects free of an index
    return mon


def project(tmp_path: Path) -> Path:
    proj = seeded_project(tmp_path / "p")
    write_run(proj, "base", CFG, metric_rows(0.5, 2), state="running", epochs=4)  # a claim (its process is gone)
    settle(proj)
    return proj


def file_reads(monkeypatch) -> list[str]:
    """The files opened from now on (with open() or os.open(), which the monitor's first read of a run uses)."""
    reads: list[str] = []
    real_open, real_os_open = open, os.open
    monkeypatch.setattr("builtins.open", lambda f, *a, **k: reads.append(str(f)) or real_open(f, *a, **k))
    monkeypatch.setattr(os, "open", lambda f, *a, **k: reads.append(str(f)) or real_os_open(f, *a, **k))
    return reads


@pytest.mark.parametrize("fast", [True, False], ids=["orjson", "json"])
def test_json_documents_read_alike_with_orjson_and_without(monkeypatch, fast):
    from unettui.core.runs import store

    if not fast:
        monkeypatch.setattr(store, "_fast_loads", None)
    elif store._fast_loads is None:
        pytest.skip("orjson is not installed here")
    parse = store.parse_json
    assert parse(b' {"a": [1, 2.5, "x\\u00e9"], "b": null, "c": true} \n') == {"a": [1, 2.5, "x\u00e9"], "b": None,
                                                                              "c": True}
    assert parse('{"dir": [1795827430387884378, 2146532]}') == {"dir": [1795827430387884378, 2146532]}
    diverged = parse(b'{"val_loss": NaN, "best": Infinity, "worst": -Infinity}')  # what Python's json writes
    assert math.isnan(diverged["val_loss"]) and diverged["best"] == math.inf and diverged["worst"] == -math.inf
    assert parse('{"s": "\\ud800"}') == {"s": "\ud800"}  # a lone surrogate: json reads it, orjson refuses it
    for bad in (b'{"a": 1} x', b'{"a": 1}{"b": 2}', b'{"a": ', b'\xff{}', b'', b'   '):
        with pytest.raises(ValueError):
            parse(bad)


def test_a_reopened_project_reads_the_index_not_each_run_file_and_shows_the_same_rows(tmp_path, monkeypatch):
    proj = project(tmp_path)
    first = monitor(proj)
    first.poll()
    assert first.keep_index() is True and run_index.index_path(proj).is_file()
    assert first.keep_index() is False  # nothing read from a folder since: not written again

    reads = file_reads(monkeypatch)
    again = monitor(proj)
    again.poll()
    assert again.views() == first.views() and again.order() == first.order()
    run_files = [r for r in reads if r.endswith(RUN_FILES)]
    assert run_files == [], run_files  # 6 finished runs and a claim: all from the index
    # what is followed is still read from its file: the claimed run's metrics
    assert str(proj / "runs" / "base" / "metrics.jsonl") in reads
    assert len(again.runs["base"].metrics) == 2 and again.runs["opt-adam-none"].best_val_dice == 0.82
    # the curves of a finished run, when wanted, come from its metrics.jsonl as before
    assert again.want(["opt-sgd-plateau"]) is True
    assert again.load_wanted() == {"opt-sgd-plateau"} and len(again.runs["opt-sgd-plateau"].metrics) == 4


def test_a_run_that_changed_since_the_index_was_written_is_read_from_its_folder(tmp_path, monkeypatch):
    proj = project(tmp_path)
    first = monitor(proj)
    first.poll()
    assert first.keep_index()
    # after the index was written: one run fails (its status renamed into its folder), another is retried
    # (archived: its folder's files move to attempts/1)
    RunStore(proj).run("opt-sgd-none").write_status(state="failed", error="boom")
    reads = file_reads(monkeypatch)
    again = monitor(proj)
    again.poll()
    assert again.runs["opt-sgd-none"].state.value == "failed" and again.runs["opt-sgd-none"].error == "boom"
    read_runs = {Path(r).parent.name for r in reads if r.endswith(RUN_FILES)}
    assert read_runs == {"opt-sgd-none"}
    assert again.runs["opt-adam-none"] == first.runs["opt-adam-none"]


def test_a_folder_written_just_before_the_index_read_it_is_not_trusted(tmp_path, monkeypatch):
    """A rename within the clock tick of the read would leave the folder's mtime as it was: an entry is used only
    for a folder that had been still for SETTLED seconds when it was read."""
    proj = project(tmp_path)
    RunStore(proj).run("opt-rmsprop-none").write_status(state="done")  # written now, not settled
    first = monitor(proj)
    first.poll()
    assert first.keep_index()
    reads = file_reads(monkeypatch)
    monitor(proj).poll()
    assert {Path(r).parent.name for r in reads if r.endswith(RUN_FILES)} == {"opt-rmsprop-none"}


@pytest.mark.parametrize("damage", ["garbage", "other format", "torn line", "swapped lines", "edited entry"])
def test_a_damaged_or_foreign_index_is_ignored_where_it_cannot_be_read(tmp_path, damage):
    proj = project(tmp_path)
    fresh = monitor(proj)
    fresh.poll()
    assert fresh.keep_index()
    path = run_index.index_path(proj)
    lines = path.read_bytes().split(b"\n")
    if damage == "garbage":
        path.write_bytes(b"\x00\xffnot json at all\n")
    elif damage == "other format":
        path.write_bytes(lines[0].replace(b'"unettui_index": 1', b'"unettui_index": 99') + b"\n" + b"\n".join(lines[1:]))
    elif damage == "torn line":
        path.write_bytes(b"\n".join(lines[:2]) + b"\n" + lines[2][: len(lines[2]) // 2])
    elif damage == "swapped lines":  # each entry under the other's id
        a, b = lines[1], lines[2]
        ida, idb = a[7:a.index(b'"', 7)], b[7:b.index(b'"', 7)]
        lines[1], lines[2] = b.replace(idb, ida, 1), a.replace(ida, idb, 1)
        path.write_bytes(b"\n".join(lines))
    else:  # a hand edit that leaves valid JSON of the wrong shape
        lines[1] = lines[1].replace(b'"attempts":0', b'"attempts":"none"')
        path.write_bytes(b"\n".join(lines))
    again = monitor(proj)
    again.poll()
    assert again.views() == fresh.views()


def test_an_index_as_written_is_used_without_checking_each_entry_and_an_edited_one_entry_by_entry(tmp_path,
                                                                                                     monkeypatch):
    """The header holds the SHA-1 of the body written: a body that is still the one written skips the per-entry
    checks; after an edit every entry is checked, and only the edited run is read from its folder."""
    proj = project(tmp_path)
    fresh = monitor(proj)
    fresh.poll()
    assert fresh.keep_index()
    checked: list[object] = []
    real_valid = run_index._valid
    monkeypatch.setattr(run_index, "_valid", lambda item: checked.append(item) or real_valid(item))
    again = monitor(proj)
    again.poll()
    assert checked == [] and again.views() == fresh.views()
    path = run_index.index_path(proj)
    lines = path.read_bytes().split(b"\n")
    edited = lines[1][7:lines[1].index(b'"', 7)].decode()
    lines[1] = lines[1].replace(b'"attempts":0', b'"attempts":"none"')
    path.write_bytes(b"\n".join(lines))
    reads = file_reads(monkeypatch)
    third = monitor(proj)
    third.poll()
    assert len(checked) == len(fresh.runs) and third.views() == fresh.views()
    assert {Path(r).parent.name for r in reads if r.endswith(RUN_FILES)} == {edited}


def test_a_first_read_without_an_index_has_a_helper_process_write_one_and_reads_the_rest_from_it(tmp_path,
                                                                                                  monkeypatch):
    """A large project opened without an index: a helper process (another core) writes it while the first slices
    are read from the run folders; the slice after it is done reads the runs left from the index."""
    proj = project(tmp_path)
    whole = monitor(proj)
    whole.poll()
    whole.want(whole.order()[:1])  # (a first read in slices reads the first run's curves with it)
    whole.load_wanted()
    assert run_index.start_refresh(proj, min_runs=len(whole.runs) + 1) is None  # too few runs: no helper
    mon = monitor(proj)
    mon.HELPER_MIN = 3
    reads = file_reads(monkeypatch)
    mon.poll(budget=2)
    helper = mon._helper
    assert helper is not None and helper.wait(60) == 0 and run_index.index_path(proj).exists()
    first = {Path(r).parent.name for r in reads if r.endswith(RUN_FILES)}
    reads.clear()
    while not mon.complete:
        mon.poll(budget=100)
    assert mon._helper is None and len(first) == 2
    assert not [r for r in reads if r.endswith(RUN_FILES)]  # the rest: from the helper's index
    assert mon.views() == whole.views()


def test_a_helper_still_writing_the_index_is_stopped_cleanly(tmp_path):
    """close() stops a helper still at work; the helper turns SIGTERM into an exit (143) that runs its cleanup (an
    atomic write removes its temporary file), instead of dying where it stands."""
    import signal
    import subprocess
    import sys

    proj = project(tmp_path)
    slow = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    mon = monitor(proj)
    mon._helper = slow
    mon.close()
    assert slow.poll() == -signal.SIGTERM and mon._helper is None
    blocked = tmp_path / "blocked"
    run = blocked / "runs" / "r1"
    run.mkdir(parents=True)
    os.mkfifo(run / "status.json")  # reading it waits for a writer: the helper is stopped in the middle of its read
    helper = run_index.start_refresh(blocked, min_runs=1)
    assert helper is not None
    wchan = Path(f"/proc/{helper.pid}/wchan")
    for _ in range(100):  # until it waits on the FIFO (its handler is installed by then)
        if wchan.exists() and any(w in wchan.read_text() for w in ("wait_for_partner", "fifo")):  # (Linux's names)
            break
        time.sleep(0.05)
    helper.terminate()
    assert helper.wait(30) == 143 and not (blocked / "runs" / run_index.INDEX_DIR).exists()


def test_no_index_for_a_small_project_and_none_where_it_cannot_be_written(tmp_path):
    proj = project(tmp_path)
    mon = ProjectMonitor(proj)  # the real threshold: 7 runs are read in a few ms, no index
    mon.poll()
    assert mon.keep_index() is False and not (proj / "runs" / ".index").exists()
    blocked = monitor(proj)
    (proj / "runs" / ".index").write_text("a file where the index folder would be")
    blocked.poll()
    assert blocked.keep_index() is False  # said, not raised; the TUI reads every run next time


def test_the_index_is_written_again_once_enough_runs_changed(tmp_path, monkeypatch):
    proj = project(tmp_path)
    mon = monitor(proj)
    mon.INDEX_CHANGED, mon.INDEX_EVERY = 3, 0.0  # (the claimed run is read again at every poll: it counts)
    mon.poll()
    assert mon.keep_index()
    RunStore(proj).run("opt-sgd-none").write_status(state="failed", error="boom")
    mon.poll()
    assert mon.keep_index() is False  # two runs read again: fewer than INDEX_CHANGED
    RunStore(proj).run("opt-adam-none").write_status(state="failed", error="bang")
    mon.poll()
    assert mon.keep_index() is True
    settle(proj)  # (both folders still for a while, as they would be at the next start)
    entries = run_index.load_index(proj)
    assert run_index.decode(entries, "opt-adam-none")["status"]["error"] == "bang"


def test_a_large_queue_file_is_parsed_once_and_again_only_when_its_text_changes(tmp_path):
    (tmp_path / "runs").mkdir()
    body = "[defaults]\nepochs = 3\n" + "".join(f"[[experiment]]\nid = 'e{i:05d}'\nlr = {1e-3 * (i + 1)!r}\n"
                                                for i in range(3000))
    assert len(body) > run_index.QUEUE_CACHE_MIN
    calls = []

    def parse(text):
        calls.append(1)
        return tomllib.loads(text)

    data = run_index.cached_toml(tmp_path, body, parse)
    assert data == tomllib.loads(body) and len(calls) == 1
    assert run_index.cached_toml(tmp_path, body, parse) == data and len(calls) == 1  # from runs/.index/queue.json
    changed = body.replace("epochs = 3", "epochs = 4")
    assert run_index.cached_toml(tmp_path, changed, parse)["defaults"]["epochs"] == 4 and len(calls) == 2
    # a date cannot be kept in JSON: parsed every time, right every time
    dated = changed + "[[experiment]]\nid = 'dated'\nnote = 2026-11-27\n"
    assert run_index.cached_toml(tmp_path, dated, parse) == tomllib.loads(dated)
    assert run_index.cached_toml(tmp_path, dated, parse) == tomllib.loads(dated) and len(calls) == 4
    small = "[defaults]\nepochs = 3\n"
    assert run_index.cached_toml(tmp_path / "elsewhere", small, parse) == {"defaults": {"epochs": 3}}


def test_rows_added_in_bulk_are_measured_like_add_row_measures_them():
    """KeyedTable adds a frame's rows without DataTable.add_row's per-row work; the columns come out as wide and the
    rows as DataTable would have them."""
    from textual.app import App
    from textual.widgets import DataTable

    rows = [(f"r{i}", (Text(f"r{i}"), Text("done" if i % 2 else "running 3/20"), Text("é" * (i % 7)),
                       Text("x\ny" if i == 5 else "-"))) for i in range(40)]

    class Two(App):
        def compose(self):
            yield KeyedTable(id="bulk")
            yield DataTable(id="plain")

    async def go():
        app = Two()
        async with app.run_test() as pilot:
            bulk, plain = app.query_one("#bulk", KeyedTable), app.query_one("#plain", DataTable)
            for t in (bulk, plain):
                for c in ("id", "state", "wide", "multi"):
                    t.add_column(c, key=c)
            bulk.sync(rows)
            for key, cells in rows:
                plain.add_row(*cells, key=key)
            await pilot.pause()
            return ([c.content_width for c in bulk.ordered_columns], [c.content_width for c in plain.ordered_columns],
                    [r.key.value for r in bulk.ordered_rows], bulk.get_row("r5"), bulk.virtual_size.height,
                    plain.virtual_size.height)

    widths, expected, keys, row5, height, plain_height = asyncio.run(go())
    assert widths == expected == [3, 12, 6, 5]  # (a label wider than its cells counts too)
    assert keys == [k for k, _ in rows] and row5[3].plain == "x\ny" and height == plain_height == 41


def test_in_a_large_project_a_finished_runs_change_shows_within_a_few_polls_and_a_training_one_at_each(tmp_path):
    """A poll stats at most FOLDER_CHECK folders of runs not training (in rotation): a change to a finished run of a
    10,000-run project shows within four polls; a run training, a claim and a folder just made at the next poll."""
    proj = project(tmp_path)
    mon = monitor(proj)
    mon.FOLDER_CHECK = 2  # 7 runs: every finished run's folder is looked at within 4 polls
    mon.poll()
    RunStore(proj).run("opt-rmsprop-plateau").write_status(state="failed", error="late")
    seen_after = None
    for k in range(1, 6):
        if "opt-rmsprop-plateau" in mon.poll():
            seen_after = k
            break
    assert seen_after is not None and seen_after <= 4
    assert mon.runs["opt-rmsprop-plateau"].error == "late"
    # the claimed run ("base", its status says running) is looked at in every poll: a line appended shows at once
    from unettui.core.runs.store import append_jsonl
    append_jsonl(RunStore(proj).run("base").file("metrics.jsonl"), metric_rows(0.5, 4)[2])
    assert "base" in mon.poll() and len(mon.runs["base"].metrics) == 3
    # a run folder made since the last poll (a runner claimed a run that had none): at the next poll
    (proj / "experiments.toml").write_text((proj / "experiments.toml").read_text() + "\n[[experiment]]\nid = 'late'\n")
    mon.poll()
    assert mon.runs["late"].state.value == "pending"
    RunStore(proj).run("late").path.mkdir(parents=True)
    RunStore(proj).run("late").write_status(state="failed", error="oom")
    assert "late" in mon.poll() and mon.runs["late"].state.value == "failed"


def test_the_app_ignores_a_poll_that_arrives_while_it_is_closing(tmp_path):
    """Quitting while a large project is still being read: the last poll's views arrive after the widgets are gone
    (this printed a NoMatches traceback on exit)."""
    from textual.widgets import TabbedContent

    from unettui.tui.app import ProjectUpdated, make_app

    proj = project(tmp_path)

    async def go():
        app = make_app(proj, poll_interval=5.0)
        async with app.run_test() as pilot:
            await pilot.pause(0.3)
            views = dict(app.monitor.runs)
            await app.query_one(TabbedContent).remove()
            app.on_project_updated(ProjectUpdated(views, set(), list(views), set(views), None))
            return len(views)

    assert asyncio.run(go()) == 7


def test_a_runner_leaves_an_index_behind_that_the_tui_then_reads_instead_of_the_run_files(tmp_path, monkeypatch):
    """The sweep-over-SSH case: `unettui run --headless` trains a large queue, the TUI is opened afterwards. The
    runner's refresh_index (called when its queue is done) writes what the TUI's monitor would have."""
    proj = project(tmp_path)
    assert run_index.refresh_index(proj) == 0 and not run_index.index_path(proj).exists()  # 7 runs: too few
    assert run_index.refresh_index(proj, min_runs=3) == 7
    reads = file_reads(monkeypatch)
    mon = monitor(proj)
    mon.poll()
    assert [r for r in reads if r.endswith(RUN_FILES)] == []
    monkeypatch.undo()
    fresh = ProjectMonitor(proj)
    fresh._index = {}  # (as if there were no index)
    fresh.poll()
    assert mon.views() == fresh.views()
    # a run being archived, or with a file that cannot be read, is left out (read from its folder next time)
    (proj / "runs" / "opt-sgd-none" / "summary.json").write_text("{torn")
    assert run_index.refresh_index(proj, min_runs=3) == 6


def test_the_runner_refreshes_the_index_when_its_queue_is_done_not_when_stopped(make_project, monkeypatch):
    from unettui import runner as runner_mod

    real = run_index.refresh_index
    calls = []
    monkeypatch.setattr(runner_mod, "refresh_index", lambda p: calls.append(p) or real(p, min_runs=1))
    proj = make_project("[[experiment]]\nid = 'a'\n")
    outcome = runner_mod.Runner(proj).run()
    assert outcome.done == ["a"] and calls == [proj]
    entries = run_index.load_index(proj)
    assert run_index.decode(entries, "a")["status"]["state"] == "done"
    stopped = runner_mod.Runner(make_project("[[experiment]]\nid = 'b'\n", name="other"))
    stopped.request_stop()
    stopped.run()
    assert len(calls) == 1


def test_a_runner_parses_a_large_queue_file_once_per_change_and_leaves_the_parse_for_the_tui(make_project,
                                                                                            monkeypatch):
    """A runner re-reads experiments.toml before every claim: a large one's parse is kept (runs/.index/queue.json)
    and reused while the text is the same; the TUI opened afterwards reads it instead of parsing again."""
    import hashlib

    from unettui import runner as runner_mod
    from unettui.core.define import queue as queue_mod

    parses: list[int] = []
    real = queue_mod.tomllib.loads
    monkeypatch.setattr(queue_mod.tomllib, "loads", lambda text: parses.append(len(text)) or real(text))
    filler = "# " + "x" * run_index.QUEUE_CACHE_MIN + "\n"  # a long comment: a file above the cache's threshold
    proj = make_project(filler + "[[experiment]]\nid = 'a'\n[[experiment]]\nid = 'b'\n")
    outcome = runner_mod.Runner(proj).run()
    text = (proj / "experiments.toml").read_text()
    kept = json.loads((proj / "runs" / run_index.INDEX_DIR / run_index.QUEUE_CACHE).read_text())
    assert outcome.done == ["a", "b"] and kept["sha1"] == hashlib.sha1(text.encode()).hexdigest()
    # three reads (before each claim, and the one that finds nothing left), two parses: the first read comes before
    # runs/ exists, where the parse is not kept (a queue is never what makes a project's runs/ folder)
    assert len(parses) == 2
    ProjectMonitor(proj).poll()
    assert len(parses) == 2


def test_a_long_queue_refreshes_the_index_now_and_then_spaced_by_what_a_refresh_costs(make_project, monkeypatch):
    """While its queue runs, a runner writes the index again every INDEX_EVERY seconds (here: after every
    experiment), and no more often than INDEX_SHARE of its time allows."""
    from unettui import runner as runner_mod

    real = run_index.refresh_index
    calls: list[float] = []
    monkeypatch.setattr(runner_mod, "refresh_index", lambda p: calls.append(time.monotonic()) or real(p, min_runs=1))
    monkeypatch.setattr(runner_mod, "INDEX_EVERY", 0.0)
    proj = make_project("[[experiment]]\nid = 'a'\n[[experiment]]\nid = 'b'\n")
    runner = runner_mod.Runner(proj)
    outcome = runner.run()
    assert outcome.done == ["a", "b"] and len(calls) == 3  # after a, after b, and when the queue is done
    assert run_index.decode(run_index.load_index(proj), "b")["status"]["state"] == "done"
    monkeypatch.setattr(runner_mod, "refresh_index", lambda p: time.sleep(0.2) or calls.append(time.monotonic()))
    runner._index_due = 0.0
    runner._keep_index()
    assert len(calls) == 4
    assert runner._index_due - time.monotonic() >= 0.2 / runner_mod.INDEX_SHARE - 0.5  # 4 s after a 0.2 s refresh
    # another runner of the same queue, due too: an index written less than INDEX_EVERY ago is left alone
    monkeypatch.setattr(runner_mod, "INDEX_EVERY", 600.0)
    beside = runner_mod.Runner(proj)
    beside._index_due = 0.0
    beside._keep_index()
    assert len(calls) == 4 and beside._index_due > time.monotonic() + 590


def test_the_garbage_collector_is_off_only_while_the_first_read_runs(tmp_path):
    import gc

    from unettui.tui.app import make_app

    proj = project(tmp_path)

    async def go():
        app = make_app(proj, poll_interval=5.0)
        async with app.run_test() as pilot:
            for _ in range(50):
                if app.monitor.complete:
                    break
                await pilot.pause(0.1)
            await pilot.pause(0.3)
            return app.monitor.complete, gc.isenabled()

    assert asyncio.run(go()) == (True, True)
    assert gc.isenabled()


def test_the_first_read_is_on_screen_before_the_index_is_written(tmp_path, monkeypatch):
    """Writing the index (0.3 s of CPU at 10,000 runs) waits until the first read's last slice is drawn: both need
    Python's GIL, and writing it meanwhile delayed the open."""
    from unettui.tui.app import make_app
    from unettui.tui.widgets.queue import QueuePanel

    proj = project(tmp_path)
    seen: list[tuple[int, int]] = []
    real = ProjectMonitor.keep_index

    def keep(mon: ProjectMonitor) -> bool:
        if mon.complete and not seen:
            seen.append((app.query_one(QueuePanel).row_count, len(mon.runs)))
        return real(mon)

    monkeypatch.setattr(ProjectMonitor, "keep_index", keep)

    async def go():
        async with app.run_test() as pilot:
            for _ in range(50):
                if run_index.index_path(proj).exists():
                    break
                await pilot.pause(0.1)

    app = make_app(proj, poll_interval=5.0)
    app.monitor.INDEX_MIN = 3
    asyncio.run(go())
    assert run_index.index_path(proj).exists() and seen and seen[0][0] == seen[0][1] > 3


def rows(n: int, wide: int | None = None) -> list[tuple[str, tuple[Text, Text]]]:
    """``n`` rows of (id, state) cells for a KeyedTable, all "done" but row ``wide`` ("interrupted": a wider cell)."""
    return [(f"r{i:05d}", (Text(f"r{i:05d}"), Text("interrupted" if i == wide else "done"))) for i in range(n)]


def id_and_state(table: KeyedTable) -> None:
    for c in ("id", "state"):
        table.add_column(c, key=c)


def test_rows_added_below_the_screen_while_more_are_coming_leave_the_size_until_the_last():
    """A first read in slices: each slice's rows go into the table at once, its size (and the screen's layout) follows
    once, at the last slice — and always when a row lands on screen."""
    from textual.app import App

    class One(App):
        def compose(self):
            yield KeyedTable(id="t")

    async def go():
        app = One()
        async with app.run_test(size=(60, 20)) as pilot:
            t = app.query_one(KeyedTable)
            id_and_state(t)
            t.sync(rows(50, wide=300), more=True)  # the screen's rows: the size follows at once
            await pilot.pause()
            first = t.virtual_size.height
            t.sync(rows(500, wide=300), more=True)  # below the screen, more to come: the size waits
            await pilot.pause()
            waiting = t.virtual_size.height, t.row_count, t.ordered_columns[1].content_width
            t.move_cursor(row=499)
            await pilot.pause()
            cursor = t.cursor_key()
            t.sync(rows(800, wide=300))  # the last slice
            await pilot.pause()
            return first, waiting, cursor, t.virtual_size.height, t.complete, t.ordered_columns[1].content_width

    first, waiting, cursor, last, complete, width = asyncio.run(go())
    # the widths wait too: row 300's "interrupted" widens its column at the last slice, in the same layout
    assert first == 51 and waiting == (51, 500, 5) and cursor == "r00499" and last == 801 and complete
    assert width == len("interrupted")


def test_a_table_as_wide_as_its_columns_keeps_its_scrollbars_room_once_its_rows_overflow():
    """Rows that overflow a ``width: auto`` table (the queue table beside the live panel) reserve the scrollbar's
    columns before they are added: one layout (one resize), not a second one when the scrollbar appears; fewer rows
    give the room back."""
    from textual.app import App
    from textual.containers import Horizontal
    from textual.widgets import Static

    class Counted(KeyedTable):
        DEFAULT_CSS = "Counted { width: auto; max-width: 60%; height: 1fr; }"
        widths: list[int] = []

        def _on_resize(self, event) -> None:
            Counted.widths.append(event.size.width)
            super()._on_resize(event)

    class Beside(App):
        def compose(self):
            with Horizontal():
                yield Counted(cursor_type="row")
                yield Static("the live panel")

    async def go():
        app = Beside()
        async with app.run_test(size=(60, 20)) as pilot:
            t = app.query_one(Counted)
            id_and_state(t)
            await pilot.pause()
            before, Counted.widths = t.size.width, []
            t.sync(rows(100), more=True)
            await pilot.pause()
            await pilot.pause(0.2)
            overflowing = list(Counted.widths), t.styles.scrollbar_gutter
            t.sync(rows(3))
            await pilot.pause()
            return before, overflowing, t.styles.scrollbar_gutter

    before, (widths, gutter), fewer = asyncio.run(go())
    # once, to the id column's width and the scrollbar's 2 (before: 15, then 17 when the scrollbar appeared)
    assert widths == [before + len("r00000") - len("id") + 2] and gutter == "stable"
    assert fewer == "auto"
