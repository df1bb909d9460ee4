"""The `quick` study template rerun at three seeds, without folds and with ``folds = 3`` (issue 26): how many stage
decisions change with the seed in each, and with folds the final configuration's held-out test Dice of the ensemble
of its folds beside the mean single-fold test Dice.

    python scripts/study_folds.py /tmp/study-folds        # one project per (folds, seed) under that folder

Each project: `unettui study new --template quick --id q`, the study's seed set, with folds the template's
train_fraction replaced by ``folds = 3`` (folds refuse train_fraction), `unettui run --headless` (with folds
`--pack 3`: the three folds of a configuration train as one pack). Prints each stage's winner per seed, the
decisions that differ from seed 0's, the final scores and the wall time of each study.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

SEEDS = (0, 1000, 2000)


def study(root: Path, folds: int, seed: int) -> dict:
    project = root / f"folds{folds}-seed{seed}"
    project.mkdir(parents=True, exist_ok=True)
    toml = project / "experiments.toml"
    if not toml.exists():
        subprocess.run(["unettui", "study", "new", "--template", "quick", "--id", "q", "-p", str(project)], check=True,
                       capture_output=True)
        text = toml.read_text().replace('id = "q"\n', f'id = "q"\nseed = {seed}\n', 1)
        if folds:
            text = re.sub(r"train_fraction = 0\.8[^\n]*\n", f"folds = {folds}\n", text, count=1)
        toml.write_text(text)
    t0 = time.perf_counter()
    cmd = ["unettui", "run", "--headless", "--plain", "-p", str(project)] + (["--pack", str(folds)] if folds else [])
    subprocess.run(cmd, check=True, capture_output=True)
    seconds = time.perf_counter() - t0
    from unettui.core.plan import load_queue

    status = next(s for s in load_queue(project).studies if s.id == "q")
    stages = []
    for st in status.stages:
        win = next((c for c in st.configs if c.values == st.winner), None)
        stages.append({"stage": st.name, "winner": st.winner, "how": st.how, "why": st.why,
                       "score": win.score if win else None})
    fs = status.final_scores() or {}
    return {"folds": folds, "seed": seed, "seconds": seconds, "stages": stages, "final": status.final(),
            "val": fs.get("val"), "test_dice": fs.get("test_dice"), "ensemble": fs.get("ensemble_test_dice"),
            "oof": fs.get("oof")}


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/study-folds")
    results = []
    for folds in (0, 3):
        for seed in SEEDS:
            r = study(root, folds, seed)
            results.append(r)
            print(json.dumps(r, default=str), flush=True)
    for folds in (0, 3):
        mine = [r for r in results if r["folds"] == folds]
        ref = mine[0]["stages"]
        changed = sum(s["winner"] != t["winner"] for r in mine[1:] for s, t in zip(r["stages"], ref))
        total = sum(len(r["stages"]) for r in mine[1:])
        print(f"folds = {folds}: {changed} of {total} stage decisions of seeds 1000 and 2000 differ from seed 0's; "
              f"study wall time {min(r['seconds'] for r in mine):.0f}-{max(r['seconds'] for r in mine):.0f} s")
        for r in mine:
            print(f"  seed {r['seed']}: " + "; ".join(f"{s['stage']} {s['winner']} ({s['how']})" for s in r["stages"])
                  + f"; val {r['val']}, test {r['test_dice']}, ensemble {r['ensemble']}, oof {r['oof']}")


if __name__ == "__main__":
    main()
