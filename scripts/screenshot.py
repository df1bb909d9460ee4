"""Draws docs/img/tui.svg, the README's picture of the TUI, from a small demo project trained for real.

    python scripts/screenshot.py                 # writes docs/img/tui.svg
    python scripts/screenshot.py --keep /tmp/d   # also keeps the demo project there, to open it with `unettui -p`
    python scripts/screenshot.py --classes       # writes docs/img/preview-classes.svg: a 3-class run's Preview tab

It builds a project in a temporary folder: the default job in miniature (Adam at its usual rate against three
optimizers at 1e-4, tiny images and a tiny UNet, on the CPU), trains it with `unettui run --headless` (this
checkout's code), adds one experiment that is still pending, then opens the real app (`make_app`) at 120x36,
selects the best run so the live panel shows its curves, and saves Textual's SVG screenshot.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZE = (120, 36)
SELECTED = "adam-1e-3"

QUEUE = """\
# unettui demo: the default job in miniature (tiny images, a tiny UNet, a few epochs on the CPU)
[defaults]
dataset = "synthetic:ventricle"
num_images = 64
image_size = 32
base_channels = 8
depth = 3
epochs = 20
batch_size = 8
preview_count = 2
device = "cpu"

# Adam at its usual learning rate: the reference
[[experiment]]
id = "adam-1e-3"
optimizer = "adam"
lr = 1e-3

# the same learning rate for every optimizer
[[sweep]]
id = "opt-at-1e-4"
optimizer = ["adam", "sgd", "adagrad"]
lr = 1e-4
"""

PENDING = """
# not trained yet
[[experiment]]
id = "sgd-1e-2"
optimizer = "sgd"
lr = 1e-2
"""

EXPERIMENTS = 5  # adam-1e-3, three sweep members, sgd-1e-2

# --classes: one 3-class run on synthetic:heart (a cavity in a thin ring), its Preview tab
CLASSES_QUEUE = """\
# unettui demo: a label map of three classes (tiny UNet, a few epochs on the CPU)
[defaults]
dataset = "synthetic:heart"
num_classes = 3
num_images = 96
image_size = 64
base_channels = 8
depth = 3
epochs = 15
batch_size = 8
preview_count = 2
device = "cpu"

[[experiment]]
id = "heart"
"""


def train(project: Path) -> None:
    """Train the demo queue with this checkout's runner, as a user would (`unettui run --headless`)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), NO_COLOR="1")
    cmd = [sys.executable, "-m", "unettui", "run", "--headless", "--plain", "--pack", "off", "-p", str(project)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"screenshot: training the demo project failed (exit {out.returncode}):\n{out.stdout}{out.stderr}")


async def wait_for(pilot, condition, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise SystemExit("screenshot: the app did not show the demo project in time")
        await pilot.pause(0.1)


async def draw(project: Path, out: Path) -> None:
    from unettui.tui.app import make_app
    from unettui.tui.widgets.live import LivePanel
    from unettui.tui.widgets.queue import QueuePanel

    app = make_app(project, poll_interval=60)
    async with app.run_test(size=SIZE) as pilot:
        queue = app.query_one(QueuePanel)
        await wait_for(pilot, lambda: queue.row_count == EXPERIMENTS)
        queue.focus()
        queue.move_cursor(row=app.monitor.order().index(SELECTED))
        await pilot.pause()
        live = app.query_one(LivePanel)
        await wait_for(pilot, lambda: len(live.sparklines["val_dice"].data) > 1)
        await pilot.pause(0.5)
        app.save_screenshot(filename=out.name, path=str(out.parent))


async def draw_preview(project: Path, out: Path) -> None:
    from unettui.tui.app import make_app

    app = make_app(project, poll_interval=60)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "heart" in app.monitor.order())
        await pilot.press("3")  # the Preview tab
        await pilot.pause(1.0)
        app.save_screenshot(filename=out.name, path=str(out.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "tui.svg")
    parser.add_argument("--keep", type=Path, help="also copy the demo project to this folder")
    parser.add_argument("--classes", action="store_true", help="a 3-class run's Preview tab instead "
                        "(default --out docs/img/preview-classes.svg)")
    args = parser.parse_args()
    if args.classes and args.out == ROOT / "docs" / "img" / "tui.svg":
        args.out = ROOT / "docs" / "img" / "preview-classes.svg"
    os.environ.pop("NO_COLOR", None)  # the picture is in colour
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "demo"
        project.mkdir()
        (project / "experiments.toml").write_text(CLASSES_QUEUE if args.classes else QUEUE)
        train(project)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        if args.classes:
            asyncio.run(draw_preview(project, args.out.resolve()))
        else:
            with (project / "experiments.toml").open("a") as f:
                f.write(PENDING)
            asyncio.run(draw(project, args.out.resolve()))
        if args.keep:
            shutil.copytree(project, args.keep, dirs_exist_ok=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
