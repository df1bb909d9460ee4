"""Marks: the runs chosen for the Compare tab. Any table posts ``Mark`` (tui.messages) with the runs under its cursor;
the app keeps the one set of marked runs and hands it down to every table (a marked row shows MARK in its first
column)."""

from __future__ import annotations

from rich.text import Text

MARK = "●"

_MARKED, _UNMARKED = Text(MARK, style="bold magenta"), Text(" ")


def mark_text(marked: bool) -> Text:
    """The mark column's cell (shared: tables only render their cells)."""
    return _MARKED if marked else _UNMARKED
