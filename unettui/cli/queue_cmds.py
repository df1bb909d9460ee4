"""Queue-editing commands: init, add, sweep, rm, retry."""
