"""The run store (runs/<id>/): atomic file writes, appends, claims, and reading a run back."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUNS_DIR = "runs"
CONFIG = "config.json"
STATUS = "status.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
IMAGES = "images.json"  # each val and test image's score at the best epoch: {"val": [{"name", "dice", "counts"}], ...}
SPLIT = "split.json"  # the images each part of the run's split holds, by name: {"train": [...], "val": [...], "test": [...]}
CHECKPOINT = "checkpoint.pt"
LOG = "run.log"
ATTEMPTS = "attempts"
BEST_WEIGHTS = "best.pt"
ARCHIVING = ".archiving.json"  # an archive of an attempt in progress (see Run.archive_attempt)
CONFIGURATIONS = ".configurations"  # under runs/: a cross-validated configuration's results (core.learn.cv)
RUN_LOCK = ".claim.lock"  # held while a claim is made or checked and written under (the runner's fence)
DISPOSABLE = (CHECKPOINT, BEST_WEIGHTS)  # dropped, not kept, when an attempt is archived

STATES = ("queued", "running", "done", "failed", "interrupted")
FINISHED = ("done", "failed")
HEARTBEAT_TIMEOUT = 120.0  # seconds without a heartbeat before a "running" claim counts as stale


_scan = json.JSONDecoder().raw_decode  # json.loads without its per-call checks of the argument's type and encoding
try:
    import orjson as _orjson  # 3x faster than json: decoding is most of what reading 10,000 runs costs
    _fast_loads = _orjson.loads
except ImportError:  # (a dependency, but json reads the same: only slower)
    _fast_loads = None
_SPACE = " \t\n\r"  # JSON's whitespace


def parse_json(data: bytes | str) -> Any:
    """One JSON document (surrounding whitespace allowed), as json.loads reads it; ValueError when it is not one.
    orjson parses it where installed; what orjson refuses and json accepts (NaN and Infinity, lone surrogates) falls
    back to json. The one difference: an integer beyond 64 bits reads as a float with orjson (no file unettui writes
    holds one: seeds and counts are checked far below that)."""
    if _fast_loads is not None:
        try:
            return _fast_loads(data)
        except ValueError:
            pass
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    value, end = _scan(text, len(text) - len(text.lstrip(_SPACE)))
    if text[end:].strip(_SPACE):
        raise ValueError(f"extra data after the JSON document at {end}")
    return value


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``.

    A crash (or a full disk) at any point leaves either the old file or the new one, never a mix.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:  # mkstemp makes 0600 files: keep the mode of the file being replaced, else rw-r--r--
            mode = os.stat(path).st_mode & 0o777
        except OSError:
            mode = 0o644
        os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json_checked(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(the JSON object in ``path``, None), (None, None) when there is no such file, or (None, what is wrong with
    it): not UTF-8, not JSON, torn, or JSON that is not an object (a list, a number, ...)."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    try:
        obj = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return None, "is not UTF-8 text"
    except ValueError:
        return None, "is not valid JSON (torn or hand-edited)" if raw.strip() else "is empty"
    if not isinstance(obj, dict):
        return None, f"holds {_json_kind(obj)}, not a JSON object"
    return obj, None


def _json_kind(obj: Any) -> str:
    return {list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(type(obj), "a number")


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when it is missing or is not a readable JSON object (see read_json_checked)."""
    return read_json_checked(path)[0]


def append_jsonl(path: Path, obj: Any) -> None:
    """Append one JSON line with a single write() and fsync it."""
    line = (json.dumps(obj) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def parse_lines(data: bytes) -> tuple[list[dict[str, Any]], int, int]:
    """The whole lines of ``data`` (JSON lines): (every line that is a JSON object, how many other non-blank lines
    there were: bad bytes, not JSON, not an object, how many bytes those whole lines take). What follows the last
    newline (a line being written, or torn by a writer killed mid-write) is none of them: it is read once whole."""
    out: list[dict[str, Any]] = []
    bad = 0
    end = data.rfind(b"\n") + 1
    for line in data[:end].splitlines():
        if not line.strip():
            continue
        try:
            obj = parse_json(line)
        except ValueError:  # (UnicodeDecodeError too)
            bad += 1
            continue
        if isinstance(obj, dict):
            out.append(obj)
        else:
            bad += 1
    return out, bad, end


def read_jsonl_checked(path: Path) -> tuple[list[dict[str, Any]], int]:
    """(every complete line that is a JSON object, how many other complete lines there were: bad bytes, not JSON,
    not an object). A torn last line (a writer killed mid-write, or one still writing) is neither."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return [], 0
    out, bad, _ = parse_lines(data)
    return out, bad


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every complete line of ``path`` that is a JSON object (see read_jsonl_checked)."""
    return read_jsonl_checked(path)[0]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError):  # not a pid at all (a hand-edited status.json)
        return False
    return True


def process_identity(pid: int) -> str | None:
    """What tells process ``pid`` apart from a later process given the same pid: the boot's id and the process's
    start time (Linux /proc); None where that cannot be read (then the pid alone is trusted)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
        start = stat[stat.rindex(")") + 2:].split()[19]  # field 22, counted after the "(comm)" field
    except (OSError, ValueError, IndexError):
        return None
    return f"{boot}:{start}"


# The name of this machine in claims: machines sharing one runs/ folder must differ in it. Containers started from
# one image can share a hostname; UNETTUI_HOST gives each its own.
HOST = os.environ.get("UNETTUI_HOST") or socket.gethostname()
ME = process_identity(os.getpid())


def short_of(summary: dict[str, Any] | None, target_epochs: int) -> bool:
    """A run summary that stopped before ``target_epochs`` epochs, and not by early stopping."""
    done_to = (summary or {}).get("epochs_done")
    return isinstance(done_to, int) and done_to < target_epochs and not (summary or {}).get("stopped_early")


def claim_alive(st: dict[str, Any], now: float | None = None, timeout: float = HEARTBEAT_TIMEOUT) -> bool:
    """Whether a ``running`` claim still belongs to a live process.

    On this machine the process itself answers: alive (and not a later process that reuses its pid) keeps the claim
    whatever the age of its heartbeat — a runner suspended with Ctrl-Z, or on a paused VM, must not have its run
    trained a second time when it wakes. A claim of another machine is alive while its heartbeat is younger than
    ``timeout`` seconds."""
    if st.get("state") != "running":
        return False
    pid = st.get("pid")
    if st.get("host") == HOST and isinstance(pid, int) and not isinstance(pid, bool):
        if not pid_alive(pid):
            return False
        recorded, current = st.get("process"), process_identity(pid)
        return not (isinstance(recorded, str) and current is not None and recorded != current)
    beat = st.get("heartbeat", 0)
    try:
        return (now or time.time()) - float(beat) <= timeout
    except (TypeError, ValueError):
        return False


@dataclass
class Run:
    """A view of one run folder; every read goes to disk so other processes' writes are seen."""

    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    def file(self, name: str) -> Path:
        return self.path / name

    def exists(self) -> bool:
        return self.path.is_dir()

    def config(self) -> dict[str, Any] | None:
        return read_json(self.file(CONFIG))

    def status(self) -> dict[str, Any] | None:
        return read_json(self.file(STATUS))

    def summary(self) -> dict[str, Any] | None:
        return read_json(self.file(SUMMARY))

    def metrics(self) -> list[dict[str, Any]]:
        return read_jsonl(self.file(METRICS))

    def damage(self) -> list[str]:
        """What cannot be read in this run's files, one phrase per file ("runs/x/status.json holds a list, not a
        JSON object"); empty when everything present is readable."""
        out = []
        for name in (STATUS, CONFIG, SUMMARY):
            problem = read_json_checked(self.file(name))[1]
            if problem:
                out.append(f"{RUNS_DIR}/{self.id}/{name} {problem}")
        bad = read_jsonl_checked(self.file(METRICS))[1]
        if bad:
            out.append(f"{RUNS_DIR}/{self.id}/{METRICS}: {bad} unreadable line{'s' if bad > 1 else ''} skipped")
        return out

    def status_damage(self) -> str | None:
        """Why status.json cannot be read (then the run's state is unknown), or None."""
        problem = read_json_checked(self.file(STATUS))[1]
        return f"{RUNS_DIR}/{self.id}/{STATUS} {problem}" if problem else None

    def state(self, now: float | None = None, timeout: float = HEARTBEAT_TIMEOUT) -> str:
        """queued/running/done/failed/interrupted as status.json has it, with a claim whose process is gone shown as
        interrupted, a retry half-done shown as queued, and an unknown value as interrupted. The read model
        (core.status) adds what this cannot know: the definition, halving, damage."""
        if self.file(ARCHIVING).exists():
            return "queued"
        st = self.status()
        if not st:
            return "queued"
        state = st.get("state", "queued")
        if state not in STATES:
            return "interrupted"
        if state == "running" and not claim_alive(st, now, timeout):
            return "interrupted"
        return state

    @staticmethod
    def is_stale(st: dict[str, Any], now: float | None = None, timeout: float = HEARTBEAT_TIMEOUT) -> bool:
        """A running claim whose process is gone (see claim_alive)."""
        return st.get("state") == "running" and not claim_alive(st, now, timeout)

    def write_status(self, **fields: Any) -> dict[str, Any]:
        st = self.status() or {}
        st.update(fields)
        atomic_write_json(self.file(STATUS), st)
        return st

    def attempts(self) -> list[Path]:
        """Folders of earlier attempts kept by ``archive_attempt``, oldest first."""
        base = self.file(ATTEMPTS)
        if not base.is_dir():
            return []
        return sorted((p for p in base.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))

    def archive_attempt(self, reason: str | None = None, keep_status: bool = False) -> Path:
        """Move this run's files into attempts/<n>/ (log, status, metrics, summary, config) and drop its checkpoint,
        weights and previews, so the experiment trains again from scratch; returns the attempt folder.

        All or nothing across a crash: the plan is written first (``.archiving.json``, atomically); a kill between
        two moves leaves it, and the next ``recover`` (every claim, every retry) completes it. Until then readers
        see the run as queued, and no runner resumes the old checkpoint."""
        self.recover()
        n = len(self.attempts()) + 1
        while self.file(ATTEMPTS).joinpath(str(n)).exists():  # a folder left by hand: never overwrite it
            n += 1
        atomic_write_json(self.file(ARCHIVING), {"attempt": n, "reason": reason, "time": time.time(),
                                                 "keep_status": keep_status})
        return self._finish_archive()  # type: ignore[return-value]

    def _finish_archive(self) -> Path | None:
        marker = self.file(ARCHIVING)
        if not marker.exists():
            return None
        plan = read_json(marker) or {}
        n = plan.get("attempt")
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            n = len(self.attempts()) + 1
        dest = self.file(ATTEMPTS) / str(n)
        dest.mkdir(parents=True, exist_ok=True)
        keep = bool(plan.get("keep_status"))  # the trainer restarting a claimed run: the claim stays, a copy goes
        if keep and self.file(STATUS).exists() and not (dest / STATUS).exists():
            atomic_write_bytes(dest / STATUS, self.file(STATUS).read_bytes())
        for name in (LOG, METRICS, SUMMARY, CONFIG, SPLIT, IMAGES) if keep else (LOG, STATUS, METRICS, SUMMARY,
                                                                                 CONFIG, SPLIT, IMAGES):
            src = self.file(name)
            if src.exists():
                os.replace(src, dest / name)
        if plan.get("reason"):
            with open(dest / LOG, "a", encoding="utf-8") as fh:
                fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} archived as attempt {n}: {plan['reason']}\n")
        for p in self.path.iterdir():
            if p.is_file() and (p.name in DISPOSABLE or p.name.startswith("preview_")):
                p.unlink(missing_ok=True)
        marker.unlink(missing_ok=True)
        return dest

    def recover(self) -> list[str]:
        """Complete what a killed process left half-done in this run: an archive in progress, stray temporary files of
        atomic writes. Call it only while holding the run (its claim, or the queue lock). Returns what it did."""
        done = []
        if self.file(ARCHIVING).exists():
            dest = self._finish_archive()
            done.append(f"completed the archiving of the earlier attempt into {dest.relative_to(self.path)}" if dest else "")
        if self.exists():
            stray = [p for p in self.path.iterdir() if p.is_file() and p.name.startswith(".") and p.name.endswith(".tmp")]
            for p in stray:
                p.unlink(missing_ok=True)
            if stray:
                done.append(f"removed {len(stray)} temporary file{'s' if len(stray) > 1 else ''} of an interrupted write")
        return [d for d in done if d]

    def log(self, line: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.file(LOG), "a", encoding="utf-8") as fh:
            fh.write(f"{stamp} {line}\n")


class RunStore:
    """The runs/ folder of a project."""

    def __init__(self, project: Path):
        self.project = Path(project)
        self.root = self.project / RUNS_DIR

    def run(self, run_id: str) -> Run:
        return Run(self.root / run_id)

    def runs(self) -> Iterator[Run]:
        if not self.root.is_dir():
            return
        for p in sorted(self.root.iterdir()):
            if p.is_dir() and not p.name.startswith("."):
                yield Run(p)

    def configuration_file(self, configuration: str) -> Path:
        """runs/.configurations/<configuration>.json: a cross-validated configuration's results (core.learn.cv)."""
        return self.root / CONFIGURATIONS / f"{configuration}.json"

    def configuration(self, configuration: str) -> dict[str, Any] | None:
        """That file as written; None when there is none or it cannot be read."""
        data = read_json(self.configuration_file(configuration))
        return data if isinstance(data, dict) else None

    def lock_path(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root / ".queue.lock"
