"""PreviewPanel: a known mask renders to the expected characters and colours; stepping, toggles, missing files."""

import asyncio
import os
from pathlib import Path

import numpy as np
from rich.color import Color
from textual.app import App

from unettui.core.show.preview import preview_paths, save_preview
from unettui.core.show.render import (
    ASCII_PANELS_LEGEND,
    FN_COLOUR,
    FP_COLOUR,
    TP_COLOUR,
)
from unettui.tui.widgets.preview import PreviewPanel


def _square(dy: int = 0, dx: int = 0) -> np.ndarray:
    m = np.zeros((8, 8), np.float32)
    m[2 + dy : 6 + dy, 2 + dx : 6 + dx] = 1.0
    return m


def write_preview(project: Path, run_id: str = "a", tag: str = "best", epoch: int = 3) -> Path:
    """Two 8x8 samples: truth a 4x4 square; prediction shifted one pixel right (Dice 0.75), then exact (Dice 1)."""
    run_dir = project / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    truth = np.stack([_square(), _square()])[:, None]
    probs = np.stack([_square(dx=1) * 0.9, _square() * 0.8])[:, None]
    save_preview(run_dir, tag, epoch=epoch, images=truth.copy(), masks=truth, probs=probs,
                 names=["cells_07.png", "cells_11.png"])
    return preview_paths(run_dir, tag)[1]


class Host(App):
    def __init__(self, project: Path, colour: bool = False):
        super().__init__()
        self.project, self.colour = project, colour

    def compose(self):
        yield PreviewPanel(self.project, colour=self.colour)


async def _settle(app, pilot):
    """Until the file is read and the drawing (another worker, started when the reading lands) is shown."""
    panel = app.query_one(PreviewPanel)
    for _ in range(50):
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        if panel._pending is None and all(w.is_finished for w in app.workers):
            return
    raise AssertionError("the preview panel did not settle")


# the input is the truth itself (white square: '@' on the grey ramp); 8 px wide panels, each character
# one pixel column and two pixel rows; the 'prediction' title widens its panel to 10 characters
EXPECTED_ASCII = [
    "input     truth     prediction  overlay",
    "          ........  ........    ........",
    "  @@@@    ..####..  ...++++.    ..#@@@+.",
    "  @@@@    ..####..  ...++++.    ..#@@@+.",
    "          ........  ........    ........",
]


def test_known_mask_renders_to_expected_ascii_and_steps(tmp_path):
    write_preview(tmp_path)

    async def main():
        app = Host(tmp_path, colour=False)
        async with app.run_test(size=(100, 30)) as pilot:
            panel = app.query_one(PreviewPanel)
            panel.show_run("a")
            await _settle(app, pilot)
            lines = panel.render().plain.split("\n")
            assert lines[0] == "sample 1/2  cells_07.png  dice 0.7500  · best, epoch 3"
            assert lines[1:-1] == EXPECTED_ASCII
            assert lines[-1] == ASCII_PANELS_LEGEND

            panel.focus()
            await pilot.press("right_square_bracket")
            await _settle(app, pilot)
            lines = panel.render().plain.split("\n")
            assert panel.sample == 1
            assert lines[0].startswith("sample 2/2  cells_11.png  dice 1.0000")
            assert lines[3].endswith("..@@@@..")  # exact prediction: hits only
            await pilot.press("right")  # wraps around
            await _settle(app, pilot)
            assert panel.sample == 0
            await pilot.press("left")
            await _settle(app, pilot)
            assert panel.sample == 1

            await pilot.press("o")  # the overlay alone, enlarged by whole pixels to fill the panel
            await _settle(app, pilot)
            body = panel.render().plain.split("\n")[1:-1]
            assert set("".join(body)) == {".", "@"}
            assert len(body) == 28 and {len(r) for r in body} == {56}  # 8 px x 7, 2 px rows per line
            await pilot.press("left")
            await _settle(app, pilot)
            body = panel.render().plain.split("\n")[1:-1]
            assert set("".join(body)) == {".", "#", "+", "@"}

    asyncio.run(main())


def _colours(text) -> set:
    out = set()
    for span in text.spans:
        for c in (span.style.color, span.style.bgcolor):
            if c is not None:
                out.add(c)
    return out


def test_colour_mode_uses_okabe_ito_overlay_colours(tmp_path):
    write_preview(tmp_path)

    async def main():
        app = Host(tmp_path, colour=True)
        async with app.run_test(size=(100, 30)) as pilot:
            panel = app.query_one(PreviewPanel)
            panel.show_run("a")
            await _settle(app, pilot)
            text = panel.render()
            lines = text.plain.split("\n")
            assert lines[1].split() == ["input", "truth", "prediction", "overlay"]
            assert "▀" * 8 in lines[2] and len(lines) == 1 + 1 + 4 + 1  # caption, titles, 8 px / 2, legend
            colours = _colours(text)
            for rgb in (TP_COLOUR, FP_COLOUR, FN_COLOUR):
                assert Color.from_rgb(*rgb) in colours
            assert "hit" in lines[-1] and "false positive" in lines[-1] and "missed" in lines[-1]

            panel.focus()
            await pilot.press("right_square_bracket")  # exact prediction: no false positive, nothing missed
            await _settle(app, pilot)
            overlay = panel.render()
            body = overlay.plain.split("\n")
            cut = len(body[0]) + 1 + len(body[1]) + 1  # after the caption and titles, before the legend
            colours = _colours(overlay[cut : len(overlay.plain) - len(body[-1])])
            assert Color.from_rgb(*TP_COLOUR) in colours
            assert Color.from_rgb(*FP_COLOUR) not in colours and Color.from_rgb(*FN_COLOUR) not in colours

            await pilot.press("c")  # colour off: ASCII
            await _settle(app, pilot)
            assert panel.render().plain.split("\n")[-1] == ASCII_PANELS_LEGEND

    asyncio.run(main())


def test_missing_broken_and_changed_previews(tmp_path):
    async def main():
        app = Host(tmp_path)
        async with app.run_test(size=(80, 24)) as pilot:
            panel = app.query_one(PreviewPanel)
            assert panel.render().plain == "select an experiment"
            panel.show_run("a")
            await _settle(app, pilot)
            assert panel.render().plain == "a: no validation preview yet (written after a validated epoch)"

            npz = preview_paths(tmp_path / "runs" / "a", "best")[1]
            npz.parent.mkdir(parents=True)
            npz.write_bytes(b"PK\x03\x04 torn")
            panel.show_run("a")
            await _settle(app, pilot)
            assert "\n" not in panel.render().plain and "preview_best.npz is unreadable" in panel.render().plain

            write_preview(tmp_path, epoch=3)
            panel.show_run("a")
            await _settle(app, pilot)
            first = panel.data
            assert "epoch 3" in panel.render().plain.split("\n")[0]
            panel.show_run("a")  # unchanged file: not read again
            await _settle(app, pilot)
            assert panel.data is first

            panel.focus()
            await pilot.press("right_square_bracket")
            await _settle(app, pilot)
            write_preview(tmp_path, epoch=5)  # a new best epoch rewrites the file
            os.utime(npz, ns=(os.stat(npz).st_mtime_ns + 10**9,) * 2)
            panel.show_run("a")
            await _settle(app, pilot)
            assert panel.data is not first and panel.sample == 1  # same run: the sample stays
            assert "· best, epoch 5" in panel.render().plain.split("\n")[0]

            await pilot.press("b")  # no last preview yet: the best one is shown, and said so
            await _settle(app, pilot)
            assert "best, epoch 5 (no last preview yet)" in panel.render().plain.split("\n")[0]
            write_preview(tmp_path, tag="last", epoch=6)
            panel.show_run("a")
            await _settle(app, pilot)
            assert "· last, epoch 6" in panel.render().plain.split("\n")[0]

            panel.show_run(None)
            assert panel.render().plain == "select an experiment"

    asyncio.run(main())


def test_colour_default_follows_no_color(tmp_path, monkeypatch):
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("NO_COLOR", "1")
    assert PreviewPanel(tmp_path).colour is False
    monkeypatch.delenv("NO_COLOR")
    assert PreviewPanel(tmp_path).colour is True


def test_show_run_before_mount_loads_on_mount(tmp_path):
    write_preview(tmp_path)

    class Early(App):
        def compose(self):
            panel = PreviewPanel(tmp_path, colour=False)
            panel.show_run("a")
            yield panel

    async def main():
        app = Early()
        async with app.run_test(size=(80, 24)) as pilot:
            await _settle(app, pilot)
            assert app.query_one(PreviewPanel).render().plain.startswith("sample 1/2  cells_07.png")

    asyncio.run(main())
