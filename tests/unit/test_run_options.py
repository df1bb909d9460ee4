"""The runner's options: parsed once at the CLI, carried whole — as one JSON text — to `--workers` children, SLURM
pilot tasks and the runner the TUI starts. Each carried copy is parsed here by the real `unettui run` (its Runner and
run_workers replaced by recorders), so a field that is not carried fails."""

from __future__ import annotations

import pickle
from dataclasses import fields, replace

import pytest
from typer.testing import CliRunner

from unettui import runner as runner_mod
from unettui.cli.app import app
from unettui.cluster.task import PilotTask
from unettui.core.runs.options import OptionsError, RunnerOptions
from unettui.runner import GuardedReporter, Outcome, runner_command, worker_options
from unettui.tui.runner_control import RunnerControl

# every field away from its default, in one of two sets: one process (ONE), and several (MANY: --device does not go
# with --workers/--devices). A new field must be given a value here, or test_every_field_is_set_away_from_its_default
# says so.
ONE = RunnerOptions(device="cpu", only=("a", "b"), stale_after=60.0, threads=3, pack=4, pack_dropout="fused")
MANY = replace(ONE, device=None, workers=3, devices=("cpu", "cuda:1"))
FAN_OUT = {"workers", "devices", "device", "threads"}  # what a --workers child has of its own


def test_every_field_is_set_away_from_its_default():
    default = RunnerOptions()
    same = [f.name for f in fields(RunnerOptions)
            if getattr(ONE, f.name) == getattr(default, f.name) and getattr(MANY, f.name) == getattr(default, f.name)]
    assert same == [], f"give {same} a value other than its default in ONE or MANY"


@pytest.fixture
def parse(make_project, monkeypatch):
    """parse(argv) -> the RunnerOptions the real `unettui run` built from ``argv`` (a runner_command line, or the
    arguments after `unettui`), recorded by the Runner or run_workers it would start."""
    proj = make_project("[[experiment]]\nid = 'a'\n[[experiment]]\nid = 'b'\n")
    got: list[RunnerOptions] = []

    class Recorder:
        def __init__(self, project, options, reporter=None, **_):
            got.append(options)
            self.reporter = GuardedReporter(reporter, lambda exc: None)

        def run(self):
            return Outcome()

    monkeypatch.setattr(runner_mod, "Runner", Recorder)
    monkeypatch.setattr(runner_mod, "run_workers", lambda project, options, out=None: got.append(options) or 0)

    def parse(argv: list[str], env: dict | None = None) -> RunnerOptions:
        args = list(argv[3:]) if argv[1:3] == ["-m", "unettui"] else list(argv)
        if "-p" in args:
            args[args.index("-p") + 1] = str(proj)
        got.clear()
        out = CliRunner().invoke(app, args, env=env)
        assert out.exit_code == 0 and len(got) == 1, (out.exit_code, out.output)
        return got[0]

    parse.project = proj
    return parse


def test_json_round_trip_keeps_every_field():
    for opts in (ONE, MANY, RunnerOptions()):
        assert RunnerOptions.from_json(opts.to_json()) == opts
    assert RunnerOptions.from_json(ONE.to_json()).only == ("a", "b")  # tuples come back as tuples


def test_every_option_is_a_flag_of_unettui_run_under_its_name():
    import typer

    run = typer.main.get_command(app).commands["run"]
    assert set(RunnerOptions.names()) <= {p.name for p in run.params}


def test_the_cli_flags_make_the_options(parse):
    flags = ["--only", "a", "--only", "b", "--stale-after", "60", "--threads", "3", "--pack", "4",
             "--pack-dropout", "fused"]
    assert parse(["run", "--headless", "-p", ".", "--device", "cpu", *flags]) == \
        RunnerOptions(device="cpu", only=("a", "b"), stale_after=60.0, threads=3, pack=4, pack_dropout="fused")
    assert parse(["run", "--headless", "-p", ".", *flags, "--workers", "3", "--devices", "cpu,cuda:1"]) == \
        RunnerOptions(only=("a", "b"), stale_after=60.0, threads=3, pack=4, pack_dropout="fused", workers=3,
                      devices=("cpu", "cuda:1"))


def test_each_worker_gets_every_option_with_its_own_device_and_threads(parse):
    children = worker_options(MANY)
    assert [(c.device, c.threads, c.workers, c.devices) for c in children] == \
        [("cpu", 3, 1, ()), ("cuda:1", 3, 1, ()), ("cpu", 3, 1, ())]
    for child in children:
        argv = runner_command(parse.project, child)
        assert argv[3:5] == ["run", "--headless"]
        assert parse(argv) == child
        assert {f.name: getattr(child, f.name) for f in fields(child) if f.name not in FAN_OUT} == \
            {f.name: getattr(MANY, f.name) for f in fields(MANY) if f.name not in FAN_OUT}
    shared = worker_options(replace(MANY, threads=None))
    assert all(c.threads is not None and c.threads >= 1 for c in shared if c.device == "cpu")  # the cores, shared


def test_a_slurm_task_gets_every_option(monkeypatch, tmp_path):
    got = []

    class Recorder:
        def __init__(self, project, options, reporter=None, backend=None, **_):
            got.append((options, backend))

        def run(self):
            return Outcome()

    monkeypatch.setattr(runner_mod, "Runner", Recorder)
    task = pickle.loads(pickle.dumps(PilotTask(str(tmp_path), ONE, submission="tok")))  # as submitit ships it
    assert task.options == ONE
    monkeypatch.setattr(PilotTask, "backend", lambda self: {"kind": "slurm", "job": "1_0"})
    task()
    assert got == [(ONE, {"kind": "slurm", "job": "1_0"})]
    requeued = task.checkpoint().function  # submitit's requeue: a fresh task made from the pickled arguments
    assert isinstance(requeued, PilotTask) and requeued.options == ONE and requeued.submission == "tok"


def test_the_tuis_runner_starts_unettui_run_with_the_options_it_was_given(parse, monkeypatch):
    """Not from the environment: UNETTUI_PACK set otherwise changes nothing; the workers and packs chosen in the TUI
    change only those fields."""
    from unettui.cluster import local

    started = []

    class Proc:
        pid = 4242

        def __init__(self, args, **kw):
            started.append((args, kw.get("env") or {}))

        def poll(self):
            return None

    monkeypatch.setattr(local.subprocess, "Popen", Proc)
    monkeypatch.setenv("UNETTUI_PACK", "off")
    control = RunnerControl(parse.project, MANY)
    assert control.start() == 4242 and control.running()
    args, env = started[0]
    assert args[3:5] == ["run", "--headless"] and "--pack" not in args
    assert parse(args, env=env) == MANY
    assert "runner: started here (pid 4242, 3 workers, packs 4)" == control.describe([]).text

    control.proc = None
    control.pack = "off"  # the P key
    control.start(workers=1)  # the - key, down to one
    assert parse(started[1][0], env=started[1][1]) == replace(MANY, pack="off", workers=1)
    one = RunnerControl(parse.project, ONE)
    one.start(workers=2)  # --device with more workers: every worker on that device
    assert parse(started[2][0]) == replace(ONE, workers=2, device=None, devices=("cpu",))


def test_unettui_run_opens_the_tui_with_its_options(make_project, monkeypatch):
    """`unettui run` without --headless: the real app's runner control is handed the options (no environment
    variable), and the app starts that many workers."""
    import os

    from unettui.tui import app as tui_app

    proj = make_project("[[experiment]]\nid = 'a'\n")
    seen = {}

    def run(self):  # the real app, built by the real factory; only not shown
        seen.update(options=self.runner.options, workers=self.n_workers, env=os.environ.get("UNETTUI_PACK"))

    monkeypatch.delenv("UNETTUI_PACK", raising=False)
    monkeypatch.setattr(tui_app.UnettuiApp, "run", run)
    out = CliRunner().invoke(app, ["run", "-p", str(proj), "--pack", "4", "--threads", "2", "--workers", "2"])
    assert out.exit_code == 0, out.output
    assert seen == {"workers": 2, "options": RunnerOptions(pack=4, threads=2, workers=2), "env": None}


@pytest.mark.parametrize("args, message", [
    (["--devices", "cpu,gpu"], "--devices: device: must be auto, cpu, cuda or cuda:N, got 'gpu'"),
    (["--device", "cpu", "--workers", "2"], "--device and --devices do not go together"),
    (["--pack", "many"], "--pack many: use auto, off or a number of experiments >= 1"),
    (["--runner-options", RunnerOptions().to_json(), "--pack", "2"], "--pack does not go with it"),
    (["--runner-options", '{"colour": 1}'], "runner options: unknown colour"),
])
def test_a_bad_option_is_one_line_before_anything_runs(make_project, args, message):
    proj = make_project()
    out = CliRunner().invoke(app, ["run", "--headless", "-p", str(proj), *args])
    assert out.exit_code == 2 and message in out.output and len(out.output.strip().splitlines()) == 1, out.output
    assert not (proj / "runs").exists()


def test_options_check_themselves_whichever_way_they_come():
    with pytest.raises(OptionsError, match="--stale-after 1"):
        RunnerOptions(stale_after=1)
    with pytest.raises(OptionsError, match="--threads 0"):
        RunnerOptions.from_json('{"threads": 0}')
    assert RunnerOptions.from_cli({"devices": "cpu, cuda:0", "pack": "OFF", "plain": True, "only": None}) == \
        RunnerOptions(devices=("cpu", "cuda:0"), pack="off")
    assert runner_mod.Runner(".", pack="3").options.pack == 3  # fields by name: checked the same way
