"""`unettui run --backend slurm` against a real Slurm (scripts/slurm_local.sh; no mocks): the pilot tasks train each
experiment once, later study stages without resubmitting; scancel and the warning signal leave runs resumable with the
numbers of an uninterrupted run; failures are one line and leave nothing recorded."""

import json
import re
import subprocess
import sys
import time

import pytest

from tests.helpers import run_cli, unettui_cmd
from unettui.core.plan import load_queue
from unettui.core.runs.slurm_state import Scheduler, SlurmJobs, records
from unettui.core.runs.status import State, collect
from unettui.core.runs.store import RunStore

KEYS = ("epoch", "train_loss", "train_dice", "val_loss", "val_dice", "val_iou", "lr")
THREE = "".join(f"[[experiment]]\nid = 'e{i}'\nseed = {i}\n" for i in range(3))
STUDY = ("[[study]]\nid = 's'\n"
         "[[study.stage]]\nname = 'one'\nlr = [1e-3]\n"
         "[[study.stage]]\nname = 'two'\nseed = [0, 1]\n")
# long enough to be stopped mid-run (about 0.13 s an epoch here), short enough for the suite
LONG = ("[[experiment]]\nid = 'r'\nepochs = 40\nnum_images = 48\ndropout = 0.1\naugment.rotate = 10\n"
        "augment.hflip = 0.5\nscheduler = 'step'\nlr_step_size = 10\n")


def wait(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def submit(proj, *args):
    out = run_cli("run", "--headless", "--backend", "slurm", "-p", str(proj), "--time", "5", "--cpus-per-run", "1",
                  *args, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "warning" not in out.stderr, out.stderr  # a node can run what they ask
    return re.search(r"submitted slurm job (\d+)", out.stdout).group(1), out


def rows(proj):
    return collect(load_queue(proj), RunStore(proj), readers={"slurm": SlurmJobs(Scheduler(ttl=0))})


def tasks(job):
    return Scheduler(ttl=0).states([job])


def metrics(proj, run_id="r"):
    return [{k: m[k] for k in KEYS} for m in RunStore(proj).run(run_id).metrics()]


def claims(run):
    return [ln for ln in run.file("run.log").read_text().splitlines() if "claimed by" in ln]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """LONG trained locally without interruption (one thread, like the SLURM tasks with --cpus-per-run 1); started at
    once, in parallel with the first test that needs it."""
    from tests.conftest import TINY_DEFAULTS

    proj = tmp_path_factory.mktemp("ref") / "ref"
    proj.mkdir()
    (proj / "experiments.toml").write_text(TINY_DEFAULTS + "\n" + LONG)
    proc = subprocess.Popen(unettui_cmd("run", "--headless", "--threads", "1", "-p", str(proj)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    cache = {}

    def get():
        if "m" not in cache:
            out, _ = proc.communicate(timeout=240)
            assert proc.returncode == 0, out
            cache["m"] = metrics(proj)
            assert len(cache["m"]) == 40
        return cache["m"]

    yield get
    if proc.poll() is None:
        proc.kill()


def test_a_three_experiment_queue_is_trained_once_each_by_the_pilot_tasks(slurm_project):
    proj = slurm_project(THREE)
    job, out = submit(proj, "--max-parallel", "2")
    assert "2 pilot tasks" in out.stdout and "unettui cancel --all" in out.stdout and "unettui logs ID" in out.stdout
    (rec,) = records(proj)  # recorded, with its job id, before the command returned
    assert rec["job"] == job and rec["tasks"] == 2 and (proj / rec["folder"]).is_dir()
    wait(lambda: [r.state for r in rows(proj)] == [State.DONE] * 3, 120, "the three runs done")
    store = RunStore(proj)
    used = set()
    for i in range(3):
        run = store.run(f"e{i}")
        st = run.status()
        assert st["state"] == "done" and st["attempt"] == 1 and st["resumes"] == 0
        assert len(claims(run)) == 1  # trained exactly once
        assert st["backend"]["kind"] == "slurm" and st["backend"]["job"] in (f"{job}_0", f"{job}_1")
        assert f"in slurm job {st['backend']['job']}" in claims(run)[0]
        assert (proj / st["backend"]["log"]).is_file()
        used.add(st["backend"]["job"])
    # the tasks leave once the queue is empty
    wait(lambda: sorted((k, v.word) for k, v in tasks(job).items()) == [(f"{job}_0", "completed"),
                                                                           (f"{job}_1", "completed")],
         60, "both tasks completed")
    # logs ID names the SLURM files of the task that trained it; --slurm prints them
    out = run_cli("logs", "e0", "-p", str(proj))
    assert out.returncode == 0 and "claimed by" in out.stdout
    assert f"slurm task {store.run('e0').status()['backend']['job']} [current]" in out.stderr
    out = run_cli("logs", "e0", "--slurm", "-p", str(proj))
    assert out.returncode == 0 and "e0: done" in out.stdout and "stderr:" in out.stdout
    # nothing left to cancel: one line, non-zero
    out = run_cli("cancel", "--all", "-p", str(proj))
    assert out.returncode == 1 and out.stderr.startswith("error: nothing to cancel") and out.stderr.count("\n") == 1


def test_a_pilot_task_trains_a_sweep_as_one_pack(slurm_project):
    """--pack passes through to the pilot tasks: one task trains the three experiments as one pack of 3."""
    proj = slurm_project(THREE)
    job, _ = submit(proj, "--max-parallel", "1", "--pack", "3")
    wait(lambda: [r.state for r in rows(proj)] == [State.DONE] * 3, 120, "the three runs done")
    store = RunStore(proj)
    for i in range(3):
        run = store.run(f"e{i}")
        cfg = json.loads(run.file("config.json").read_text())
        assert cfg["pack_size"] == 3 and sorted(cfg["pack_members"]) == sorted({"e0", "e1", "e2"} - {f"e{i}"})
        assert run.status()["backend"]["job"] in (job, f"{job}_0") and len(claims(run)) == 1  # one task trained all
        assert len(run.metrics()) == run.summary()["epochs"]


def test_a_studys_second_stage_is_trained_without_submitting_again(slurm_project):
    proj = slurm_project(STUDY)
    job, out = submit(proj, "--max-parallel", "2")
    assert "study stages still to come" in out.stdout
    wait(lambda: len(rows(proj)) == 3 and all(r.state is State.DONE for r in rows(proj)), 150,
         "stage one, then stage two's two runs, done")
    assert len(records(proj)) == 1  # one submission
    for run in RunStore(proj).runs():
        st = run.status()
        assert st["state"] == "done" and len(claims(run)) == 1
        assert st["backend"]["job"].startswith(f"{job}_"), st
    assert sum(1 for r in RunStore(proj).runs() if r.id.startswith("s-two-")) == 2


@pytest.mark.slow
def test_scancel_of_a_task_leaves_its_run_interrupted_and_it_resumes_exactly(slurm_project, reference):
    proj = slurm_project(LONG, name="cancelled")
    job, _ = submit(proj, "--max-parallel", "1")
    run = RunStore(proj).run("r")
    wait(lambda: len(run.metrics()) >= 2, 120, "two epochs trained in the SLURM task")
    row = rows(proj)[0]
    assert row.state is State.RUNNING and row.job_label == f"slurm {job} running", row.label
    # the TUI's poll (its worker thread) reads the same: the job beside the state, and the submission's tasks
    from unettui.tui.data import ProjectMonitor
    from unettui.tui.runner_control import RunnerControl

    mon = ProjectMonitor(proj)
    mon.poll()
    assert mon.runs["r"].label.endswith(f"· slurm {job} running")
    assert RunnerControl(proj).describe(mon.views()).text == f"runner: slurm job {job} (1 task): 1 running"
    out = run_cli("ls", "-p", str(proj))
    assert f"slurm {job} running" in out.stdout and f"slurm job {job} (1 task): 1 running" in out.stdout
    out = run_cli("cancel", "r", "-p", str(proj))  # scancel of the task that trains r
    assert out.returncode == 0 and f"cancelled slurm task {job}" in out.stdout, out.stderr
    wait(lambda: run.status()["state"] != "running", 30, "the runner to record its end")
    st = run.status()
    assert st["state"] == "interrupted" and st["error"] is None  # not stuck running
    stopped_at = len(run.metrics())
    assert 2 <= stopped_at < 40
    row = wait(lambda: next((r for r in rows(proj) if r.scheduler == "cancelled"), None), 30, "sacct: cancelled")
    assert row.label == f"interrupted {stopped_at}/40 · slurm {job} cancelled"
    out = run_cli("ls", "-p", str(proj))
    assert f"slurm {job} cancelled" in out.stdout
    # resumed here, by a local runner, from the task's checkpoint: the numbers of an uninterrupted run
    out = run_cli("run", "--headless", "--threads", "1", "-p", str(proj))
    assert out.returncode == 0, out.stdout
    assert "r: resumed at epoch" in out.stdout
    assert metrics(proj) == reference()
    st = run.status()
    assert st["state"] == "done" and st["attempt"] == 1 and st["resumes"] == 1
    assert "backend" not in st and st["backends"][0]["job"] == job  # the local claim; the task's kept for logs
    out = run_cli("logs", "r", "-p", str(proj))
    assert f"slurm task {job} [current]" in out.stderr


@pytest.mark.slow
def test_the_warning_signal_checkpoints_requeues_and_the_task_resumes_exactly(slurm_project, reference):
    proj = slurm_project(LONG, name="requeued")
    job, _ = submit(proj, "--max-parallel", "1")
    run = RunStore(proj).run("r")
    wait(lambda: len(run.metrics()) >= 2, 120, "two epochs trained in the SLURM task")
    # what SLURM sends before the time limit (submitit's --signal=USR2@N) or on preemption; the clock's version
    # (--time 1) takes 20-50 s more because slurmctld checks time limits every 30 s
    subprocess.run(["scancel", "--signal=USR2", job], check=True)
    wait(lambda: run.status()["state"] == "interrupted", 30, "the checkpoint: the run interrupted")
    row = wait(lambda: next((r for r in rows(proj) if (r.scheduler or "").startswith("requeued")), None), 30,
               "the task requeued")
    # beside the state: the scheduler's word and, while the task waits to start again, its reason (BeginTime, ...)
    assert row.state is State.INTERRUPTED and re.search(rf"· slurm {job} requeued( \(\w+\))?$", row.label), row.label
    wait(lambda: run.status()["state"] == "done", 150, "the requeued task to finish the run")
    assert metrics(proj) == reference()
    st = run.status()
    assert st["attempt"] == 1 and st["resumes"] == 1 and st["backend"]["job"] == job
    assert [f"in slurm job {job}" in c for c in claims(run)] == [True, True]  # the same task, twice
    assert "resumed at epoch" in run.file("run.log").read_text()
    log = (proj / st["backend"]["log"]).read_text() + (proj / st["backend"]["err"]).read_text()
    assert "Calling checkpoint method" in log and "Requeued job" in log


def test_cancel_all_cancels_what_the_project_submitted(slurm_project):
    proj = slurm_project(THREE)
    job, _ = submit(proj, "--max-parallel", "2")
    out = run_cli("cancel", "--all", "-p", str(proj))
    assert out.returncode == 0 and out.stdout.startswith(f"cancelled slurm job {job} ("), out.stdout + out.stderr
    wait(lambda: len(tasks(job)) == 2 and all(v.word == "cancelled" for v in tasks(job).values()), 30,
         "both tasks cancelled")
    assert "cancelled" in records(proj)[0]
    out = run_cli("ls", "-p", str(proj))
    assert f"slurm job {job}" not in out.stdout  # nothing of it may still run
    assert all(r.state is not State.RUNNING for r in rows(proj))


def test_a_request_no_node_can_run_is_submitted_with_a_warning_and_ls_says_why_it_waits(slurm_project):
    """SLURM accepts --cpus-per-task 64 on this 2-CPU node and keeps the job pending for ever (PartitionConfig)."""
    proj = slurm_project(THREE)
    out = run_cli("run", "--headless", "--backend", "slurm", "-p", str(proj), "--time", "5", "--cpus-per-run", "64",
                  "--max-parallel", "1", timeout=120, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stdout + out.stderr  # still submitted: sbatch took it
    job = re.search(r"submitted slurm job (\d+)", out.stdout).group(1)
    assert re.fullmatch(r"warning: no node of partition debug can run a task of --cpus-per-run 64 \(its \d+ nodes?: "
                        r"at most \d+ CPUs?\); SLURM accepted the job but its tasks will stay pending .*\n",
                        out.stderr), out.stderr
    why = wait(lambda: (tasks(job).get(job) or None) and tasks(job)[job].waiting, 30, "squeue's reason")
    assert tasks(job)[job].word == "pending"
    # ls and show say why it waits, beside its state, in the scheduler's word (PartitionConfig here)
    out = run_cli("ls", "-p", str(proj))
    assert f"slurm job {job} (1 task): 1 pending ({why}" in " ".join(out.stdout.split()), out.stdout
    out = run_cli("show", "e0", "-p", str(proj), env={"COLUMNS": "250"})
    assert "run it with: unettui run --headless --only e0" in out.stdout
    assert f"to be trained by slurm job {job} (1 task): 1 pending ({why}" in out.stdout, out.stdout
    # nothing trains e0: cancel e0 refuses in one line, and the job is left alone
    out = run_cli("cancel", "e0", "-p", str(proj), stdin=subprocess.DEVNULL)
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith("error: 'e0' is pending: no runner has claimed it, nothing to cancel"), out.stderr
    assert tasks(job)[job].word == "pending"


PACKED = ("[[experiment]]\nid = 'short'\nepochs = 1\nbatch_size = 2\n"  # trained alone (another batch size), first
          + "".join(f"[[experiment]]\nid = 'p{i}'\nseed = {i}\nepochs = 2000\n" for i in range(3)))


def test_cancel_id_stops_the_task_training_id_or_nothing(slurm_project):  # ~7 s
    """One pilot task trains 'short', then moves on to the pack p0, p1, p2: cancelling 'short' (done) must not stop
    the pack; cancelling a pack member needs --pack when not on a terminal, and then names every member."""
    proj = slurm_project(PACKED)
    job, _ = submit(proj, "--max-parallel", "1", "--pack", "3")
    store = RunStore(proj)
    packed = [store.run(f"p{i}") for i in range(3)]
    wait(lambda: store.run("short").status() and store.run("short").status()["state"] == "done"
         and all((r.status() or {}).get("epoch", 0) >= 1 for r in packed), 120, "short done, the pack training")
    assert all(r.status()["backend"]["job"] == job for r in packed)

    def still_training():
        before = [r.status()["epoch"] for r in packed]
        assert tasks(job)[job].word == "running"
        wait(lambda: all(r.status()["state"] == "running" and r.status()["epoch"] > b for r, b in zip(packed, before)),
             30, "the pack to train on")

    out = run_cli("cancel", "short", "-p", str(proj), stdin=subprocess.DEVNULL)
    assert out.returncode == 1 and out.stderr == "error: 'short' is done: nothing to cancel\n", out.stderr
    still_training()  # the task that trained 'short' and what it trains now are untouched
    out = run_cli("cancel", "p0", "-p", str(proj), stdin=subprocess.DEVNULL)  # not a terminal: not asked
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith(f"error: 'p0' trains in one pack with p1, p2 in slurm task {job}: cancelling it "
                                 "stops the whole pack (3 runs"), out.stderr
    assert "pass --pack (or --yes)" in out.stderr
    still_training()
    out = run_cli("cancel", "p0", "--pack", "-p", str(proj), stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()
    assert first == f"cancelled slurm task {job}, which was training the pack p0, p1, p2"
    assert "the task stops with it and trains nothing else; it was its job's last task" in second
    wait(lambda: all(r.status()["state"] == "interrupted" for r in packed), 30, "the pack left interrupted")
    wait(lambda: tasks(job)[job].word == "cancelled", 30, "the task cancelled")
    out = run_cli("cancel", "p1", "-p", str(proj), stdin=subprocess.DEVNULL)
    assert out.returncode == 1 and out.stderr.startswith("error: 'p1' is interrupted "), out.stderr


def _nothing_recorded(proj):
    d = proj / "runs" / ".slurm"
    return not d.exists() or not any(d.iterdir())


def test_without_sbatch_on_path_it_says_so_in_one_line_and_records_nothing(make_project, tmp_path):
    proj = make_project(THREE)
    empty = tmp_path / "bin"
    empty.mkdir()
    out = run_cli("run", "--headless", "--backend", "slurm", "-p", str(proj), env={"PATH": str(empty)})
    assert out.returncode == 1
    assert out.stderr.startswith("error: sbatch not found on PATH") and out.stderr.count("\n") == 1, out.stderr
    assert _nothing_recorded(proj)


@pytest.mark.parametrize("args, cause", [
    (["--partition", "nosuch"], "Invalid partition name specified (--partition nosuch; partitions here: debug)"),
    (["--sbatch", "no-such-option=1"], "unrecognized option '--no-such-option=1'"),
    (["--mem", "100000G"], "Requested node configuration is not available"),
    (["--sbatch", "output=/tmp/x"], "unettui sets --output itself"),
    (["--time", "soon"], "'soon' is not a SLURM time"),
])
def test_a_refused_submission_is_one_line_naming_the_cause_and_records_nothing(slurm_project, args, cause):
    proj = slurm_project(THREE)
    out = run_cli("run", "--headless", "--backend", "slurm", "-p", str(proj), *args)
    assert out.returncode == 1, out.stdout
    assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1, out.stderr
    assert cause in out.stderr, out.stderr
    assert _nothing_recorded(proj)
    assert not list(RunStore(proj).runs())


def test_help_lists_the_slurm_options():
    out = subprocess.run([sys.executable, "-m", "unettui", "run", "--help"], capture_output=True, text=True)
    for opt in ("--backend", "--partition", "--gpus-per-run", "--cpus-per-run", "--mem", "--time", "--max-parallel",
                "--account", "--qos", "--sbatch"):
        assert opt in out.stdout
