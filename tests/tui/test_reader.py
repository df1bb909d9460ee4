"""One run reader (core.runs.reader): the CLI's read_run and the TUI's incremental reader (RunReader, what the
monitor uses) give the same RunFiles for the same run folder, whatever state its files are in; a file declared in
RUN_FILES, and nowhere else, is read by both, watched by the TUI and held by the run index."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from unettui.core.define.config import Config
from unettui.core.runs import index as run_index
from unettui.core.runs.reader import OBJECT, RUN_FILES, RunFile, RunFiles, RunReader, folder_stamp, read_run
from unettui.core.runs.status import collect
from unettui.core.runs.store import RunStore, atomic_write_json

from .fixtures import metric_rows, seeded_project, write_run
from .test_index import file_reads, settle

CFG = Config(dataset="synthetic:nuclei", num_images=16, image_size=32, base_channels=4, depth=2, epochs=4, batch_size=4)


def incremental(reader: RunReader, run_id: str, wanted: bool = True) -> RunFiles:
    """What the TUI's reader makes of the run now (its folder's stamp taken first, as the monitor does)."""
    folder = f"{reader.root}/{run_id}"
    got = reader.read(run_id, os.path.isdir(folder), folder_stamp(folder), time.time(), wanted, must=True)
    assert got is not None
    return got


def test_the_clis_read_run_and_the_tuis_incremental_reader_read_a_run_folder_alike(tmp_path):
    proj = tmp_path / "p"
    write_run(proj, "r", CFG, metric_rows(0.5, 2), state="running")
    run = RunStore(proj).run("r")
    # a torn config.json, a line that is not JSON, a line half written, an archive in progress, two earlier attempts
    run.file("config.json").write_text('{"lr": 0.001, "optim')
    with open(run.file("metrics.jsonl"), "a") as fh:
        fh.write('not json\n{"epoch": 3, "val_d')
    atomic_write_json(run.file(".archiving.json"), {"attempt": 3})
    for n in ("1", "2"):
        (run.path / "attempts" / n).mkdir(parents=True)
    reader = RunReader(str(proj / "runs"))
    first = incremental(reader, "r")
    cli = read_run(run)
    assert first == cli
    assert cli.config is None and cli.archiving and cli.attempts == 2 and len(cli.metrics) == 2
    assert cli.problems == ["runs/r/config.json is not valid JSON (torn or hand-edited)",
                            "runs/r/metrics.jsonl: 1 unreadable line skipped"]

    # the half-written line finished and one more; config.json repaired; the archive done; status.json damaged
    with open(run.file("metrics.jsonl"), "a") as fh:
        fh.write('ice": 0.4}\n{"epoch": 4, "val_dice": 0.45}\n')
    atomic_write_json(run.file("config.json"), {"id": "r", **CFG.to_dict()})
    run.file(".archiving.json").unlink()
    (run.path / "attempts" / "3").mkdir()
    run.file("status.json").write_text("[1, 2]")
    again = incremental(reader, "r")
    assert again == read_run(run)
    assert [m["epoch"] for m in again.metrics] == [1, 2, 3, 4] and again.config["lr"] == CFG.lr
    assert again.status_problem == "runs/r/status.json holds a list, not a JSON object"
    assert not again.archiving and again.attempts == 3
    # metrics.jsonl rewritten from the start (a resumed run): read again whole by both
    run.file("metrics.jsonl").write_text('{"epoch": 1}\n')
    assert incremental(reader, "r") == read_run(run)

    # a finished run without its curves asked for: neither reads its metrics.jsonl
    write_run(proj, "done", CFG, metric_rows(0.7, 4))
    assert incremental(reader, "done", wanted=False) == read_run(RunStore(proj).run("done"), metrics=False)
    assert reader.follow("done") == read_run(RunStore(proj).run("done"))
    # a run without a folder (pending)
    assert incremental(reader, "nothing") == read_run(RunStore(proj).run("nothing")) == RunFiles()


def test_a_run_read_from_an_index_entry_is_what_read_run_reads(tmp_path):
    proj = seeded_project(tmp_path / "p")
    settle(proj)
    assert run_index.refresh_index(proj, min_runs=1) == 6
    index = run_index.load_index(proj)
    reader = RunReader(str(proj / "runs"))
    for run in RunStore(proj).runs():
        item = run_index.decode(index, run.id)
        folder = str(run.path)
        assert run_index.trusted(item, folder_stamp(folder), folder)
        got = reader.adopt(run.id, folder_stamp(folder), *run_index.files_of(item), wanted=True)
        assert got == read_run(run)


def test_a_run_file_declared_in_the_readers_table_is_read_by_the_cli_and_the_tui_and_held_by_the_index(
        tmp_path, monkeypatch):
    from unettui.tui.data import ProjectMonitor

    proj = seeded_project(tmp_path / "p")
    atomic_write_json(proj / "runs" / "opt-adam-none" / "notes.json", {"note": "lr too high?"})
    (proj / "runs" / "opt-sgd-none" / "notes.json").write_text('["not", "an object"]')
    settle(proj)
    old = ProjectMonitor(proj)
    old.INDEX_MIN = 3
    old.poll()
    assert old.keep_index()  # an index written before notes.json was declared: not used once it is
    RUN_FILES.add(RunFile("notes.json", OBJECT))
    try:
        store = RunStore(proj)
        cli = read_run(store.run("opt-adam-none"))
        assert cli.more == {"notes.json": {"note": "lr too high?"}}
        assert read_run(store.run("opt-rmsprop-none")).more == {"notes.json": None}
        assert read_run(store.run("opt-sgd-none")).problems == [
            "runs/opt-sgd-none/notes.json holds a list, not a JSON object"]
        rows = {r.id: r for r in collect(None, store)}
        assert rows["opt-sgd-none"].problems == ["runs/opt-sgd-none/notes.json holds a list, not a JSON object"]

        # the TUI: read with the others, the same as read_run; an edit in place shows at the next poll
        reads = file_reads(monkeypatch)
        mon = ProjectMonitor(proj)
        mon.INDEX_MIN, mon.FULL_CHECK = 3, 0
        mon.poll()
        assert any(r.endswith("opt-rmsprop-none/notes.json") for r in reads)  # the old index: not used
        reader = RunReader(str(proj / "runs"))
        for run in store.runs():
            assert incremental(reader, run.id) == read_run(run)
        assert mon.runs["opt-sgd-none"].problems == ["runs/opt-sgd-none/notes.json holds a list, not a JSON object"]
        path = proj / "runs" / "opt-adam-none" / "notes.json"
        folder_mtime = os.stat(path.parent).st_mtime_ns
        with open(path, "w") as fh:  # in place: the folder's mtime is put back
            json.dump(["now", "a list"], fh)
        os.utime(path.parent, ns=(folder_mtime, folder_mtime))
        assert "opt-adam-none" in mon.poll()
        assert mon.runs["opt-adam-none"].problems == ["runs/opt-adam-none/notes.json holds a list, not a JSON object"]
        atomic_write_json(path, {"note": "fine after all"})

        # the index: each entry holds it, with its stamp; a reopened project reads it from there
        settle(proj)
        assert run_index.refresh_index(proj, min_runs=3) == 5  # (opt-sgd-none: a file that cannot be read)
        item = run_index.decode(run_index.load_index(proj), "opt-adam-none")
        assert item["notes.json"] == {"note": "fine after all"} and "notes.json" in item["stamps"]
        assert run_index.files_of(item)[0] == read_run(store.run("opt-adam-none"), metrics=False)
        reads.clear()
        again = ProjectMonitor(proj)
        again.poll()
        # (the pending run's status.json is tried too: it has no folder)
        assert {Path(r).parent.name for r in reads if r.endswith(".json") and Path(r).parent.is_dir()} == {
            "opt-sgd-none"}
        mon.poll()
        assert again.views() == mon.views()
    finally:
        RUN_FILES.remove("notes.json")
    assert [f.name for f in RUN_FILES] == ["status.json", "config.json", "summary.json", "metrics.jsonl",
                                           ".archiving.json", "attempts"]


def test_a_run_file_declared_twice_or_of_an_unknown_kind_is_refused_with_a_sentence_that_says_which():
    import pytest

    with pytest.raises(ValueError, match=r"run file 'metrics.jsonl' is declared already"):
        RUN_FILES.add(RunFile("metrics.jsonl", OBJECT))
    with pytest.raises(ValueError, match=r"run file 'notes.yaml': unknown kind 'yaml' \(one of object, lines"):
        RUN_FILES.add(RunFile("notes.yaml", "yaml"))
    assert [f.name for f in RUN_FILES][-1] == "attempts"
