"""`unettui predict RUN INPUT [OUTPUT]` and `unettui evaluate RUN [DATASET]`: a trained run applied to images."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path

import typer

from .common import ProjectOpt, app, fail, queue_and_store, resolve


class Split(str, Enum):
    val = "val"
    test = "test"
    train = "train"
    all = "all"


def _folds(queue, run_id: str) -> list:
    """The fold experiments (fold 1 first) of the cross-validated configuration ``run_id`` names: its id (its first
    repeat), or the id of one of its folds (that repeat); [] when it names none."""
    from ..core.define.experiment import folds_of

    if not queue:
        return []
    exp = queue.get(run_id)
    conf, repeat = (exp.configuration, exp.repeat) if exp is not None and exp.fold else (run_id, 1)
    if exp is not None and not exp.fold:
        return []
    return folds_of(queue.experiments, conf).get(repeat, [])


def _model(run_id: str, project: Path, last: bool, device: str, fold: int | None = None):
    """The model ``run_id`` names: a run's, or for a cross-validated configuration (its id or any fold's) the
    ensemble of its folds, or with ``fold`` that fold's run alone."""
    from ..core.learn.predict import PredictError, ensemble, load_model

    queue, store = queue_and_store(project)
    folds = _folds(queue, run_id)
    if fold is not None and not folds:
        fail(f"--fold {fold}: {run_id} is not a cross-validated configuration (folds = k); leave --fold out")
    if fold is not None and not 1 <= fold <= len(folds):
        fail(f"--fold {fold}: {folds[0].configuration} has folds 1 ... {len(folds)}")
    try:
        if fold is not None:
            return load_model(store.run(folds[fold - 1].id), last=last, device=device)
        if folds:
            return ensemble([load_model(store.run(e.id), last=last, device=device) for e in folds],
                            folds[0].configuration)
        _, run = resolve(run_id, queue, store)
        return load_model(run, last=last, device=device)
    except (PredictError, RuntimeError) as exc:
        hint = "; or --fold N for one fold" if folds and fold is None else ""
        fail(" ".join(str(exc).split()) + hint)


def _progress(total: int, what: str):
    """A progress bar on stderr when it is a terminal, else nothing."""
    if not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=Console(stderr=True), transient=True)
    progress.start()
    progress.add_task(what, total=total)
    return progress


@app.command()
def predict(
    run_id: str = typer.Argument(..., metavar="RUN", help="The run whose model is applied (see `unettui ls`)."),
    target: Path = typer.Argument(..., metavar="INPUT", help="An image file, or a folder of images (any format the folder loader reads)."),
    output: Path | None = typer.Argument(None, metavar="OUTPUT", help="Folder for the masks (default: predictions/RUN in the project).", file_okay=False),
    project: Path = ProjectOpt,
    last: bool = typer.Option(False, "--last", help="The last epoch's model instead of the best epoch's."),
    probabilities: bool = typer.Option(False, "--probabilities", help="Also write STEM_prob.png: the foreground probability as 0-255."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace files in OUTPUT that earlier predictions wrote, and allow OUTPUT to be the inputs' folder (an input file is never replaced)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (the run, weights, device, and every file written with its size and foreground pixels) instead of the summary line."),
    device: str = typer.Option("auto", "--device", "-d", help="auto (a GPU when there is one), cpu, cuda or cuda:N."),
    fold: int | None = typer.Option(None, "--fold", min=1, help="A cross-validated configuration (folds = k): fold N's model alone instead of the ensemble of its k folds."),
) -> None:
    """Predict masks for new images with a trained run's best epoch's model (best.pt; --last: the last epoch's).

    Each input is prepared as training prepared its images (the run's channels — a constant alpha dropped, grey replicated for an RGB run, any other channel count refused —, 8-bit / 255, 16-bit and float min-max per image, histogram equalisation if the run used it) and predicted whole, at its own resolution, in the run's mode: a run trained on patches (patch_size) predicts the image as it is by sliding window (overlapping windows of the patch, Gaussian-blended; memory bounded by the patch and the batch, not by the image); a run trained on resized images (image_size) sees it letterboxed as in training (its long side scaled to image_size, its short side padded: nothing cropped or stretched) and the image's part of the output is resized back. Every mask (OUTPUT/STEM.png: 255 where the probability > 0.5, else 0; for a multi-class run the label map, each pixel the value its class has in the run's masks, mask_values) has its input's own height and width, any size and aspect ratio. --probabilities adds STEM_prob.png (multi-class: STEM_prob_CLASS.png per class), the probability as 0-255.

    Nothing is overwritten by default: before writing anything predict checks every file it will write, and refuses an OUTPUT that is the inputs' folder or already holds one of them (naming it; --overwrite replaces them), and inputs whose outputs would collide (x.png and x.tif; x_prob.png beside x's probability map). An input is never written over.

    A cross-validated configuration (folds = k; RUN its id or any fold's) predicts with the ensemble of its k folds: each pixel's probability is the mean of the folds' (--fold N: that fold alone).

    Example: unettui predict seed-augment-rotate20 scans/ masks/ --probabilities
    """
    from ..core.learn.predict import PredictError, image_files, plan_outputs
    from ..core.learn.predict import predict as predict_files

    tm = _model(run_id, project, last, device, fold)
    out = output or project / "predictions" / run_id
    try:
        files = image_files(target)
        plan_outputs(files, out, probabilities, overwrite,  # refused before a model runs or a file is written
                     None if tm.task.binary else tm.task.classes.names)
    except PredictError as exc:
        fail(" ".join(str(exc).split()))
    bar = _progress(len(files), f"{run_id}: predicting")
    try:
        written = predict_files(tm, files, out, probabilities, overwrite=overwrite,
                                on_file=(lambda i, n, p: bar.advance(bar.task_ids[0])) if bar else None)
    except PredictError as exc:
        fail(" ".join(str(exc).split()))
    except OSError as exc:
        fail(f"cannot write to {out}: {exc.strerror or exc}")
    finally:
        if bar is not None:
            bar.stop()
    if as_json:
        typer.echo(json.dumps({"run": run_id, **_weights(tm), "device": str(tm.device), "input": str(target),
                               "output": str(out), "probabilities": probabilities, "count": len(written),
                               "files": written}))
        return
    typer.echo(f"{run_id}: {len(written)} mask{'s' if len(written) != 1 else ''} from {tm.weights} on {tm.device} "
               f"written to {out}" + (" (with probabilities)" if probabilities else ""))


def _weights(tm) -> dict:
    """The weights a command used, for its JSON (an ensemble of folds: each fold's run and epoch too)."""
    last = (tm.folds[0] if tm.folds else tm).weights.startswith("checkpoint")
    out = {"file": "checkpoint.pt" if last else "best.pt", "epoch": tm.epoch, "last": last}
    if tm.folds:
        out["ensemble"] = [{"run": m.run_id, "epoch": m.epoch} for m in tm.folds]
    return {"weights": out}


@app.command()
def evaluate(
    run_id: str = typer.Argument(..., metavar="RUN", help="The run whose model is scored (see `unettui ls`)."),
    dataset: Path | None = typer.Argument(None, metavar="DATASET", help="A folder with images/ and masks/ (default: the run's own images of --split)."),
    project: Path = ProjectOpt,
    split: Split = typer.Option(Split.val, "--split", help="Without DATASET: the run's own val, test, train or all images."),
    last: bool = typer.Option(False, "--last", help="The last epoch's model instead of the best epoch's."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (run, weights, dataset, images, metrics, pixel counts) instead of the summary line."),
    device: str = typer.Option("auto", "--device", "-d", help="auto (a GPU when there is one), cpu, cuda or cuda:N."),
    fold: int | None = typer.Option(None, "--fold", min=1, help="A cross-validated configuration (folds = k): fold N's model alone instead of the ensemble of its k folds."),
) -> None:
    """Score a trained run's model: hard Dice and IoU (threshold 0.5, true/false positives summed over all the images, as everywhere in unettui) on a labelled folder, or on the run's own split. A multi-class run prints a table per class (Dice, IoU, pixels in truth and prediction); its Dice is the mean over the classes that have a score.

    Counted on the images' own pixels: each labelled image is predicted as `unettui predict` predicts it (by sliding window for a run trained on patches; letterboxed to image_size and resized back for a run trained on resized images) and compared with its mask at the mask's own size, every pixel once. A folder is read as a folder dataset is for training (pairs matched by stem, the run's classes and tiff_pages). Without DATASET the run's own images are rebuilt with its split: `evaluate RUN` reproduces the run's best val Dice (for a run on resized images only where its images are image_size square: elsewhere training counted at image_size, evaluate on the images' pixels), `--split test` gives its held-out test score.

    With --json the result is one JSON object for scripts: {"run", "weights": {"file", "epoch", "last"}, "device", "dataset": {"folder"} or {"spec", "split"}, "images", "metrics": {"dice", "iou"}, "counts": {"tp", "fp", "fn", "tn", "pixels"}, "counted_at": {"resolution": "native", "pixels", "height", "width" (null when the images' sizes differ), "smallest", "largest": {"height", "width"}, "model_input"}, "threshold"}; a multi-class run adds "metrics": {"dice_min"} and "classes": [{"class", "value", "dice", "iou", "tp", "fp", "fn", "truth_pixels", "predicted_pixels"}] (null: no score).

    A cross-validated configuration (folds = k; RUN its id or any fold's) is scored as the ensemble of its k folds (the mean of their probabilities), on a folder or its test split (--split val has no images of its own for an ensemble: each fold trained on the others' validation images); --fold N scores fold N alone.

    Example: unettui evaluate seed-augment-rotate20 new-labelled-scans/ --json
    """
    from ..core.learn.data import DatasetError
    from ..core.learn.predict import PredictError, labelled_folder, run_split, score

    tm = _model(run_id, project, last, device, fold)
    if tm.folds and dataset is None and split.value != "test":
        fail(f"{run_id}: the ensemble of {len(tm.folds)} folds has no {split.value} images of its own (each fold trained "
             "on the others' validation images); use --split test, a labelled folder, or --fold N")
    try:
        if dataset is not None:
            images, masks = labelled_folder(tm, dataset)
            where = str(dataset)
        else:
            images, masks = run_split(tm, project, split.value)
            where = f"its own {split.value} images"
    except (PredictError, DatasetError) as exc:
        fail(" ".join(str(exc).split()))
    bar = _progress(len(images), f"{run_id}: scoring")
    try:
        result = score(tm, images, masks, on_batch=(lambda done, n: bar.update(bar.task_ids[0], completed=done))
                       if bar else None)
    except PredictError as exc:
        fail(" ".join(str(exc).split()))
    finally:
        if bar is not None:
            bar.stop()
    binary = not result.classes
    if as_json:
        out = {
            "run": run_id, **_weights(tm), "device": str(tm.device),
            "dataset": {"folder": str(dataset)} if dataset is not None else {"spec": tm.cfg.dataset, "split": split.value},
            "images": result.images, "metrics": {"dice": result.dice, "iou": result.iou},
            "counts": {"tp": result.tp, "fp": result.fp, "fn": result.fn, "tn": result.tn, "pixels": result.pixels},
            "counted_at": _counted_at(result, tm),
            "threshold": 0.5 if binary else "argmax",
            "boundary": {**result.boundary, "nsd_tolerance": result.nsd_tolerance, "units": "pixels",
                         "aggregation": "per image, then the mean over the images that scored (sd, n)"}}
        if not binary:
            out["metrics"]["dice_min"] = result.dice_min
            out["classes"] = [c.as_dict() for c in result.classes]
            out["class_mean"] = "over the foreground classes with a score (a class in no image, truth or prediction, has none)"
        typer.echo(json.dumps(out))
        return
    typer.echo(f"{run_id} ({tm.weights}) on {where}: {result.images} image{'s' if result.images != 1 else ''}, "
               f"Dice {_num(result.dice)}, IoU {_num(result.iou)} (TP {result.tp:.0f}, FP {result.fp:.0f}, "
               f"FN {result.fn:.0f}; device {tm.device})")
    typer.echo(f"counted on the images' own pixels: {_images(result.images)}, {_megapixels(result.pixels)} "
               f"({_sizes(result.sizes)}; the model saw them {tm.mode})")
    b = result.boundary
    typer.echo(f"boundary: HD95 {_px(b.get('hd95'))}, NSD {_num(b.get('nsd'))} at {result.nsd_tolerance:g} px "
               "(per image, then the mean over images; a missed or false structure scores the image diagonal and 0)")
    if not binary:
        _class_table(result)


def _images(n: int) -> str:
    return f"{n} image{'s' if n != 1 else ''}"


def _megapixels(pixels: int) -> str:
    """A pixel count for people: 980 px, 5.1 kpx, 1.2 Mpx."""
    if pixels < 1000:
        return f"{pixels} px"
    if pixels < 1_000_000:
        return f"{pixels / 1e3:.1f} kpx"
    return f"{pixels / 1e6:.1f} Mpx"


def _sizes(sizes: list[tuple[int, int]]) -> str:
    """The images' sizes as W x H: "40x32 each", or the smallest and largest."""
    if not sizes:
        return "no image"
    small, large = min(sizes, key=lambda s: (s[0] * s[1], s)), max(sizes, key=lambda s: (s[0] * s[1], s))
    if len(set(sizes)) == 1:
        return f"{small[1]}x{small[0]} WxH{' each' if len(sizes) > 1 else ''}"
    return f"{small[1]}x{small[0]} to {large[1]}x{large[0]} WxH"


def _counted_at(result, tm) -> dict:
    """evaluate --json's "counted_at": the images' own pixels, their sizes, and how the model saw them."""
    sizes = result.sizes
    one = sizes[0] if sizes and len(set(sizes)) == 1 else None
    size = lambda s: {"height": s[0], "width": s[1]} if s else None  # noqa: E731
    return {"resolution": "native", "pixels": result.pixels,
            "height": one[0] if one else None, "width": one[1] if one else None,
            "smallest": size(min(sizes, key=lambda s: (s[0] * s[1], s)) if sizes else None),
            "largest": size(max(sizes, key=lambda s: (s[0] * s[1], s)) if sizes else None),
            "model_input": ({"patch_size": tm.cfg.patch_size, "overlap": tm.cfg.overlap} if tm.native
                            else {"image_size": tm.cfg.image_size, "letterboxed": True})}


def _num(v: float | None) -> str:
    return "—" if v is None else f"{v:.4f}"


def _px(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f} px"


def _class_table(result) -> None:
    """evaluate's per-class table: Dice, IoU, HD95, NSD and pixel counts of each foreground class (TP, FP and FN
    are in --json)."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False, title=None)
    for col in ("class", "value", "Dice", "IoU", "HD95 px", "NSD", "truth px", "predicted px"):
        table.add_column(col, justify="left" if col == "class" else "right", no_wrap=True)
    b = result.boundary
    hd = lambda v: "—" if v is None else f"{v:.2f}"  # noqa: E731
    for c in result.classes:
        table.add_row(c.name, str(c.value), _num(c.dice), _num(c.iou), hd(b.get(f"hd95_{c.name}")),
                      _num(b.get(f"nsd_{c.name}")), f"{c.truth_pixels:.0f}", f"{c.predicted_pixels:.0f}")
    table.add_row("mean", "", _num(result.dice), _num(result.iou), hd(b.get("hd95")), _num(b.get("nsd")), "", "",
                  style="bold")
    table.add_row("worst", "", _num(result.dice_min), "", hd(b.get("hd95_max")), _num(b.get("nsd_min")), "", "")
    from rich.console import Console

    console = Console()
    console.print(table)
    if any(c.dice is None for c in result.classes):
        missing = ", ".join(c.name for c in result.classes if c.dice is None)
        console.print(f"— {missing}: in no image, truth or prediction, so no score; the mean is over the classes "
                      "that have one")


@app.command()
def cv(
    configuration: str = typer.Argument(..., metavar="CONFIGURATION", help="A configuration trained with folds = k: its id or any fold's (see `unettui ls`)."),
    device: str = typer.Option("auto", "--device", help="Where the ensemble scores the test images: auto, cpu, cuda, cuda:N, mps."),
    again: bool = typer.Option(False, "--again", help="Compute it again even when the file is up to date."),
    as_json: bool = typer.Option(False, "--json", help="Print the configuration's file (every repeat, per-image out-of-fold scores) as JSON."),
    project: Path = ProjectOpt,
) -> None:
    """A cross-validated configuration's results: the pooled out-of-fold Dice (every non-test image predicted once, by the fold that did not train on it), the mean over folds, and the held-out test Dice of the ensemble of the folds beside the single folds' mean.

    The runner writes them to runs/.configurations/<configuration>.json when the last fold of a repeat ends; this command reads that file, or computes it (again) when it is missing or a fold was trained again since.

    Example: unettui cv seed-loss-dice --json
    """
    from ..core.define.experiment import folds_of
    from ..core.learn.cv import cross_validate, cv_line, stale

    queue, store = queue_and_store(project)
    exp = queue.get(configuration) if queue else None
    conf = exp.configuration if exp is not None and exp.fold else configuration
    folds = {r: [e.id for e in es] for r, es in folds_of(queue.experiments if queue else [], conf).items()}
    if not folds:
        fail(f"{configuration} is not a cross-validated configuration in experiments.toml (set folds = k on it); "
             "`unettui ls` lists the runs")
    data = store.configuration(conf)
    if again or data is None or stale(data, store) or len(data["repeats"]) < len(folds):
        try:
            data = cross_validate(project, conf, folds, device, again=again) or data
        except (RuntimeError, ValueError, OSError) as exc:
            fail(f"{conf}: {' '.join(str(exc).split())}")
    if data is None:
        waiting = [f"{i} ({(store.run(i).status() or {}).get('state', 'not started')})" for ids in folds.values()
                   for i in ids if (store.run(i).status() or {}).get("state") != "done"]
        fail(f"{conf}: no repeat has all its folds done yet: {', '.join(waiting[:6])}; `unettui run` trains them")
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    for rep in data["repeats"]:
        typer.echo(cv_line(data, rep["repeat"]))
