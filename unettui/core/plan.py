"""Planning: what the queue trains now, from experiments.toml as read (core.define.queue: pure) and the runs as the
read model judges them (core.runs.status).

A [[study]]'s later stages, its successive-halving rungs and its learning-rate bisection depend on how its runs
ended, so the experiments to train are planned here, above both: ``plan`` takes a queue as read and a RunLookup
(what the study engine asks of the runs: ``StoreLookup`` answers from run folders, the TUI from the runs it has
read) and returns the queue with every study expanded as far as its runs allow, each stage's state, and the runs
that halving pruned or promoted (``Queue.pruned``, ``Queue.promoted``: the read model's rows show them). Every
face that trains or shows the queue goes through ``load_queue`` (read, then plan); ``check`` and the editing
commands read only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .define.experiment import Experiment
from .define.queue import Queue, plan_studies, read_queue
from .runs.status import DataIds, State, judge_run
from .runs.store import HEARTBEAT_TIMEOUT, RunStore

__all__ = ["StoreLookup", "load_queue", "plan"]

# the read model's states as the study engine counts them: a run of another definition or data is to train again
_STUDY_WORD = {State.PENDING: "pending", State.CHANGED: "pending"}
_WITH_SUMMARY = ("done", "failed", "interrupted")


class StoreLookup:
    """The study engine's questions answered from the run folders of ``store``, judged by the read model."""

    def __init__(self, store: RunStore, stale_after: float = HEARTBEAT_TIMEOUT):
        self.store = store
        self.data = DataIds(store.project)
        self.stale_after = stale_after

    def state(self, exp: Experiment) -> tuple[str, dict[str, Any] | None]:
        run = self.store.run(exp.id)
        verdict = judge_run(run, exp.config, self.data, stale_after=self.stale_after)
        word = _STUDY_WORD.get(verdict.state, verdict.state.value)
        return word, run.summary() if word in _WITH_SUMMARY else None

    def metrics(self, run_id: str) -> list[dict[str, Any]]:
        return self.store.run(run_id).metrics()

    def configuration(self, configuration: str) -> dict[str, Any] | None:
        return self.store.configuration(configuration)


def plan(queue: Queue, lookup: Any = None) -> Queue:
    """``queue`` (as read) planned with ``lookup``'s runs (a RunLookup; None: no run known, stage 1 only): its
    studies expanded, each stage's state, and the runs successive halving pruned or promoted."""
    planned = plan_studies(queue, lookup)
    for status in planned.studies:
        for stage in status.stages:
            for config in stage.configs:
                for r in config.runs:
                    if config.pruned_at:
                        planned.pruned[r.id] = config.pruned_at
                    elif r.state == "pending" and r.summary is not None:  # trained to a rung, to train on
                        planned.promoted.add(r.id)
    return planned


def load_queue(project: Path, cache: bool = False, stale_after: float = HEARTBEAT_TIMEOUT) -> Queue:
    """Read ``project/experiments.toml`` (core.define.queue.read_queue: QueueError for a file that cannot be read)
    and plan it with the project's runs: what every face that trains or shows the queue uses."""
    project = Path(project)
    return plan(read_queue(project, cache=cache), StoreLookup(RunStore(project), stale_after))
