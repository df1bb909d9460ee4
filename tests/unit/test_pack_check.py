"""Packs on a GPU only once measured: `--pack auto` packs on CUDA only while the packs' GPU check
(scripts/gpu_pack_check.sh) has a passing record for the installed pack code; what the check writes is what auto
reads; every runner says in one line what it does with packs and why."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import unettui
from unettui.runner import (
    AUTO_PACK_CUDA,
    PACK_CHECK_FILE,
    PACK_CODE_FILES,
    Runner,
    SilentReporter,
    decide_pack,
    pack_code_hash,
    read_pack_check,
)

ROOT = Path(__file__).resolve().parents[2]
CARD = {"commit": "0123456789abcdef0123", "date": "2026-12-06T10:00:00+00:00", "device": "NVIDIA H100 80GB HBM3",
        "torch": "2.11.0+cu130"}
SAID = "commit 012345678, on 2026-12-06, NVIDIA H100 80GB HBM3, torch 2.11.0+cu130"


def check_script():
    spec = importlib.util.spec_from_file_location("gpu_pack_check", ROOT / "scripts" / "gpu_pack_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write(path: Path, record) -> Path:
    path.write_text(json.dumps(record) if not isinstance(record, str) else record)
    return path


def test_auto_trains_alone_on_cuda_until_the_gpu_check_passed_on_this_pack_code(tmp_path):
    record = tmp_path / "pack_check.json"
    # no record: alone, and the one line says why and what to do
    got = decide_pack("auto", "cuda:0", record)
    assert got.limit == 1 and not got.checked
    assert got.line == ("packs: off on cuda:0: no GPU check of the pack code on record (scripts/gpu_pack_check.sh); "
                        "runs interrupted in a pack resume in it; --pack 8 packs anyway")
    # a passing check of the installed pack code: auto packs
    write(record, {"verdict": "pass", "code_hash": pack_code_hash(), "auto_pack": AUTO_PACK_CUDA, **CARD})
    got = decide_pack("auto", "cuda:0", record)
    assert got.limit == AUTO_PACK_CUDA == 8 and got.checked
    assert got.line == (f"packs: up to 8 on cuda:0: the pack code's GPU check passed ({SAID}); "
                        "--pack off trains each alone")
    # ... of other pack code: alone again, naming the commit the check passed on
    write(record, {"verdict": "pass", "code_hash": "0" * 64, "auto_pack": 8, **CARD})
    got = decide_pack("auto", "cuda:1", record)
    assert got.limit == 1 and not got.checked
    assert got.line == (f"packs: off on cuda:1: the pack code changed since its GPU check passed ({SAID}); "
                        "scripts/gpu_pack_check.sh checks it again; runs interrupted in a pack resume in it; "
                        "--pack 8 packs anyway")
    # a failed check (a test failing, no CUDA) is no check
    write(record, {"verdict": "fail", "reasons": ["pack tests: 1 failed, 7 passed"], "code_hash": pack_code_hash(),
                   **CARD})
    got = decide_pack("auto", "cuda:0", record)
    assert got.limit == 1 and "did not pass (" + SAID + ": pack tests: 1 failed, 7 passed;" in got.line
    for broken in ("{not json", "[1, 2]", ""):
        assert decide_pack("auto", "cuda:0", write(record, broken)).limit == 1
    assert read_pack_check(write(record, "[1, 2]"))["verdict"] == "unreadable"
    # the check measured its own size, or no speed-up at all
    write(record, {"verdict": "pass", "code_hash": pack_code_hash(), "auto_pack": 4, **CARD})
    assert decide_pack("auto", "cuda:0", record).limit == 4
    write(record, {"verdict": "pass", "code_hash": pack_code_hash(), "auto_pack": 1, **CARD})
    got = decide_pack("auto", "cuda:0", record)
    assert got.limit == 1 and "passed but measured no speed-up from packs" in got.line


def test_explicit_choices_and_the_cpu_do_not_depend_on_the_check(tmp_path):
    missing = tmp_path / "none.json"
    passing = write(tmp_path / "pass.json", {"verdict": "pass", "code_hash": pack_code_hash(), **CARD})
    got = decide_pack(8, "cuda:0", missing)
    assert got.limit == 8 and got.line == ("packs: up to 8 on cuda:0 (--pack 8); note: no GPU check of the pack code "
                                           "on record (scripts/gpu_pack_check.sh)")
    assert decide_pack(8, "cuda:0", passing).line == f"packs: up to 8 on cuda:0 (--pack 8); the pack code's GPU " \
                                                     f"check passed ({SAID})"
    assert decide_pack(3, "cpu", missing).line == "packs: up to 3 on cpu (--pack 3)"
    for pack in ("off", 1):
        assert decide_pack(pack, "cuda:0", passing) == decide_pack(pack, "cpu", missing)
        assert decide_pack(pack, "cpu", missing).limit == 1
    got = decide_pack("auto", "cpu", passing)  # a CPU gains nothing from packs, checked or not
    assert got.limit == 1 and got.line.startswith("packs: off on cpu: --pack auto packs on CUDA only")


def test_the_hash_follows_the_pack_code(tmp_path):
    package = Path(unettui.__file__).parent
    for rel in PACK_CODE_FILES:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(package / rel, tmp_path / rel)
    assert pack_code_hash(tmp_path) == pack_code_hash()
    pack = tmp_path / "core/learn/pack.py"
    pack.write_text(pack.read_text() + "\n")
    assert pack_code_hash(tmp_path) != pack_code_hash()
    pack.unlink()
    assert pack_code_hash(tmp_path) != pack_code_hash()


def test_the_record_lives_in_the_package_and_ships_with_it():
    assert PACK_CHECK_FILE.parent == Path(unettui.__file__).parent and PACK_CHECK_FILE.name == "pack_check.json"
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "pack_check.json" in pyproject["tool"]["setuptools"]["package-data"]["unettui"]


def test_what_the_check_records_is_what_auto_reads(tmp_path, monkeypatch):
    script = check_script()
    monkeypatch.setenv("PACK_CHECK_RECORD", str(tmp_path / "pack_check.json"))
    tests = {"returncode": 0, "passed": 8, "failed": 0, "skipped": 0, "errors": 0, "summary": "8 passed",
             "failing": []}
    figures = {"1": {"ratio": [0.98, 1.02]}, "4": {"ratio": [3.1, 3.4]}, "8": {"ratio": [5.2, 5.9]}}
    bench = {"model": {"packs": [1, 4, 8]}, "runs": [], "ranges": {"off": figures, "bf16": figures}}

    def recorded(cuda, tests, bench, tiny=False):
        verdict, reasons, auto = script.judge(cuda, tiny, tests, bench)
        record = {"verdict": verdict, "reasons": reasons, "auto_pack": auto, "code_hash": pack_code_hash(), **CARD}
        target = script.write_record(record, tiny, tmp_path / "out")
        assert target == tmp_path / "pack_check.json"
        assert json.loads((tmp_path / "out" / "pack_check.json").read_text()) == record
        return decide_pack("auto", "cuda:0", target)

    assert recorded(True, tests, bench).limit == 8  # the size with the best worst-case speed-up
    # a test failing, a test skipped on the device, no CUDA, a bench that broke: failing verdicts, no packs
    failed = {**tests, "returncode": 1, "failed": 1, "passed": 7, "summary": "1 failed, 7 passed",
              "failing": ["tests/unit/test_pack_devices.py::test_x[cuda-bf16]"]}
    got = recorded(True, failed, bench)
    assert got.limit == 1 and "pack tests: 1 failed, 7 passed (tests/unit/test_pack_devices.py::test_x" in got.line
    assert recorded(True, {**tests, "skipped": 2}, bench).limit == 1
    got = recorded(False, tests, bench)
    assert got.limit == 1 and "no CUDA device" in got.line
    broke = {**bench, "runs": [{"amp": "bf16", "run": 1, "error": "OutOfMemoryError: CUDA out of memory"}],
             "ranges": {"off": figures}}
    got = recorded(True, tests, broke)
    assert got.limit == 1 and "bench --pack failed: bf16 run 1: OutOfMemoryError" in got.line
    slow = {"1": {"ratio": [1.0, 1.0]}, "4": {"ratio": [1.1, 1.5]}, "8": {"ratio": [0.9, 1.6]}}
    got = recorded(True, tests, {**bench, "ranges": {"off": slow, "bf16": figures}})
    assert got.limit == 1 and "measured no speed-up" in got.line  # the worst case decides


def test_the_check_benches_packs_up_to_16_at_64_pixels_in_both_precisions():
    script = check_script()
    assert script.PACKS == (1, 4, 8, 16) and script.AMPS == ("off", "bf16")
    setup = script.launch_setup(tiny=False)  # the launches are counted on the bench's default model
    assert setup == {"image_size": 64, "batch_size": 8, "base_channels": 16, "depth": 4, "packs": [1, 4, 8, 16]}


def launch_counts(sizes: dict, packs=(1, 4, 8, 16), **extra) -> dict:
    return {"setup": {"packs": list(packs)}, "sizes": {k: {"launches": v, "syncs": 0, **extra} for k, v in sizes.items()}}


def test_the_launch_model_is_compared_with_the_profiler_but_never_fails_the_check(tmp_path, monkeypatch):
    script = check_script()
    model = launch_counts({"solo": 235, "1": 289, "4": 302, "8": 302, "16": 308})
    close = launch_counts({"solo": 300, "1": 350, "4": 360, "8": 370, "16": 390}, kernels=1, copies=0, memsets=0)
    got = script.compare_launches(model, close)
    assert [r["N"] for r in got["rows"]] == ["solo", "1", "4", "8", "16"]
    assert got["rows"][0] | {"model": 235, "measured": 300, "ratio": 1.277} == got["rows"][0]
    assert got["model_off"] is False and got["note"] is None and got["tolerance"] == 0.3
    assert got["largest_per_solo"] == {"model": 1.311, "measured": 1.3}
    lines = script.launch_lines({**got, "model": model, "measured": close})
    assert lines[0] == ("launches solo: model 235, measured 300 (kernels 1, copies 0, memsets 0; syncs 0, model 0), "
                        "measured/model 1.28")
    assert lines[-2:] == ["launches pack of 16 / solo: model 1.31x, measured 1.30x",
                          "launch model: within 30% of the profiler at every size"]
    # off by more than 30 % at some size: a note that names where, not a reason
    far = launch_counts({"solo": 300, "1": 350, "4": 360, "8": 370, "16": 480})
    got = script.compare_launches(model, far)
    assert got["model_off"] is True and got["note"] == "launch model off by more than 30% (measured / model): N=16 1.56"
    assert script.launch_lines({**got, "model": model, "measured": far})[-1].startswith(
        "launch model: off (launch model off by more than 30%")
    # nothing measured (no CUDA): not checked, and the log says why
    none = script.compare_launches(model, {"unavailable": script.NO_CUDA})
    assert none["model_off"] is None and none["note"] is None
    lines = script.launch_lines({**none, "model": model, "measured": {"unavailable": script.NO_CUDA}})
    assert lines[1] == "launches N=1: model 289, measured n/a (no CUDA)"
    assert lines[-1] == "launch model: not checked (nothing measured)"
    # the verdict does not look at the launches: a passing check with the model off still lets auto pack
    monkeypatch.setenv("PACK_CHECK_RECORD", str(tmp_path / "pack_check.json"))
    tests = {"returncode": 0, "passed": 9, "failed": 0, "skipped": 0, "errors": 0, "summary": "9 passed",
             "failing": []}
    figures = {n: {"ratio": [1.5, 2.0]} for n in ("1", "4", "8", "16")}
    verdict, reasons, auto = script.judge(True, False, tests, {"model": {"packs": [1, 4, 8, 16]}, "runs": [],
                                                               "ranges": {"off": figures, "bf16": figures}})
    record = {"verdict": verdict, "reasons": reasons, "auto_pack": auto, "notes": [got["note"]],
              "code_hash": pack_code_hash(), **CARD}
    target = script.write_record(record, False, tmp_path / "out")
    assert verdict == "pass" and decide_pack("auto", "cuda:0", target).limit == 4  # the first size of the best


def test_a_count_stopped_by_the_budget_keeps_what_it_had(tmp_path):
    script = check_script()
    path = tmp_path / "launches_measured.json"
    path.write_text(json.dumps(launch_counts({"solo": 300, "16": 390})))
    (tmp_path / "log").write_text("")
    job = {"proc": subprocess.Popen(["sleep", "30"]), "path": path, "log": tmp_path / "log", "start": 0.0}
    got = script.finish_launches(job, timeout=0.1)
    assert job["proc"].returncode is not None  # stopped
    assert got["sizes"]["16"]["launches"] == 390 and got["error"].startswith("not finished within the budget")
    broken = {"proc": subprocess.Popen(["sh", "-c", "echo Traceback; echo RuntimeError: no CUPTI; exit 3"]),
              "path": tmp_path / "none.json", "log": tmp_path / "log", "start": 0.0}
    broken["proc"].wait()
    (tmp_path / "log").write_text("Traceback\nRuntimeError: no CUPTI\n")
    assert script.finish_launches(broken, timeout=5) == {"error": "exit 3: Traceback | RuntimeError: no CUPTI"}


def test_the_runner_says_in_one_line_what_it_does_with_packs(make_project):
    class Notes(SilentReporter):
        def __init__(self):
            self.notes = []

        def note(self, exp, text):
            self.notes.append((exp, text))

    proj = make_project("[[experiment]]\nid = 'a'\n[[experiment]]\nid = 'b'\nseed = 5\n")
    reporter = Notes()
    assert Runner(proj, reporter=reporter).run().done == ["a", "b"]
    line = decide_pack("auto", "cpu").line
    assert reporter.notes == [(None, line)]  # told once per device
    for i in ("a", "b"):
        log = (proj / "runs" / i / "run.log").read_text().splitlines()
        assert [ln.split(" ", 2)[2] for ln in log if " packs: " in ln] == [line]


@pytest.mark.slow
def test_the_dry_run_of_the_check_writes_a_failing_record_with_its_figures(tmp_path):
    env = {**os.environ, "PACK_CHECK_TINY": "1", "OUT": str(tmp_path / "out"),
           "PACK_CHECK_RECORD": str(tmp_path / "pack_check.json"), "PYTHON": sys.executable}
    proc = subprocess.run(["bash", "scripts/gpu_pack_check.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the verdict: no CUDA here
    record = json.loads((tmp_path / "pack_check.json").read_text())
    assert record == json.loads((tmp_path / "out" / "pack_check.json").read_text())
    assert record["verdict"] == "fail"
    assert record["reasons"] == ["no CUDA device (PACK_CHECK_TINY: a dry run on the CPU)"]
    assert record["code_hash"] == pack_code_hash() and record["device"] == "no CUDA device"
    assert record["torch"] and record["date"] and record["commit"] and record["tiny"] is True
    assert record["tests"]["passed"] >= 3 and record["tests"]["failed"] == 0
    for amp in ("off", "bf16"):
        assert set(record["bench"]["ranges"][amp]) == {"1", "2"}
        assert record["bench"]["ranges"][amp]["2"]["runs"] == 3
    assert decide_pack("auto", "cuda:0", tmp_path / "pack_check.json").limit == 1
    log = (tmp_path / "out" / "pack_check.txt").read_text()
    assert "verdict: fail" in log and "what --pack auto now says on cuda:0: packs: off on cuda:0" in log
    # the launch model counted (on the CPU, the tiny UNet), the profiler's column n/a: a comparison not made, no note
    launches = record["launches"]
    assert launches["measured"] == {"unavailable": "n/a (no CUDA)"} and launches["in_verdict"] is False
    assert [r["N"] for r in launches["rows"]] == ["solo", "1", "2"]
    assert all(r["model"] > 0 and r["measured"] is None and r["ratio"] is None for r in launches["rows"])
    assert launches["model_off"] is None and record["notes"] == []
    for row in launches["rows"]:
        assert f"launches {'solo' if row['N'] == 'solo' else 'N=' + row['N']}: model {row['model']}, measured " \
               "n/a (no CUDA)" in log
