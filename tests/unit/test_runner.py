"""The runner over real processes: resume after kill -9 equals an uninterrupted run; failures don't stop the queue."""

import json
import os
import signal
import subprocess
import time

import pytest

from tests.helpers import run_cli, unettui_cmd
from unettui.core.runs.store import RunStore

KEYS = ("epoch", "train_loss", "train_dice", "val_loss", "val_dice", "val_iou", "lr")


def metrics(proj, run_id):
    return [{k: m[k] for k in KEYS} for m in RunStore(proj).run(run_id).metrics()]


def wait_for_lines(path, n, proc, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        if path.exists() and path.read_text().count("\n") >= n:
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    return False


@pytest.mark.slow
def test_resume_after_kill_9_reproduces_the_uninterrupted_run(make_project):
    body = "[[experiment]]\nid = 'r'\nepochs = 6\nnum_images = 48\ndropout = 0.1\naugment.rotate = 10\naugment.hflip = 0.5\nscheduler = 'step'\nlr_step_size = 2\n"
    ref = make_project(body, name="ref")
    got = make_project(body, name="got")
    out = run_cli("run", "--headless", "--threads", "1", "-p", str(ref))
    assert out.returncode == 0, out.stderr

    proc = subprocess.Popen(unettui_cmd("run", "--headless", "--threads", "1", "-p", str(got)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    mfile = got / "runs" / "r" / "metrics.jsonl"
    assert wait_for_lines(mfile, 2, proc), "the runner finished or stalled before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = len(metrics(got, "r"))
    assert 2 <= killed_at < 6
    status = json.loads((got / "runs" / "r" / "status.json").read_text())
    assert status["state"] == "running"  # the claim of a dead process ...
    assert RunStore(got).run("r").state() == "interrupted"  # ... is seen as interrupted

    import torch

    # the checkpoint is written before the metrics line: a kill between the two leaves it one epoch ahead
    saved = torch.load(got / "runs" / "r" / "checkpoint.pt", map_location="cpu", weights_only=False)["epoch"]
    assert saved in (killed_at, killed_at + 1)
    out = run_cli("run", "--headless", "--threads", "1", "-p", str(got))
    assert out.returncode == 0, out.stderr
    assert f"r: resumed at epoch {saved} on cpu" in out.stdout
    assert metrics(got, "r") == metrics(ref, "r")
    st = RunStore(got).run("r").status()
    # a resume is not a new attempt: the run is still attempt 1, resumed once
    assert st["state"] == "done" and st["attempt"] == 1 and st["resumes"] == 1


def test_sigterm_leaves_the_run_interrupted_and_resumable(make_project):
    proj = make_project("[[experiment]]\nid = 's'\nepochs = 40\nnum_images = 32\n")
    proc = subprocess.Popen(unettui_cmd("run", "--headless", "--threads", "1", "-p", str(proj)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_for_lines(proj / "runs" / "s" / "metrics.jsonl", 1, proc)
    proc.send_signal(signal.SIGTERM)
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130
    run = RunStore(proj).run("s")
    assert run.status()["state"] == "interrupted"
    done = len(run.metrics())
    assert 1 <= done < 40
    assert "interrupted after epoch" in stdout


def test_runner_goes_on_after_failing_experiments(make_project):
    proj = make_project(
        "[[experiment]]\nid = 'nofolder'\ndataset = 'does/not/exist'\n"
        "[[experiment]]\nid = 'nan'\noptimizer = 'sgd'\nlr = 100\nweight_decay = 1e6\nmomentum = 0.0\n"
        "[[experiment]]\nid = 'typo'\noptimiser = 'sgd'\n"
        "[[experiment]]\nid = 'good'\n"
    )
    out = run_cli("run", "--headless", "-p", str(proj))
    assert out.returncode == 1
    store = RunStore(proj)
    assert store.run("nofolder").status()["state"] == "failed"
    assert "does/not/exist" in store.run("nofolder").status()["error"]
    nan = store.run("nan").status()
    assert nan["state"] == "failed" and "diverged" in nan["error"] and "epoch 1" in nan["error"]
    assert not store.run("typo").exists()  # an invalid definition is reported, not run
    assert "skipping typo" in out.stdout and "did you mean 'optimizer'" in out.stdout
    assert store.run("good").status()["state"] == "done"
    assert "Traceback" not in out.stdout + out.stderr
    log = store.run("nofolder").file("run.log").read_text()
    assert "Traceback" in log and "failed: dataset folder" in log and log.rstrip().endswith(
        "does/not/exist does not exist: expected <folder>/images/ and <folder>/masks/ with one mask per image, "
        "matched by file stem")
    # a second start trains nothing: finished runs (done or failed) are not repeated
    again = run_cli("run", "--headless", "-p", str(proj))
    assert "0 done, 0 failed" in again.stdout


def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint_and_resumes(make_project, monkeypatch):
    import tempfile

    import torch

    from unettui.runner import Runner

    proj = make_project("[[experiment]]\nid = 'd'\nepochs = 4\n")
    real_mkstemp = tempfile.mkstemp
    count = {"n": 0}

    def filling_disk(*args, **kwargs):
        fd, path = real_mkstemp(*args, **kwargs)
        if ".checkpoint.pt." in kwargs.get("prefix", ""):
            count["n"] += 1
            if count["n"] >= 3:  # the third checkpoint meets a full disk: /dev/full fails every write with ENOSPC
                os.close(fd)
                fd = os.open("/dev/full", os.O_WRONLY)
        return fd, path

    monkeypatch.setattr(tempfile, "mkstemp", filling_disk)
    outcome = Runner(proj).run()
    run = RunStore(proj).run("d")
    st = run.status()
    assert outcome.interrupted == ["d"] and outcome.exit_code == 1
    assert st["state"] == "interrupted" and "disk full" in st["error"] and "checkpoint is intact" in st["error"]
    ckpt = torch.load(run.file("checkpoint.pt"), weights_only=False)
    assert ckpt["epoch"] == 2  # the previous checkpoint survived, whole
    assert [p.name for p in run.path.iterdir() if p.name.endswith(".tmp")] == []
    assert [m["epoch"] for m in run.metrics()] == [1, 2]

    monkeypatch.setattr(tempfile, "mkstemp", real_mkstemp)  # space freed
    outcome = Runner(proj).run()
    assert outcome.done == ["d"] and [m["epoch"] for m in run.metrics()] == [1, 2, 3, 4]
    assert "resumed at epoch 2" in run.file("run.log").read_text()


def test_a_broken_queue_edit_mid_run_does_not_stop_the_runner(make_project):
    """The runner re-reads experiments.toml between experiments; a bad save keeps the last good queue."""
    from unettui.runner import Runner

    proj = make_project("[[experiment]]\nid = 'a'\n[[experiment]]\nid = 'b'\n")
    notes = []

    class Spy:
        def __getattr__(self, name):
            return lambda *a, **k: None

        def note(self, exp, text):
            notes.append(text)

        def run_end(self, exp, state, summary, error):
            (proj / "experiments.toml").write_text("[[experiment]\nid = 'broken")  # a user saving half an edit

    outcome = Runner(proj, reporter=Spy()).run()
    assert outcome.done == ["a", "b"]
    assert any("not valid TOML" in n and "keeping the queue" in n for n in notes)
