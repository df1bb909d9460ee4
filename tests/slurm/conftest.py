"""A real Slurm for these tests: one that answers here (`sinfo`), or — only when asked with UNETTUI_START_SLURM=1 — a
single-node one that scripts/slurm_local.sh installs and starts (root and apt-get: it installs packages and leaves
daemons running, so the test command never does it unasked; ~17 s from scratch, ~0.1 s when it is already up).
Otherwise the tests are skipped with the reason — except when UNETTUI_REQUIRE_SLURM=1 (as .ci/run sets, with
UNETTUI_START_SLURM=1), where that is a failure: CI never skips them silently."""

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


def _answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    try:
        return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=15).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.fixture(scope="session")
def slurm():
    """The Slurm that answers here, or the local one started when UNETTUI_START_SLURM=1; its partition's name."""
    try:
        import submitit  # noqa: F401
    except ImportError:
        _unavailable('submitit is not installed (pip install -e ".[dev]" or ".[slurm]")')
    if _answers():
        return "debug"
    if os.environ.get("UNETTUI_START_SLURM") != "1":
        _unavailable("no Slurm answers here (sinfo); UNETTUI_START_SLURM=1 has the tests start a single-node one "
                     "with scripts/slurm_local.sh (root and apt-get: installs packages, leaves daemons running)")
    if os.geteuid() != 0:
        _unavailable("UNETTUI_START_SLURM=1, but scripts/slurm_local.sh needs root to install and start Slurm")
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
