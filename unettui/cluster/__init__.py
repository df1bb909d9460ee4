"""Cluster backends: unettui's own runners started by a scheduler (SLURM through submitit) on the same queue.

submitit is imported only inside these modules' functions, never at `unettui --help` or TUI start-up."""
