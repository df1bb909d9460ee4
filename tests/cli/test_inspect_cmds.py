"""ls, show, logs and check through Typer's CliRunner on one tiny real project (one trained run, one failed, one
invalid, two pending)."""

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import TINY_DEFAULTS
from unettui.cli import logs_cmd
from unettui.cli.app import app
from unettui.core.runs.store import HOST
from unettui.core.show.render import ASCII_PANELS_LEGEND, BLOCKS

runner = CliRunner()
ENV = {"COLUMNS": "80", "NO_COLOR": None, "FORCE_COLOR": None, "TERM": None}
LONG_ID = "a-rather-long-experiment-id-that-needs-folding-in-a-narrow-terminal-0123456789"
BODY = f"""
[[experiment]]
id = "good"

[[experiment]]
id = "no-data"
dataset = "no-such-folder"

[[experiment]]
id = "typo"
optimiser = "sgd"

[[experiment]]
id = "later"
lr = 1e-4

[[experiment]]
id = "{LONG_ID}"
"""


def invoke(*args, env=None):
    return runner.invoke(app, list(args), env={**ENV, **(env or {})}, catch_exceptions=False)


@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    """Train 'good' (2 epochs, a second or two) and let 'no-data' fail; the others stay pending / invalid."""
    p = tmp_path_factory.mktemp("inspect") / "proj"
    p.mkdir()
    (p / "experiments.toml").write_text(TINY_DEFAULTS + BODY)
    out = invoke("run", "--headless", "-p", str(p), "--only", "good", "--only", "no-data")
    assert out.exit_code == 1, out.output  # one failed
    assert (p / "runs" / "good" / "preview_best.npz").exists()
    return p


def _lines(text):
    return text.splitlines()


# ---- ls -----------------------------------------------------------------------------------------


def test_ls_statuses_in_file_order(proj):
    out = invoke("ls", "-p", str(proj))
    assert out.exit_code == 0, out.output
    rows = [(m.group(1), m.group(2)) for m in re.finditer(r"^(\S+)\s+(pending|done|failed|invalid)\s", out.stdout, re.MULTILINE)]
    assert [r[1] for r in rows] == ["done", "failed", "invalid", "pending", "pending"]  # file order
    assert [r[0] for r in rows[:4]] == ["good", "no-data", "typo", "later"]
    assert LONG_ID.startswith(rows[4][0])  # the long id's first folded line
    best = json.loads((proj / "runs" / "good" / "summary.json").read_text())
    good = next(line for line in _lines(out.stdout) if line.startswith("good "))
    assert f"{best['best_val_dice']:.4f} @{best['best_epoch']}" in good
    assert re.search(r"\s1\s*$", good)  # one attempt, no error
    failed = next(line for line in _lines(out.stdout) if line.startswith("no-data "))
    assert "dataset folder" in failed and re.search(r"\s1\s", failed)
    invalid = next(line for line in _lines(out.stdout) if line.startswith("typo "))
    assert "optimiser: unknown key" in invalid
    assert _lines(out.stdout)[-1] == "2 pending, 1 done, 1 failed, 1 invalid"


def test_ls_fits_80_columns(proj):
    out = invoke("ls", "-p", str(proj))
    lines = _lines(out.stdout)
    assert max(len(line.rstrip()) for line in lines) <= 80
    assert not any(LONG_ID in line for line in lines)  # folded onto several lines
    assert LONG_ID[:20] in out.stdout
    assert "…" in next(line for line in lines if line.startswith("typo "))  # long error cut with an ellipsis


def test_ls_running_and_interrupted(proj, tmp_path):
    p = tmp_path / "p"
    shutil.copytree(proj, p)
    st_path = p / "runs" / "later" / "status.json"
    st_path.parent.mkdir()
    status = {"state": "running", "host": HOST, "pid": os.getpid(), "heartbeat": time.time(), "epoch": 1, "epochs": 2,
              "attempt": 1}
    st_path.write_text(json.dumps(status))
    assert re.search(r"^later\s+running 1/2\s", invoke("ls", "-p", str(p)).stdout, re.MULTILINE)
    # a live process on this machine keeps its claim whatever its heartbeat's age (a suspended runner) ...
    st_path.write_text(json.dumps({**status, "heartbeat": time.time() - 1000}))
    assert re.search(r"^later\s+running 1/2\s", invoke("ls", "-p", str(p)).stdout, re.MULTILINE)
    # ... a dead one does not, and another machine's claim goes stale with its heartbeat
    dead = subprocess.Popen(["true"])
    dead.wait()
    st_path.write_text(json.dumps({**status, "pid": dead.pid}))
    assert re.search(r"^later\s+interrupted 1/2\s", invoke("ls", "-p", str(p)).stdout, re.MULTILINE)
    st_path.write_text(json.dumps({**status, "host": "other-machine", "heartbeat": time.time() - 1000}))
    assert re.search(r"^later\s+interrupted 1/2\s", invoke("ls", "-p", str(p)).stdout, re.MULTILINE)


def test_ls_does_not_import_torch(proj):
    code = ("import sys\nfrom unettui.cli.app import app\n"
            f"try:\n    app(['ls', '-p', {str(proj)!r}])\nexcept SystemExit:\n    pass\n"
            "print('LOADED', ','.join(m for m in ('torch', 'textual') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "good" in out.stdout and out.stdout.strip().endswith("LOADED"), out.stdout[-300:]


# ---- show ---------------------------------------------------------------------------------------


def test_show_done_run_ascii(proj):
    out = invoke("show", "good", "-p", str(proj))  # not a terminal: ASCII
    assert out.exit_code == 0, out.output
    text = out.stdout
    assert text.startswith("good: done, attempt 1")
    assert "set:" in text and "epochs=2" in text and "base_channels=4" in text
    metrics = [json.loads(line) for line in (proj / "runs" / "good" / "metrics.jsonl").read_text().splitlines()]
    for rec in metrics:  # every epoch's row
        assert re.search(rf"^\s*{rec['epoch']}\s+{rec['train_loss']:.4f}\s+{rec['train_dice']:.4f}\s+"
                         rf"{rec['val_loss']:.4f}\s+{rec['val_dice']:.4f}", text, re.MULTILINE), text
    for label in ("train loss", "val loss", "val dice", "lr"):
        line = next(line for line in _lines(text) if line.strip().startswith(label + " "))
        assert any(ch in line for ch in BLOCKS), line
    assert "best val dice" in text and "2/2 epochs" in text
    pv = np.load(proj / "runs" / "good" / "preview_best.npz")
    for i, (name, dice) in enumerate(zip(pv["names"], pv["dice"])):
        assert f"sample {i + 1}/{len(pv['names'])}  {name}  dice {dice:.4f}" in text
    assert re.search(r"^input\s+truth\s+prediction\s+overlay$", text, re.MULTILINE)
    assert ASCII_PANELS_LEGEND in text
    assert re.search(r"^[ .:=+*#%@-]{4,}  [.#]{4,}  [.+]{4,}\s+[.#+@]{4,}$", text, re.MULTILINE)  # a preview row
    assert "▀" not in text and "\x1b[" not in text
    assert max(len(line.rstrip()) for line in _lines(text)) <= 80
    assert "note:" not in text  # nothing missing


def test_show_sample_last_and_bad_sample(proj):
    out = invoke("show", "good", "-p", str(proj), "--ascii", "--sample", "2", "--last")
    assert out.exit_code == 0, out.output
    assert "validation preview (last, epoch 2" in out.stdout
    assert "sample 2/2" in out.stdout and "sample 1/2" not in out.stdout
    bad = invoke("show", "good", "-p", str(proj), "--sample", "9")
    assert bad.exit_code == 2 and "holds samples 1..2" in bad.stderr and bad.stdout == ""


def test_show_colour_half_blocks(proj):
    out = invoke("show", "good", "-p", str(proj), env={"FORCE_COLOR": "1", "COLUMNS": "120"})
    assert out.exit_code == 0, out.output
    assert "▀" in out.stdout and "\x1b[" in out.stdout
    assert "hit" in out.stdout and "false positive" in out.stdout
    plain = invoke("show", "good", "-p", str(proj), "--ascii", env={"FORCE_COLOR": "1"})
    assert "▀" not in plain.stdout and ASCII_PANELS_LEGEND in re.sub(r"\x1b\[[0-9;]*m", "", plain.stdout)


def test_show_long_history_first_best_and_last_rows(proj, tmp_path):
    p = tmp_path / "p"
    shutil.copytree(proj, p)
    recs = [{"epoch": e, "train_loss": 1 / e, "train_dice": 0.5, "val_loss": 1 / e, "val_dice": 0.5, "lr": 1e-3,
             "seconds": 1.0} for e in range(1, 61)]
    recs[29]["val_dice"] = 0.75  # the best epoch, 30, is in the hidden middle
    (p / "runs" / "good" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    out = invoke("show", "good", "-p", str(p))
    epochs = [int(m.group(1)) for m in re.finditer(r"^\s*(\d+)\s+\d\.\d{4}\s", out.stdout, re.MULTILINE)]
    assert epochs == [*range(1, 11), 30, *range(51, 61)]
    assert "0.7500*" in out.stdout and "39 epochs not shown (--all-epochs)" in out.stdout
    out = invoke("show", "good", "-p", str(p), "--all-epochs")
    assert len(re.findall(r"^\s*\d+\s+\d\.\d{4}\s", out.stdout, re.MULTILINE)) == 60
    spark = next(line for line in _lines(out.stdout) if line.startswith("  train loss "))
    assert "█" in spark and "▁" in spark and len(spark) <= 80


def test_show_pending_invalid_and_failed(proj):
    out = invoke("show", "later", "-p", str(proj))
    assert out.exit_code == 0
    assert "later: pending, not run yet" in out.stdout and "lr=0.0001" in out.stdout and "optimizer=adam" in out.stdout
    out = invoke("show", "typo", "-p", str(proj))
    assert out.exit_code == 0 and "invalid definition" in out.stdout and "optimiser" in out.stdout
    out = invoke("show", "no-data", "-p", str(proj))
    assert out.exit_code == 0, out.output
    assert "no-data: failed" in out.stdout and "does not exist" in " ".join(out.stdout.split())
    assert "Traceback" not in out.output


def test_show_broken_run_folder(proj, tmp_path):
    p = tmp_path / "p"
    shutil.copytree(proj, p)
    run = p / "runs" / "good"
    (run / "summary.json").write_text("{torn")
    (run / "config.json").unlink()
    (run / "preview_best.npz").write_bytes(b"garbage")
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write("not json\n")
    out = invoke("show", "good", "-p", str(p))
    assert out.exit_code == 0, out.output
    assert "Traceback" not in out.output
    assert re.search(r"^\s*2\s+\d\.\d{4}", out.stdout, re.MULTILINE)  # the epochs that are there
    assert "runs/good/summary.json is not valid JSON (torn or hand-edited)" in out.stdout
    assert "missing: config.json" in out.stdout
    assert "preview_best.npz is unreadable" in out.stdout
    assert "runs/good/metrics.jsonl: 1 unreadable line skipped" in out.stdout
    assert "config (from experiments.toml" in out.stdout
    (run / "status.json").write_text("{")
    out = invoke("show", "good", "-p", str(p))
    assert out.exit_code == 0 and "good: damaged" in out.stdout
    assert ("runs/good/status.json is not valid JSON (torn or hand-edited); `unettui retry good` archives it"
            in " ".join(out.stdout.split()))
    shutil.rmtree(run)
    run.mkdir()
    assert invoke("show", "good", "-p", str(p)).exit_code == 0


# ---- logs ---------------------------------------------------------------------------------------


def test_logs_prints_the_run_log(proj):
    out = invoke("logs", "good", "-p", str(proj))
    assert out.exit_code == 0
    assert "epoch 1/2" in out.stdout and "epoch 2/2" in out.stdout and out.stdout.rstrip().endswith("done")
    out = invoke("logs", "good", "-p", str(proj), "--follow")  # finished: prints and returns
    assert out.exit_code == 0 and "epoch 2/2" in out.stdout
    out = invoke("logs", "no-data", "-p", str(proj))
    assert "failed" in out.stdout and "does not exist" in out.stdout
    out = invoke("logs", "later", "-p", str(proj))
    assert out.exit_code == 0 and "no log yet for 'later' (not run yet)" in out.stderr
    out = invoke("logs", "good", "-p", str(proj), "--attempt", "3")
    assert out.exit_code == 2 and "no attempt 3" in out.stderr


def test_logs_earlier_attempts(proj, tmp_path):
    p = tmp_path / "p"
    shutil.copytree(proj, p)
    old = p / "runs" / "good" / "attempts" / "1"
    old.mkdir(parents=True)
    (old / "run.log").write_text("2026-01-01 00:00:00 failed: old trouble\n")
    out = invoke("logs", "good", "-p", str(p))
    assert "earlier attempt" in out.stderr and "--attempt N" in out.stderr
    out = invoke("logs", "good", "-p", str(p), "--attempt", "1")
    assert out.exit_code == 0 and out.stdout == "2026-01-01 00:00:00 failed: old trouble\n"


def _running_run(tmp_path):
    p = tmp_path / "p"
    run = p / "runs" / "r"
    run.mkdir(parents=True)
    (p / "experiments.toml").write_text(TINY_DEFAULTS + "\n[[experiment]]\nid = 'r'\n")
    status = {"state": "running", "host": HOST, "pid": os.getpid(), "heartbeat": time.time(), "epoch": 0, "epochs": 2}
    (run / "status.json").write_text(json.dumps(status))
    (run / "run.log").write_text("first\n")
    return p, run, status


def test_logs_follow_until_the_run_ends(tmp_path, monkeypatch):
    monkeypatch.setattr(logs_cmd, "POLL_SECONDS", 0.02)
    p, run, status = _running_run(tmp_path)

    def writer():
        time.sleep(0.1)
        with open(run / "run.log", "a") as fh:
            fh.write("second\nthi")
            fh.flush()
            time.sleep(0.1)
            fh.write("rd\n")
        time.sleep(0.1)
        (run / "status.json").write_text(json.dumps({**status, "state": "done"}))
        with open(run / "run.log", "a") as fh:  # written right after the status, as the runner does
            fh.write("done\n")

    t = threading.Thread(target=writer)
    t.start()
    out = invoke("logs", "r", "-p", str(p), "-f")
    t.join()
    assert out.exit_code == 0
    assert out.stdout == "first\nsecond\nthird\ndone\n"


def test_logs_follow_ctrl_c_exits_0(tmp_path, monkeypatch):
    p, _, _ = _running_run(tmp_path)

    def interrupt(_):
        raise KeyboardInterrupt

    monkeypatch.setattr(logs_cmd.time, "sleep", interrupt)
    out = invoke("logs", "r", "-p", str(p), "--follow")
    assert out.exit_code == 0 and out.stdout == "first\n"


# ---- unknown ids --------------------------------------------------------------------------------


@pytest.mark.parametrize("cmd", ["show", "logs"])
def test_unknown_id_suggests_the_nearest(proj, cmd):
    out = invoke(cmd, "latr", "-p", str(proj))
    assert out.exit_code == 2
    assert out.stderr.startswith("error: unknown experiment 'latr'; did you mean 'later'")
    assert len(out.stderr.strip().splitlines()) == 1 and out.stdout == ""


def test_missing_queue_file_is_one_line_error(tmp_path):
    for args in (["ls"], ["show", "x"], ["logs", "x"], ["check"]):
        out = invoke(*args, "-p", str(tmp_path))
        assert out.exit_code == 2, args
        assert out.stderr.startswith("error:") and "Traceback" not in out.output


# ---- check --------------------------------------------------------------------------------------


def test_check_lists_every_problem(make_project):
    proj = make_project(
        "[[experiment]]\nid = 'ok'\n"
        "[[experiment]]\nid = 'big'\nbatch_size = 32\n"
        "[[experiment]]\nid = 'gone'\ndataset = 'data/missing'\n"
        "[[experiment]]\nid = 'typo'\nlr = -1\n"
    )
    out = invoke("check", "-p", str(proj))
    assert out.exit_code == 1, out.output
    lines = _lines(out.stdout)
    assert any("'big'" in ln and "batch_size: 32 is larger than the 13 training images" in ln for ln in lines), out.stdout
    assert any("'gone'" in ln and "dataset" in ln and "does not exist" in ln for ln in lines), out.stdout
    assert any("'typo'" in ln and "lr: must be > 0" in ln for ln in lines), out.stdout
    assert lines[-1].startswith("3 problems in")


def test_check_ok(make_project):
    proj = make_project("[[sweep]]\nid = 's'\nlr = [1e-3, 1e-4]\n")
    out = invoke("check", "-p", str(proj))
    assert out.exit_code == 0, out.output
    assert out.stdout.startswith("ok:") and "2 experiments, 1 dataset checked" in out.stdout


def test_check_malformed_toml(make_project):
    proj = make_project("[[experiment]\n")
    out = invoke("check", "-p", str(proj))
    assert out.exit_code == 1 and "not valid TOML" in out.stdout


# ---- help ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("cmd", ["ls", "show", "logs", "check"])
def test_help_has_an_example(cmd):
    out = invoke(cmd, "--help")
    assert out.exit_code == 0 and "Example: unettui " + cmd in out.stdout
