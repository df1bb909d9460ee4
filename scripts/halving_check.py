"""Would the full grid have found the same winner? Check a finished successive-halving stage of a study.

    python scripts/halving_check.py PROJECT STUDY STAGE

Every pruned run is copied to a scratch folder and trained on from its checkpoint to its full epochs (the same
numbers an unpruned run would have had: resuming is exact on the CPU), so the stage's full-grid table is known.
Prints each configuration's score with halving and in the full grid, both winners, and the epochs each trained.
The project's runs/ are not changed.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path


def main(project: Path, study_id: str, stage_name: str) -> int:
    from unettui.core.define.study import (
        ConfigScore,
        RunScore,
        choose,
        metric_value,
        score,
    )
    from unettui.core.learn.train import Trainer
    from unettui.core.plan import load_queue
    from unettui.core.runs.store import RunStore

    q = load_queue(project)
    status = next((s for s in q.studies if s.id == study_id), None)
    if status is None:
        print(f"error: no study {study_id!r} in {project}/experiments.toml", file=sys.stderr)
        return 2
    st = next((x for x in status.stages if x.name == stage_name), None)
    if st is None or not st.rungs or st.state != "done":
        print(f"error: stage {stage_name!r} of {study_id!r} is not a finished halving stage", file=sys.stderr)
        return 2
    store = RunStore(project)
    metric, direction = status.study.metric, status.study.direction
    full: list[ConfigScore] = []
    extra_epochs = 0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = RunStore(Path(tmp))
        for c in st.configs:
            runs = []
            for r in c.runs:
                summary = r.summary or {}
                if c.pruned_at is not None:
                    shutil.copytree(store.run(r.id).path, scratch.run(r.id).path)
                    before = int(summary.get("epochs_done") or 0)
                    result = Trainer(q.get(r.id).config, project).fit(scratch.run(r.id))
                    summary = result.summary
                    extra_epochs += int(summary["epochs_done"]) - before
                runs.append(RunScore(r.id, r.fraction, "done", metric_value(summary, metric), summary, r.repeat, r.fold))
            cs = ConfigScore(values=c.values, runs=runs)
            score(cs)
            full.append(cs)
    seconds = time.perf_counter() - t0
    print(f"study {study_id}, stage {stage_name}: {len(st.configs)} configurations, rungs {st.rungs}, metric {metric}")
    print(f"{'configuration':40s} {'halving':>10s} {'full grid':>10s}  pruned")
    for c, f in zip(st.configs, full):
        h = "-" if c.score is None else f"{c.score:.4f}"
        print(f"{c.label()[:40]:40s} {h:>10s} {f.score:10.4f}  {('@' + str(c.pruned_at)) if c.pruned_at else ''}")
    best_full = choose(full, direction)[0]
    best_half = choose([c for c in st.configs if c.pruned_at is None], direction)[0]
    same = best_full is not None and best_half is not None and best_full.values == best_half.values
    total = st.epochs_trained + extra_epochs
    print(f"winner with halving: {best_half.label() if best_half else '-'}; full grid: {best_full.label() if best_full else '-'}"
          f" -> {'same winner' if same else 'DIFFERENT winner'}")
    rank = sorted(full, key=lambda c: -(c.score or 0) if direction == "max" else (c.score or 0))
    pos = next(i for i, c in enumerate(rank, 1) if best_half and c.values == best_half.values)
    print(f"halving's winner ranks {pos} of {len(full)} in the full grid")
    print(f"epochs trained: halving {st.epochs_trained}, full grid {total} ({st.epochs_trained / total:.0%}; "
          f"the pruned runs' remaining {extra_epochs} epochs took {seconds:.0f} s here)")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3]))
