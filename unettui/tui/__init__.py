"""The Textual TUI: a thin face over the queue file and runs/ (no training happens in this process)."""
