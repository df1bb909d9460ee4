"""The SLURM read side without a cluster: time syntax, the scheduler's words (parsed from real squeue/sacct output),
the backend a claim records and keeps, and how a row shows it. Everything that talks to Slurm is in tests/slurm/."""

import pytest

from unettui.cluster.slurm import SlurmError, parse_sbatch, sbatch_message
from unettui.core.runs.slurm_state import (
    JobState,
    backend_from_env,
    backends_of_run,
    claim_backend,
    parse_sacct,
    parse_squeue,
    parse_time,
    summarize,
)
from unettui.core.runs.status import Row, State


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
    states = {"42_0": JobState("42_0", "RUNNING"), "42_1": JobState("42_1", "PENDING", "BeginTime", 1),
              "42_2": JobState("42_2", "PENDING"), "41_0": JobState("41_0", "RUNNING")}
    assert summarize(rec, states) == "slurm job 42 (3 tasks): 1 running, 1 requeued, 1 pending"
    assert summarize(rec, {"42_0": JobState("42_0", "COMPLETED")}) is None  # all ended: nothing to say
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
