"""The packs' GPU check: does the pack code work on this CUDA device, and how much faster does it train? Its verdict and
every figure go into ONE record, unettui/pack_check.json, which `unettui run --pack auto` reads (unettui/runner.py:
decide_pack): auto packs on CUDA only while that record says "pass" for the pack code installed (a hash of its files).

    1. the CUDA pack tests (pytest -k cuda over tests/unit/test_pack*.py);
    2. `bench --pack 1,4,8` (the default model, 64x64, batch 8), fp32 and bf16, three times each, alternating;
    3. the record: verdict ("pass" or "fail", with reasons), auto_pack (the pack size auto uses), card, torch, CUDA,
       cuDNN, commit, date, the tests' counts, every bench figure and their ranges; plus a text log.

Run by scripts/gpu_pack_check.sh (which installs the carried wheels first); alone: ``python3 scripts/gpu_pack_check.py``
from the repository root. Environment:

    OUT                  where pack_check.json (a copy of the record) and pack_check.txt (the log) go (/tmp/gpu_out)
    PACK_CHECK_TINY=1    a dry run on the CPU: the same steps at tiny sizes (the device tests' CPU cases, a tiny bench);
                         its record (verdict "fail": no CUDA) goes to $OUT only, never into the package
    PACK_CHECK_RECORD    where the record goes instead of unettui/pack_check.json
    PACK_CHECK_BUDGET    seconds the whole check may take, wheels included (default 230): bench repetitions that
                         would not fit are left out, and the record says so
    PACK_CHECK_START     the epoch second the check started at (the shell script sets it before installing wheels)
    PACK_CHECK_COMMIT    the commit checked, where the tree has no .git (the device machine's copy has none)

A check that cannot pass (no CUDA, a test failing or skipped, a bench that did not run) writes verdict "fail", which
auto treats as no check at all.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TEST_FILES = ("tests/unit/test_pack.py", "tests/unit/test_pack_train.py", "tests/unit/test_pack_devices.py")
PACKS = (1, 4, 8)
AMPS = ("off", "bf16")
REPS = 3
MIN_SPEEDUP = 1.2  # auto packs only a size whose worst measured speed-up reaches this
FORMAT = 1


class Log:
    """Prints and keeps every line (the text log)."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(path, "w", encoding="utf-8")

    def __call__(self, text: str = "") -> None:
        print(text, flush=True)
        self.file.write(text + "\n")
        self.file.flush()


def git_commit() -> tuple[str, bool | None, str]:
    """(commit, whether the pack code differs from it, where the commit came from)."""
    from unettui.runner import PACK_CODE_FILES

    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=20)
        if head.returncode == 0 and head.stdout.strip():
            files = [f"unettui/{f}" for f in PACK_CODE_FILES]
            diff = subprocess.run(["git", "status", "--porcelain", "--", *files], cwd=ROOT, capture_output=True,
                                  text=True, timeout=20)
            return head.stdout.strip(), bool(diff.stdout.strip()) if diff.returncode == 0 else None, "git"
    except (OSError, subprocess.SubprocessError):
        pass
    env = os.environ.get("PACK_CHECK_COMMIT", "").strip()
    return (env, None, "PACK_CHECK_COMMIT") if env else ("unknown", None, "none")


def run_tests(tiny: bool, timeout: float, log: Log) -> dict:
    """The pack tests on the device (CUDA cases), or their CPU cases in a dry run; counts from pytest's summary."""
    select = "not cuda" if tiny else "cuda"
    files = ["tests/unit/test_pack_devices.py"] if tiny else list(TEST_FILES)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "-k", select, *files]
    log(f"$ {' '.join(cmd[1:])}")
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=max(10.0, timeout))
        text, rc = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        text = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        text, rc = text + f"\n(timed out after {timeout:.0f} s)", 124
    seconds = time.monotonic() - t0
    lines = text.strip().splitlines()
    for line in lines[-25:]:
        log(f"  {line}")
    counts = {k: 0 for k in ("passed", "failed", "skipped", "errors", "deselected")}
    summary = next((ln for ln in reversed(lines) if re.search(r"\d+ (passed|failed|error|skipped)", ln)), "")
    for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", summary):
        counts["errors" if word.startswith("error") else word] = int(n)
    failing = [ln.split(" ", 1)[1].split(" - ")[0] for ln in lines if ln.startswith(("FAILED ", "ERROR "))]
    return {"command": " ".join(cmd[1:]), "returncode": rc, "seconds": round(seconds, 1),
            "summary": summary.strip("= "), **counts, "failing": failing[:10]}


def run_bench(tiny: bool, deadline: float, log: Log) -> dict:
    """`bench --pack` in this process: every amp REPS times, alternating, while the budget allows."""
    from unettui.core.learn.bench import run_pack_bench

    if tiny:
        opts = dict(device="cpu", packs=(1, 2), steps=2, rounds=1, image_size=32, base_channels=4, batch_size=4)
    else:
        opts = dict(device="cuda", packs=PACKS, steps=20, rounds=3, image_size=64, base_channels=16, batch_size=8)
    runs, longest, cut = [], 0.0, []
    for rep in range(1, REPS + 1):
        for amp in AMPS:
            if longest and time.monotonic() + 1.3 * longest > deadline:
                cut.append(f"amp {amp} run {rep}")
                continue
            t0 = time.monotonic()
            entry: dict = {"amp": amp, "run": rep, "N": {}}
            try:
                for line in run_pack_bench(amp=amp, **opts):
                    log(f"  [{amp} run {rep}] {line}")
                    m = re.match(r"N=(\d+): sequential ([\d.]+) images/s, packed ([\d.]+) images/s, ratio ([\d.]+)",
                                 line)
                    if m:
                        entry["N"][m.group(1)] = {"sequential": float(m.group(2)), "packed": float(m.group(3)),
                                                  "ratio": float(m.group(4))}
                    elif line.startswith("bench --pack:"):
                        entry["header"] = line
            except Exception as exc:  # noqa: BLE001 - recorded: the check fails with it
                entry["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
                log(f"  [{amp} run {rep}] failed: {entry['error']}")
                log(traceback.format_exc())
            entry["seconds"] = round(time.monotonic() - t0, 1)
            longest = max(longest, entry["seconds"])
            runs.append(entry)
    if cut:
        log(f"  left out to stay within the budget: {', '.join(cut)}")
    ranges: dict = {}
    for amp in AMPS:
        for n in (str(p) for p in opts["packs"]):
            got = [r["N"][n] for r in runs if r["amp"] == amp and n in r["N"]]
            if got:
                ranges.setdefault(amp, {})[n] = {k: [min(g[k] for g in got), max(g[k] for g in got)]
                                                 for k in ("sequential", "packed", "ratio")} | {"runs": len(got)}
    model = {k: opts[k] for k in ("image_size", "base_channels", "batch_size", "steps", "rounds")}
    return {"model": {**model, "depth": 4, "packs": list(opts["packs"])}, "runs": runs, "ranges": ranges,
            "left_out": cut}


def judge(cuda: bool, tiny: bool, tests: dict, bench: dict) -> tuple[str, list[str], int]:
    """(verdict, its reasons, auto_pack): pass only on CUDA, with every selected test passed (none skipped) and the
    bench measured for every amp and size; auto_pack is the size with the best worst-case speed-up, at least
    MIN_SPEEDUP (1: packs gained nothing here)."""
    reasons = []
    if not cuda:
        reasons.append("no CUDA device" + (" (PACK_CHECK_TINY: a dry run on the CPU)" if tiny else ""))
    if tests["returncode"] != 0 or tests["failed"] or tests["errors"]:
        reasons.append(f"pack tests: {tests['summary'] or 'exit ' + str(tests['returncode'])}"
                       + (f" ({', '.join(tests['failing'][:3])})" if tests["failing"] else ""))
    elif not tests["passed"]:
        reasons.append("pack tests: none ran")
    elif tests["skipped"] and not tiny:
        reasons.append(f"pack tests: {tests['skipped']} skipped on the device")
    errors = [f"{r['amp']} run {r['run']}: {r['error']}" for r in bench["runs"] if "error" in r]
    if errors:
        reasons.append("bench --pack failed: " + "; ".join(errors[:2]))
    sizes = [str(n) for n in bench["model"]["packs"]]
    missing = [f"{amp} N={n}" for amp in AMPS for n in sizes if n not in bench["ranges"].get(amp, {})]
    if missing and not errors:
        reasons.append(f"bench --pack measured nothing for {', '.join(missing)}")
    best, best_worst = 1, 0.0
    for n in sizes:
        worst = [bench["ranges"][amp][n]["ratio"][0] for amp in AMPS if n in bench["ranges"].get(amp, {})]
        if int(n) > 1 and len(worst) == len(AMPS) and min(worst) >= MIN_SPEEDUP and min(worst) > best_worst:
            best, best_worst = int(n), min(worst)
    return ("fail" if reasons else "pass"), reasons, best


def record_target(tiny: bool) -> Path | None:
    """Where the record goes besides $OUT: PACK_CHECK_RECORD, else the package's (what auto reads), or nowhere in a
    dry run (PACK_CHECK_TINY)."""
    from unettui.runner import PACK_CHECK_FILE

    if os.environ.get("PACK_CHECK_RECORD"):
        return Path(os.environ["PACK_CHECK_RECORD"])
    return None if tiny else PACK_CHECK_FILE


def write_record(record: dict, tiny: bool, out: Path) -> Path | None:
    """The record, atomically, where auto reads it (record_target) and in $OUT; returns the first place."""
    target = record_target(tiny)
    text = json.dumps(record, indent=1) + "\n"
    for path in (p for p in (target, out / "pack_check.json") if p is not None):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return target


def main() -> int:
    tiny = bool(os.environ.get("PACK_CHECK_TINY"))
    out = Path(os.environ.get("OUT") or "/tmp/gpu_out")
    start = float(os.environ.get("PACK_CHECK_START") or time.time())
    budget = float(os.environ.get("PACK_CHECK_BUDGET") or 230)
    deadline = time.monotonic() + budget - (time.time() - start)
    log = Log(out / "pack_check.txt")
    log(f"== the packs' GPU check{' (PACK_CHECK_TINY: a dry run on the CPU)' if tiny else ''}, "
        f"budget {budget:.0f} s, {time.time() - start:.1f} s spent before this script (wheels)")
    import torch

    from unettui.runner import PACK_CODE_FILES, decide_pack, pack_code_hash

    cuda = torch.cuda.is_available()
    card = torch.cuda.get_device_name(0) if cuda else "no CUDA device"
    commit, dirty, commit_from = git_commit()
    record: dict = {
        "format": FORMAT, "verdict": "fail", "reasons": [], "auto_pack": 1,
        "code_hash": pack_code_hash(), "code_files": [f"unettui/{f}" for f in PACK_CODE_FILES],
        "commit": commit, "dirty": dirty, "commit_from": commit_from,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": card, "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None, "python": platform.python_version(),
        "tiny": tiny, "script": "scripts/gpu_pack_check.sh",
    }
    log(f"{card}, torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {record['cudnn']}), Python "
        f"{record['python']}, commit {commit}" + (" with uncommitted changes to the pack code" if dirty else ""))
    log("== 1. the pack tests" + (" (their CPU cases)" if tiny else " on CUDA"))
    record["tests"] = run_tests(tiny, min(150.0, deadline - time.monotonic() - 60), log)
    log(f"tests: {record['tests']['summary']} ({record['tests']['seconds']} s)")
    log("== 2. bench --pack, fp32 (amp off) and bf16, alternating")
    record["bench"] = run_bench(tiny, deadline - 5, log)
    for amp, sizes in record["bench"]["ranges"].items():
        for n, r in sizes.items():
            log(f"bench amp {amp} N={n}: sequential {r['sequential'][0]:.0f}-{r['sequential'][1]:.0f} images/s, "
                f"packed {r['packed'][0]:.0f}-{r['packed'][1]:.0f} images/s, ratio {r['ratio'][0]:.2f}-"
                f"{r['ratio'][1]:.2f} (worst {r['ratio'][0]:.2f}; {r['runs']} runs)")
    record["verdict"], record["reasons"], record["auto_pack"] = judge(cuda, tiny, record["tests"], record["bench"])
    record["seconds"] = round(time.time() - start, 1)
    target = write_record(record, tiny, out)
    log("== the record")
    log(f"verdict: {record['verdict']}" + (f" ({'; '.join(record['reasons'])})" if record["reasons"] else "")
        + f"; auto_pack {record['auto_pack']}; {record['seconds']} s in all")
    log(f"written to {target or '(not into the package: a dry run)'} and {out / 'pack_check.json'}")
    log("what --pack auto now says on cuda:0: " + decide_pack("auto", "cuda:0", record).line)
    return 0 if record["verdict"] == "pass" else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as exc:  # the check itself broke: a failing record, so that auto does not pack on an old one
        write_record({"format": FORMAT, "verdict": "fail", "auto_pack": 1,
                      "reasons": [f"the check broke: {type(exc).__name__}: {exc}"],
                      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                      "tiny": bool(os.environ.get("PACK_CHECK_TINY"))},
                     bool(os.environ.get("PACK_CHECK_TINY")), Path(os.environ.get("OUT") or "/tmp/gpu_out"))
        raise
