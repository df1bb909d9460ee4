"""A trained run applied to images: its best (or last) weights loaded, images prepared as training prepared them,
masks predicted at each input's own size (`unettui predict`), and Dice/IoU on labelled images (`unettui evaluate`)."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..define.config import Config, ConfigError, build_config
from ..runs.store import BEST_WEIGHTS, CHECKPOINT, Run, atomic_write_bytes
from .data import DatasetError, equalize_histogram
from .dataset_id import IMAGE_EXTENSIONS, volume_suffix
from .folders import fit_channels, image_to_float, read_image_file, refuse_volumes, resize_image
from .metrics import confusion_counts, dice_from_counts, iou_from_counts
from .model import UNet
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
    model = UNet(in_channels, 1, cfg.base_channels, cfg.depth, cfg.dropout)
    model.load_state_dict(state)
    model.to(dev).eval()
    epoch = int(blob.get("epoch") or 0)
    weights = f"checkpoint.pt (last epoch, {epoch})" if last else f"best.pt (epoch {epoch})"
    amp = resolve_amp(cfg.amp, dev) if dev.type == "cuda" else None
    return TrainedModel(run.id, model, cfg, in_channels, epoch, weights, dev, amp)


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
    """The foreground probability of every pixel of the original image ([H, W] float32 in [0, 1])."""
    x = x.to(tm.device)
    if tm.device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    with tm.autocast():
        logits = tm.model(x).float()
    prob = torch.sigmoid(logits)
    if side != tm.cfg.image_size:
        prob = F.interpolate(prob, size=(side, side), mode="bilinear", align_corners=False)
    h, w = size
    return prob[0, 0, :h, :w].clamp(0, 1).cpu().numpy()


def pages_hint(tm: TrainedModel) -> str:
    """What to do with a multi-page TIFF that a run refuses (its tiff_pages is fixed by its training)."""
    return (f"run {tm.run_id} was trained with tiff_pages = \"{tm.cfg.tiff_pages}\", so it reads one page per file; "
            "save one page per file (or train a run with tiff_pages = \"channels\" or \"first\")")


@dataclass
class Planned:
    """What predict writes for one input: its mask and, with probabilities, its probability map."""

    source: Path
    mask: Path
    prob: Path | None


def plan_outputs(files: list[Path], out_dir: Path, with_probabilities: bool = False,
                 overwrite: bool = False) -> list[Planned]:
    """Every file predict will write, checked before anything is written: two inputs never write one file (``x.png``
    and ``x.tif``; ``x_prob.png`` as an input beside ``x``'s probability map), no output replaces an input (even with
    ``overwrite``), and without ``overwrite`` the output folder is not an input's folder and holds none of the files.
    A PredictError names the file and what to do."""
    out_dir = Path(out_dir)
    plans: list[Planned] = []
    writer: dict[str, Path] = {}  # output file name -> the input that writes it
    for f in files:
        plan = Planned(f, out_dir / f"{f.stem}.png", out_dir / f"{f.stem}_prob.png" if with_probabilities else None)
        for target in (plan.mask, plan.prob):
            if target is None:
                continue
            other = writer.get(target.name)
            if other is not None:
                raise PredictError(f"inputs {other} and {f} would both be written to {target}: rename one of them")
            writer[target.name] = f
        plans.append(plan)
    inputs = {_real(f) for f in files}
    for plan in plans:
        for target in (plan.mask, plan.prob):
            if target is not None and _real(target) in inputs:
                raise PredictError(f"{target} is one of the inputs: its mask would be written over it; choose "
                                   "another OUTPUT folder")
    if overwrite:
        return plans
    here = _real(out_dir)
    if any(_real(f.parent) == here for f in files):
        raise PredictError(f"OUTPUT {out_dir} is the folder of the input images: masks written there mix with them "
                           "(and are read as inputs next time); choose another folder, or --overwrite to write there "
                           "anyway")
    targets = [t for p in plans for t in (p.mask, p.prob) if t is not None]
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


def predict(tm: TrainedModel, files: list[Path], out_dir: Path, with_probabilities: bool = False,
            on_file: Callable[[int, int, Path], None] | None = None, overwrite: bool = False) -> list[dict]:
    """Write ``<stem>.png`` (the mask: 255 foreground where the probability > 0.5, else 0, at the input's size) for
    each file into ``out_dir`` (and ``<stem>_prob.png``, the probability as 0-255, with ``with_probabilities``), each
    file replaced atomically. Everything it will write is checked first (``plan_outputs``: nothing is replaced without
    ``overwrite``, an input never). Returns one record per input: its files and pixel counts. An unreadable input is
    a PredictError naming it; files before it are kept."""
    out_dir = Path(out_dir)
    plans = plan_outputs(files, out_dir, with_probabilities, overwrite)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for i, plan in enumerate(plans, 1):
        try:
            image = read_image_file(plan.source, tm.cfg.tiff_pages, pages_hint=pages_hint(tm))
        except DatasetError as exc:
            raise PredictError(str(exc)) from None
        x, size, side = prepare(image, plan.source, tm)
        prob = probabilities(tm, x, size, side)
        mask = prob > 0.5
        atomic_write_bytes(plan.mask, _png(mask.astype(np.uint8) * 255))
        if plan.prob is not None:
            atomic_write_bytes(plan.prob, _png(np.round(prob * 255).astype(np.uint8)))
        written.append({"input": str(plan.source), "mask": str(plan.mask),
                        "probabilities": str(plan.prob) if plan.prob is not None else None,
                        "height": size[0], "width": size[1], "foreground_pixels": int(mask.sum())})
        if on_file is not None:
            on_file(i, len(plans), plan.source)
    return written


@dataclass
class Scores:
    """Dice and IoU from true/false positives summed over every image (as everywhere in unettui), and the counts."""

    dice: float
    iou: float
    images: int
    tp: float
    fp: float
    fn: float
    side: int = 0  # the side of the square images the pixels were counted on (the run's image_size)

    @property
    def tn(self) -> float:
        return float(self.images * self.side * self.side) - self.tp - self.fp - self.fn


def _batches(x: torch.Tensor, y: torch.Tensor, size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for start in range(0, len(x), size):
        yield x[start:start + size], y[start:start + size]


@torch.no_grad()
def score(tm: TrainedModel, images: torch.Tensor, masks: torch.Tensor,
          on_batch: Callable[[int, int], None] | None = None) -> Scores:
    """Hard Dice and IoU (threshold 0.5) of the model on prepared ``images`` [N, C, S, S] and ``masks``, in batches
    of the run's batch size (as its validation was computed)."""
    counts = torch.zeros(3, dtype=torch.float64, device=tm.device)
    done = 0
    for x, y in _batches(images, masks, tm.cfg.batch_size):
        x, y = x.to(tm.device), y.to(tm.device)
        if tm.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with tm.autocast():
            logits = tm.model(x)
        counts += confusion_counts(logits, y)
        done += len(x)
        if on_batch is not None:
            on_batch(done, len(images))
    tp, fp, fn = counts.tolist()
    return Scores(dice_from_counts(tp, fp, fn), iou_from_counts(tp, fp, fn), len(images), tp, fp, fn,
                  int(images.shape[-1]) if len(images) else 0)


def labelled_folder(tm: TrainedModel, folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """A folder of images/ and masks/ prepared exactly as training prepares a folder dataset."""
    from .dataset_id import image_files as files_by_stem
    from .folders import load_folder

    data = load_folder(Path(folder), tm.cfg.image_size, tm.cfg.tiff_pages, pages_hint(tm))
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
    data = load_dataset(cfg.dataset, cfg.image_size, cfg.num_images, cfg.data_seed, base_dir=project,
                        tiff_pages=cfg.tiff_pages)
    images = equalize_histogram(data.images) if cfg.augment_histeq else data.images
    train, val, test, _ = split_with_test(len(images), cfg.train_fraction, cfg.data_seed, cfg.test_fraction)
    idx = {"val": val, "test": test, "train": train, "all": torch.arange(len(images))}[split]
    if len(idx) == 0:
        raise PredictError(f"run {tm.run_id} has no {split} images (test_fraction {cfg.test_fraction:g})")
    return images[idx], data.masks[idx]
