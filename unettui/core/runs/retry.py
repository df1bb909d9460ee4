"""`unettui retry`: make finished runs train again from scratch, their earlier attempt kept (it edits runs/, not
experiments.toml)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from ..define.edit import EditError, hold
from ..define.names import nearest_ids
from ..plan import load_queue
from .status import State, judge_run
from .store import RunStore


def retry(project: Path, ids: list[str] | None = None, failed: bool = False) -> list[str]:
    """Make finished runs train again from scratch on the next `unettui run`: each run's files move to
    runs/<id>/attempts/<n>/ (log, status, metrics, summary, config kept; checkpoint and previews dropped).

    Named ids may be failed, interrupted or done runs (a done run is re-trained); ``failed`` adds every
    failed run of the queue. A running run, an experiment that has not run, or an id not in the queue is
    refused — all or nothing. Done under the runner's queue lock, so no runner claims a run meanwhile."""
    ids = list(dict.fromkeys(ids or []))
    if not ids and not failed:
        raise EditError("name the experiments to retry, or pass --failed for every failed run")
    queue = load_queue(project)  # QueueError: no or broken queue file
    store = RunStore(project)
    # no runs/ yet: nothing to archive and nothing to race with (and no empty runs/ left behind by a refusal)
    held = hold(store.lock_path(), 60.0, "a runner claiming a run") if store.root.is_dir() else contextlib.nullcontext()
    with held:
        chosen: list[str] = []
        for exp_id in ids:
            exp = queue.get(exp_id)
            run = store.run(exp_id)
            if exp is None:
                if run.exists():
                    raise EditError(f"'{exp_id}' is not in the queue (its run folder stays in runs/); add it back "
                                    "to experiments.toml to train it again")
                raise EditError(f"unknown id '{exp_id}'; {nearest_ids(exp_id, [e.id for e in queue.experiments])}")
            if not exp.valid:
                raise EditError(f"'{exp_id}' has an invalid definition ({exp.error}); fix it first")
            state = judge_run(run, exp.config).state
            if state is State.RUNNING:
                st = run.status() or {}
                raise EditError(f"'{exp_id}' is running on host {st.get('host', '?')} pid {st.get('pid', '?')}; stop it first")
            if state is State.PENDING and not run.file("status.json").exists():
                raise EditError(f"'{exp_id}' has not run yet (pending); `unettui run` trains it")
            chosen.append(exp_id)
        if failed:
            chosen += [e.id for e in queue.experiments
                       if e.valid and e.id not in chosen and judge_run(store.run(e.id), e.config).state is State.FAILED]
        for exp_id in chosen:
            store.run(exp_id).archive_attempt("retried by `unettui retry`")
    return chosen
