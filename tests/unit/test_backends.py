"""The backend interface (core/runs/backend.py): the read model labels rows from job states handed to it as data,
the TUI's data layer asks the backends through their readers, and the two shipped backends implement it. A third
backend is implemented here for real (the interface is what is under test)."""

from __future__ import annotations

import ast
import time
from pathlib import Path

import pytest

from unettui.cluster.local import LocalBackend
from unettui.cluster.slurm import SlurmBackend
from unettui.core.plan import load_queue
from unettui.core.runs.backend import Backend, BackendError, JobReader, JobState, Submission
from unettui.core.runs.jobs import SHIPPED, job_states
from unettui.core.runs.options import RunnerOptions
from unettui.core.runs.status import Row, State, attach_jobs, collect, jobs_to_ask
from unettui.core.runs.store import HOST, RunStore

ROOT = Path(__file__).resolve().parents[2]


class Kube:
    """A backend unettui does not ship: jobs named ``kube-N``, whose states it keeps in a dict."""

    kind = "kube"

    def __init__(self, states: dict[str, JobState] | None = None, lines: list[str] | None = None):
        self.states, self.lines, self.asked = dict(states or {}), list(lines or []), []

    def job_states(self, jobs):
        jobs = list(jobs)
        self.asked.append(jobs)
        return {j: self.states[j] for j in jobs if j in self.states}

    def active(self, project):
        return list(self.lines)

    def submit(self, project, options):
        return Submission(self.kind, "kube-1", record={"options": options.to_dict()})

    def cancel(self, project, run_ids=None):
        return [f"deleted pod of {r}" for r in run_ids or []]

    def logs(self, project, run_id):
        return []


def claimed(proj, run_id, backend, state="running"):
    """A run claimed in ``backend``'s job on another machine, its heartbeat fresh."""
    run = RunStore(proj).run(run_id)
    run.path.mkdir(parents=True, exist_ok=True)
    run.write_status(state=state, host="node-7", pid=99, heartbeat=time.time(), epoch=1, epochs=2, target=2,
                     attempt=1, backend=backend)
    return run


def test_every_backend_implements_the_interface():
    for backend in (LocalBackend(), SlurmBackend(), Kube()):
        assert isinstance(backend, Backend) and isinstance(backend, JobReader)
    assert set(SHIPPED) == {"local", "slurm"} and all(isinstance(r, JobReader) for r in SHIPPED.values())


def test_the_read_model_imports_no_backend():
    """status.py takes job states as data: it imports the interface, not a backend's code nor the table of shipped
    readers (core.runs.jobs), and it asks no reader unless a face hands it some (collect's default)."""
    import inspect

    from unettui.core.runs.status import collect

    tree = ast.parse((ROOT / "unettui/core/runs/status.py").read_text())
    modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {m for m in modules if m and ("slurm" in m or "cluster" in m or m.endswith("jobs"))}, modules
    assert inspect.signature(collect).parameters["readers"].default is None


def test_rows_take_their_jobs_state_from_a_mapping():
    b = {"kind": "kube", "job": "kube-3"}
    rows = [Row("x", State.RUNNING, epoch=1, target=2, backend=b), Row("y", State.DONE, backend=b),
            Row("z", State.INTERRUPTED, epoch=1, target=2)]
    assert jobs_to_ask(rows) == [("kube", "kube-3")]  # a finished run's job and a local claim are not asked about
    attach_jobs(rows, {("kube", "kube-3"): JobState("pending", "Unschedulable")})
    assert [r.label for r in rows] == ["running 1/2 · kube kube-3 pending (Unschedulable)", "done", "interrupted 1/2"]
    attach_jobs(rows, {("slurm", "kube-3"): JobState("running")})  # another backend's job of the same name
    assert rows[0].label == "running 1/2 · kube kube-3"


def test_collect_asks_each_kinds_reader_and_hands_the_rows_the_answer(make_project):
    proj = make_project("[[experiment]]\nid = 'a'\n[[experiment]]\nid = 'b'\n[[experiment]]\nid = 'c'\n")
    claimed(proj, "a", {"kind": "kube", "job": "kube-1"})
    claimed(proj, "b", {"kind": "kube", "job": "kube-2"})
    kube = Kube({"kube-1": JobState("running")})
    rows = {r.id: r for r in collect(load_queue(proj), RunStore(proj), readers={"kube": kube})}
    assert kube.asked == [["kube-1", "kube-2"]]  # one question for all its jobs
    assert rows["a"].label == "running 1/2 · kube kube-1 running"
    assert rows["b"].label == "running 1/2 · kube kube-2"  # not known to it: the job alone
    assert rows["c"].label == "pending"
    again = {r.id: r for r in collect(load_queue(proj), RunStore(proj), readers=None)}
    assert again["a"].scheduler is None and kube.asked == [["kube-1", "kube-2"]]  # None: nobody asked
    assert job_states([("kube", "kube-1"), ("ray", "r-1")], {"kube": kube}) == {("kube", "kube-1"): JobState("running")}


def test_the_tuis_data_layer_asks_the_readers_and_passes_the_states_on(make_project):
    from unettui.tui.data import ProjectMonitor
    from unettui.tui.runner_control import RunnerControl

    proj = make_project()
    claimed(proj, "a", {"kind": "kube", "job": "kube-1"})
    kube = Kube({"kube-1": JobState("pending", "Unschedulable")}, ["kube job kube-1: 1 pending"])
    mon = ProjectMonitor(proj)
    mon.job_readers = {"kube": kube}
    mon.poll()
    assert mon.runs["a"].label == "running 1/2 · kube kube-1 pending (Unschedulable)"
    assert RunnerControl(proj).describe(mon.views()).text == "runner: kube job kube-1: 1 pending"
    kube.states["kube-1"] = JobState("running")
    kube.lines = []
    mon.poll()
    assert mon.runs["a"].label == "running 1/2 · kube kube-1 running"
    assert RunnerControl(proj).describe(mon.views()).text.startswith("runner: node-7 pid 99 (not started here)")


def test_local_backend_submits_a_runner_says_its_state_and_cancels_what_it_trains(make_project):
    proj = make_project("[[experiment]]\nid = 'long'\nepochs = 400\n")
    backend = LocalBackend(proj / "runs" / "local.log")
    sub = backend.submit(proj, RunnerOptions(threads=1, pack="off"))
    try:
        assert (sub.kind, sub.job) == ("local", f"{HOST}:{sub.process.pid}")
        assert backend.job_states([sub.job, "elsewhere:1"]) == {sub.job: JobState("running")}
        run = RunStore(proj).run("long")
        deadline = time.time() + 120
        while time.time() < deadline and len(run.metrics()) < 1 and sub.process.poll() is None:
            time.sleep(0.05)
        assert run.status()["state"] == "running" and run.status()["pid"] == sub.process.pid
        with pytest.raises(BackendError, match="'other' is not trained by a live runner process of this machine"):
            backend.cancel(proj, ["other"])
        lines = backend.cancel(proj, ["long"])
        assert lines == [f"asked runner {HOST} pid {sub.process.pid} to stop after its current batch (long: left "
                         "interrupted, resumed by the next runner)"]
        assert sub.process.wait(timeout=60) == 130
    finally:
        if sub.process.poll() is None:
            sub.process.kill()
    assert run.status()["state"] == "interrupted" and 1 <= len(run.metrics()) < 400
    assert backend.job_states([sub.job]) == {sub.job: JobState("gone")}
    assert backend.logs(proj, "long") == [("current", run.file("run.log"))]
    assert sub.record["args"][3:5] == ["run", "--headless"] and sub.record["args"][-2] == "--runner-options"
    assert "long: interrupted after epoch" in (proj / "runs" / "local.log").read_text()
    with pytest.raises(BackendError, match="nothing to cancel"):
        backend.cancel(proj)


def test_slurm_backend_names_the_task_files_of_every_claim(make_project):
    proj = make_project()
    run = claimed(proj, "a", {"kind": "slurm", "job": "7_1", "log": "runs/.slurm/t/7_1_0_log.out",
                              "err": "runs/.slurm/t/7_1_0_log.err"})
    run.write_status(backends=[{"kind": "slurm", "job": "7_0", "log": "runs/.slurm/t/7_0_0_log.out"}])
    assert SlurmBackend().logs(proj, "a") == [("current", proj / "runs/.slurm/t/7_0_0_log.out"),
                                              ("current", proj / "runs/.slurm/t/7_1_0_log.out"),
                                              ("current", proj / "runs/.slurm/t/7_1_0_log.err")]
