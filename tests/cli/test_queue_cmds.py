"""Queue-editing commands through Typer's CliRunner: init, add, sweep, rm, retry — output, exit codes, untouched files."""

import os
import time

import pytest
from typer.testing import CliRunner

from unettui.cli import queue_cmds
from unettui.cli.app import app
from unettui.core.define.init import STARTER
from unettui.core.plan import load_queue
from unettui.core.runs.store import HOST, RunStore

runner = CliRunner()


def invoke(*args, **kw):
    return runner.invoke(app, list(args), **kw)


def text(proj):
    return (proj / "experiments.toml").read_text()


def ids(proj):
    return [e.id for e in load_queue(proj).experiments]


def refused(out, message, code=2):
    """A one-line error on stderr, the given exit code, no traceback."""
    assert out.exit_code == code, out.output
    assert out.stderr.startswith("error: ") and message in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.output
    assert out.exception is None or isinstance(out.exception, SystemExit)


@pytest.fixture
def proj(tmp_path):
    out = invoke("init", str(tmp_path / "study"))
    assert out.exit_code == 0, out.output
    return tmp_path / "study"


def test_init_creates_and_never_overwrites(tmp_path, proj):
    assert "created" in invoke("init", "-p", str(tmp_path / "other")).output
    assert ids(tmp_path / "other") == ["baseline"]
    before = text(proj)
    refused(invoke("init", str(proj)), "experiments.toml already exists")
    assert text(proj) == before
    refused(invoke("init", str(tmp_path / "x"), "-p", str(tmp_path / "y")), "two folders given")


def test_add_prints_the_id(proj):
    before = text(proj)
    out = invoke("add", "-p", str(proj), "--set", "optimizer=sgd", "-s", "lr=1e-2", "-s", "augment.rotate=20")
    assert out.exit_code == 0, out.output
    assert out.stdout == "added sgd-lr0.01-rotate20\n"
    assert text(proj) == before + '\n[[experiment]]\noptimizer = "sgd"\nlr = 0.01\naugment.rotate = 20\n'
    out = invoke("add", "-p", str(proj), "--id", "wd", "-s", "weight_decay=1e-4")
    assert out.stdout == "added wd\n" and load_queue(proj).get("wd").config.weight_decay == 1e-4


@pytest.mark.parametrize("args, message", [
    (["--set", "optimiser=adam"], "--set: optimiser: unknown key; did you mean 'optimizer'?"),
    (["--set", "optimizer=adamm"], "did you mean 'adam'"),
    (["--set", "lr"], "'lr' is not key=value"),
    (["--set", "lr=0"], "lr: must be > 0"),
    (["--set", "lr=1e-3,1e-2"], "several values make a sweep"),
    (["--id", "baseline"], "id 'baseline' is already used"),
    (["--id", "my run"], "not filesystem-safe"),
    (["--set", "image_size=100"], "image_size: 100 is not divisible"),
    ([], "duplicate id 'baseline'"),  # nothing set: the generated id is 'baseline', which exists
])
def test_add_errors_change_nothing(proj, args, message):
    before = text(proj)
    refused(invoke("add", "-p", str(proj), *args), message)
    assert text(proj) == before


def test_commands_need_a_queue_file(tmp_path):
    for args in (["add", "-s", "lr=0.1"], ["sweep", "-s", "lr=0.1,0.2"], ["rm", "x"], ["retry", "--failed"]):
        refused(invoke(*args, "-p", str(tmp_path)), "`unettui init`")
    assert list(tmp_path.iterdir()) == []  # not even a lock file


def test_sweep_dry_run_writes_nothing(proj):
    before = text(proj)
    out = invoke("sweep", "-p", str(proj), "--id", "opt", "-s", "optimizer=adam,sgd,adagrad", "-s", "lr=1e-4..1e-2:log3",
                 "-s", "epochs=5", "--dry-run")
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["opt-adam-lr0.0001", "optimizer=adam", "lr=1e-4"]
    assert lines[-2].split() == ["opt-adagrad-lr0.01", "optimizer=adagrad", "lr=0.01"]
    assert lines[-1] == "9 experiments, shared: epochs=5 (dry run: nothing written)"
    assert text(proj) == before


def test_sweep_with_a_range(proj):
    out = invoke("sweep", "-p", str(proj), "--id", "lrs", "-s", "lr=1e-4..1e-1:log4")
    assert out.exit_code == 0, out.output
    assert out.stdout == "added sweep lrs with 4 experiments: lrs-lr0.0001, lrs-lr0.001, lrs-lr0.01, lrs-lr0.1\n"
    assert text(proj).endswith('\n[[sweep]]\nid = "lrs"\nlr = [1e-4, 0.001, 0.01, 0.1]\n')
    assert ids(proj)[-4:] == ["lrs-lr0.0001", "lrs-lr0.001", "lrs-lr0.01", "lrs-lr0.1"]
    out = invoke("sweep", "-p", str(proj), "-s", "dropout=0..0.5:6")
    assert out.stdout.startswith("added sweep sweep-dropout with 6 experiments: sweep-dropout-dropout0, ")


@pytest.mark.parametrize("args, message", [
    (["-s", "lr=1e-4..1e-1"], "--set: lr: bad range '1e-4..1e-1': use START..STOP:N"),
    (["-s", "optimiser=adam,sgd"], "did you mean 'optimizer'"),
    (["-s", "lr=1e-3"], "a sweep needs at least one key with a list"),
    ([], "a sweep needs at least one key"),
    (["--id", "baseline", "-s", "lr=1e-3,1e-2"], "id 'baseline' is already used"),
    (["-s", "lr=1e-3,1e-3"], "appears twice"),
])
def test_sweep_errors_change_nothing(proj, args, message):
    before = text(proj)
    refused(invoke("sweep", "-p", str(proj), *args), message)
    refused(invoke("sweep", "-p", str(proj), "--dry-run", *args), message)
    assert text(proj) == before


def test_big_sweep_needs_yes(proj, monkeypatch):
    before = text(proj)
    big = ["sweep", "-p", str(proj), "-s", "seed=0..119:120", "-s", "lr=1e-3"]
    refused(invoke(*big), "expands to 120 experiments (more than 100); pass --yes")
    assert text(proj) == before
    out = invoke(*big, "--dry-run")
    assert out.exit_code == 0 and out.stdout.splitlines()[-1].startswith("120 experiments")
    monkeypatch.setattr(queue_cmds, "_interactive", lambda: True)
    out = invoke(*big, input="n\n")
    assert out.exit_code == 1 and "add a sweep of 120 experiments?" in out.output and text(proj) == before
    out = invoke(*big, input="y\n")
    assert out.exit_code == 0 and "with 120 experiments" in out.stdout
    out = invoke("sweep", "-p", str(proj), "--id", "more", "-s", "seed=0..119:120", "--yes")
    assert out.exit_code == 0, out.output
    assert len(ids(proj)) == 1 + 240


def test_rm(proj):
    invoke("sweep", "-p", str(proj), "--id", "opt", "-s", "optimizer=adam,sgd")
    invoke("add", "-p", str(proj), "-s", "lr=0.1")
    RunStore(proj).run("opt-sgd").path.mkdir(parents=True)
    before = text(proj)
    refused(invoke("rm", "-p", str(proj), "opt-sgd"), "'opt-sgd' is item 2 of 2 of [[sweep]] 'opt'")
    refused(invoke("rm", "-p", str(proj), "lr0.1", "optt"), "unknown id 'optt'")
    assert text(proj) == before
    out = invoke("rm", "-p", str(proj), "opt", "lr0.1")
    assert out.exit_code == 0, out.output
    assert out.stdout.splitlines() == ["removed [[sweep]] opt (2 experiments)", "removed [[experiment]] lr0.1",
                                       "run folders kept: runs/opt-sgd/ (results show them as 'not in queue')"]
    assert ids(proj) == ["baseline"] and (proj / "runs" / "opt-sgd").is_dir()
    assert text(proj) == STARTER  # what was added and removed left no trace


def make_run(proj, run_id, state):
    run = RunStore(proj).run(run_id)
    run.path.mkdir(parents=True, exist_ok=True)
    run.write_status(state=state, host=HOST, pid=os.getpid(), heartbeat=time.time(), error="x" if state == "failed" else None)
    run.log(f"ended {state}")
    return run


def test_retry(proj):
    invoke("sweep", "-p", str(proj), "--id", "opt", "-s", "optimizer=adam,sgd")
    failed, done, running = make_run(proj, "opt-sgd", "failed"), make_run(proj, "baseline", "done"), make_run(proj, "opt-adam", "running")
    before = text(proj)
    out = invoke("retry", "-p", str(proj), "--failed")
    assert out.exit_code == 0, out.output
    assert out.stdout.splitlines() == ["opt-sgd: will train again; the previous attempt is kept in runs/opt-sgd/attempts/1/",
                                       f"next: unettui run --headless -p {proj}"]
    assert failed.state() == "queued" and (failed.path / "attempts" / "1" / "run.log").exists()
    assert invoke("retry", "-p", str(proj), "--failed").stdout == "no failed runs to retry\n"
    refused(invoke("retry", "-p", str(proj), "baseline", "opt-adam"), f"'opt-adam' is running on host {HOST} pid {os.getpid()}; stop it first")
    assert done.state() == "done" and running.state() == "running"
    refused(invoke("retry", "-p", str(proj), "opt-sgd"), "has not run yet")
    refused(invoke("retry", "-p", str(proj)), "name the experiments to retry, or pass --failed")
    out = invoke("retry", "-p", str(proj), "baseline")
    assert out.exit_code == 0 and done.state() == "queued" and len(done.attempts()) == 1
    assert text(proj) == before


def test_retry_a_really_failed_run(tmp_path):
    proj = tmp_path / "p"
    invoke("init", str(proj))
    (proj / "experiments.toml").write_text('[defaults]\ndataset = "does/not/exist"\nepochs = 1\n\n[[experiment]]\nid = "bad"\n')
    out = invoke("run", "--headless", "-p", str(proj))
    assert out.exit_code == 1, out.output
    out = invoke("retry", "-p", str(proj), "--failed")
    assert out.exit_code == 0 and out.stdout.startswith("bad: will train again")
    attempt = RunStore(proj).run("bad").attempts()[0]
    assert "does/not/exist" in (attempt / "status.json").read_text()
    assert RunStore(proj).run("bad").state() == "queued"


@pytest.mark.parametrize("command", ["init", "add", "sweep", "rm", "retry"])
def test_help(command):
    out = invoke(command, "--help")
    assert out.exit_code == 0 and "Example: unettui " + command in out.stdout and "--project" in out.stdout


def test_queue_commands_import_neither_torch_nor_textual(proj):
    import subprocess
    import sys

    code = ("import sys\n"
            "from unettui.cli.app import app\n"
            f"for args in (['add', '-p', {str(proj)!r}, '-s', 'lr=0.1'], ['sweep', '-p', {str(proj)!r}, '-s', 'lr=1,2', '-n'],\n"
            f"             ['rm', '-p', {str(proj)!r}, 'lr0.1'], ['retry', '-p', {str(proj)!r}, '--failed']):\n"
            "    try:\n        app(args)\n    except SystemExit as e:\n        assert not e.code, (args, e.code)\n"
            "print('LOADED', ','.join(m for m in ('torch', 'textual') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("LOADED"), out.stdout[-300:]
