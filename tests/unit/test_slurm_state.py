"""The SLURM read side without a cluster: time syntax, the scheduler's words (parsed from real squeue/sacct output),
the backend a claim records and keeps, and how a row shows it. Everything that talks to Slurm is in tests/slurm/."""

import pytest

from unettui.cluster.slurm import SlurmError, gpus_of, mem_mb, parse_sbatch, sbatch_message
from unettui.core.runs.backend import claim_backend
from unettui.core.runs.slurm_state import (
    SlurmJob,
    backend_from_env,
    backends_of_run,
    parse_sacct,
    parse_squeue,
    parse_time,
    summarize,
)
from unettui.core.runs.status import Row, State, attach_jobs


@pytest.mark.parametrize("text, minutes", [("30", 30), ("0:40", 1), ("90:00", 90), ("4:00:00", 240),
                                           ("1-00:00:00", 1440), ("1-2", 1560), ("2-0:30", 2910)])
def test_slurm_time_syntax_in_minutes_rounded_up(text, minutes):
    assert parse_time(text) == minutes


@pytest.mark.parametrize("text", ["soon", "1h", "", "0", "-1", "1:2:3:4"])
def test_what_is_not_a_slurm_time(text):
    with pytest.raises(ValueError):
        parse_time(text)


def test_scheduler_words_from_real_squeue_and_sacct_lines():
    # squeue -h -r -t all -O 'JobArrayID:|,State:|,Reason:|,RestartCnt:|' and sacct -n -P -X -o JobID,State, as
    # printed by Slurm 22.05 (requeued task 28_0 waits for its BeginTime)
    sq = parse_squeue("28_0|PENDING|BeginTime|1|\n28_2|PENDING|JobArrayTaskLimit|0|\n28_1|RUNNING|None|0|\n")
    assert {k: v.word for k, v in sq.items()} == {"28_0": "requeued", "28_2": "pending", "28_1": "running"}
    sa = parse_sacct("28_1|CANCELLED by 0\n28_2|COMPLETED\n23_[0-3%1]|CANCELLED by 0\n31|TIMEOUT\n")
    assert {k: v.word for k, v in sa.items()} == {"28_1": "cancelled", "28_2": "completed", "31": "timeout"}


def test_a_claim_keeps_the_backends_of_the_earlier_claims_of_its_attempt():
    a = {"kind": "slurm", "job": "7_0", "log": "runs/.slurm/x/7_0/7_0_0_log.out"}
    b = {"kind": "slurm", "job": "7_1", "log": "runs/.slurm/x/7_1/7_1_0_log.out"}
    assert claim_backend({}, a) == {"backend": a}
    assert claim_backend({"backend": a}, a) == {"backend": a}  # requeued: the same task, the same (appended) log
    assert claim_backend({"backend": a}, b) == {"backend": b, "backends": [a]}
    assert claim_backend({"backend": b, "backends": [a]}, None) == {"backends": [a, b]}  # resumed by a local runner
    assert claim_backend({"backend": "junk", "backends": "junk"}, None) == {}


def test_backends_of_a_run_across_attempts(tmp_path):
    import json

    (tmp_path / "attempts" / "1").mkdir(parents=True)
    (tmp_path / "attempts" / "1" / "status.json").write_text(json.dumps({"backend": {"kind": "slurm", "job": "3"}}))
    (tmp_path / "status.json").write_text(json.dumps({"backends": [{"kind": "slurm", "job": "5_0"}]}))
    assert [(w, b["job"]) for w, b in backends_of_run(tmp_path)] == [("attempt 1", "3"), ("current", "5_0")]


def test_backend_from_the_environment_of_a_slurm_job():
    assert backend_from_env({}) is None
    assert backend_from_env({"SLURM_JOB_ID": "12"}) == {"kind": "slurm", "job": "12"}
    env = {"SLURM_JOB_ID": "13", "SLURM_ARRAY_JOB_ID": "12", "SLURM_ARRAY_TASK_ID": "1", "SLURMD_NODENAME": "n7"}
    assert backend_from_env(env) == {"kind": "slurm", "job": "12_1", "node": "n7"}


def test_a_row_shows_the_job_beside_a_running_or_interrupted_state_only():
    b = {"kind": "slurm", "job": "42_1"}
    assert Row("x", State.RUNNING, epoch=3, target=5, backend=b, scheduler="running").label == \
        "running 3/5 · slurm 42_1 running"
    assert Row("x", State.INTERRUPTED, epoch=3, target=5, backend=b, scheduler="requeued").label == \
        "interrupted 3/5 · slurm 42_1 requeued"
    assert Row("x", State.INTERRUPTED, epoch=3, target=5, backend=b).label == "interrupted 3/5 · slurm 42_1"
    assert Row("x", State.DONE, backend=b, scheduler="completed").label == "done"
    assert Row("x", State.RUNNING, epoch=1, target=2).label == "running 1/2"


def test_a_submission_in_a_few_words():
    rec = {"token": "t", "job": "42", "tasks": 3, "submitted": 0}
    states = {"42_0": SlurmJob("42_0", "RUNNING"), "42_1": SlurmJob("42_1", "PENDING", "BeginTime", 1),
              "42_2": SlurmJob("42_2", "PENDING"), "41_0": SlurmJob("41_0", "RUNNING")}
    assert summarize(rec, states) == \
        "slurm job 42 (3 tasks): 1 running, 1 requeued (BeginTime: waiting for its start time), 1 pending"
    assert summarize(rec, {"42_0": SlurmJob("42_0", "COMPLETED")}) is None  # all ended: nothing to say
    assert summarize({**rec, "submitted": 1e12}, {}, now=1e12) == "slurm job 42 (3 tasks): submitted"
    assert "job id not recorded yet" in summarize({"token": "t", "job": None, "submitted": 100}, {}, now=160)
    assert summarize({"token": "t", "job": None, "submitted": 100}, {}, now=1e6) is None


def test_sbatch_pass_through_and_what_unettui_keeps_for_itself():
    assert parse_sbatch(["constraint=a100", "--exclusive", "mail-type=END"]) == \
        {"constraint": "a100", "exclusive": True, "mail_type": "END"}
    for bad in ("output=x", "--array=0-3", "signal=USR1@5", "=x", "mail-type="):
        with pytest.raises(SlurmError):
            parse_sbatch([bad])
    assert sbatch_message("sbatch: error: Batch job submission failed: Invalid partition name specified\n") == \
        "Batch job submission failed: Invalid partition name specified"
    assert sbatch_message("sbatch: unrecognized option '--x=1'\nTry \"sbatch --help\" for more information\n") == \
        "unrecognized option '--x=1'"


def test_a_waiting_task_shows_the_schedulers_reason_beside_its_state():
    # squeue's %r for pending tasks, as Slurm 22.05 prints it (the first: --cpus-per-task 64 on a 2-CPU node)
    sq = parse_squeue("9_0|PENDING|PartitionConfig|0|\n9_1|PENDING|Resources|0|\n9_2|PENDING|Priority|0|\n"
                      "8_0|PENDING|BeginTime|2|\n8_1|RUNNING|None|0|\n8_2|PENDING|None|0|\n")
    assert {k: v.label for k, v in sq.items()} == {
        "9_0": "pending (PartitionConfig)", "9_1": "pending (Resources)", "9_2": "pending (Priority)",
        "8_0": "requeued (BeginTime)", "8_1": "running", "8_2": "pending"}
    assert {k: v.word for k, v in sq.items()}["8_0"] == "requeued"  # the word itself is unchanged
    assert SlurmJob("7", "FAILED", "BadConstraints").label == "failed"  # a reason is shown only while it waits
    # every face takes it from the read model: a row's label, the submission's line
    b = {"kind": "slurm", "job": "8_0"}
    row = Row("x", State.INTERRUPTED, epoch=3, target=5, backend=b)
    attach_jobs([row], {("slurm", job): task.state for job, task in sq.items()})
    assert row.label == "interrupted 3/5 · slurm 8_0 requeued (BeginTime)"
    line = summarize({"token": "t", "job": "9", "tasks": 1, "submitted": 0}, {"9_0": sq["9_0"]})
    assert line.startswith("slurm job 9 (1 task): 1 pending (PartitionConfig: no node of the partition can run it")
    assert "`unettui cancel --all`, then submit a smaller request" in line  # a request that never starts: what to do
    mixed = summarize({"token": "t", "job": "9", "tasks": 3, "submitted": 0}, sq)
    assert mixed == "slurm job 9 (3 tasks): 3 pending (1 PartitionConfig, 1 Priority, 1 Resources)"


def test_what_sinfo_says_a_node_has():
    assert [gpus_of(g) for g in ("(null)", "gpu:4", "gpu:a100:2(S:0-1)", "gpu:a100:2(S:0,1),mps:200", "gpu:1,gpu:t4:2",
                                 "mps:100", "")] == [0, 4, 2, 2, 3, 0, 0]
    assert [mem_mb(m) for m in ("16G", "4000", "4000M", "1T", "512K", "2.5G", "16GB", "0", "lots")] == \
        [16384, 4000, 4000, 1048576, 1, 2560, 16384, None, None]


# ---- cancel ID without a cluster: what refuses before scancel is ever run ------------------------------------------


def _claim(proj, run_id, backend=None, token="tok", **cfg):
    """A run folder with a live claim of this very process (on this host): status.json running, and config.json."""
    import json
    import os
    import time

    from unettui.core.runs.store import HOST, RunStore

    run = RunStore(proj).run(run_id)
    run.path.mkdir(parents=True, exist_ok=True)
    now = time.time()
    st = {"state": "running", "host": HOST, "pid": os.getpid(), "token": token, "heartbeat": now, "started": now,
          "epoch": 1, "epochs": 2, "target": 2, "attempt": 1}
    if backend:
        st["backend"] = backend
    run.file("status.json").write_text(json.dumps(st))
    if cfg:  # what a pack writes beside the definition
        run.file("config.json").write_text(json.dumps(cfg))
    return run


@pytest.fixture
def no_scancel(monkeypatch):
    from unettui.cluster import slurm

    called = []
    monkeypatch.setattr(slurm, "_scancel", lambda job: called.append(job))
    return called


TASK = {"kind": "slurm", "job": "987654_1", "submission": "t"}  # no such job: the scheduler knows nothing of it


def test_cancel_id_refuses_a_run_no_task_is_training(make_project, no_scancel):
    from unettui.cluster.slurm import plan_cancel

    proj = make_project("[[experiment]]\nid = 'a'\n[[experiment]]\nid = 'b'\n[[experiment]]\nid = 'c'\n")
    run = _claim(proj, "a", TASK)
    run.write_status(state="done")  # its task went on to another experiment: cancelling it must not stop that one
    with pytest.raises(SlurmError, match=r"^'a' is done: nothing to cancel$"):
        plan_cancel(proj, "a")
    with pytest.raises(SlurmError, match=r"^'b' is pending: no runner has claimed it, nothing to cancel"):
        plan_cancel(proj, "b")
    _claim(proj, "c")  # running, but in a runner started by hand (no SLURM task)
    with pytest.raises(SlurmError, match=r"^'c' is running 1/2 on host .* not in a SLURM task"):
        plan_cancel(proj, "c")
    _claim(proj, "b", TASK).write_status(state="interrupted")
    with pytest.raises(SlurmError, match=r"^'b' is interrupted 1/2 · slurm 987654_1: no runner trains it now"):
        plan_cancel(proj, "b")
    assert no_scancel == []


def test_cancel_id_checks_the_claim_again_at_the_moment_of_cancelling(make_project, no_scancel):
    from unettui.cluster.slurm import cancel_plan, plan_cancel

    proj = make_project("[[experiment]]\nid = 'a'\n")
    run = _claim(proj, "a", TASK)
    plan = plan_cancel(proj, "a")
    assert (plan.job, plan.mates, plan.pilot) == ("987654_1", [], True)
    run.write_status(state="done")  # finished between the plan and scancel
    with pytest.raises(SlurmError, match=r"^'a' is done now \(slurm task 987654_1 finished it or moved on\): "
                                         r"nothing cancelled$"):
        cancel_plan(proj, plan)
    run.write_status(state="running", token="another runner")  # claimed again, by someone else
    with pytest.raises(SlurmError, match="nothing cancelled"):
        cancel_plan(proj, plan)
    assert no_scancel == []
    run.write_status(token="tok")
    lines = cancel_plan(proj, plan)
    assert no_scancel == ["987654_1"]
    assert lines[0] == "cancelled slurm task 987654_1, which was training 'a' (running 1/2)"
    assert "the task stops with it and trains nothing else" in lines[1]


def test_cancel_id_of_a_pack_member_names_the_whole_pack(make_project, no_scancel):
    from unettui.cluster.slurm import cancel_plan, describe_pack, plan_cancel

    proj = make_project("".join(f"[[experiment]]\nid = '{x}'\n" for x in "abcd"))
    ids = ["a", "b", "c"]
    for x in ids:
        _claim(proj, x, TASK, pack_size=3, pack_members=[y for y in ids if y != x])
    _claim(proj, "d", TASK, token="other", pack_size=2, pack_members=["a"])  # an earlier pack, another claim
    plan = plan_cancel(proj, "b")
    assert plan.runs == ["b", "a", "c"]
    assert describe_pack(plan).startswith("'b' trains in one pack with a, c in slurm task 987654_1: cancelling it "
                                          "stops the whole pack (3 runs")
    assert plan_cancel(proj, "d").mates == []
    assert cancel_plan(proj, plan)[0] == "cancelled slurm task 987654_1, which was training the pack b, a, c"
