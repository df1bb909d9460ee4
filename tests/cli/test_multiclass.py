"""Multi-class label maps through the CLI, end to end: a folder of 3-class masks stored as 0/128/255, trained by
`unettui run --headless`, scored per class in its run files, predicted as label maps with the dataset's own values,
evaluated per class (the numbers its training recorded), and bad label values refused with the file named."""

import json

import imageio.v3 as iio
import numpy as np
import pytest
from typer.testing import CliRunner

from unettui.cli.app import app
from unettui.core.runs.store import RunStore

QUEUE = """[defaults]
dataset = "data"
num_classes = 3
class_names = ["background", "cell", "edge"]
mask_values = [0, 128, 255]
image_size = 32
base_channels = 4
depth = 2
epochs = 10
batch_size = 4
lr = 1e-2
test_fraction = 0.2
device = "cpu"

[[experiment]]
id = "three"
"""


def label_pairs(folder, n, size=(32, 40)):
    """Images whose brightness says the class (with noise), masks: a block (128) with a 2-px rim (255) on 0."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    h, w = size
    for i in range(n):
        mask = np.zeros((h, w), np.uint8)
        top, left = 4 + i % 7, 5 + i % 9
        mask[top:top + 18, left:left + 20] = 255
        mask[top + 2:top + 16, left + 2:left + 18] = 128
        img = rng.normal(40, 12, (h, w))
        img[mask == 128] += 90
        img[mask == 255] += 180
        iio.imwrite(folder / "images" / f"s{i:02d}.png", np.clip(img, 0, 255).astype(np.uint8))
        iio.imwrite(folder / "masks" / f"s{i:02d}.png", mask)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    proj = tmp_path_factory.mktemp("multiclass") / "p"
    proj.mkdir()
    label_pairs(proj / "data", 20)
    (proj / "experiments.toml").write_text(QUEUE)
    out = CliRunner().invoke(app, ["run", "--headless", "-p", str(proj)])
    assert out.exit_code == 0, out.output
    return proj


def invoke(*args):
    return CliRunner().invoke(app, list(args))


def test_a_multiclass_run_records_each_class_in_its_files(trained):
    run = RunStore(trained).run("three")
    summary = json.loads(run.file("summary.json").read_text())
    assert summary["classes"] == {"names": ["background", "cell", "edge"], "values": [0, 128, 255]}
    for key in ("best_val_dice_cell", "best_val_dice_edge", "test_dice_edge", "best_val_iou_cell", "best_val_dice_min"):
        assert 0.0 <= summary[key] <= 1.0, key
    assert summary["best_val_dice"] == pytest.approx((summary["best_val_dice_cell"] + summary["best_val_dice_edge"]) / 2)
    assert summary["best_val_dice_min"] == min(summary["best_val_dice_cell"], summary["best_val_dice_edge"])
    lines = [json.loads(x) for x in run.file("metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 10 and all({"val_dice_cell", "val_dice_edge", "val_iou_edge", "val_dice_min"} <= set(x)
                                   for x in lines)
    config = json.loads(run.file("config.json").read_text())
    assert config["num_classes"] == 3 and config["mask_values"] == [0, 128, 255]
    assert "nan" not in run.file("summary.json").read_text().lower()


def test_evaluate_counts_each_class_on_the_images_own_pixels_as_predict_labels_them(trained, tmp_path):
    """The run trained on its 32 x 40 images letterboxed to 32 x 32; evaluate predicts its val images the way
    predict does and counts each class on their own 32 x 40 pixels: exactly the counts of predict's label maps against
    the mask files, every pixel once (so not the numbers training recorded at 32 x 32)."""
    from unettui.core.learn.data import split_with_test

    summary = json.loads(RunStore(trained).run("three").file("summary.json").read_text())
    out = invoke("evaluate", "three", "-p", str(trained), "--json")
    assert out.exit_code == 0, out.output
    got = json.loads(out.output)
    by_class = {c["class"]: c for c in got["classes"]}
    assert set(by_class) == {"cell", "edge"} and by_class["edge"]["value"] == 255
    _, val, _, _ = split_with_test(20, 0.8, 0, 0.2)
    names = sorted(p.name for p in (trained / "data" / "images").iterdir())
    chosen = [names[i] for i in val.tolist()]
    src = tmp_path / "val"
    src.mkdir()
    for name in chosen:
        (src / name).write_bytes((trained / "data" / "images" / name).read_bytes())
    assert invoke("predict", "three", str(src), str(tmp_path / "pred"), "-p", str(trained)).exit_code == 0
    pred = np.stack([iio.imread(tmp_path / "pred" / n) for n in chosen])
    truth = np.stack([iio.imread(trained / "data" / "masks" / n) for n in chosen])
    assert got["images"] == len(chosen) and got["counts"]["pixels"] == truth.size == len(chosen) * 32 * 40
    for name, value in (("cell", 128), ("edge", 255)):
        c = by_class[name]
        p_, t_ = pred == value, truth == value
        assert (c["tp"], c["fp"], c["fn"]) == ((p_ & t_).sum(), (p_ & ~t_).sum(), (~p_ & t_).sum())
        assert c["dice"] == pytest.approx(2 * c["tp"] / (2 * c["tp"] + c["fp"] + c["fn"]), abs=1e-12)
        assert c["truth_pixels"] == c["tp"] + c["fn"] and c["predicted_pixels"] == c["tp"] + c["fp"]
    assert got["metrics"]["dice"] == pytest.approx((by_class["cell"]["dice"] + by_class["edge"]["dice"]) / 2)
    assert got["metrics"]["dice_min"] == min(by_class["cell"]["dice"], by_class["edge"]["dice"])
    assert 0.0 < got["metrics"]["dice"] < 1.0 and 0.0 < summary["best_val_dice"] < 1.0
    table = invoke("evaluate", "three", "-p", str(trained), "--split", "test")
    assert table.exit_code == 0, table.output
    assert "cell" in table.output and "edge" in table.output and "truth px" in table.output
    test = json.loads(invoke("evaluate", "three", "-p", str(trained), "--split", "test", "--json").output)
    assert f"{[c for c in test['classes'] if c['class'] == 'edge'][0]['dice']:.4f}" in table.output


def test_predict_writes_label_maps_with_the_datasets_values_at_the_inputs_size(trained, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    img = iio.imread(trained / "data" / "images" / "s03.png")
    iio.imwrite(src / "wide.png", np.concatenate([img, img], axis=1))  # 32 x 80: not the training size
    out_dir = tmp_path / "out"
    out = invoke("predict", "three", str(src), str(out_dir), "-p", str(trained), "--probabilities", "--json")
    assert out.exit_code == 0, out.output
    mask = iio.imread(out_dir / "wide.png")
    assert mask.shape == (32, 80) and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 128, 255} and len(np.unique(mask)) >= 2
    probs = [iio.imread(out_dir / f"wide_prob_{c}.png").astype(int) for c in ("background", "cell", "edge")]
    assert all(p.shape == (32, 80) for p in probs)
    assert np.abs(sum(probs) - 255).max() <= 2  # one probability per class, summing to 1 (rounded to 0-255 each)
    record = json.loads(out.output)["files"][0]
    assert sum(record["class_pixels"].values()) == 32 * 80
    assert record["class_pixels"]["edge"] == int((mask == 255).sum())


def test_a_label_value_that_is_no_class_is_refused_naming_the_file_by_check_and_by_the_runner(tmp_path):
    proj = tmp_path / "p"
    proj.mkdir()
    label_pairs(proj / "data", 8)
    bad = iio.imread(proj / "data" / "masks" / "s05.png")
    bad[:3, :4] = 7
    iio.imwrite(proj / "data" / "masks" / "s05.png", bad)
    (proj / "experiments.toml").write_text(QUEUE)
    check = invoke("check", "-p", str(proj))
    assert check.exit_code != 0
    assert "s05.png" in check.output and "12 pixels of value 7" in check.output and "Traceback" not in check.output
    out = invoke("run", "--headless", "-p", str(proj))
    status = json.loads(RunStore(proj).run("three").file("status.json").read_text())
    assert status["state"] == "failed" and "s05.png" in status["error"] and "value 7" in status["error"]
    assert "Traceback" not in out.output


def test_class_keys_given_on_the_command_line_are_written_as_toml_arrays(tmp_path):
    import tomllib

    proj = tmp_path / "q"
    proj.mkdir()
    (proj / "experiments.toml").write_text("[defaults]\nepochs = 2\n")
    out = invoke("add", "--id", "h", "-p", str(proj), "--set", "num_classes=3", "--set", "dataset=synthetic:heart",
                 "--set", "class_names=[background, cavity, ring]", "--set", "class_weights=1,1,2",
                 "--set", "mask_values=0,1,2")
    assert out.exit_code == 0, out.output
    entry = tomllib.loads((proj / "experiments.toml").read_text())["experiment"][0]
    assert entry["class_names"] == ["background", "cavity", "ring"] and entry["class_weights"] == [1.0, 1.0, 2.0]
    assert entry["mask_values"] == [0, 1, 2]
    bad = invoke("add", "--id", "b", "-p", str(proj), "--set", "num_classes=3", "--set", "dataset=synthetic:heart",
                 "--set", "class_weights=1,a,2")
    assert bad.exit_code != 0 and "class_weights: must be a list of numbers" in bad.output
    assert "sweep" not in bad.output and "Traceback" not in bad.output


def test_a_class_the_training_masks_lack_is_noted_once(tmp_path):
    from unettui.core.define.config import Config
    from unettui.core.learn.data import split_with_test
    from unettui.core.learn.train import Trainer

    proj = tmp_path / "p"
    label_pairs(proj / "data", 10)
    _, val, _, _ = split_with_test(10, 0.8, 0, 0.0)
    only_val = {int(i) for i in val.tolist()}
    for i in range(10):  # the rim (255) only in the validation images; value 7 as a fourth class nowhere
        path = proj / "data" / "masks" / f"s{i:02d}.png"
        m = iio.imread(path)
        if i not in only_val:
            m[m == 255] = 128
        iio.imwrite(path, m)
    cfg = Config(dataset="data", num_classes=4, class_names=("background", "cell", "edge", "other"),
                 mask_values=(0, 128, 255, 7), image_size=32, base_channels=4, depth=2, device="cpu")
    notes = Trainer(cfg, proj).data_notes
    assert [n for n in notes if "'edge'" in n] == [
        "class 'edge' (mask value 255) occurs in no training mask: the model cannot learn it"]
    assert [n for n in notes if "'other'" in n] == ["class 'other' (value 7) occurs in no mask of the dataset"]
