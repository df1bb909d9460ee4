"""A real single-node Slurm for these tests: scripts/slurm_local.sh, once per session (~17 s from scratch, ~0.1 s when
it is already up). Where it cannot start (not root, no apt, no submitit) the tests are skipped with the reason —
except when UNETTUI_REQUIRE_SLURM=1 (as .ci/run sets), where that is a failure: CI never skips them silently."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "slurm_local.sh"


def _unavailable(reason: str):
    if os.environ.get("UNETTUI_REQUIRE_SLURM") == "1":
        pytest.fail(f"UNETTUI_REQUIRE_SLURM=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def slurm():
    """Start (or find) the local Slurm; its partition's name."""
    try:
        import submitit  # noqa: F401
    except ImportError:
        _unavailable('submitit is not installed (pip install -e ".[dev]" or ".[slurm]")')
    if os.geteuid() != 0 and (shutil.which("sinfo") is None
                               or subprocess.run(["sinfo", "-h"], capture_output=True).returncode != 0):
        _unavailable("no Slurm answers here and scripts/slurm_local.sh needs root to start one")
    if os.geteuid() == 0:
        try:
            out = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.SubprocessError) as exc:
            _unavailable(f"scripts/slurm_local.sh could not run: {exc}")
        if out.returncode != 0:
            _unavailable("scripts/slurm_local.sh failed: " + (out.stderr.strip().splitlines() or ["?"])[-1])
    return "debug"


@pytest.fixture
def slurm_project(slurm, make_project):
    """make_project, and afterwards every job the project submitted is cancelled (a failed test leaves nothing
    running on the shared node)."""
    made = []

    def make(*args, **kw):
        proj = make_project(*args, **kw)
        made.append(proj)
        return proj

    yield make
    from unettui.core.runs.slurm_state import records

    for proj in made:
        for rec in records(proj):
            if rec.get("job"):
                subprocess.run(["scancel", str(rec["job"])], capture_output=True)
