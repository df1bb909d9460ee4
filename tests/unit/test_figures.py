"""unettui.core.show.figures and study_figures: the matplotlib figures of a study, checked in the files they write
(PNG size, SVG parsed: full labels, one colour per configuration, the log scale, repeats as mean ± sd)."""

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from unettui.core.define.study import ConfigScore, RunScore, StageStatus, score
from unettui.core.runs.store import RunStore, atomic_write_json
from unettui.core.show import figures as F
from unettui.core.show.preview import save_preview
from unettui.core.show.study_figures import ConfigFigure, StageFigure, stage_styles, study_model

SVG = "{http://www.w3.org/2000/svg}"


def svg_texts(path) -> list[str]:
    return ["".join(t.itertext()) for t in ET.parse(path).getroot().iter(f"{SVG}text")]


def svg_colour(path, gid: str, prop: str) -> str:
    """The ``prop`` (stroke or fill) colour of the first shape in the SVG group with id ``gid``."""
    for g in ET.parse(path).getroot().iter(f"{SVG}g"):
        if g.get("id") == gid:
            for el in g.iter():
                m = re.search(rf"(?:^|;)\s*{prop}:\s*(#[0-9a-f]{{6}})", el.get("style") or "")
                if m:
                    return m.group(1)
    raise AssertionError(f"no {prop} colour for {gid} in {path.name}")


def history(val, train=None):
    return [{"epoch": e, "val_loss": v, "train_loss": (train or val)[e - 1], "val_dice": 0.5}
            for e, v in enumerate(val, 1)]


def stage(configs, varied=("optimizer", "scheduler"), fractions=(None,), metric="best_val_dice"):
    styles = stage_styles([c["values"] for c in configs], list(varied))
    figs = [ConfigFigure(label=", ".join(f"{k}={c['values'][k]}" for k in varied), values=c["values"], style=s,
                         histories=c.get("histories", []), score=c.get("score"), sd=c.get("sd"), n=c.get("n", 1),
                         points=c.get("points", [(None, c.get("score"), c.get("sd"), c.get("n", 1))]),
                         winner=c.get("winner", False), states=["done"])
            for c, s in zip(configs, styles)]
    return StageFigure(1, "opt-sched", list(varied), metric, list(fractions), figs, done=True)


GRID = [{"values": {"optimizer": o, "scheduler": s}} for o in ("adam", "sgd", "rmsprop") for s in ("none", "step")]


def test_styles_give_a_hue_per_first_key_and_a_shade_and_line_style_per_other():
    styles = stage_styles([c["values"] for c in GRID], ["optimizer", "scheduler"])
    assert len({s.colour for s in styles}) == 6  # every configuration its own colour
    assert styles[0].linestyle == styles[2].linestyle != styles[1].linestyle  # none solid, step dashed
    assert styles[0].marker == styles[1].marker != styles[2].marker  # a marker per optimizer
    hue = [np.argmax([int(s.colour[i:i + 2], 16) for i in (1, 3, 5)]) for s in styles]
    assert hue[0] == hue[1] and hue[2] == hue[3]  # adam's two shades share their dominant channel
    assert stage_styles([c["values"] for c in GRID], ["optimizer", "scheduler"]) == styles  # deterministic
    many = stage_styles([{"lr": 10.0 ** -k} for k in range(20)], ["lr"])
    assert len({(s.colour, s.linestyle) for s in many}) == 20  # past the palette: other line styles


def test_loss_figure_full_labels_log_scale_and_repeats_band(tmp_path):
    reps = [history([0.9, 0.6, 0.5]), history([1.0, 0.7, 0.45]), history([0.95, 0.65, 0.4])]
    configs = [dict(c) for c in GRID[:4]]
    configs[0]["histories"] = reps
    configs[1]["histories"] = [history([0.8, 90.0, 0.3])]  # one diverging epoch
    configs[2]["histories"] = [history([0.7, 0.5, 0.35])]
    st = stage(configs)
    png, svg = F.save(F.loss_figure(st), tmp_path / "loss.png", "svg")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and svg.suffix == ".svg"
    w, h = Image.open(png).size
    assert w >= 1400 and h >= 600
    texts = svg_texts(svg)
    assert "optimizer=adam, scheduler=none (mean of 3, band min to max)" in texts  # full labels, never cut
    assert "optimizer=adam, scheduler=step" in texts and "optimizer=sgd, scheduler=none" in texts
    assert "loss (log scale)" in texts
    assert svg_colour(svg, "cfg-optimizer-adam-scheduler-none-val_loss-band", "fill") == \
        svg_colour(svg, "cfg-optimizer-adam-scheduler-none-val_loss", "stroke")
    calm = stage([{**GRID[0], "histories": [history([0.9, 0.6, 0.5])]},
                  {**GRID[1], "histories": [history([0.8, 0.5, 0.3])]}])
    _, svg2 = F.save(F.loss_figure(calm), tmp_path / "calm.png", "svg")
    assert "loss" in svg_texts(svg2) and not any("log scale" in t for t in svg_texts(svg2))


def test_score_figure_winner_error_bars_and_missing_scores(tmp_path):
    configs = [{**GRID[0], "score": 0.81, "sd": 0.02, "n": 3, "winner": True}, {**GRID[1], "score": 0.7},
               {**GRID[2], "score": None}]
    (png, pdf) = F.save(F.score_figure(stage(configs)), tmp_path / "scores.png", "pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-" and Image.open(png).size[0] > 900
    _, svg = F.save(F.score_figure(stage(configs)), tmp_path / "scores.png", "svg")
    texts = svg_texts(svg)
    assert "  0.8100 ± 0.0200 (n=3)  ★ winner" in texts and "  0.7000" in texts
    assert any("no score" in t for t in texts)
    assert svg_colour(svg, "cfg-optimizer-adam-scheduler-none-score", "fill") != \
        svg_colour(svg, "cfg-optimizer-adam-scheduler-step-score", "fill")


def test_overview_groups_by_the_first_key_with_a_bar_per_other_setting(tmp_path):
    configs = [{**c, "score": 0.5 + 0.05 * i} for i, c in enumerate(GRID)]
    configs[5]["winner"] = True
    st = stage(configs)
    png, svg = F.save(F.overview_figure([st], "s"), tmp_path / "overview.png", "svg")
    texts = svg_texts(svg)
    assert {"optimizer=adam", "optimizer=sgd", "optimizer=rmsprop", "scheduler=none", "scheduler=step"} <= set(texts)
    assert any("winner optimizer=rmsprop, scheduler=step" in t for t in texts)
    gids = {g.get("id") for g in ET.parse(svg).getroot().iter(f"{SVG}g")}
    assert {f"{c.gid}-overview" for c in st.configs} <= gids


def test_predictions_grid_reads_previews(tmp_path):
    rng = np.random.default_rng(0)
    configs = []
    for i, c in enumerate(GRID[:4]):
        run = tmp_path / f"run{i}"
        run.mkdir()
        truth = np.zeros((2, 1, 16, 16), np.float32)
        truth[:, :, 4:12, 4:12] = 1
        save_preview(run, "best", epoch=3, images=rng.random((2, 1, 16, 16)).astype(np.float32), masks=truth,
                     probs=np.clip(truth + 0.2 * i, 0, 1), names=["a", "b"])
        configs.append({**c, "score": 0.8})
    st = stage(configs)
    for cf, i in zip(st.configs, range(4)):
        cf.preview = tmp_path / f"run{i}" / "preview_best.npz"
    st.configs[3].preview = tmp_path / "nowhere.npz"  # missing: left out, not an error
    png, svg = F.save(F.predictions_figure(st), tmp_path / "pred.png", "svg")
    texts = svg_texts(svg)
    assert "input" in texts and "truth" in texts and "hit" in texts
    assert sum("optimizer=" in t for t in texts) == 3
    assert F.predictions_figure(stage(GRID[:2])) is None  # no previews at all


def test_repeats_of_a_configuration_give_mean_sd_and_n(tmp_path):
    """Runs of one configuration at one train fraction are its repeats: the score's error bar is their sd."""
    store = RunStore(tmp_path)
    for rid, val in (("a", [0.9, 0.5]), ("a-r2", [0.8, 0.4]), ("a-r3", [0.85, 0.45]), ("b", [0.7, 0.3])):
        run = store.run(rid)
        run.path.mkdir(parents=True)
        (run.path / "metrics.jsonl").write_text("".join(
            f'{{"epoch": {e}, "val_loss": {v}, "train_loss": {v}}}\n' for e, v in enumerate(val, 1)))
        atomic_write_json(run.file("summary.json"), {"best_val_dice": 0.5})
    a = ConfigScore({"lr": 0.1}, [RunScore("a", None, "done", 0.80), RunScore("a-r2", None, "done", 0.84),
                                  RunScore("a-r3", None, "done", 0.82)])
    b = ConfigScore({"lr": 0.01}, [RunScore("b", None, "done", 0.7)])
    score(a), score(b)  # the study's numbers: mean, and the seed-to-seed sd with repeats
    st = StageStatus("lr", "done", ["lr"], {}, 4, configs=[a, b], winner={"lr": 0.1}, how="best")
    status = SimpleNamespace(id="s", stages=[st], study=SimpleNamespace(metric="best_val_dice"))
    (sf,) = study_model(status, store)
    fa, fb = sf.configs
    assert (fa.label, fa.n, len(fa.histories), fa.winner) == ("lr=0.1", 3, 3, True)
    assert fa.score == pytest.approx(0.82) and fa.sd == pytest.approx(0.02)
    assert fa.points == [(None, pytest.approx(0.82), pytest.approx(0.02), 3)]
    assert (fb.sd, fb.n, fb.legend_label) == (None, 1, "lr=0.01")
    assert fa.legend_label == "lr=0.1 (mean of 3, band min to max)"


def test_figure_modules_do_not_import_matplotlib_until_they_draw():
    code = ("import sys, unettui.core.show.figures, unettui.core.show.study_figures, unettui.core.show.report; "
            "print(','.join(m for m in ('matplotlib', 'torch', 'textual', 'rich') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"the figure modules pulled in {out.stdout.strip()}"
