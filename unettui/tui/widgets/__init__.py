"""Widgets of the TUI; each is given data by its parent and posts messages up."""
