"""Multi-class previews: the npz round trip, the PNG strip's class colours and error marks (and binary strips
byte-identical to before), the text renderings with colour and without (a character per class, a legend naming the
classes), `show`'s preview section, the TUI's preview panel and the report's predictions figure."""

import asyncio
import io
import xml.etree.ElementTree as ET

import imageio.v3 as iio
import numpy as np
from rich.color import Color
from rich.console import Console
from textual.app import App

from unettui.cli.show_cmd import _preview_section
from unettui.core.show import figures as F
from unettui.core.show.preview import (
    CLASS_PALETTE,
    ERROR_COLOUR,
    GAP,
    RIGHT_DIM,
    TILE_MIN,
    class_colours,
    dice_caption,
    load_preview,
    preview_classes,
    preview_paths,
    preview_problem,
    read_preview,
    save_preview,
    strip_png,
)
from unettui.core.show.render import (
    ASCII_PANELS_LEGEND,
    CLASS_MARKS,
    ERROR_MARK,
    ascii_class_legend,
    ascii_classes,
    class_ascii_panels,
    class_colour_panels,
    class_marks,
    class_resize,
    halfblock_classes,
    halfblock_errors,
)
from unettui.core.show.render_preview import sample_panels
from unettui.tui.widgets.preview import PreviewPanel

NAMES = ("background", "cavity", "myocardium")
ORANGE, SKY = CLASS_PALETTE[1], CLASS_PALETTE[2]  # cavity, myocardium
BLACK, WHITE = (0, 0, 0), ERROR_COLOUR
assert WHITE == (255, 255, 255)


def dim(rgb):
    return tuple(int(round(v * RIGHT_DIM)) for v in rgb)


# a 6 x 6 heart: a 2 x 2 cavity (1) inside a ring (2); the prediction misses the ring's top-left pixel (predicted
# background), calls one cavity pixel ring, and puts a ring pixel in the background at (5, 5)
TRUTH = np.array([[0, 0, 0, 0, 0, 0],
                  [0, 2, 2, 2, 2, 0],
                  [0, 2, 1, 1, 2, 0],
                  [0, 2, 1, 1, 2, 0],
                  [0, 2, 2, 2, 2, 0],
                  [0, 0, 0, 0, 0, 0]], np.uint8)
PRED = TRUTH.copy()
PRED[1, 1] = 0  # missed ring
PRED[2, 2] = 2  # cavity called ring
PRED[5, 5] = 2  # ring in the background
WRONG = {(1, 1), (2, 2), (5, 5)}


def one_hot(labels: np.ndarray, k: int, p: float = 0.8) -> np.ndarray:
    """Probabilities [k, H, W]: ``p`` on each pixel's class, the rest shared by the others."""
    out = np.full((k, *labels.shape), (1 - p) / (k - 1), np.float32)
    for c in range(k):
        out[c][labels == c] = p
    return out


def write_heart(run_dir, tag="best", epoch=4):
    """Two samples: the heart above, and the same heart predicted exactly."""
    run_dir.mkdir(parents=True, exist_ok=True)
    truth = np.stack([TRUTH, TRUTH])[:, None].astype(np.float32)
    probs = np.stack([one_hot(PRED, 3), one_hot(TRUTH, 3, 0.9)])
    images = (np.stack([TRUTH, TRUTH]) / 2.0).astype(np.float32)[:, None]
    save_preview(run_dir, tag, epoch=epoch, images=images, masks=truth, probs=probs, names=["heart-01", "heart-02"],
                 class_names=NAMES)
    return preview_paths(run_dir, tag)


def dice(t, p):
    return 2 * np.logical_and(t, p).sum() / (t.sum() + p.sum())


# ---- the npz ---------------------------------------------------------------------------------------------------------


def test_multiclass_npz_round_trip(tmp_path):
    png, npz = write_heart(tmp_path)
    pv, problem = read_preview(npz)
    assert problem is None and preview_problem(pv) is None
    assert pv["truth"].dtype == np.uint8 and pv["pred"].dtype == np.uint8
    assert pv["truth"].shape == pv["pred"].shape == pv["prob"].shape == (2, 6, 6)
    assert (pv["truth"][0] == TRUTH).all() and (pv["pred"][0] == PRED).all() and (pv["pred"][1] == TRUTH).all()
    assert pv["prob"][0].tolist() == np.full((6, 6), 204).tolist()  # 0.8 x 255, the predicted class's
    assert pv["prob"][1].max() == 230  # 0.9 x 255, rounded
    assert tuple(pv["class_names"]) == NAMES and preview_classes(pv) == NAMES
    cav = dice(TRUTH == 1, PRED == 1)  # 2 * 3 / (4 + 3) = 6/7
    ring = dice(TRUTH == 2, PRED == 2)  # 2 * 11 / (12 + 13) = 22/25
    assert np.isclose(cav, 6 / 7) and np.isclose(ring, 22 / 25)
    assert np.allclose(pv["dice"], [(cav + ring) / 2, 1.0])
    assert dice_caption(pv, 0) == f"mean dice {(cav + ring) / 2:.4f} (cavity {cav:.4f}, myocardium {ring:.4f})"
    assert int(pv["epoch"]) == 4 and list(pv["names"]) == ["heart-01", "heart-02"]
    strip = iio.imread(png)
    scale = -(-TILE_MIN // 6)
    assert strip.shape == ((2 * 6 + GAP) * scale, (4 * 6 + 3 * GAP) * scale, 3)  # input | truth | prediction | errors


def test_multiclass_problems_are_said(tmp_path):
    _, npz = write_heart(tmp_path)
    pv, _ = read_preview(npz)
    bad = {**pv, "class_names": np.array(NAMES[:2])}
    assert "holds class 2 but class_names names 2 classes" in preview_problem(bad)
    assert "should both be [K, H, W]" in preview_problem({**pv, "pred": pv["pred"][:, :3]})
    assert "no 'pred' array" in preview_problem({k: v for k, v in pv.items() if k != "pred"})
    nameless = {k: v for k, v in pv.items() if k != "class_names"}
    assert preview_problem(nameless) is None and preview_classes(nameless) == ("background", "c1", "c2")


# ---- the PNG strip -----------------------------------------------------------------------------------------------------


def test_strip_png_class_colours_and_errors_at_known_pixels():
    images = np.stack([TRUTH * 100]).astype(np.uint8)
    strip = iio.imread(io.BytesIO(strip_png(images, TRUTH[None], PRED[None], k=3)))
    scale = -(-TILE_MIN // 6)

    def px(tile, y, x):  # the centre of pixel (y, x) of a tile (0 input, 1 truth, 2 prediction, 3 errors)
        return tuple(int(v) for v in strip[y * scale + scale // 2, (tile * (6 + GAP) + x) * scale + scale // 2])

    assert px(0, 2, 2) == (100, 100, 100)  # the input, grey
    assert px(1, 1, 1) == SKY and px(1, 2, 2) == ORANGE and px(1, 0, 0) == BLACK  # truth: class 2, 1, background
    assert px(2, 1, 1) == BLACK and px(2, 2, 2) == SKY and px(2, 5, 5) == SKY  # the prediction's classes
    for y in range(6):
        for x in range(6):
            want = WHITE if (y, x) in WRONG else dim(class_colours(3)[TRUTH[y, x]])
            assert px(3, y, x) == want, (y, x)  # errors: every wrong pixel white, the right ones dimmed
    assert px(3, 3, 3) == dim(ORANGE) and px(3, 4, 4) == dim(SKY) and px(3, 0, 0) == BLACK
    gap = strip[0, 6 * scale + 1]
    assert tuple(int(v) for v in gap) == (128, 128, 128)


def old_strip_png(images: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> bytes:
    """strip_png as it was before multi-class previews (binary only), kept to check binary strips did not change."""
    k, h, w = truth.shape
    scale = max(1, -(-TILE_MIN // max(h, w)))
    rows = []
    for i in range(k):
        im = images[i]
        if im.ndim == 2:
            im = np.repeat(im[..., None], 3, axis=2)
        t = np.repeat((truth[i] * 255).astype(np.uint8)[..., None], 3, axis=2)
        p = np.repeat((pred[i] * 255).astype(np.uint8)[..., None], 3, axis=2)
        gap = np.full((h, GAP, 3), 128, np.uint8)
        rows.append(np.concatenate([im, gap, t, gap, p], axis=1))
        if i < k - 1:
            rows.append(np.full((GAP, rows[-1].shape[1], 3), 128, np.uint8))
    strip = np.concatenate(rows, axis=0)
    strip = strip.repeat(scale, axis=0).repeat(scale, axis=1)
    return iio.imwrite("<bytes>", strip, extension=".png")


def test_binary_strip_png_bytes_unchanged(tmp_path):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (3, 20, 17), dtype=np.uint8)
    truth, pred = rng.random((3, 20, 17)) > 0.6, rng.random((3, 20, 17)) > 0.5
    assert strip_png(images, truth, pred) == old_strip_png(images, truth, pred)
    rgb = rng.integers(0, 256, (2, 9, 9, 3), dtype=np.uint8)
    assert strip_png(rgb, truth[:2, :9, :9], pred[:2, :9, :9]) == old_strip_png(rgb, truth[:2, :9, :9],
                                                                               pred[:2, :9, :9])
    # save_preview's binary strip: the old function on the same arrays, and white-on-black masks
    masks = truth[:, None].astype(np.float32)
    probs = np.clip(pred[:, None] * 0.7 + 0.1, 0, 1).astype(np.float32)
    save_preview(tmp_path, "best", epoch=1, images=images[:, None] / 255.0, masks=masks, probs=probs,
                 names=["a", "b", "c"])
    png, npz = preview_paths(tmp_path, "best")
    assert png.read_bytes() == old_strip_png(images, truth, pred)
    with np.load(npz) as z:
        assert sorted(z.files) == ["dice", "epoch", "images", "names", "prob", "truth"]  # no multi-class keys


# ---- text ---------------------------------------------------------------------------------------------------------------


def test_ascii_panels_a_character_per_class_errors_marked_and_legend():
    lines = class_ascii_panels(TRUTH * 100, TRUTH, PRED, NAMES)
    # one character: 1 column x 2 rows; of the classes in a cell the rarest in truth and prediction wins (cavity:
    # 4 + 3 pixels, ring 12 + 13), so the prediction's cavity-called-ring pixel (2, 2) shares its cell with a cavity
    # pixel and shows '#'; the errors panel marks it; input: the grey ramp, 0 / 100 / 200 -> ' ' '-' '#'
    assert lines == [
        "input   truth   prediction  errors",
        " ----   .oooo.  ..ooo.      .!ooo.",
        " #--#   .o##o.  .o##o.      .o!#o.",
        " ----   .oooo.  .ooooo      .oooo!",
        "classes: . background  # cavity  o myocardium   errors: ! prediction ≠ truth",
    ]
    marks = class_marks(3)
    assert marks == ".#o"
    n = len(CLASS_MARKS) + 1
    assert len(set(class_marks(n))) == n and ERROR_MARK not in class_marks(n)  # every class its own character
    assert ascii_class_legend(NAMES) == lines[-1] and all(n in lines[-1] for n in NAMES)


def test_ascii_classes_keeps_a_thin_class_when_shrunk():
    labels = np.zeros((8, 16), np.uint8)
    labels[:, :6] = 1
    labels[:, 7] = 2  # a one-pixel line
    # 4 x 8 pixels a character: the second holds 2 columns of class 1 and the line; the line is the rarer
    assert ascii_classes(labels, 3, width=4) == ["#o.."]


def test_colour_panels_class_colours_never_mixed_and_errors_white():
    truth = np.zeros((12, 12), np.uint8)
    truth[2:10, 2:10] = 2
    truth[4:8, 4:8] = 1
    pred = truth.copy()
    pred[2:4, 2:10] = 0  # the ring's top missed
    colours = {c for row in halfblock_classes(truth, 3, width=5) for _, fg, bg in row for c in (fg, bg)} - {None}
    assert colours <= {BLACK, ORANGE, SKY} and {ORANGE, SKY} <= colours  # shrunk 12 -> 5 without mixing
    assert class_resize(truth, 3, width=12).tolist() == truth.tolist()  # never enlarged nor changed at full size
    full = halfblock_errors(truth, pred, 3)
    assert full[1][1] == ("▀" * 8, WHITE, WHITE)  # rows 2 and 3, columns 2..9: missed
    assert full[2][1] == ("▀▀", dim(SKY), dim(SKY)) and full[2][2] == ("▀▀▀▀", dim(ORANGE), dim(ORANGE))
    rows = class_colour_panels(TRUTH * 100, TRUTH, PRED, 3)
    assert rows[0] == [("input   truth   prediction  errors", None, None)]


def heart_pv(tmp_path):
    _, npz = write_heart(tmp_path)
    return read_preview(npz)[0]


def test_show_preview_section_without_and_with_colour(tmp_path):
    pv = heart_pv(tmp_path)
    console = Console(width=100, no_color=True, record=True, force_terminal=False)
    _preview_section(console, pv, "best", None, colour=False)
    text = console.export_text()
    assert "sample 1/2  heart-01  mean dice 0.8686 (cavity 0.8571, myocardium 0.8800)" in text
    assert "input   truth   prediction  errors" in text
    assert ".o!#o." in text and ascii_class_legend(NAMES) in text
    assert ASCII_PANELS_LEGEND not in text and "▀" not in text
    console = Console(width=100, force_terminal=True, color_system="truecolor", record=True)
    _preview_section(console, pv, "best", 2, colour=True)
    styled = console.export_text(styles=True)
    assert "▀" in styled and "sample 2/2  heart-02  mean dice 1.0000" in styled
    for rgb in (ORANGE, SKY, WHITE):
        assert f"38;2;{rgb[0]};{rgb[1]};{rgb[2]}" in styled  # classes in the drawing and the legend, errors white
    assert "cavity" in styled and "myocardium" in styled and "prediction ≠ truth" in styled


def test_sample_panels_binary_unchanged(tmp_path):
    from unettui.core.show.render import ascii_panels, colour_panels, pred_from_prob

    rng = np.random.default_rng(1)
    masks = (rng.random((1, 1, 8, 8)) > 0.5).astype(np.float32)
    save_preview(tmp_path, "best", epoch=1, images=rng.random((1, 1, 8, 8)).astype(np.float32), masks=masks,
                 probs=rng.random((1, 1, 8, 8)).astype(np.float32), names=["x"])
    pv, _ = load_preview(tmp_path)
    assert preview_classes(pv) is None
    image, truth, pred = pv["images"][0], pv["truth"][0], pred_from_prob(pv["prob"][0])
    assert sample_panels(pv, 0, 6, 2, colour=False) == ascii_panels(image, truth, pred, 6, 2, legend=False)
    assert sample_panels(pv, 0, 6, 2, colour=True) == colour_panels(image, truth, pred, 6, 2)


# ---- the TUI -----------------------------------------------------------------------------------------------------------


class Host(App):
    def __init__(self, project, colour):
        super().__init__()
        self.project, self.colour = project, colour

    def compose(self):
        yield PreviewPanel(self.project, colour=self.colour)


async def _settle(app, pilot):
    panel = app.query_one(PreviewPanel)
    for _ in range(50):
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        if panel._pending is None and all(w.is_finished for w in app.workers):
            return
    raise AssertionError("the preview panel did not settle")


def test_tui_panel_draws_classes_in_colour_and_characters(tmp_path):
    write_heart(tmp_path / "runs" / "h")

    async def main():
        app = Host(tmp_path, colour=False)
        async with app.run_test(size=(100, 30)) as pilot:
            panel = app.query_one(PreviewPanel)
            panel.show_run("h")
            await _settle(app, pilot)
            lines = panel.render().plain.split("\n")
            assert lines[0].startswith("sample 1/2  heart-01  mean dice 0.8686 (cavity 0.8571, myocardium 0.8800)")
            assert lines[1].split() == ["input", "truth", "prediction", "errors"]
            assert ".o!#o." in lines[3] and lines[-1] == ascii_class_legend(NAMES)
            panel.focus()
            await pilot.press("o")  # the errors alone, enlarged
            await _settle(app, pilot)
            body = "".join(panel.render().plain.split("\n")[1:-1])
            assert set(body) == {".", "#", "o", "!"}
            await pilot.press("c", "o")  # colour, four panels
            await _settle(app, pilot)
            text = panel.render()
            colours = {c for span in text.spans for c in (span.style.color, span.style.bgcolor) if c is not None}
            for rgb in (ORANGE, SKY, WHITE, dim(ORANGE)):
                assert Color.from_rgb(*rgb) in colours
            last = text.plain.split("\n")[-1]
            assert last == ("classes: ██ cavity  ██ myocardium  (background black)   errors: ██ prediction ≠ truth "
                            "(right pixels dimmed)")

    asyncio.run(main())


# ---- the report's figure -----------------------------------------------------------------------------------------------


def test_predictions_figure_draws_classes(tmp_path):
    from tests.unit.test_figures import GRID, stage, svg_texts

    pv = heart_pv(tmp_path / "r0")
    truth_tile = F._tile(pv, 1, "truth")
    assert tuple(np.rint(truth_tile[1, 1] * 255).astype(int)) == SKY
    assert tuple(np.rint(truth_tile[2, 2] * 255).astype(int)) == ORANGE
    errors = F._tile(pv, 1, "prediction")
    assert tuple(np.rint(errors[1, 1] * 255).astype(int)) == WHITE
    assert tuple(np.rint(errors[3, 3] * 255).astype(int)) == dim(ORANGE)
    st = stage([{**GRID[0], "score": 0.87}, {**GRID[1], "score": 0.8}])
    st.configs[0].preview = tmp_path / "r0" / "preview_best.npz"
    st.configs[1].preview = write_heart(tmp_path / "r1")[1]
    _, svg = F.save(F.predictions_figure(st), tmp_path / "pred.png", "svg")
    texts = svg_texts(svg)
    assert {"cavity", "myocardium", "background"} <= set(texts) and "hit" not in texts
    assert any("prediction ≠ truth" in t for t in texts)
    ET.parse(svg)
