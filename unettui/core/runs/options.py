"""The runner's options as one value: parsed and checked once where a person gives them (the CLI), then carried to
every runner process — `--workers` children, SLURM pilot tasks, the runner the TUI starts — as one JSON text.

A new runner option is a field here (with its check in ``__post_init__`` when it needs one), a flag of the same name
on `unettui run`, and the runner code that uses it: ``from_cli`` picks the flags by field name, ``to_json`` /
``from_json`` carry every field, and ``for_worker`` / ``with_workers`` change only the fields they name.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ..define.config import ConfigError, coerce
from .store import HEARTBEAT_TIMEOUT


class OptionsError(ValueError):
    """One line naming the option, what was wrong and what is valid."""


def parse_pack(value: str | int | None) -> str | int:
    """``--pack``: "auto", "off", or a number of experiments (1 is off). Raises ValueError with what is valid."""
    if value is None:
        return "auto"
    text = str(value).strip().lower()
    if text in ("auto", "off"):
        return text
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise ValueError(f"--pack {value}: use auto, off or a number of experiments >= 1")


PACK_DROPOUT = ("exact", "fused")  # core.learn.pack's DROPOUT_MODES (not imported: it would import torch)


def _int(value: Any, flag: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise OptionsError(f"{flag} {value}: use a whole number >= {least}")
    return value


@dataclass(frozen=True)
class RunnerOptions:
    """How each runner process runs (not where: that is its backend's business)."""

    device: str | None = None  # every experiment's device (None: each its own definition's)
    only: tuple[str, ...] = ()  # only these experiment ids (empty: all of them)
    stale_after: float = HEARTBEAT_TIMEOUT  # seconds without a heartbeat before another machine's claim is taken over
    threads: int | None = None  # PyTorch CPU threads (None: PyTorch's default, all cores)
    pack: str | int = "auto"  # "auto", "off" or the most experiments trained as one pack (runner.decide_pack)
    pack_dropout: str = "exact"  # a pack's dropout masks: "exact" (each member's solo masks) or "fused" (one draw)
    workers: int = 1  # runner processes on this machine sharing the queue (runner.run_workers)
    devices: tuple[str, ...] = ()  # the workers' devices, given in turn (empty: each experiment's own)

    def __post_init__(self) -> None:
        """Normalise and check every field, whichever way it came (flags, JSON, ``replace``): one-line OptionsError."""
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        try:
            put("pack", parse_pack(self.pack))
        except ValueError as exc:
            raise OptionsError(str(exc)) from None
        mode = str(self.pack_dropout).strip().lower()
        if mode not in PACK_DROPOUT:
            raise OptionsError(f"--pack-dropout {self.pack_dropout}: use {' or '.join(PACK_DROPOUT)}")
        put("pack_dropout", mode)
        devices = self.devices.split(",") if isinstance(self.devices, str) else list(self.devices or ())
        put("devices", tuple(self._device(d.strip(), "--devices") for d in devices if str(d).strip()))
        put("device", None if self.device is None else self._device(self.device, "--device"))
        put("only", tuple(dict.fromkeys(str(o) for o in (self.only or ()))))
        put("workers", _int(self.workers, "--workers", 1))
        put("threads", None if self.threads is None else _int(self.threads, "--threads", 1))
        if isinstance(self.stale_after, bool) or not isinstance(self.stale_after, (int, float)) \
                or not self.stale_after >= 5:
            raise OptionsError(f"--stale-after {self.stale_after}: use a number of seconds >= 5")
        put("stale_after", float(self.stale_after))
        if self.device is not None and (self.devices or self.workers > 1):
            raise OptionsError("--device and --devices do not go together; list the workers' devices with --devices")

    @staticmethod
    def _device(value: Any, flag: str) -> str:
        try:
            return coerce("device", value, flag)
        except ConfigError as exc:
            raise OptionsError(str(exc)) from None

    # ---- in: from the command line, or from the JSON another process wrote ------------------------------------------
    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_cli(cls, params: dict[str, Any]) -> RunnerOptions:
        """The options among a command's parameters (Typer's ``ctx.params``: each flag under its field's name; others,
        and flags left out (None), are passed by). Raises OptionsError."""
        return cls(**{k: v for k, v in params.items() if k in cls.names() and v is not None})

    @classmethod
    def from_json(cls, text: str) -> RunnerOptions:
        """What ``to_json`` wrote (in another process). Raises OptionsError."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise OptionsError(f"runner options: not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise OptionsError("runner options: not a JSON object")
        unknown = sorted(set(data) - set(cls.names()))
        if unknown:
            raise OptionsError(f"runner options: unknown {', '.join(unknown)} (written by another unettui version?)")
        return cls(**data)

    # ---- out: the one serialisation -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON values (tuples as lists): also what a SLURM submission records."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    # ---- the same options for one process of several ----------------------------------------------------------
    def for_worker(self, device: str | None, threads: int | None) -> RunnerOptions:
        """The options of one `--workers` child: one process on ``device`` with ``threads``, the rest unchanged."""
        return replace(self, workers=1, devices=(), device=device, threads=threads)

    def with_workers(self, n: int) -> RunnerOptions:
        """These options for ``n`` workers (the TUI's +/- keys): a device given with --device goes to every worker."""
        if n > 1 and self.device is not None:
            return replace(self, workers=n, device=None, devices=(self.device,))
        return replace(self, workers=n)

    @property
    def fans_out(self) -> bool:
        """Whether these options start several runner processes (run_workers) rather than train in this one."""
        return self.workers > 1 or bool(self.devices)
