"""What each runner process is doing now, for the faces: ``runs/.runners/<host>-<pid>.json``, rewritten by the runner at
every heartbeat (its device, the GPU's memory and utilisation, the runs it trains) and read by the TUI's poll, so that
a runner on another machine sharing the folder shows up too and nothing in the TUI ever asks a GPU itself."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .store import HOST, RUNS_DIR, atomic_write_json, pid_alive, read_json

RUNNERS_DIR = ".runners"
FRESH_SECONDS = 30.0  # a file not rewritten for this long (six heartbeats) belongs to a runner that is gone


def figures_path(project: Path, pid: int | None = None, host: str = HOST) -> Path:
    return Path(project) / RUNS_DIR / RUNNERS_DIR / f"{host}-{os.getpid() if pid is None else pid}.json"


def device_figures(device: str | None) -> dict[str, Any]:
    """The GPU's name, its memory used and total (the whole device, as nvidia-smi counts it), this process's share
    (what torch has reserved) and its utilisation in %, for a CUDA ``device``; {} for any other device. torch is only
    asked when this process has already imported it (a runner that trains has); the utilisation needs an NVML binding
    (``pip install nvidia-ml-py``) and is left out without one."""
    torch = sys.modules.get("torch")
    if torch is None or not device or not str(device).startswith("cuda"):
        return {}
    try:
        if not torch.cuda.is_available():
            return {}
        index = torch.device(device).index
        index = torch.cuda.current_device() if index is None else index
        free, total = torch.cuda.mem_get_info(index)
        out: dict[str, Any] = {"gpu": torch.cuda.get_device_name(index), "mem_used": int(total - free),
                               "mem_total": int(total), "mem_process": int(torch.cuda.memory_reserved(index))}
    except Exception:  # noqa: BLE001 - figures are a courtesy: a driver hiccup must never touch training
        return {}
    try:
        out["util"] = int(torch.cuda.utilization(index))
    except Exception:  # noqa: BLE001 - no NVML binding, or NVML refused
        pass
    return out


def write_figures(project: Path, device: str | None, runs: list[str]) -> None:
    """Rewrite this process's figures file (atomically; called from a runner's heartbeat). Never raises."""
    record = {"host": HOST, "pid": os.getpid(), "time": time.time(), "device": device or "", "runs": list(runs),
              **device_figures(device)}
    try:
        path = figures_path(project)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, record)
    except Exception:  # noqa: BLE001 - a missed write is harmless: the next heartbeat writes again
        pass


def remove_figures(project: Path) -> None:
    """Remove this process's figures file (a runner that ends). Never raises."""
    try:
        figures_path(project).unlink(missing_ok=True)
    except OSError:
        pass


@dataclass(frozen=True)
class RunnerFigures:
    """One runner process as its figures file describes it."""

    host: str
    pid: int
    time: float
    device: str = ""
    runs: tuple[str, ...] = ()
    gpu: str | None = None
    mem_used: int | None = None
    mem_total: int | None = None
    mem_process: int | None = None
    util: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def name(self) -> str:
        return f"{self.host} pid {self.pid}"


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def parse_figures(d: dict[str, Any]) -> RunnerFigures | None:
    """A figures file's object as RunnerFigures; None when it lacks its host, pid or time."""
    host, pid, when = d.get("host"), _int(d.get("pid")), d.get("time")
    if not isinstance(host, str) or pid is None or not isinstance(when, (int, float)) or isinstance(when, bool):
        return None
    runs = d.get("runs") if isinstance(d.get("runs"), list) else []
    return RunnerFigures(host=host, pid=pid, time=float(when), device=str(d.get("device") or ""),
                         runs=tuple(str(r) for r in runs), gpu=d.get("gpu") if isinstance(d.get("gpu"), str) else None,
                         mem_used=_int(d.get("mem_used")), mem_total=_int(d.get("mem_total")),
                         mem_process=_int(d.get("mem_process")), util=_int(d.get("util")))


def read_figures(project: Path, now: float | None = None, fresh: float = FRESH_SECONDS) -> list[RunnerFigures]:
    """The figures of the runners working on ``project`` now, by host and pid: files rewritten within ``fresh``
    seconds, less those of a process on this machine that is gone. Unreadable files are skipped."""
    folder = Path(project) / RUNS_DIR / RUNNERS_DIR
    try:
        names = [e.name for e in os.scandir(folder) if e.name.endswith(".json") and e.is_file()]
    except OSError:
        return []
    now = time.time() if now is None else now
    out = []
    for name in names:
        d = read_json(folder / name)
        fig = parse_figures(d) if d else None
        if fig is None or now - fig.time > fresh:
            continue
        if fig.host == HOST and not pid_alive(fig.pid):
            continue
        out.append(fig)
    return sorted(out, key=lambda f: (f.host, f.pid))
