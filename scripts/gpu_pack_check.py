"""The packs' GPU check: does the pack code work on this CUDA device, and how much faster does it train? Its verdict and
every figure go into ONE record, unettui/pack_check.json, which `unettui run --pack auto` reads (unettui/runner.py:
decide_pack): auto packs on CUDA only while that record says "pass" for the pack code installed (a hash of its files).

    1. the CUDA pack tests (pytest -k cuda over tests/unit/test_pack*.py); meanwhile, in a second process on the CPU,
       the launch model's count of one training step (core/learn/launches.py: step_launches) for one solo run and
       packs of 1, 4, 8 and 16;
    2. `bench --pack 1,4,8,16` (the default model, 64x64, batch 8), fp32 and bf16, up to three times each,
       alternating, as long as the budget allows (the record's bench.left_out names what did not fit);
    3. the CUDA kernels of the same training steps as torch.profiler measures them (measured_step_launches, in a
       process of its own after the bench, so that the profiler cannot touch the bench's timings), side by side
       with the model's count and their ratio; a model off by more than 30 % at any size is a note in the record,
       not a failure (LAUNCH_OFF: the verdict is about the pack code, the model is a planning tool);
    4. the record: verdict ("pass" or "fail", with reasons), auto_pack (the pack size auto uses), notes, card, torch,
       CUDA, cuDNN, commit, date, the tests' counts, every bench figure and their ranges, the launch counts; plus a
       text log.

Run by scripts/gpu_pack_check.sh (which installs the carried wheels first); alone: ``python3 scripts/gpu_pack_check.py``
from the repository root. Environment:

    OUT                  where pack_check.json (a copy of the record) and pack_check.txt (the log) go (/tmp/gpu_out)
    PACK_CHECK_TINY=1    a dry run on the CPU: the same steps at tiny sizes (the device tests' CPU cases, a tiny bench,
                         the launch model of a tiny UNet; the measured column "n/a (no CUDA)"); its record (verdict
                         "fail": no CUDA) goes to $OUT only, never into the package
    PACK_CHECK_RECORD    where the record goes instead of unettui/pack_check.json
    PACK_CHECK_BUDGET    seconds the whole check may take, wheels included (default 230): bench repetitions that
                         would not fit are left out (LAUNCH_RESERVE seconds are kept for the profiler's count on
                         CUDA), and the record says so
    PACK_CHECK_START     the epoch second the check started at (the shell script sets it before installing wheels)
    PACK_CHECK_COMMIT    the commit checked, where the tree has no .git (the device machine's copy has none)

A check that cannot pass (no CUDA, a test failing or skipped, a bench that did not run) writes verdict "fail", which
auto treats as no check at all. ``python3 scripts/gpu_pack_check.py --launches model|measured --json PATH`` is the
launch count's own process (the check starts it).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TEST_FILES = ("tests/unit/test_pack.py", "tests/unit/test_pack_train.py", "tests/unit/test_pack_devices.py",
              "tests/unit/test_pack_optim.py", "tests/unit/test_pack_dropout.py")
PACKS = (1, 4, 8, 16)
AMPS = ("off", "bf16")
REPS = 3  # at most: repetitions that would overrun the budget are left out (with N = 16, expect fewer on a GPU)
MIN_SPEEDUP = 1.2  # auto packs only a size whose worst measured speed-up reaches this
LAUNCH_OFF = 0.30  # the launch model is "off" where measured / model leaves 1 +- this (a note, never a failure)
LAUNCH_RESERVE = 45.0  # seconds the bench leaves for the profiler's count after it, where there is CUDA
LAUNCH_MODEL_WAIT = 90.0  # at most this long the bench waits for the model's count after the tests
FORMAT = 1
NO_CUDA = "n/a (no CUDA)"
LAUNCHES_WHY = ("the launch model (core/learn/launches.py) predicts on the CPU what a pack costs a GPU in kernel "
                f"launches; a model off by more than {LAUNCH_OFF:.0%} at some size is recorded as a note, not as a "
                "failure: the verdict says whether the pack code is correct and faster on this card, which the "
                "tests and the bench measure directly, and a wrong model makes packs neither wrong nor slower")


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


def launch_setup(tiny: bool) -> dict:
    """The training step whose launches are counted: bench's default model (the tiny one in a dry run), Adam, fp32;
    one solo run and a pack of each size (members: seeds 0..N-1, each its own lr), as `bench --launches` counts."""
    if tiny:
        return {"image_size": 32, "batch_size": 4, "base_channels": 4, "depth": 2, "packs": [1, 2]}
    return {"image_size": 64, "batch_size": 8, "base_channels": 16, "depth": 4, "packs": list(PACKS)}


def _launch_build(setup: dict, device: str, n: int | None):
    """build(steps) for step_launches / measured_step_launches: a solo Trainer (n None) or a pack of n, on device."""
    from unettui.core.define.config import Config
    from unettui.core.learn.pack_train import PackTrainer
    from unettui.core.learn.train import Trainer

    def cfg(steps: int, **kw) -> Config:
        return Config(num_images=steps * setup["batch_size"], train_fraction=1.0, image_size=setup["image_size"],
                      batch_size=setup["batch_size"], base_channels=setup["base_channels"], depth=setup["depth"],
                      device=device, amp="off", preview_count=0, **kw)

    if n is None:
        return lambda steps: Trainer(cfg(steps))
    return lambda steps: PackTrainer.from_configs([cfg(steps, seed=i, lr=1e-3 * (1 + 0.1 * i)) for i in range(n)])


def count_step_launches(kind: str, tiny: bool, progress=None) -> dict:
    """One training step's launches for the solo run and every pack size of launch_setup: ``kind`` "model" (the
    launch model, counted on the CPU) or "measured" (torch.profiler's CUDA events); the solo run and the largest
    pack first (the pair that matters most, should the budget stop the count), ``progress(result)`` after each."""
    import torch

    from unettui.core.learn.launches import measured_step_launches, step_launches

    setup = launch_setup(tiny)
    if kind == "model":
        torch.set_num_threads(max(1, min(8, (os.cpu_count() or 2) // 2)))  # the CUDA tests run beside it
        count, device = step_launches, "cpu"
    elif kind == "measured":
        count, device = measured_step_launches, "cuda"
    else:
        raise ValueError(f"kind must be 'model' or 'measured', not {kind!r}")
    t0 = time.monotonic()
    sizes: dict = {}
    result = {"kind": kind, "torch": torch.__version__, "device": device, "setup": setup, "sizes": sizes}
    packs = sorted(setup["packs"])
    for key, n in [("solo", None)] + [(str(n), n) for n in packs[-1:] + packs[:-1]]:
        try:
            step, _ = count(_launch_build(setup, device, n))
        except Exception as exc:  # noqa: BLE001 - recorded; the other sizes are still counted
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            sizes[key] = {"error": f"{type(exc).__name__}: {first}"}
        else:
            sizes[key] = {"launches": step.launches, "syncs": step.syncs, "by_op": dict(step.by_op.most_common(12))}
            if kind == "measured":
                sizes[key].update(kernels=step.kernels, copies=step.copies, memsets=step.memsets, other=step.other,
                                  by_kernel={k[:120]: v for k, v in step.by_kernel.most_common(8)})
        if kind == "measured" and torch.cuda.is_available():
            torch.cuda.empty_cache()
        result["seconds"] = round(time.monotonic() - t0, 1)
        if progress is not None:
            progress(result)
    result["seconds"] = round(time.monotonic() - t0, 1)
    return result


def start_launches(kind: str, tiny: bool, folder: Path) -> dict:
    """count_step_launches(kind) in a process of its own (this script with --launches): the model's on the CPU (no
    CUDA visible), the profiler's on CUDA; returns what finish_launches waits for."""
    path, log_path = folder / f"launches_{kind}.json", folder / f"launches_{kind}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **({"PACK_CHECK_TINY": "1"} if tiny else {})}
    if kind == "model":
        env["CUDA_VISIBLE_DEVICES"] = ""
    with open(log_path, "w", encoding="utf-8") as log_file:
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--launches", kind, "--json",
                                 str(path)], cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    return {"proc": proc, "path": path, "log": log_path, "start": time.monotonic()}


def finish_launches(job: dict, timeout: float) -> dict:
    """The count started by start_launches, waiting at most ``timeout`` seconds (then it is stopped: {"error"})."""
    proc = job["proc"]
    try:
        proc.wait(timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        stopped = f"not finished within the budget ({time.monotonic() - job['start']:.0f} s): stopped"
        try:  # what it had counted by then
            return {**json.loads(job["path"].read_text(encoding="utf-8")), "error": stopped}
        except (OSError, ValueError):
            return {"error": stopped}
    try:
        return json.loads(job["path"].read_text(encoding="utf-8"))
    except (OSError, ValueError):
        tail = job["log"].read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}


def compare_launches(model: dict, measured: dict) -> dict:
    """The model's count and the profiler's side by side for the solo run and each pack size, with measured / model;
    model_off: whether any ratio leaves 1 +- LAUNCH_OFF (None: nothing measured); a note says where."""
    keys = ["solo"] + [str(n) for n in (model.get("setup") or measured.get("setup") or {}).get("packs", [])]
    rows = []
    for key in keys:
        m, g = (model.get("sizes") or {}).get(key, {}), (measured.get("sizes") or {}).get(key, {})
        row: dict = {"N": key, "model": m.get("launches"), "measured": g.get("launches"), "ratio": None,
                     "model_syncs": m.get("syncs"), "measured_syncs": g.get("syncs")}
        for part in ("kernels", "copies", "memsets"):
            row[f"measured_{part}"] = g.get(part)
        if row["model"] and row["measured"] is not None:
            row["ratio"] = round(row["measured"] / row["model"], 3)
        rows.append(row)
    ratios = [r for r in rows if r["ratio"] is not None]
    off = [r for r in ratios if abs(r["ratio"] - 1) > LAUNCH_OFF]
    largest = rows[-1] if len(rows) > 1 else None
    per_solo = {}
    for side in ("model", "measured"):
        if largest and largest[side] and rows[0][side]:
            per_solo[side] = round(largest[side] / rows[0][side], 3)
    note = None
    if off:
        note = (f"launch model off by more than {LAUNCH_OFF:.0%} (measured / model): "
                + ", ".join(f"{'solo' if r['N'] == 'solo' else 'N=' + r['N']} {r['ratio']:.2f}" for r in off))
    return {"rows": rows, "largest_per_solo": per_solo, "tolerance": LAUNCH_OFF,
            "model_off": (bool(off) if ratios else None), "note": note}


def launch_lines(launches: dict) -> list[str]:
    """The log's lines for the launch comparison."""
    lines = []
    measured = launches.get("measured", {})
    for r in launches["rows"]:
        name = "solo" if r["N"] == "solo" else f"N={r['N']}"
        model = r["model"] if r["model"] is not None else "n/a (" + (
            (launches.get("model", {}).get("sizes") or {}).get(r["N"], {}).get("error")
            or launches.get("model", {}).get("error") or "not counted") + ")"
        if r["measured"] is not None:
            got = (f"{r['measured']} (kernels {r['measured_kernels']}, copies {r['measured_copies']}, memsets "
                   f"{r['measured_memsets']}; syncs {r['measured_syncs']}, model {r['model_syncs']})")
        else:
            got = measured.get("unavailable") or "n/a (" + (
                (measured.get("sizes") or {}).get(r["N"], {}).get("error") or measured.get("error")
                or "not measured") + ")"
        lines.append(f"launches {name}: model {model}, measured {got}"
                     + (f", measured/model {r['ratio']:.2f}" if r["ratio"] is not None else ""))
    per_solo = launches["largest_per_solo"]
    if "model" in per_solo and len(launches["rows"]) > 1:
        lines.append(f"launches pack of {launches['rows'][-1]['N']} / solo: model {per_solo['model']:.2f}x, measured "
                     + (f"{per_solo['measured']:.2f}x" if "measured" in per_solo else "n/a"))
    if launches["model_off"] is None:
        lines.append("launch model: not checked (nothing measured)")
    elif launches["model_off"]:
        lines.append(f"launch model: off ({launches['note']}); a note in the record, not part of the verdict")
    else:
        lines.append(f"launch model: within {LAUNCH_OFF:.0%} of the profiler at every size")
    return lines


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
        "format": FORMAT, "verdict": "fail", "reasons": [], "notes": [], "auto_pack": 1,
        "code_hash": pack_code_hash(), "code_files": [f"unettui/{f}" for f in PACK_CODE_FILES],
        "commit": commit, "dirty": dirty, "commit_from": commit_from,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": card, "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None, "python": platform.python_version(),
        "tiny": tiny, "script": "scripts/gpu_pack_check.sh",
    }
    log(f"{card}, torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {record['cudnn']}), Python "
        f"{record['python']}, commit {commit}" + (" with uncommitted changes to the pack code" if dirty else ""))
    reserve = LAUNCH_RESERVE if cuda else 0.0
    scratch = Path(tempfile.mkdtemp(prefix="pack_check_"))
    model_job = start_launches("model", tiny, scratch)
    log("== 1. the pack tests" + (" (their CPU cases)" if tiny else " on CUDA")
        + "; the launch model counts on the CPU meanwhile")
    try:
        record["tests"] = run_tests(tiny, min(150.0, deadline - time.monotonic() - 60), log)
    except BaseException:  # the check breaks: not a count left running behind it
        model_job["proc"].kill()
        raise
    log(f"tests: {record['tests']['summary']} ({record['tests']['seconds']} s)")
    model = finish_launches(model_job, min(LAUNCH_MODEL_WAIT, deadline - time.monotonic() - 60 - reserve))
    log(f"launch model: counted in {model['seconds']} s" if "seconds" in model else f"launch model: {model['error']}")
    log("== 2. bench --pack, fp32 (amp off) and bf16, alternating")
    record["bench"] = run_bench(tiny, deadline - 5 - reserve, log)
    for amp, sizes in record["bench"]["ranges"].items():
        for n, r in sizes.items():
            log(f"bench amp {amp} N={n}: sequential {r['sequential'][0]:.0f}-{r['sequential'][1]:.0f} images/s, "
                f"packed {r['packed'][0]:.0f}-{r['packed'][1]:.0f} images/s, ratio {r['ratio'][0]:.2f}-"
                f"{r['ratio'][1]:.2f} (worst {r['ratio'][0]:.2f}; {r['runs']} runs)")
    log("== 3. launches per training step: the model (counted on the CPU) against torch.profiler's CUDA events")
    if not cuda:
        measured: dict = {"unavailable": NO_CUDA}
    elif deadline - time.monotonic() < 15:
        measured = {"error": "left out to stay within the budget"}
    else:
        measured = finish_launches(start_launches("measured", tiny, scratch), deadline - time.monotonic() - 3)
    record["launches"] = {"setup": launch_setup(tiny), "optimizer": "adam", "amp": "off",
                          "model": model, "measured": measured, **compare_launches(model, measured),
                          "in_verdict": False, "why": LAUNCHES_WHY}
    for line in launch_lines(record["launches"]):
        log(line)
    record["notes"] = [record["launches"]["note"]] if record["launches"]["note"] else []
    if cuda and record["launches"]["model_off"] is None:
        record["notes"].append("launches not compared: "
                               + (measured.get("error") or model.get("error") or "nothing counted on one side"))
    record["verdict"], record["reasons"], record["auto_pack"] = judge(cuda, tiny, record["tests"], record["bench"])
    record["seconds"] = round(time.time() - start, 1)
    target = write_record(record, tiny, out)
    log("== the record")
    log(f"verdict: {record['verdict']}" + (f" ({'; '.join(record['reasons'])})" if record["reasons"] else "")
        + f"; auto_pack {record['auto_pack']}; {record['seconds']} s in all")
    for note in record["notes"]:
        log(f"note: {note}")
    log(f"written to {target or '(not into the package: a dry run)'} and {out / 'pack_check.json'}")
    log("what --pack auto now says on cuda:0: " + decide_pack("auto", "cuda:0", record).line)
    return 0 if record["verdict"] == "pass" else 1


def launches_main(argv: list[str]) -> int:
    """``--launches model|measured --json PATH``: count_step_launches into PATH (the check's second process)."""
    kind, path = argv[argv.index("--launches") + 1], Path(argv[argv.index("--json") + 1])

    def write(result: dict) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    write(count_step_launches(kind, bool(os.environ.get("PACK_CHECK_TINY")), write))
    return 0


if __name__ == "__main__":
    if "--launches" in sys.argv:
        sys.exit(launches_main(sys.argv))
    try:
        sys.exit(main())
    except Exception as exc:  # the check itself broke: a failing record, so that auto does not pack on an old one
        write_record({"format": FORMAT, "verdict": "fail", "auto_pack": 1,
                      "reasons": [f"the check broke: {type(exc).__name__}: {exc}"],
                      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                      "tiny": bool(os.environ.get("PACK_CHECK_TINY"))},
                     bool(os.environ.get("PACK_CHECK_TINY")), Path(os.environ.get("OUT") or "/tmp/gpu_out"))
        raise
