"""Never lose a run to the terminal, never train one twice, never show a stale result as current.

Real processes and signals: a closed pipe, SIGSTOP/SIGCONT, a second machine (UNETTUI_HOST) taking a claim over,
a kill between two file moves, a definition or a dataset changed under a run."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from tests.helpers import run_cli, unettui_cmd
from unettui.core.runs.store import RunStore

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def wait_for(predicate, timeout=90.0, step=0.05, proc=None):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        if proc is not None and proc.poll() is not None:
            return predicate()
        time.sleep(step)
    return False


def lines(proj, run_id):
    return len(RunStore(proj).run(run_id).metrics())


def epochs(proj, run_id):
    return [m["epoch"] for m in RunStore(proj).run(run_id).metrics()]


def start(proj, *extra, host=None, stdout=subprocess.DEVNULL, **kw):
    env = {**ENV, **({"UNETTUI_HOST": host} if host else {})}
    return subprocess.Popen(unettui_cmd("run", "--headless", "--threads", "1", "--plain", "-p", str(proj), *extra),
                            stdout=stdout, stderr=subprocess.STDOUT if stdout is subprocess.PIPE else subprocess.DEVNULL,
                            env=env, text=True, **kw)


# ---- output is not the experiment ------------------------------------------------------------


def test_a_closed_pipe_does_not_fail_the_run_and_training_goes_on(make_project):
    """`unettui run --headless | head -1`: the reader goes away after one line; the run trains to its end."""
    proj = make_project("[[experiment]]\nid = 'p'\nepochs = 6\n")
    proc = start(proj, stdout=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()  # the reader is gone: every later write gets EPIPE
    assert proc.wait(timeout=120) == 0
    run = RunStore(proj).run("p")
    assert run.status()["state"] == "done" and epochs(proj, "p") == [1, 2, 3, 4, 5, 6]
    assert "progress output failed (BrokenPipeError" in run.file("run.log").read_text()


@pytest.mark.slow
def test_ctrl_c_with_the_pipe_gone_leaves_the_run_interrupted_not_failed(make_project):
    """`unettui run --headless | tee out.txt` then Ctrl-C: tee dies with the pipe; the run must stay resumable."""
    proj = make_project("[[experiment]]\nid = 't'\nepochs = 30\nnum_images = 32\n")
    proc = start(proj, stdout=subprocess.PIPE)
    proc.stdout.readline()
    assert wait_for(lambda: lines(proj, "t") >= 1, proc=proc)
    proc.stdout.close()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    st = RunStore(proj).run("t").status()
    assert st["state"] == "interrupted" and st["error"] is None, st
    done = lines(proj, "t")
    out = run_cli("run", "--headless", "--threads", "1", "-p", str(proj), timeout=600)
    assert out.returncode == 0 and f"t: resumed at epoch {done}" in out.stdout, out.stdout[-500:]


def test_killing_the_workers_parent_leaves_its_workers_training(make_project):
    proj = make_project("[[experiment]]\nid = 'w1'\nepochs = 12\nnum_images = 32\n"
                        "[[experiment]]\nid = 'w2'\nepochs = 12\nnum_images = 32\nseed = 1\n")
    parent = start(proj, "--workers", "2", stdout=subprocess.PIPE, start_new_session=True)
    assert wait_for(lambda: lines(proj, "w1") >= 1 and lines(proj, "w2") >= 1, proc=parent)
    parent.kill()  # kill -9 of the parent: the workers' stdout pipe breaks
    parent.wait()
    store = RunStore(proj)
    assert wait_for(lambda: all((store.run(i).status() or {}).get("state") == "done" for i in ("w1", "w2")),
                    timeout=180), [store.run(i).status() for i in ("w1", "w2")]
    assert epochs(proj, "w1") == list(range(1, 13)) and epochs(proj, "w2") == list(range(1, 13))
    os.killpg(parent.pid, signal.SIGKILL) if _group_alive(parent.pid) else None


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except OSError:
        return False
    return True


# ---- claims are fenced --------------------------------------------------------------------


@pytest.mark.slow
def test_a_suspended_runner_keeps_its_claim_on_this_machine(make_project):
    """Ctrl-Z (SIGSTOP) longer than --stale-after: a second runner must not train the same run."""
    proj = make_project("[[experiment]]\nid = 'z'\nepochs = 25\nnum_images = 32\n")
    a = start(proj)
    try:
        assert wait_for(lambda: lines(proj, "z") >= 2, proc=a)
        a.send_signal(signal.SIGSTOP)
        time.sleep(6.5)  # older than --stale-after 5 and than a heartbeat interval
        b = run_cli("run", "--headless", "--threads", "1", "--stale-after", "5", "-p", str(proj), timeout=120)
        assert b.returncode == 0, b.stdout
        assert "z:" not in b.stdout and "0 to run" in b.stdout  # nothing taken over
    finally:
        a.send_signal(signal.SIGCONT)
    assert a.wait(timeout=300) == 0
    run = RunStore(proj).run("z")
    assert epochs(proj, "z") == list(range(1, 26))
    assert run.file("run.log").read_text().count("claimed by") == 1


@pytest.mark.slow
def test_a_runner_whose_claim_was_taken_over_stops_touching_the_run(make_project):
    """Another machine (UNETTUI_HOST) takes over a claim whose heartbeat went stale while its runner was
    suspended; when that runner wakes, it notices the new token and writes nothing more to the run."""
    proj = make_project("[[experiment]]\nid = 'f'\nepochs = 30\nnum_images = 32\n")
    a = start(proj, host="node-a", stdout=subprocess.PIPE)
    st_file = proj / "runs" / "f" / "status.json"
    try:
        assert wait_for(lambda: lines(proj, "f") >= 2, proc=a)
        a.send_signal(signal.SIGSTOP)
        assert wait_for(lambda: time.time() - json.loads(st_file.read_text())["heartbeat"] > 5.5, timeout=30)
        b = run_cli("run", "--headless", "--threads", "1", "--stale-after", "5", "-p", str(proj), timeout=300,
                    env={**ENV, "UNETTUI_HOST": "node-b"})
        assert b.returncode == 0, b.stdout
        assert "f: taking over the stale claim of node-a" in b.stdout
    finally:
        a.send_signal(signal.SIGCONT)
    out, _ = a.communicate(timeout=120)
    assert a.returncode == 0, out
    assert "its claim was taken over by node-b" in out
    run = RunStore(proj).run("f")
    time.sleep(0.5)
    assert run.status()["host"] == "node-b" and run.status()["state"] == "done"
    assert epochs(proj, "f") == list(range(1, 31))  # every epoch once: no second writer
    log = run.file("run.log").read_text()
    assert log.rstrip().endswith("done") and "claimed by" in log


# ---- redefinitions and data changes ---------------------------------------------------------


def test_a_redefined_experiment_is_shown_changed_and_trained_again_keeping_the_old_attempt(make_project):
    proj = make_project("[[experiment]]\nid = 'a'\n[[experiment]]\nid = 'b'\n")
    assert run_cli("run", "--headless", "-p", str(proj)).returncode == 0
    old = json.loads((proj / "runs" / "b" / "summary.json").read_text())
    assert run_cli("rm", "b", "-p", str(proj)).returncode == 0
    assert run_cli("add", "--id", "b", "--set", "optimizer=sgd", "-p", str(proj)).returncode == 0

    ls = run_cli("ls", "-p", str(proj)).stdout
    row = next(line for line in ls.splitlines() if line.startswith("b "))
    assert row.split()[1] == "changed" and "definition changed (optimizer" in row
    assert "1 done, 1 changed" in ls
    show = " ".join(run_cli("show", "b", "-p", str(proj)).stdout.split())
    assert "b: changed, attempt 1" in show
    assert "changed: definition changed (optimizer adam -> sgd); trains again from scratch" in show
    export = run_cli("export", "-p", str(proj)).stdout
    assert any(line.startswith("b,changed,true,1,") for line in export.splitlines()), export

    out = run_cli("run", "--headless", "-p", str(proj))
    assert out.returncode == 0, out.stdout
    assert "b: definition changed (optimizer adam -> sgd): the earlier attempt is kept in runs/b/attempts/1" in out.stdout
    run = RunStore(proj).run("b")
    assert run.status()["state"] == "done" and run.status()["attempt"] == 2
    assert run.config()["optimizer"] == "sgd" and epochs(proj, "b") == [1, 2]
    kept = json.loads((run.path / "attempts" / "1" / "summary.json").read_text())
    assert kept == old  # the earlier numbers are kept, not lost
    assert json.loads((run.path / "attempts" / "1" / "config.json").read_text())["optimizer"] == "adam"
    assert RunStore(proj).run("a").status()["attempt"] == 1  # untouched


def _pairs(folder: Path, n: int, start: int = 0):
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(start)
    for i in range(start, start + n):
        img = (rng.random((32, 32)) * 255).astype(np.uint8)
        mask = np.zeros((32, 32), np.uint8)
        mask[8:20, 6 + i % 8:18 + i % 8] = 255
        iio.imwrite(folder / "images" / f"c{i:03d}.png", img)
        iio.imwrite(folder / "masks" / f"c{i:03d}.png", mask)


def test_an_interrupted_run_does_not_resume_on_a_changed_dataset(make_project):
    proj = make_project("[[experiment]]\nid = 'd'\ndataset = 'data'\nepochs = 300\n")
    _pairs(proj / "data", 12)
    a = start(proj)
    assert wait_for(lambda: lines(proj, "d") >= 2, proc=a)
    a.send_signal(signal.SIGINT)
    assert a.wait(timeout=60) == 130
    before = epochs(proj, "d")
    _pairs(proj / "data", 12, start=12)  # 12 more images: a different dataset
    ls = run_cli("ls", "-p", str(proj)).stdout
    assert next(line for line in ls.splitlines() if line.startswith("d ")).split()[1] == "changed"
    show = " ".join(run_cli("show", "d", "-p", str(proj)).stdout.split())
    assert "dataset data changed since this run (12 images then, 24 now); trains again from scratch" in show
    b = start(proj, stdout=subprocess.PIPE)
    assert wait_for(lambda: (proj / "runs" / "d" / "attempts" / "1" / "metrics.jsonl").exists()
                    and lines(proj, "d") >= 1, proc=b)
    b.send_signal(signal.SIGINT)
    out, _ = b.communicate(timeout=60)
    assert "d: dataset data changed since this run (12 images then, 24 now): the earlier attempt is kept" in out
    assert "resumed" not in out and "d: started on cpu, amp off, 19 train / 5 val images" in out
    archived = [json.loads(x)["epoch"] for x in (proj / "runs" / "d" / "attempts" / "1" / "metrics.jsonl").read_text().splitlines()]
    assert archived == before and epochs(proj, "d")[0] == 1


def test_removing_a_running_experiment_stops_it_after_its_epoch(make_project):
    proj = make_project("[[experiment]]\nid = 'keep'\n[[experiment]]\nid = 'gone'\nepochs = 300\nnum_images = 32\n")
    a = start(proj, "--only", "gone", stdout=subprocess.PIPE)
    assert wait_for(lambda: lines(proj, "gone") >= 1, proc=a)
    rm = run_cli("rm", "gone", "-p", str(proj))
    assert rm.returncode == 0 and "gone is being trained by" in rm.stdout and "stops it after the current epoch" in rm.stdout
    out, _ = a.communicate(timeout=60)
    assert a.returncode == 0, out
    assert "gone: stopped after epoch" in out and "removed from experiments.toml" in out
    st = RunStore(proj).run("gone").status()
    assert st["state"] == "interrupted" and lines(proj, "gone") < 300


def test_redefining_a_running_experiment_restarts_it_with_the_new_definition(make_project):
    proj = make_project("[[experiment]]\nid = 'r'\nepochs = 300\nnum_images = 32\n")
    a = start(proj, stdout=subprocess.PIPE)
    assert wait_for(lambda: lines(proj, "r") >= 1, proc=a)
    text = (proj / "experiments.toml").read_text().replace("epochs = 300", "epochs = 3")
    (proj / "experiments.toml").write_text(text)
    out, _ = a.communicate(timeout=120)
    assert a.returncode == 0, out
    assert "r: stopped after epoch" in out and "its definition changed in experiments.toml" in out
    assert "r: definition changed (epochs 300 -> 3): the earlier attempt is kept in runs/r/attempts/1" in out
    run = RunStore(proj).run("r")
    assert run.status()["state"] == "done" and epochs(proj, "r") == [1, 2, 3] and run.status()["attempt"] == 2
    assert (run.path / "attempts" / "1" / "metrics.jsonl").read_text().count("\n") >= 1


# ---- multi-file operations ----------------------------------------------------------------------


KILL_AFTER_FIRST_MOVE = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    calls = []
    real = os.replace
    def replace(src, dst):
        if "attempts" in str(dst):
            calls.append(dst)
            if len(calls) == 2:  # one file moved, the second about to be: die here
                os.kill(os.getpid(), signal.SIGKILL)
        return real(src, dst)
    os.replace = replace
    from unettui.core.define import edit
    from unettui.core.runs import retry as retry_mod
    retry_mod.retry(Path(sys.argv[1]), [sys.argv[2]])
""")


@pytest.mark.slow
def test_a_kill_between_two_moves_of_retry_loses_nothing(make_project):
    proj = make_project("[[experiment]]\nid = 'k'\nepochs = 3\n")
    assert run_cli("run", "--headless", "-p", str(proj)).returncode == 0
    run = RunStore(proj).run("k")
    old_metrics = run.file("metrics.jsonl").read_text()
    killed = subprocess.run([sys.executable, "-c", KILL_AFTER_FIRST_MOVE, str(proj), "k"], env=ENV)
    assert killed.returncode == -signal.SIGKILL
    assert (run.path / ".archiving.json").exists() and (run.path / "checkpoint.pt").exists()  # half-done
    ls = run_cli("ls", "-p", str(proj)).stdout
    assert next(line for line in ls.splitlines() if line.startswith("k ")).split()[1] == "pending"
    out = run_cli("run", "--headless", "-p", str(proj))
    assert out.returncode == 0, out.stdout
    assert "k: started on" in out.stdout and "resumed" not in out.stdout  # from scratch, not the old checkpoint
    assert epochs(proj, "k") == [1, 2, 3] and run.status()["attempt"] == 2
    kept = run.path / "attempts" / "1"
    assert (kept / "metrics.jsonl").read_text() == old_metrics
    assert sorted(p.name for p in kept.iterdir()) == ["config.json", "images.json", "metrics.jsonl", "run.log",
                                                       "split.json", "status.json", "summary.json"]
    assert not (run.path / ".archiving.json").exists()


def test_stray_temporary_files_of_a_killed_write_are_cleaned_on_the_next_claim(make_project):
    proj = make_project("[[experiment]]\nid = 's'\nepochs = 2\n")
    run = RunStore(proj).run("s")
    run.path.mkdir(parents=True)
    (run.path / ".checkpoint.pt.x1y2.tmp").write_bytes(b"\0" * 1000)  # what a kill -9 mid-checkpoint leaves
    out = run_cli("run", "--headless", "-p", str(proj))
    assert out.returncode == 0
    assert not list(run.path.glob("*.tmp")) and not list(run.path.glob(".*.tmp"))
    assert "removed 1 temporary file of an interrupted write" in run.file("run.log").read_text()


# ---- configurations that cannot train -----------------------------------------------------------


def test_preview_count_zero_trains_without_previews(make_project):
    proj = make_project("[[experiment]]\nid = 'n'\npreview_count = 0\n")
    out = run_cli("run", "--headless", "-p", str(proj))
    assert out.returncode == 0, out.stdout
    run = RunStore(proj).run("n")
    assert run.status()["state"] == "done" and not list(run.path.glob("preview_*"))


@pytest.mark.parametrize("entry, needle", [
    ("image_size = 8\ndepth = 3\nbatch_size = 4\ndataset = 'FOLDER'",
     "batch_size: 4: the last training batch holds 1 image (13 training images) and the bottleneck is 1x1 pixel"),
    ("base_channels = 4096", "base_channels: 4096: training needs about"),
    ("num_images = 1000000000", "num_images: 1000000000: training needs about"),
])
def test_a_run_that_cannot_train_fails_at_once_with_checks_message(make_project, entry, needle):
    proj = make_project("[[experiment]]\nid = 'x'\n" + entry.replace("FOLDER", "data") + "\n")
    if "FOLDER" in entry:
        _pairs(proj / "data", 16)
    t0 = time.time()
    check = run_cli("check", "-p", str(proj))
    assert check.returncode == 1 and needle in check.stdout and time.time() - t0 < 30, check.stdout
    out = run_cli("run", "--headless", "-p", str(proj))
    assert out.returncode == 1
    st = RunStore(proj).run("x").status()
    assert st["state"] == "failed" and needle in st["error"] and st["epoch"] == 0
