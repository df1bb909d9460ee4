"""A trained run applied to images: its best (or last) weights loaded, images prepared as training prepared them,
masks predicted at each input's own size (`unettui predict`), and Dice/IoU on labelled images (`unettui evaluate`).

Either way the result covers every pixel of the user's image, at its own resolution, whatever its aspect ratio, in the
run's mode (issue 25): a native run (patch_size > 0) predicts the image as it is by sliding window, as its validation
did; a resize run letterboxes it to image_size as its training did (long side scaled, short side padded: nothing
cropped or stretched) and resizes the image's region of the output back to the image's own size. Metrics are counted
on the user's pixels, so for a resize run on images that are not image_size square they differ from the numbers its
training recorded (counted at image_size)."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..define.config import Config, ConfigError, build_config
from ..runs.store import BEST_WEIGHTS, CHECKPOINT, Run, atomic_write_bytes
from .data import DatasetError, equalize_histogram
from .dataset_id import IMAGE_EXTENSIONS, volume_suffix
from .folders import fit_channels, image_to_float, read_image_file, refuse_volumes
from .model import UNet
from .native_run import window_logits
from .resize import letterbox_shape, pad_square, resize_image
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
    # a cross-validated configuration's folds predicting as one (``ensemble``): each image's probabilities are the
    # mean of theirs; empty for a single run
    folds: list[TrainedModel] = field(default_factory=list)

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    @property
    def native(self) -> bool:
        """Whether the run trained at native resolution (patch_size > 0: patches, sliding-window prediction) rather
        than on whole images resized to image_size."""
        return bool(self.cfg.patch_size)

    @property
    def mode(self) -> str:
        """How the model sees an image, in words: "as PxP patches by sliding window" or "resized to SxS
        (letterboxed)"."""
        if self.native:
            return f"as {self.cfg.patch_size}x{self.cfg.patch_size} patches by sliding window"
        return f"resized to {self.cfg.image_size}x{self.cfg.image_size} (letterboxed)"


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


def prepare(image: np.ndarray, path: Path, tm: TrainedModel) -> torch.Tensor:
    """An image file's pixels (``[H, W, C]``, as read_image_file gives them) as training read them: float32
    ``[C, H, W]`` in [0, 1] at the image's own size (8-bit / 255, 16-bit and float min-max per image). Its channels
    must be the run's (a constant alpha is dropped and grey replicated for an RGB run, as training did); anything
    else is a PredictError naming the file. Nothing is resized, padded or equalised here: that is the mode's
    (``image_logits``)."""
    try:
        hwc = fit_channels(image, path, tm.in_channels, f"run {tm.run_id} was trained")
        return torch.from_numpy(image_to_float(hwc, path))
    except DatasetError as exc:
        raise PredictError(str(exc)) from None


def letterbox(chw: torch.Tensor, size: int) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """``chw`` [C, H, W] as a resize-mode run's training saw it: scaled so its long side is ``size``
    (resize.letterbox_shape, bilinear, antialiased when shrinking) and its short side padded with 0.0, split evenly
    (resize.pad_square), so nothing is cropped or stretched. Returns the [C, size, size] square and the image's
    region in it, (top, left, height, width)."""
    h, w = int(chw.shape[-2]), int(chw.shape[-1])
    sh, sw = letterbox_shape(h, w, size)
    square = pad_square(resize_image(chw, (sh, sw)), size, 0.0)
    return square, ((size - sh) // 2, (size - sw) // 2, sh, sw)


def _equalized(tm: TrainedModel, x: torch.Tensor) -> torch.Tensor:
    """``x`` [N, C, H, W] histogram-equalised per image when the run trained on equalised images, else ``x``."""
    return equalize_histogram(x) if tm.cfg.augment_histeq else x


@torch.no_grad()
def _native_logits(tm: TrainedModel, chw: torch.Tensor) -> torch.Tensor:
    """A native run's logits [K, H, W] (float32) of one whole image [C, H, W] at its own size: equalised as the run
    was, then by sliding window (native_run.window_logits) with the run's patch_size, overlap and batch_size on its
    device, exactly as its validation predicted. On the device when the output is small, else on the CPU; memory is
    bounded by the patch and the batch plus the K x H x W output, whatever the image's size."""
    x = _equalized(tm, chw[None])[0]
    return window_logits(tm.model, x, tm.cfg.patch_size, tm.cfg.overlap, tm.cfg.batch_size, tm.device,
                         tm.autocast, channels_last=tm.device.type == "cuda", out_channels=tm.task.out_channels)


def _resized_logits(tm: TrainedModel, images: Sequence[torch.Tensor]) -> Iterator[torch.Tensor]:
    """A resize-mode run's logits [K, H_i, W_i] of each image [C, H_i, W_i], in order: the images letterboxed to the
    run's image_size (``letterbox``), equalised as the run was, predicted ``batch_size`` at a time (the batches its
    validation used), and each image's region of the output resized back to its own H x W (bilinear, from the region
    alone: the padding's output never leaks in). An image already image_size square gives the model's logits as they
    are (autocast's dtype; no resampling), so its counts are the ones training recorded."""
    size, bs = tm.cfg.image_size, tm.cfg.batch_size
    for start in range(0, len(images), bs):
        chunk = images[start:start + bs]
        boxed = [letterbox(im, size) for im in chunk]
        x = _equalized(tm, torch.stack([b[0] for b in boxed])).to(tm.device)
        if tm.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), tm.autocast():
            out = tm.model(x)
        for im, (_, (top, left, sh, sw)), lg in zip(chunk, boxed, out):
            h, w = int(im.shape[-2]), int(im.shape[-1])
            lg = lg[:, top:top + sh, left:left + sw]
            if (sh, sw) != (h, w):
                lg = F.interpolate(lg[None].float(), size=(h, w), mode="bilinear", align_corners=False)[0]
            yield lg


def ensemble(models: list[TrainedModel], configuration: str) -> TrainedModel:
    """The folds of a cross-validated configuration (their TrainedModels, fold 1 first) as one model: ``image_logits``
    averages the folds' probabilities (sigmoid / softmax of each fold's logits, each fold predicting in its run's
    mode) and gives them back as logits whose probabilities are that mean (binary: the log-odds, K classes: the log
    of each class's mean probability), so a pixel is foreground where the mean probability is above 0.5 (K classes:
    the class of the highest mean probability). Its ``weights`` say "ensemble of k folds"."""
    first = models[0]
    kind = "checkpoint.pt" if first.weights.startswith("checkpoint") else "best.pt"
    return TrainedModel(configuration, first.model, first.cfg, first.in_channels, first.epoch,
                        f"ensemble of {len(models)} folds ({kind} of {', '.join(m.run_id for m in models)})",
                        first.device, first.amp_dtype, first.task, list(models))


def _mean_of_folds(tm: TrainedModel, chw: torch.Tensor) -> torch.Tensor:
    """An ensemble's logits of one image: the mean of its folds' probabilities, as logits (see ``ensemble``)."""
    mean = None
    for m in tm.folds:
        p = tm.task.probabilities(image_logits(m, chw)[None])[0].double()
        mean = p if mean is None else mean + p
    mean = (mean / len(tm.folds)).clamp(1e-12, 1 - 1e-12)
    return (torch.logit(mean) if tm.task.binary else mean.log()).float()


@torch.no_grad()
def image_logits(tm: TrainedModel, chw: torch.Tensor) -> torch.Tensor:
    """The logits [K, H, W] of one image [C, H, W] (``prepare``'s) at its own H x W, as the run's mode predicts:
    native (patch_size > 0) by sliding window at the image's own resolution; resize mode letterboxed to image_size
    and the image's region resized back (see ``_resized_logits``). Whatever the aspect ratio, every pixel of the
    image gets a logit: nothing is cropped or stretched. An ensemble of folds: the mean of their probabilities."""
    if tm.folds:
        return _mean_of_folds(tm, chw)
    if tm.native:
        return _native_logits(tm, chw)
    return next(_resized_logits(tm, [chw]))


@torch.no_grad()
def probabilities(tm: TrainedModel, logits: torch.Tensor) -> np.ndarray:
    """Every pixel's probability from ``image_logits``: binary [H, W] (the foreground's), multi-class [K, H, W]
    (each class's; they sum to 1), float32 in [0, 1]. Resize mode resamples logits, not probabilities (as nnU-Net
    does), so a pixel's class (``label_map``) and the counts of ``score`` follow one rule: logit > 0 / argmax."""
    prob = tm.task.probabilities(logits[None])[0].clamp_(0, 1).cpu().numpy()
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


def label_map(tm: TrainedModel, logits: torch.Tensor) -> np.ndarray:
    """The mask predict writes from ``image_logits``: binary uint8 255 where the logit > 0 (the probability > 0.5),
    else 0; multi-class each pixel's most probable class (argmax, ties to the lower class) as its value in the run's
    masks (``mask_values``), uint8 (uint16 when a value is above 255). The rule training's counts use."""
    if tm.task.binary:
        return (logits[0] > 0).cpu().numpy().astype(np.uint8) * np.uint8(255)
    values = np.asarray(tm.task.classes.values or range(tm.task.k))
    dtype = np.uint8 if values.max() <= 255 else np.uint16
    return values.astype(dtype)[tm.task.decode(logits)[0].cpu().numpy()]


def predict(tm: TrainedModel, files: list[Path], out_dir: Path, with_probabilities: bool = False,
            on_file: Callable[[int, int, Path], None] | None = None, overwrite: bool = False) -> list[dict]:
    """Write ``<stem>.png`` (the mask at the input's own size, predicted as the run's mode predicts, ``image_logits``:
    binary 255 foreground where the probability > 0.5, else 0; multi-class the label map, each pixel its class's value
    in the run's masks, ``label_map``) for each file into ``out_dir`` (with
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
        chw = prepare(image, plan.source, tm)
        del image
        logits = image_logits(tm, chw)
        size = (int(chw.shape[-2]), int(chw.shape[-1]))
        del chw
        mask = label_map(tm, logits)
        prob = probabilities(tm, logits) if plan.probs else None
        del logits
        atomic_write_bytes(plan.mask, _png(mask))
        maps = [] if prob is None else [prob] if tm.task.binary else list(prob)
        for path, p in zip(plan.probs, maps):
            atomic_write_bytes(path, _png(np.round(p * 255).astype(np.uint8)))
        del prob, maps
        record = {"input": str(plan.source), "mask": str(plan.mask),
                  "probabilities": str(plan.prob) if plan.prob is not None else None,
                  "height": size[0], "width": size[1]}
        if tm.task.binary:
            record["foreground_pixels"] = int((mask > 0).sum())
        else:
            record["probabilities"] = [str(p) for p in plan.probs] or None
            values = np.asarray(tm.task.classes.values or range(tm.task.k))
            record["class_pixels"] = {n: int((mask == values[c]).sum()) for c, n in enumerate(tm.task.classes.names)}
            record["foreground_pixels"] = int((mask != values[0]).sum())
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
    """Dice and IoU from true/false positives summed over every pixel of every image (as everywhere in unettui), and
    the counts, all on the images' own pixels (``score``). Multi-class: ``dice``/``iou`` are the means over the
    foreground classes with a score, ``classes`` each one's, ``dice_min`` the worst; tp, fp and fn are summed over the
    foreground classes."""

    dice: float | None
    iou: float | None
    images: int
    tp: float
    fp: float
    fn: float
    pixels: int = 0  # the pixels counted: every labelled pixel of every image, at its own size
    classes: list[ClassScore] = field(default_factory=list)
    dice_min: float | None = None
    # HD95 and NSD (core.learn.boundary), as a run's summary records them without its val_/test_ prefix
    boundary: dict = field(default_factory=dict)
    nsd_tolerance: float = 2.0
    sizes: list[tuple[int, int]] = field(default_factory=list)  # (height, width) of each image counted

    @property
    def tn(self) -> float:
        """The pixels counted in none of tp, fp and fn (binary: the true negatives)."""
        return float(self.pixels) - self.tp - self.fp - self.fn


def _as_list(images) -> list[torch.Tensor]:
    """Images (or masks) as a list of [C, H, W] tensors: a list as it is, a stacked [N, C, H, W] tensor split."""
    return list(images.unbind(0)) if isinstance(images, torch.Tensor) else list(images)


@torch.no_grad()
def score(tm: TrainedModel, images: Sequence[torch.Tensor] | torch.Tensor, masks: Sequence[torch.Tensor] | torch.Tensor,
          on_batch: Callable[[int, int], None] | None = None) -> Scores:
    """Hard Dice and IoU (binary: logit > 0, probability > 0.5; multi-class: each pixel's most probable class) of the
    model on ``images`` ([C, H_i, W_i] each, as ``prepare`` / ``labelled_folder`` / ``run_split`` give them: at their
    own size, not equalised) against ``masks`` ([1, H_i, W_i] class indices at the same size), counted through the
    run's Task on every pixel of every image, each counted once (a mask pixel < 0, ignored, is counted nowhere); and
    HD95 and NSD per image on the same pixels, then aggregated (core.learn.boundary), as the run's end-of-run metrics.

    Each image is predicted as ``predict`` predicts it (``image_logits``): a native run by sliding window, exactly as
    its validation did, so on its own val split the Dice is its recorded one; a resize run letterboxed in batches of
    its batch size (as its validation batched) with the region resized back, so on images that are image_size square
    it gives the numbers its training recorded, and on others the numbers on the user's pixels. ``on_batch(done,
    total)`` after each batch (native: each image)."""
    from .boundary import BoundaryAccumulator, run_keys

    images, masks = _as_list(images), _as_list(masks)
    task = tm.task
    counts = torch.zeros(task.k - 1, 3, dtype=torch.float64, device=tm.device)
    tolerance = tm.cfg.nsd_tolerance
    surfaces = BoundaryAccumulator(task.classes.foreground, tolerance)
    logits_of = ((image_logits(tm, im) for im in images) if tm.folds else
                 (_native_logits(tm, im) for im in images) if tm.native else _resized_logits(tm, images))
    pixels, sizes = 0, []
    step = 1 if tm.native else tm.cfg.batch_size
    for done, (lg, y) in enumerate(zip(logits_of, masks), 1):
        if tuple(y.shape[-2:]) != tuple(lg.shape[-2:]):
            raise PredictError(f"image {done} is {lg.shape[-1]}x{lg.shape[-2]} (WxH) but its mask is "
                               f"{y.shape[-1]}x{y.shape[-2]}; they must have the same size")
        y = y.reshape(1, 1, *y.shape[-2:]).to(lg.device)
        counts += task.counts(lg[None], y).to(tm.device, torch.float64)
        surfaces.add(y[0, 0].round().long().cpu().numpy(), task.decode(lg)[0].cpu().numpy())
        pixels += int((y >= 0).sum())
        sizes.append((int(y.shape[-2]), int(y.shape[-1])))
        if on_batch is not None and (done % step == 0 or done == len(images)):
            on_batch(done, len(images))
    rows = counts.tolist()
    scored = task.scores(0.0, rows)
    tp, fp, fn = (sum(r[i] for r in rows) for i in range(3))
    boundary = run_keys(surfaces.result(), task.classes.foreground, task.binary)
    n = len(sizes)
    if task.binary:
        return Scores(scored.dice, scored.iou, n, tp, fp, fn, pixels, dice_min=scored.dice, boundary=boundary,
                      nsd_tolerance=tolerance, sizes=sizes)
    values = task.classes.values or tuple(range(task.k))
    classes = [ClassScore(name, int(values[c + 1]), scored.classes[f"dice_{name}"], scored.classes[f"iou_{name}"],
                          *rows[c]) for c, name in enumerate(task.classes.foreground)]
    return Scores(scored.dice, scored.iou, n, tp, fp, fn, pixels, classes, scored.classes["dice_min"], boundary,
                  tolerance, sizes)


def labelled_folder(tm: TrainedModel, folder: Path) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """A folder of images/ and masks/ read as training reads a folder dataset (pairs by stem, the run's tiff_pages
    and classes, the same normalisation and refusals), but each pair at its own size (load_folder's native reading):
    images [C, H, W] with the run's channels (a grey folder replicated for an RGB run), masks [1, H, W] of class
    indices. ``score`` predicts them in the run's mode and counts on these pixels."""
    from .dataset_id import image_files as files_by_stem
    from .folders import load_folder

    data = load_folder(Path(folder), tm.cfg.image_size, tm.cfg.tiff_pages, pages_hint(tm), classes=tm.task.classes,
                       native=True)
    images = list(data.images)
    if data.channels != tm.in_channels:
        if data.channels == 1 and tm.in_channels == 3:
            images = [im.expand(3, -1, -1) for im in images]
        else:
            first = files_by_stem(Path(folder) / "images")[data.names[0]][0]  # (the folder's images all agree)
            others = f" (as do the other {len(data) - 1} images there)" if len(data) > 1 else ""
            raise PredictError(f"{first} has {data.channels} channel{'s' if data.channels != 1 else ''}{others} but "
                               f"run {tm.run_id} was trained on {tm.in_channels}-channel images; convert them first")
    return images, list(data.masks)


def run_split(tm: TrainedModel, project: Path, split: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The run's own images of ``split`` (val, test, train or all) at their own size, rebuilt from its dataset and
    split exactly as it trained (run_data.split_of: its fold, or its fractions, and data_seed): for a native run evaluating
    best.pt on "val" gives its best val Dice; for a resize run it does where its images are image_size square (the
    built-in synthetic data always are), else it gives the Dice on the images' own pixels."""
    from .datasets import load_dataset
    from .run_data import decoded_cache, split_of

    cfg = tm.cfg
    data = load_dataset(cfg.dataset, cfg.image_size, cfg.num_images, cfg.data_seed, base_dir=project,
                        tiff_pages=cfg.tiff_pages, classes=tm.task.classes, native=True,
                        cache_dir=decoded_cache(project))
    train, val, test, _ = split_of(cfg, len(data))
    idx = {"val": val, "test": test, "train": train, "all": torch.arange(len(data))}[split]
    if len(idx) == 0:
        raise PredictError(f"run {tm.run_id} has no {split} images (test_fraction {cfg.test_fraction:g})")
    picked = data.subset(idx)
    return list(picked.images), list(picked.masks)
