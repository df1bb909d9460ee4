"""Run files rewritten in place (``open(path, "w")`` by a user or a script: no rename, so the run folder's mtime does
not move): the run index does not trust an entry whose files changed since it was read, and a poll shows the edit of
a run that is not running at once (the folder's own mtime is put back in each test, as on a filesystem where it did
not move at all)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from unettui.core.runs import index as run_index
from unettui.core.runs.reader import read_folder, stamps_of
from unettui.tui.data import ProjectMonitor

from .fixtures import seeded_project, wait_for
from .test_index import file_reads, settle

RUN_FILES = ("status.json", "config.json", "summary.json")


def settled_project(tmp_path: Path) -> Path:
    """Six finished runs and a pending one, every run folder and file dated a minute back."""
    proj = seeded_project(tmp_path / "p")
    settle(proj)
    return proj


def edit_in_place(path: Path, **changes) -> None:
    """Rewrite a run's JSON file in place with ``changes`` applied; its folder's mtime is put back as it was."""
    folder = os.stat(path.parent).st_mtime_ns
    data = json.loads(path.read_text())
    data.update(changes)
    with open(path, "w") as fh:  # truncates and writes the same inode
        json.dump(data, fh)
    os.utime(path.parent, ns=(folder, folder))
    assert os.stat(path.parent).st_mtime_ns == folder


def run_file(proj: Path, run_id: str, name: str) -> Path:
    return proj / "runs" / run_id / name


def test_an_index_entry_is_used_only_while_each_file_it_holds_has_the_stamp_it_had_when_read(tmp_path):
    proj = settled_project(tmp_path)
    mon = ProjectMonitor(proj)
    mon.INDEX_MIN = 3
    mon.poll()
    assert mon.keep_index()
    index = run_index.load_index(proj)

    def trusted(run_id: str) -> bool:
        item = run_index.decode(dict(index), run_id)  # (a copy: decode takes the line out)
        folder = str(proj / "runs" / run_id)
        return run_index.trusted(item, run_index.folder_stamp(folder), folder)

    assert all(trusted(f"opt-{o}-{s}") for o in ("adam", "sgd", "rmsprop") for s in ("none", "plateau"))
    # each file it holds, rewritten in place (another size, a new mtime): not trusted
    edit_in_place(run_file(proj, "opt-adam-none", "status.json"), state="failed")
    edit_in_place(run_file(proj, "opt-adam-plateau", "summary.json"), best_val_dice=0.5)
    edit_in_place(run_file(proj, "opt-sgd-none", "config.json"), lr=0.5)
    assert not trusted("opt-adam-none") and not trusted("opt-adam-plateau") and not trusted("opt-sgd-none")
    # the same size and a new mtime; the same mtime and another size; a file removed: not trusted either
    path = run_file(proj, "opt-sgd-plateau", "status.json")
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    path = run_file(proj, "opt-rmsprop-none", "summary.json")
    st = os.stat(path)
    with open(path, "a") as fh:
        fh.write(" ")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert not trusted("opt-sgd-plateau") and not trusted("opt-rmsprop-none")
    folder = proj / "runs" / "opt-rmsprop-plateau"
    before = os.stat(folder).st_mtime_ns
    os.unlink(folder / "config.json")
    os.utime(folder, ns=(before, before))  # (removing a file moves its folder's mtime: put back, the file is gone)
    assert not trusted("opt-rmsprop-plateau")


def test_an_entry_holding_a_file_changed_just_before_it_was_read_is_not_trusted(tmp_path):
    """A rewrite in the same clock tick as the read (coarse on some filesystems) keeps the file's stamp: a file
    changed less than SETTLED seconds before its read does not vouch for what was read."""
    proj = settled_project(tmp_path)
    folder = str(proj / "runs" / "opt-adam-none")
    now = time.time()
    files, state = read_folder(folder, "opt-adam-none", lines=False)
    stamps = stamps_of("opt-adam-none", state)

    def entry(read_at: float) -> dict:
        return run_index.entry(run_index.folder_stamp(folder), read_at, stamps, files)

    assert run_index.trusted(entry(now), run_index.folder_stamp(folder), folder)
    newest = max(mtime for mtime, _ in stamps.values())
    assert not run_index.trusted(entry(newest + run_index.SETTLED - 0.5), run_index.folder_stamp(folder), folder)
    assert run_index.trusted(entry(newest + run_index.SETTLED + 0.5), run_index.folder_stamp(folder), folder)


def test_a_reopened_project_reads_a_run_edited_in_place_from_its_folder_and_the_others_from_the_index(
        tmp_path, monkeypatch):
    proj = settled_project(tmp_path)
    first = ProjectMonitor(proj)
    first.INDEX_MIN = 3
    first.poll()
    assert first.keep_index()
    edit_in_place(run_file(proj, "opt-sgd-none", "status.json"), state="failed", error="edited in place")
    edit_in_place(run_file(proj, "opt-adam-plateau", "summary.json"), best_val_dice=0.123)
    reads = file_reads(monkeypatch)
    again = ProjectMonitor(proj)
    again.poll()
    assert again.runs["opt-sgd-none"].state.value == "failed" and again.runs["opt-sgd-none"].error == "edited in place"
    assert again.runs["opt-adam-plateau"].best_val_dice == 0.123
    # (the pending run's status.json is tried too: it has no folder)
    read = {Path(r).parent.name for r in reads if r.endswith(RUN_FILES) and Path(r).parent.is_dir()}
    assert read == {"opt-sgd-none", "opt-adam-plateau"}
    assert again.runs["opt-rmsprop-none"] == first.runs["opt-rmsprop-none"]


def test_a_poll_shows_a_finished_runs_file_edited_in_place_at_once_and_reads_nothing_when_nothing_changed(
        tmp_path, monkeypatch):
    proj = settled_project(tmp_path)
    mon = ProjectMonitor(proj)
    mon.FULL_CHECK = 0  # no run's every file in rotation (7 runs: all of them at each poll, as in up to 50 runs)
    mon.poll()
    reads = file_reads(monkeypatch)
    assert mon.poll() == set() and [r for r in reads if r.endswith(RUN_FILES)] == []  # stat-ed, not read
    edit_in_place(run_file(proj, "opt-sgd-none", "status.json"), state="failed", error="edited in place")
    assert "opt-sgd-none" in mon.poll()
    assert mon.runs["opt-sgd-none"].state.value == "failed" and mon.runs["opt-sgd-none"].error == "edited in place"
    edit_in_place(run_file(proj, "opt-adam-none", "summary.json"), best_val_dice=0.5)
    assert mon.poll() == {"opt-adam-none"} and mon.runs["opt-adam-none"].best_val_dice == 0.5
    edit_in_place(run_file(proj, "opt-rmsprop-none", "config.json"), lr=0.25)
    assert "opt-rmsprop-none" in mon.poll() and mon.runs["opt-rmsprop-none"].config["lr"] == 0.25
    # a larger project stats its finished runs' folders and files in rotation: within a few polls there
    mon.FOLDER_CHECK = 2  # 7 runs: each looked at within 4 polls
    edit_in_place(run_file(proj, "opt-rmsprop-plateau", "status.json"), state="failed", error="late")
    assert any("opt-rmsprop-plateau" in mon.poll() for _ in range(4))
    assert mon.runs["opt-rmsprop-plateau"].error == "late"


def test_a_file_read_just_after_it_changed_is_read_once_more_when_it_has_settled(tmp_path, monkeypatch):
    """A rewrite in the same clock tick as the file's last change keeps its stamp (coarse clocks on some
    filesystems): a file read less than SETTLED seconds after it changed is read once more when they have passed, so
    a second rewrite of the same size and mtime still shows (not at once: a stamp that changed shows at once)."""
    from unettui.core.runs import reader

    monkeypatch.setattr(reader, "SETTLED", 0.3)  # (2 s in use: the test would wait that long)
    proj = settled_project(tmp_path)
    mon = ProjectMonitor(proj)
    mon.FULL_CHECK = 0
    mon.poll()
    path = run_file(proj, "opt-sgd-none", "status.json")
    edit_in_place(path, state="failed", error="first")
    assert "opt-sgd-none" in mon.poll() and mon.runs["opt-sgd-none"].error == "first"
    st = os.stat(path)
    edit_in_place(path, error="other")  # the same size ...
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # ... and the same mtime: the stamp read last time
    assert os.stat(path).st_size == st.st_size
    if time.time() < st.st_mtime + 0.3:  # (a slow machine may be past it already)
        assert mon.poll() == set()
    time.sleep(max(0.0, st.st_mtime + 0.3 - time.time()) + 0.01)
    assert "opt-sgd-none" in mon.poll() and mon.runs["opt-sgd-none"].error == "other"
    assert mon.poll() == set()  # settled now: stat-ed, not read


def test_the_tui_shows_a_run_file_edited_in_place_at_the_first_poll_after_the_edit(tmp_path):
    from unettui.tui.app import make_app
    from unettui.tui.widgets.queue import QueuePanel

    proj = settled_project(tmp_path)
    app = make_app(proj, poll_interval=1.0)
    app.monitor.FULL_CHECK = 0  # (7 runs: else every file of each is stat-ed in every poll, as in up to 50 runs)
    polls: list[tuple[float, set[str]]] = []  # (when each poll started, what it found changed)
    real_poll = app.monitor.poll

    def poll(budget=None):
        started = time.monotonic()
        changed = real_poll(budget)
        polls.append((started, changed))
        return changed

    app.monitor.poll = poll

    def first_poll_after(t: float) -> set[str] | None:
        return next((changed for started, changed in polls if started > t), None)

    async def go():
        async with app.run_test(size=(120, 30)) as pilot:
            table = app.query_one(QueuePanel)
            assert await wait_for(pilot, lambda: table.row_count == 7 and app.monitor.complete)
            assert table.get_cell("opt-sgd-none", "status").plain == "done"
            edit_in_place(run_file(proj, "opt-sgd-none", "status.json"), state="failed", error="edited in place")
            edited = time.monotonic()
            app.refresh_now()  # the next poll now (the periodic one, sooner)
            assert await wait_for(pilot, lambda: first_poll_after(edited) is not None, timeout=10)
            assert "opt-sgd-none" in first_poll_after(edited)
            assert await wait_for(pilot, lambda: table.get_cell("opt-sgd-none", "status").plain == "failed",
                                  timeout=5)
            assert app.views["opt-sgd-none"].error == "edited in place"
            assert table.get_cell("opt-adam-none", "best").plain == "0.8200"
            edit_in_place(run_file(proj, "opt-adam-none", "summary.json"), best_val_dice=0.5)
            edited = time.monotonic()
            app.refresh_now()
            assert await wait_for(pilot, lambda: first_poll_after(edited) is not None, timeout=10)
            assert "opt-adam-none" in first_poll_after(edited)
            assert await wait_for(pilot, lambda: table.get_cell("opt-adam-none", "best").plain == "0.5000",
                                  timeout=5)

    asyncio.run(go())
