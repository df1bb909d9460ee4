"""A trained run applied to images: its best (or last) weights loaded, images prepared as training prepared them,
masks predicted at each input's own size (`unettui predict`), and Dice/IoU on labelled images (`unettui evaluate`)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..define.config import Config, ConfigError, build_config
from ..runs.store import BEST_WEIGHTS, CHECKPOINT, Run
from .data import DatasetError, equalize_histogram
from .dataset_id import IMAGE_EXTENSIONS
from .folders import image_to_float, read_image_file, resize_image
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
        raise PredictError(f"runs/{run.id} has no weights yet ({path.name}): it has not finished an epoch; train it "
                           f"with `unettui run --headless --only {run.id}`")
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
    """The image files of a folder (sorted; hidden files and other extensions skipped), or the one file named."""
    target = Path(target)
    if target.is_file():
        if target.suffix.lower() not in IMAGE_EXTENSIONS:
            raise PredictError(f"{target} is not an image file unettui reads ({', '.join(IMAGE_EXTENSIONS)})")
        return [target]
    if not target.is_dir():
        raise PredictError(f"{target} does not exist: give an image file or a folder of images")
    files = sorted(p for p in target.iterdir() if p.is_file() and not p.name.startswith(".")
                   and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise PredictError(f"no image files in {target} ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def prepare(image: np.ndarray, path: Path, tm: TrainedModel) -> tuple[torch.Tensor, tuple[int, int], int]:
    """An image file's pixels as the model's input: [1, C, S, S] at its image_size — the image padded to a square
    (edge pixels repeated; training centre-cropped its squares, so the aspect ratio is kept) and resized as training
    resized, histogram-equalised when the run was. Returns it, the original (height, width) and the square's side."""
    chw = torch.from_numpy(image_to_float(image, path))
    c, h, w = chw.shape
    if c != tm.in_channels:
        if c == 1 and tm.in_channels == 3:
            chw = chw.expand(3, -1, -1)
        else:
            raise PredictError(f"{path} has {c} channel{'s' if c != 1 else ''} ({'RGB' if c == 3 else 'grey'}) but "
                               f"run {tm.run_id} was trained on {tm.in_channels}-channel images; convert it first")
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


def predict(tm: TrainedModel, files: list[Path], out_dir: Path, with_probabilities: bool = False,
            on_file: Callable[[int, int, Path], None] | None = None) -> list[Path]:
    """Write ``<stem>.png`` (the mask: 255 foreground where the probability > 0.5, else 0, at the input's size) for
    each file into ``out_dir`` (and ``<stem>_prob.png``, the probability as 0-255, with ``with_probabilities``).
    Returns the files written. An unreadable input is a PredictError naming it; files before it are kept."""
    import imageio.v3 as iio

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stems = [p.stem for p in files]
    if len(set(stems)) != len(stems):
        dup = next(s for s in stems if stems.count(s) > 1)
        raise PredictError(f"two inputs are named '{dup}' (different extensions): their masks would overwrite each "
                           "other; rename one")
    written = []
    for i, path in enumerate(files, 1):
        try:
            image = read_image_file(path)
        except DatasetError as exc:
            raise PredictError(str(exc)) from None
        x, size, side = prepare(image, path, tm)
        prob = probabilities(tm, x, size, side)
        mask_path = out_dir / f"{path.stem}.png"
        iio.imwrite(mask_path, ((prob > 0.5) * 255).astype(np.uint8))
        written.append(mask_path)
        if with_probabilities:
            prob_path = out_dir / f"{path.stem}_prob.png"
            iio.imwrite(prob_path, np.round(prob * 255).astype(np.uint8))
            written.append(prob_path)
        if on_file is not None:
            on_file(i, len(files), path)
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
    return Scores(dice_from_counts(tp, fp, fn), iou_from_counts(tp, fp, fn), len(images), tp, fp, fn)


def labelled_folder(tm: TrainedModel, folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """A folder of images/ and masks/ prepared exactly as training prepares a folder dataset."""
    from .folders import load_folder

    data = load_folder(Path(folder), tm.cfg.image_size)
    images = data.images
    if data.channels != tm.in_channels:
        if data.channels == 1 and tm.in_channels == 3:
            images = images.expand(-1, 3, -1, -1)
        else:
            raise PredictError(f"{folder} holds {data.channels}-channel images but run {tm.run_id} was trained on "
                               f"{tm.in_channels}-channel ones")
    if tm.cfg.augment_histeq:
        images = equalize_histogram(images)
    return images, data.masks


def run_split(tm: TrainedModel, project: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The run's own images of ``split`` (val, test, train or all), rebuilt from its dataset and split exactly as it
    trained (so evaluating best.pt on "val" gives its best val Dice)."""
    from .data import split_with_test
    from .datasets import load_dataset

    cfg = tm.cfg
    data = load_dataset(cfg.dataset, cfg.image_size, cfg.num_images, cfg.data_seed, base_dir=project)
    images = equalize_histogram(data.images) if cfg.augment_histeq else data.images
    train, val, test, _ = split_with_test(len(images), cfg.train_fraction, cfg.data_seed, cfg.test_fraction)
    idx = {"val": val, "test": test, "train": train, "all": torch.arange(len(images))}[split]
    if len(idx) == 0:
        raise PredictError(f"run {tm.run_id} has no {split} images (test_fraction {cfg.test_fraction:g})")
    return images[idx], data.masks[idx]
