"""Several runner processes on one queue: each experiment trained exactly once, a killed worker's run resumed."""

import json
import os
import signal
import subprocess
import time

from tests.helpers import run_cli, unettui_cmd
from unettui.core.runs.store import RunStore
from unettui.runner import Runner, plan_workers

SIX = "".join(f"[[experiment]]\nid = 'e{i}'\nseed = {i}\n" for i in range(6))


def claims(run):
    return run.file("run.log").read_text().count("claimed by")


def test_plan_workers_splits_cpu_threads_and_rotates_devices():
    assert plan_workers(2, None, cores=8) == [(None, 4), (None, 4)]
    assert plan_workers(3, ["cpu"], cores=2) == [("cpu", 1)] * 3
    assert plan_workers(3, ["cuda:0", "cuda:1"], cores=8) == [("cuda:0", None), ("cuda:1", None), ("cuda:0", None)]


def test_three_workers_train_each_experiment_exactly_once(make_project):
    proj = make_project(SIX)
    out = run_cli("run", "--headless", "--workers", "3", "-p", str(proj))
    assert out.returncode == 0, out.stdout[-2000:]
    store = RunStore(proj)
    for i in range(6):
        run = store.run(f"e{i}")
        st = run.status()
        assert st["state"] == "done" and st["attempt"] == 1, st
        assert claims(run) == 1
        assert [m["epoch"] for m in run.metrics()] == [1, 2]
    starters = {line.split(" | ")[0] for line in out.stdout.splitlines() if ": started on" in line}
    assert len(starters) >= 2, out.stdout  # the work really was shared


def test_kill_9_of_one_worker_loses_nothing_and_duplicates_nothing(make_project):
    proj = make_project(SIX.replace("seed = 0\n", "seed = 0\nepochs = 12\nnum_images = 48\n"))
    parent = subprocess.Popen(unettui_cmd("run", "--headless", "--workers", "2", "-p", str(proj)),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    victim = RunStore(proj).run("e0")
    deadline = time.time() + 120
    while time.time() < deadline and len(victim.metrics()) < 2:
        time.sleep(0.02)
    st = victim.status()
    assert st and st["state"] == "running" and len(victim.metrics()) < 12
    os.kill(st["pid"], signal.SIGKILL)
    parent.communicate(timeout=240)
    if victim.state() != "done":  # the other worker had already finished: a restart completes it
        out = run_cli("run", "--headless", "-p", str(proj))
        assert out.returncode == 0, out.stdout
    store = RunStore(proj)
    for i in range(6):
        run = store.run(f"e{i}")
        assert run.status()["state"] == "done"
        epochs = [m["epoch"] for m in run.metrics()]
        assert epochs == list(range(1, len(epochs) + 1)) and epochs[-1] == (12 if i == 0 else 2)
    # resumed, not restarted: still its first attempt, claimed twice
    assert victim.status()["attempt"] == 1 and victim.status()["resumes"] == 1 and claims(victim) == 2
    assert "resumed at epoch" in victim.file("run.log").read_text()
    assert all(claims(store.run(f"e{i}")) == 1 for i in range(1, 6))


def test_a_stale_claim_from_another_machine_is_taken_over_a_fresh_one_is_not(make_project):
    proj = make_project("[[experiment]]\nid = 'old'\n[[experiment]]\nid = 'busy'\n")
    store = RunStore(proj)
    for run_id, age in (("old", 1000), ("busy", 1)):
        run = store.run(run_id)
        run.path.mkdir(parents=True)
        run.write_status(state="running", host="gpu-box-7", pid=4242, heartbeat=time.time() - age, attempt=1)
    outcome = Runner(proj, stale_after=60).run()
    assert outcome.done == ["old"]
    old = store.run("old")
    assert old.status()["state"] == "done" and old.status()["attempt"] == 1 and old.status()["resumes"] == 1
    assert "taking over the stale claim of gpu-box-7 pid 4242" in old.file("run.log").read_text()
    busy = json.loads(store.run("busy").file("status.json").read_text())
    assert busy["state"] == "running" and busy["host"] == "gpu-box-7"  # untouched


def test_a_worker_with_nothing_to_claim_waits_for_the_next_study_stage(make_project):
    """Stage 1 has one run: the second worker finds nothing to claim but must not leave; when stage 1 ends, stage 2
    expands and both workers train it."""
    study = ("[[study]]\nid = 's'\nepochs = 8\nnum_images = 48\n"
             "[[study.stage]]\nname = 'one'\nlr = [1e-3]\n"
             "[[study.stage]]\nname = 'two'\nseed = [0, 1, 2, 3]\n")
    proj = make_project(study)
    out = run_cli("run", "--headless", "--workers", "2", "-p", str(proj), timeout=600)
    assert out.returncode == 0, out.stdout[-3000:]
    starts = [line.split(" | ")[0] for line in out.stdout.splitlines() if ": started on" in line and "s-two-" in line]
    assert len(starts) == 4 and set(starts) == {"w1", "w2"}, out.stdout  # both workers trained stage 2
    store = RunStore(proj)
    assert all(r.status()["state"] == "done" for r in store.runs())
    assert len(list(store.runs())) == 5


def test_sigterm_to_the_workers_parent_is_passed_on_and_leaves_every_run_resumable(make_project):
    proj = make_project("[[experiment]]\nid = 'a'\nepochs = 300\nnum_images = 32\n"
                        "[[experiment]]\nid = 'b'\nepochs = 300\nnum_images = 32\nseed = 1\n")
    parent = subprocess.Popen(unettui_cmd("run", "--headless", "--workers", "2", "-p", str(proj)),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    store = RunStore(proj)
    deadline = time.time() + 120
    while time.time() < deadline and not all(len(store.run(i).metrics()) >= 1 for i in "ab"):
        time.sleep(0.05)
    parent.send_signal(signal.SIGTERM)
    out, _ = parent.communicate(timeout=120)
    assert parent.returncode == 130, out
    for i in "ab":
        st = store.run(i).status()
        assert st["state"] == "interrupted" and st["error"] is None, st
        assert 1 <= len(store.run(i).metrics()) < 300
    assert out.count("interrupted after epoch") == 2 and "Traceback" not in out, out
