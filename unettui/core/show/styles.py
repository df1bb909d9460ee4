"""One style per state word, for every face that colours a state (the TUI's tables and panels, the CLI's tables): plain
Rich style strings, so the core imports no UI library and a face only hands them to its own renderer.

The words are the read model's (``State`` in core/runs/status.py), the raw ``queued`` of a status file or a study's
run, and a study stage's ``waiting`` / ``running`` / ``done``. The colours, chosen once:

- ``running`` bold yellow: the one thing moving, and the eye goes to it first;
- ``done`` green and ``pruned`` dim green (finished: stopped early by successive halving is still finished);
- ``pending`` / ``queued`` / ``waiting`` dim: nothing to look at yet;
- ``interrupted`` magenta: it resumes on the next run;
- ``changed`` cyan: it trains again from scratch on the next run (not yellow: that reads as running);
- ``failed`` and ``damaged`` bold red: something needs a person (``unettui retry``); ``invalid`` red: the definition
  in experiments.toml needs fixing.
"""

from __future__ import annotations

from typing import Any

STATE_STYLES: dict[str, str] = {
    "pending": "dim",
    "queued": "dim",
    "waiting": "dim",
    "running": "bold yellow",
    "interrupted": "magenta",
    "done": "green",
    "pruned": "dim green",
    "failed": "bold red",
    "invalid": "red",
    "changed": "cyan",
    "damaged": "bold red",
}


def state_style(state: Any) -> str:
    """The style of a state word (a ``State``, its value, or a stage's word); "" for anything else."""
    return STATE_STYLES.get(str(getattr(state, "value", state)), "")
