"""The run store (runs/<id>/): atomic file writes, appends, claims, and reading a run back."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

RUNS_DIR = "runs"
CONFIG = "config.json"
STATUS = "status.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
CHECKPOINT = "checkpoint.pt"
LOG = "run.log"
ATTEMPTS = "attempts"

STATES = ("queued", "running", "done", "failed", "interrupted")
FINISHED = ("done", "failed")
HEARTBEAT_TIMEOUT = 120.0  # seconds without a heartbeat before a "running" claim counts as stale


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


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def append_jsonl(path: Path, obj: Any) -> None:
    """Append one JSON line with a single write() and fsync it."""
    line = (json.dumps(obj) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every complete JSON line; a torn last line (killed mid-write) is ignored."""
    out = []
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.endswith("\n"):
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        continue
    except OSError:
        pass
    return out


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


HOST = socket.gethostname()


def short_of(summary: dict[str, Any] | None, target_epochs: int) -> bool:
    """A run summary that stopped before ``target_epochs`` epochs, and not by early stopping."""
    done_to = (summary or {}).get("epochs_done")
    return isinstance(done_to, int) and done_to < target_epochs and not (summary or {}).get("stopped_early")


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

    def stopped_short(self, target_epochs: int, fingerprint: str | None = None) -> bool:
        """A finished run that trained fewer than ``target_epochs`` epochs without stopping early (a successive-
        halving rung): it can go on from its checkpoint. With ``fingerprint``, only a run of that very definition
        (so a finished run whose definition was edited since is never taken up this way)."""
        if (self.status() or {}).get("state") != "done" or not short_of(self.summary(), target_epochs):
            return False
        return fingerprint is None or (self.config() or {}).get("fingerprint") == fingerprint

    def state(self, now: float | None = None) -> str:
        """queued/running/done/failed/interrupted, with a dead or silent runner's claim shown as interrupted."""
        st = self.status()
        if not st:
            return "queued"
        state = st.get("state", "queued")
        if state == "running" and self.is_stale(st, now):
            return "interrupted"
        return state

    @staticmethod
    def is_stale(st: dict[str, Any], now: float | None = None, timeout: float = HEARTBEAT_TIMEOUT) -> bool:
        """A running claim is stale when its process is gone (same host) or its heartbeat is too old."""
        if st.get("state") != "running":
            return False
        if st.get("host") == HOST and isinstance(st.get("pid"), int) and not pid_alive(st["pid"]):
            return True
        beat = st.get("heartbeat", 0)
        return (now or time.time()) - float(beat) > timeout

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

    def archive_attempt(self) -> Path:
        """Move this run's files into attempts/<n>/ (log, status, metrics, summary, config) and drop its
        checkpoint and previews, so the experiment trains again from scratch; returns the attempt folder."""
        n = len(self.attempts()) + 1
        dest = self.file(ATTEMPTS) / str(n)
        dest.mkdir(parents=True)
        for name in (LOG, STATUS, METRICS, SUMMARY, CONFIG):
            src = self.file(name)
            if src.exists():
                os.replace(src, dest / name)
        for p in self.path.iterdir():
            if p.is_file() and (p.name == CHECKPOINT or p.name.startswith("preview_")):
                p.unlink()
        return dest

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

    def lock_path(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root / ".queue.lock"
