"""A trained run applied to images: its best (or last) weights loaded, images prepared as training prepared them,
masks predicted at each input's own size (`unettui predict`), and Dice/IoU on labelled images (`unettui evaluate`)."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..define.config import Config, ConfigError, build_config
from ..runs.store import BEST_WEIGHTS, CHECKPOINT, Run, atomic_write_bytes
from .data import DatasetError, equalize_histogram
from .dataset_id import IMAGE_EXTENSIONS, volume_suffix
from .folders import fit_channels, image_to_float, read_image_file, refuse_volumes, resize_image
from .model import UNet
from .task import Task, task_of
from .train import resolve_amp, resolve_device


class PredictError(ValueError):
    """Nothing can be predicted: one line naming the run, file or folder and what to do."""


@dataclass
class TrainedModel:
    """A run's model in eval mode on its device, and what preparing an image for it needs."""

    run_id: str
    model: UNet
    cfg: Config
    in_channels: int
    epoch: int
    weights: str  # "best.pt (epoch 7)" / "checkpoint.pt (last epoch, 12)"
    device: torch.device
    amp_dtype: torch.dtype | None
    task: Task

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)


def _load(path: Path, run: Run) -> dict:
    try:
        with open(path, "rb") as fh:
            return torch.load(io.BytesIO(fh.read()), map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - torn, foreign, or from a newer torch
        raise PredictError(f"runs/{run.id}/{path.name} cannot be read ({type(exc).__name__}); retrain the run "
                           f"(`unettui retry {run.id}`)") from None


def _train_hint(run: Run) -> str:
    """The command that trains ``run`` from where it is: `retry` for a failed run (`run --only` skips it), else
    `run --only`."""
    state = (run.status() or {}).get("state")
    if state == "failed":
        error = " ".join(str((run.status() or {}).get("error") or "").split())
        why = f" ({error[:120]})" if error else ""
        return (f"it failed{why}; train it again with `unettui retry {run.id}`, then `unettui run --headless "
                f"--only {run.id}`")
    return f"train it with `unettui run --headless --only {run.id}`"


def load_model(run: Run, last: bool = False, device: str = "auto") -> TrainedModel:
    """The run's best epoch's model (best.pt), or with ``last`` its last epoch's (the checkpoint's model)."""
    if not run.exists():
        raise PredictError(f"{run.id} has not been trained yet (no runs/{run.id}/): train it with "
                           f"`unettui run --headless --only {run.id}`")
    path = run.file(CHECKPOINT if last else BEST_WEIGHTS)
    if not path.exists():
        if not last and run.file(CHECKPOINT).exists():
            raise PredictError(f"runs/{run.id} has no best.pt (it was trained before unettui kept the best epoch's "
                               f"weights); use --last for its last epoch, or `unettui retry {run.id}` and train it again")
        raise PredictError(f"runs/{run.id} has no weights yet ({path.name}): it has not finished an epoch; "
                           + _train_hint(run))
    blob = _load(path, run)
    try:
        cfg = build_config({k: v for k, v in blob["config"].items() if k not in ("device",)}, f"runs/{run.id}/{path.name}")
    except (ConfigError, KeyError, AttributeError, TypeError) as exc:
        raise PredictError(f"runs/{run.id}/{path.name} holds no usable config ({exc}); retrain the run") from None
    state = blob["model"]
    in_channels = int(blob.get("in_channels") or state["encoders.0.0.weight"].shape[1])
    dev = resolve_device(device)
    task = task_of(cfg)
    model = UNet(in_channels, task.out_channels, cfg.base_channels, cfg.depth, cfg.dropout)
    model.load_state_dict(state)
    model.to(dev).eval()
    epoch = int(blob.get("epoch") or 0)
    weights = f"checkpoint.pt (last epoch, {epoch})" if last else f"best.pt (epoch {epoch})"
    amp = resolve_amp(cfg.amp, dev) if dev.type == "cuda" else None
    return TrainedModel(run.id, model, cfg, in_channels, epoch, weights, dev, amp, task)


def image_files(target: Path) -> list[Path]:
    """The image files of a folder (sorted; hidden files and other extensions skipped, a 3-D volume refused), or the
    one file named."""
    target = Path(target)
    if target.is_file():
        if volume_suffix(target) or target.suffix.lower() not in IMAGE_EXTENSIONS:
            try:
                read_image_file(target)  # the 2-D sentence for a volume
            except DatasetError as exc:
                if volume_suffix(target):
                    raise PredictError(str(exc)) from None
            raise PredictError(f"{target} is not an image file unettui reads ({', '.join(IMAGE_EXTENSIONS)})")
        return [target]
    if not target.is_dir():
        raise PredictError(f"{target} does not exist: give an image file or a folder of images")
    try:
        refuse_volumes(target)
    except DatasetError as exc:
        raise PredictError(str(exc)) from None
    files = sorted(p for p in target.iterdir() if p.is_file() and not p.name.startswith(".")
                   and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise PredictError(f"no image files in {target} ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def prepare(image: np.ndarray, path: Path, tm: TrainedModel) -> tuple[torch.Tensor, tuple[int, int], int]:
    """An image file's pixels (``[H, W, C]``, as read_image_file gives them) as the model's input: [1, C, S, S] at its
    image_size — the image padded to a square (edge pixels repeated; training centre-cropped its squares, so the
    aspect ratio is kept) and resized as training resized, histogram-equalised when the run was. Its channels must be
    the run's (a constant alpha is dropped and grey replicated for an RGB run, as training did); anything else is a
    PredictError naming the file. Returns it, the original (height, width) and the square's side."""
    try:
        hwc = fit_channels(image, path, tm.in_channels, f"run {tm.run_id} was trained")
        chw = torch.from_numpy(image_to_float(hwc, path))
    except DatasetError as exc:
        raise PredictError(str(exc)) from None
    _, h, w = chw.shape
    side = max(h, w)
    if (h, w) != (side, side):
        chw = F.pad(chw[None], (0, side - w, 0, side - h), mode="replicate")[0]
    x = resize_image(chw, tm.cfg.image_size)[None]
    if tm.cfg.augment_histeq:
        x = equalize_histogram(x)
    return x, (h, w), side


@torch.no_grad()
def probabilities(tm: TrainedModel, x: torch.Tensor, size: tuple[int, int], side: int) -> np.ndarray:
    """The probability of every pixel of the original image: binary [H, W] (the foreground's), multi-class
    [K, H, W] (each class's; they sum to 1), float32 in [0, 1]."""
    x = x.to(tm.device)
    if tm.device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    with tm.autocast():
        logits = tm.model(x).float()
    prob = tm.task.probabilities(logits)
    if side != tm.cfg.image_size:
        prob = F.interpolate(prob, size=(side, side), mode="bilinear", align_corners=False)
    h, w = size
    prob = prob[0, :, :h, :w].clamp(0, 1).cpu().numpy()
    return prob[0] if tm.task.binary else prob


def pages_hint(tm: TrainedModel) -> str:
    """What to do with a multi-page TIFF that a run refuses (its tiff_pages is fixed by its training)."""
    return (f"run {tm.run_id} was trained with tiff_pages = \"{tm.cfg.tiff_pages}\", so it reads one page per file; "
            "save one page per file (or train a run with tiff_pages = \"channels\" or \"first\")")


@dataclass
class Planned:
    """What predict writes for one input: its mask and, with probabilities, its probability map(s) (binary: one,
    ``<stem>_prob.png``; multi-class: one per class, ``<stem>_prob_<class>.png``)."""

    source: Path
    mask: Path
    probs: list[Path]

    @property
    def prob(self) -> Path | None:
        return self.probs[0] if self.probs else None


def plan_outputs(files: list[Path], out_dir: Path, with_probabilities: bool = False,
                 overwrite: bool = False, class_names: tuple[str, ...] | None = None) -> list[Planned]:
    """Every file predict will write, checked before anything is written: two inputs never write one file (``x.png``
    and ``x.tif``; ``x_prob.png`` as an input beside ``x``'s probability map), no output replaces an input (even with
    ``overwrite``), and without ``overwrite`` the output folder is not an input's folder and holds none of the files.
    A PredictError names the file and what to do. ``class_names``: a multi-class run's classes (one probability
    map per class)."""
    out_dir = Path(out_dir)
    plans: list[Planned] = []
    writer: dict[str, Path] = {}  # output file name -> the input that writes it
    for f in files:
        probs = []
        if with_probabilities:
            probs = ([out_dir / f"{f.stem}_prob_{c}.png" for c in class_names] if class_names
                     else [out_dir / f"{f.stem}_prob.png"])
        plan = Planned(f, out_dir / f"{f.stem}.png", probs)
        for target in (plan.mask, *plan.probs):
            other = writer.get(target.name)
            if other is not None:
                raise PredictError(f"inputs {other} and {f} would both be written to {target}: rename one of them")
            writer[target.name] = f
        plans.append(plan)
    inputs = {_real(f) for f in files}
    for plan in plans:
        for target in (plan.mask, *plan.probs):
            if _real(target) in inputs:
                raise PredictError(f"{target} is one of the inputs: its mask would be written over it; choose "
                                   "another OUTPUT folder")
    if overwrite:
        return plans
    here = _real(out_dir)
    if any(_real(f.parent) == here for f in files):
        raise PredictError(f"OUTPUT {out_dir} is the folder of the input images: masks written there mix with them "
                           "(and are read as inputs next time); choose another folder, or --overwrite to write there "
                           "anyway")
    targets = [t for p in plans for t in (p.mask, *p.probs)]
    existing = [t for t in targets if t.exists() or t.is_symlink()]
    if existing:
        more = f" (and {len(existing) - 1} more of the {len(targets)} files predict would write)" if len(existing) > 1 else ""
        raise PredictError(f"{existing[0]} exists{more}: predict never replaces a file; choose an empty OUTPUT folder, "
                           "or --overwrite to replace them")
    return plans


def _real(path: Path) -> Path:
    try:
        return Path(path).resolve()
    except OSError:
        return Path(os.path.abspath(path))


def _png(a: np.ndarray) -> bytes:
    import imageio.v3 as iio

    return iio.imwrite("<bytes>", a, extension=".png")


def label_map(tm: TrainedModel, prob: np.ndarray) -> np.ndarray:
    """The mask predict writes from ``probabilities``: binary uint8 255 where the probability > 0.5, else 0; multi-class
    each pixel's most probable class as its value in the run's masks (``mask_values``), uint8 (uint16 when a value
    is above 255)."""
    if tm.task.binary:
        return (prob > 0.5).astype(np.uint8) * 255
    values = np.asarray(tm.task.classes.values or range(tm.task.k))
    dtype = np.uint8 if values.max() <= 255 else np.uint16
    return values.astype(dtype)[prob.argmax(axis=0)]


def predict(tm: TrainedModel, files: list[Path], out_dir: Path, with_probabilities: bool = False,
            on_file: Callable[[int, int, Path], None] | None = None, overwrite: bool = False) -> list[dict]:
    """Write ``<stem>.png`` (the mask at the input's size: binary 255 foreground where the probability > 0.5, else 0;
    multi-class the label map, each pixel its class's value in the run's masks) for each file into ``out_dir`` (with
    ``with_probabilities`` also the probability as 0-255: ``<stem>_prob.png``, or per class ``<stem>_prob_<class>.png``),
    each file replaced atomically. Everything it will write is checked first (``plan_outputs``: nothing is replaced
    without ``overwrite``, an input never). Returns one record per input: its files and pixel counts (multi-class: per
    class). An unreadable input is a PredictError naming it; files before it are kept."""
    out_dir = Path(out_dir)
    names = None if tm.task.binary else tm.task.classes.names
    plans = plan_outputs(files, out_dir, with_probabilities, overwrite, names)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for i, plan in enumerate(plans, 1):
        try:
            image = read_image_file(plan.source, tm.cfg.tiff_pages, pages_hint=pages_hint(tm))
        except DatasetError as exc:
            raise PredictError(str(exc)) from None
        x, size, side = prepare(image, plan.source, tm)
        prob = probabilities(tm, x, size, side)
        mask = label_map(tm, prob)
        atomic_write_bytes(plan.mask, _png(mask))
        maps = [prob] if tm.task.binary else list(prob)
        for path, p in zip(plan.probs, maps):
            atomic_write_bytes(path, _png(np.round(p * 255).astype(np.uint8)))
        record = {"input": str(plan.source), "mask": str(plan.mask),
                  "probabilities": str(plan.prob) if plan.prob is not None else None,
                  "height": size[0], "width": size[1]}
        if tm.task.binary:
            record["foreground_pixels"] = int((mask > 0).sum())
        else:
            record["probabilities"] = [str(p) for p in plan.probs] or None
            classes = prob.argmax(axis=0)
            record["class_pixels"] = {n: int((classes == c).sum()) for c, n in enumerate(tm.task.classes.names)}
            record["foreground_pixels"] = int((classes > 0).sum())
        written.append(record)
        if on_file is not None:
            on_file(i, len(plans), plan.source)
    return written


@dataclass
class ClassScore:
    """One foreground class's Dice and IoU (None: the class is in no image, truth or prediction) and pixels."""

    name: str
    value: int
    dice: float | None
    iou: float | None
    tp: float
    fp: float
    fn: float

    @property
    def truth_pixels(self) -> float:
        return self.tp + self.fn

    @property
    def predicted_pixels(self) -> float:
        return self.tp + self.fp

    def as_dict(self) -> dict:
        return {"class": self.name, "value": self.value, "dice": self.dice, "iou": self.iou, "tp": self.tp,
                "fp": self.fp, "fn": self.fn, "truth_pixels": self.truth_pixels,
                "predicted_pixels": self.predicted_pixels}


@dataclass
class Scores:
    """Dice and IoU from true/false positives summed over every image (as everywhere in unettui), and the counts.
    Multi-class: ``dice``/``iou`` are the means over the foreground classes with a score, ``classes`` each one's,
    ``dice_min`` the worst; tp, fp and fn are summed over the foreground classes."""

    dice: float | None
    iou: float | None
    images: int
    tp: float
    fp: float
    fn: float
    side: int = 0  # the side of the square images the pixels were counted on (the run's image_size)
    classes: list[ClassScore] = field(default_factory=list)
    dice_min: float | None = None
    # HD95 and NSD (core.learn.boundary), as a run's summary records them without its val_/test_ prefix
    boundary: dict = field(default_factory=dict)
    nsd_tolerance: float = 2.0

    @property
    def tn(self) -> float:
        return float(self.images * self.side * self.side) - self.tp - self.fp - self.fn


def _batches(x: torch.Tensor, y: torch.Tensor, size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for start in range(0, len(x), size):
        yield x[start:start + size], y[start:start + size]


@torch.no_grad()
def score(tm: TrainedModel, images: torch.Tensor, masks: torch.Tensor,
          on_batch: Callable[[int, int], None] | None = None) -> Scores:
    """Hard Dice and IoU (binary: threshold 0.5; multi-class: each pixel's most probable class) of the model on
    prepared ``images`` [N, C, S, S] and ``masks``, in batches of the run's batch size (as its validation was
    computed), through the run's Task: the numbers its training recorded; and HD95 and NSD per image, then
    aggregated (core.learn.boundary), as the run's end-of-run metrics."""
    from .boundary import BoundaryAccumulator, run_keys

    task = tm.task
    counts = torch.zeros(task.k - 1, 3, dtype=torch.float64, device=tm.device)
    tolerance = tm.cfg.nsd_tolerance
    surfaces = BoundaryAccumulator(task.classes.foreground, tolerance)
    done = 0
    for x, y in _batches(images, masks, tm.cfg.batch_size):
        x, y = x.to(tm.device), y.to(tm.device)
        if tm.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with tm.autocast():
            logits = tm.model(x)
        counts += task.counts(logits, y)
        surfaces.add(y[:, 0].round().long().cpu().numpy(), task.decode(logits)[:, 0].cpu().numpy())
        done += len(x)
        if on_batch is not None:
            on_batch(done, len(images))
    rows = counts.tolist()
    scored = task.scores(0.0, rows)
    tp, fp, fn = (sum(r[i] for r in rows) for i in range(3))
    side = int(images.shape[-1]) if len(images) else 0
    boundary = run_keys(surfaces.result(), task.classes.foreground, task.binary)
    if task.binary:
        return Scores(scored.dice, scored.iou, len(images), tp, fp, fn, side, dice_min=scored.dice,
                      boundary=boundary, nsd_tolerance=tolerance)
    values = task.classes.values or tuple(range(task.k))
    classes = [ClassScore(name, int(values[c + 1]), scored.classes[f"dice_{name}"], scored.classes[f"iou_{name}"],
                          *rows[c]) for c, name in enumerate(task.classes.foreground)]
    return Scores(scored.dice, scored.iou, len(images), tp, fp, fn, side, classes, scored.classes["dice_min"],
                  boundary, tolerance)


def labelled_folder(tm: TrainedModel, folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """A folder of images/ and masks/ prepared exactly as training prepares a folder dataset."""
    from .dataset_id import image_files as files_by_stem
    from .folders import load_folder

    classes = {"classes": tm.task.classes}
    data = load_folder(Path(folder), tm.cfg.image_size, tm.cfg.tiff_pages, pages_hint(tm), **classes)
    images = data.images
    if data.channels != tm.in_channels:
        if data.channels == 1 and tm.in_channels == 3:
            images = images.expand(-1, 3, -1, -1)
        else:
            first = files_by_stem(Path(folder) / "images")[data.names[0]][0]  # (the folder's images all agree)
            others = f" (as do the other {len(data) - 1} images there)" if len(data) > 1 else ""
            raise PredictError(f"{first} has {data.channels} channel{'s' if data.channels != 1 else ''}{others} but "
                               f"run {tm.run_id} was trained on {tm.in_channels}-channel images; convert them first")
    if tm.cfg.augment_histeq:
        images = equalize_histogram(images)
    return images, data.masks


def run_split(tm: TrainedModel, project: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The run's own images of ``split`` (val, test, train or all), rebuilt from its dataset and split exactly as it
    trained (so evaluating best.pt on "val" gives its best val Dice)."""
    from .data import split_with_test
    from .datasets import load_dataset

    cfg = tm.cfg
    classes = {"classes": tm.task.classes}
    data = load_dataset(cfg.dataset, cfg.image_size, cfg.num_images, cfg.data_seed, base_dir=project,
                        tiff_pages=cfg.tiff_pages, **classes)
    images = equalize_histogram(data.images) if cfg.augment_histeq else data.images
    train, val, test, _ = split_with_test(len(images), cfg.train_fraction, cfg.data_seed, cfg.test_fraction)
    idx = {"val": val, "test": test, "train": train, "all": torch.arange(len(images))}[split]
    if len(idx) == 0:
        raise PredictError(f"run {tm.run_id} has no {split} images (test_fraction {cfg.test_fraction:g})")
    return images[idx], data.masks[idx]
