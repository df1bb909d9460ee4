"""Commands that look at the queue and runs: ls, show, logs, check."""
