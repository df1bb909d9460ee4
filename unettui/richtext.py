"""core.render's plain segments ``(text, fg_rgb, bg_rgb)`` as rich Text, for the CLI and the TUI alike."""

from __future__ import annotations

from rich.color import Color
from rich.style import Style
from rich.text import Text


def _style(fg, bg) -> Style:
    return Style(color=Color.from_rgb(*fg) if fg else None, bgcolor=Color.from_rgb(*bg) if bg else None)


def segments_text(rows) -> Text:
    """Segment rows as one rich Text, a line per row (cropped, never wrapped)."""
    text = Text(no_wrap=True, overflow="crop", end="")
    for y, row in enumerate(rows):
        if y:
            text.append("\n")
        for s, fg, bg in row:
            text.append(s, _style(fg, bg))
    return text
