"""The training loop: data on the device, batches augmented on the device, checkpoints every epoch, callbacks instead of prints."""

from __future__ import annotations

import contextlib
import io
import json
import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch

from ... import __version__
from ..define.config import Config, definition_changes, describe_changes
from ..runs.store import (
    BEST_WEIGHTS,
    CHECKPOINT,
    CONFIG,
    IMAGES,
    METRICS,
    SPLIT,
    SUMMARY,
    Run,
    append_jsonl,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
)
from ..show.preview import PREVIEW_FILES, save_preview
from .augment import AugmentSpec, augment_batch
from .dataset_id import count_images, data_id, is_synthetic
from .datasets import load_dataset
from .devices import resolve_amp, resolve_device
from .feasible import machine_memory
from .feasible import problems as feasibility_problems
from .model import UNet
from .native_run import preview_context, window_logits
from .optim import Schedule, make_optimizer
from .outcomes import (
    CheckpointError,
    Diverged,
    Events,
    NotTrainable,
    Result,
    Step,
    Stopped,
    diverged_message,
)
from .patches import PatchPlan, PatchSampler
from .run_data import fold_epoch, load_run_data, split_source
from .task import Scores, task_of

# (the loop's outcomes live in outcomes.py; imported from here by the runner, packs and tests)
__all__ = ["CheckpointError", "Diverged", "Events", "NotTrainable", "Result", "Step", "Stopped", "Trainer",
           "diverged_message", "resolve_amp", "resolve_device"]


# what a trainer holds of its data (shared by a pack's members, see Trainer(data_from=...))
_DATA_ATTRS = ("names", "split", "train_x", "train_y", "val_x", "val_y", "test_x", "test_y", "n_train", "n_val", "n_test",
               "val_on_train", "channels", "data_notes", "padded", "source")


class Trainer:
    """One experiment's model, optimizer, data and state; ``fit`` runs it, ``train_epoch`` is the hot loop."""

    def __init__(self, cfg: Config, project: Path | None = None, device: str | None = None, *,
                 dtype: torch.dtype | None = None, data_from: Trainer | None = None):
        """``dtype``: the model's and the images' floating-point type (None: float32; the tests train in float64).
        ``data_from``: a trainer of the same data keys whose tensors this one shares instead of loading them again
        (a pack's members); the random streams are untouched by data loading, so the run is the same."""
        self.cfg = cfg
        self.device = resolve_device(device or cfg.device)
        self.amp_dtype = resolve_amp(cfg.amp, self.device)
        self.cuda = self.device.type == "cuda"
        self.task = task_of(cfg)
        if self.cuda:
            torch.backends.cudnn.benchmark = True
        torch.manual_seed(cfg.seed)

        # everything that would stop the run, found before minutes of data generation or an allocation that swaps
        n_images = count_images(cfg.dataset, cfg.num_images, project)
        if self.cuda:
            memory = torch.cuda.get_device_properties(self.device).total_memory
            where = f"{torch.cuda.get_device_name(self.device)} ({self.device})"
        else:
            memory, where = machine_memory(), "this machine"
        classes = {"classes": self.task.classes}
        if not n_images and not is_synthetic(cfg.dataset):  # no pairs to count: the folder's own error says why
            load_dataset(cfg.dataset, cfg.image_size, cfg.num_images, cfg.data_seed, base_dir=project,
                         tiff_pages=cfg.tiff_pages, **classes)
        for key, why in feasibility_problems(cfg, n_images, memory, where, synthetic=is_synthetic(cfg.dataset)):
            raise NotTrainable(f"{key}: {why}")
        # native resolution (patch_size > 0): the images at their own sizes, lists of [C, H, W] tensors kept on the
        # CPU; training patches are cut from them (core.learn.patches), the rest is predicted by sliding window
        self.native = bool(cfg.patch_size)
        own_split = data_from is None or data_from.cfg.fold != cfg.fold
        if data_from is not None and own_split:  # another fold of the same data: its own split of it
            self.data_id = data_from.data_id
            for name, value in vars(split_source(data_from.source, cfg, self.device, self.task)).items():
                setattr(self, name, value)
        elif data_from is not None:
            self.data_id = data_from.data_id
            for name in _DATA_ATTRS:
                setattr(self, name, getattr(data_from, name))
        else:
            self.data_id = data_id(cfg.dataset, cfg.num_images, cfg.image_size, cfg.data_seed, project)
            for name, value in vars(load_run_data(cfg, project, self.device, dtype, self.task)).items():
                setattr(self, name, value)

        self.model = UNet(self.channels, self.task.out_channels, cfg.base_channels, cfg.depth, cfg.dropout).to(
            self.device)
        if dtype is not None:
            self.model = self.model.to(dtype)
        self.memory_format = torch.channels_last if self.cuda else torch.contiguous_format
        if self.cuda:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.patch_gen = torch.Generator().manual_seed(cfg.seed + 3)  # where an epoch's patches are (native)
        self.sampler: PatchSampler | None = None
        self._plan: PatchPlan | None = None
        if self.native:
            self.sampler = PatchSampler(self.train_x, self.train_y, cfg.patch_size,
                                        foreground_oversample=cfg.foreground_oversample,
                                        patches_per_epoch=cfg.patches_per_epoch or fold_epoch(self) or None,
                                        generator=self.patch_gen)
            if own_split:
                self.data_notes += self.sampler.notes
                self.padded = self.sampler.padded > 0
        # what an epoch trains on: the training images (a fold run: as many as every fold of its configuration has,
        # run_data.fold_epoch), or patches_per_epoch patches of them
        self.samples_per_epoch = (self.sampler.patches_per_epoch if self.sampler is not None
                                  else fold_epoch(self) or self.n_train)
        # padding (letterboxed images, patches of images smaller than the patch) is ignored by the loss
        self.loss_fn = self.task.ignore_loss_fn if self.padded else self.task.loss_fn
        self.optimizer = make_optimizer(cfg, self.model.parameters())
        self.steps_per_epoch = math.ceil(self.samples_per_epoch / cfg.batch_size)
        self.schedule = Schedule(cfg, self.optimizer, self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.augment = AugmentSpec(cfg.augment_rotate, cfg.augment_hflip, cfg.augment_vflip)
        # separate generators so shuffling and augmentation are reproducible and resumable
        self.shuffle_gen = torch.Generator().manual_seed(cfg.seed)
        self.aug_gen = torch.Generator().manual_seed(cfg.seed + 1)
        # dropout masks from the run's own generator (on its device), not the global RNG: a pack's member draws
        # exactly these masks, and a resume continues the same stream
        self.dropout_gen = torch.Generator(device=self.device).manual_seed(cfg.seed + 2)
        self.model.set_dropout_generator(self.dropout_gen)
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {}
        # the best epoch's score of each validation and test image (end_of_run; runs/<id>/images.json)
        self.image_scores: dict[str, Any] = {}
        self.epoch = 0

    @property
    def mode(self) -> str:
        """How images reach the model: "resize to 64", or "patches of 128" (native resolution)."""
        return f"patches of {self.cfg.patch_size}" if self.native else f"resize to {self.cfg.image_size}"

    @property
    def data_shape(self) -> tuple:
        """What a pack's members must share of their data besides the keys: the samples an epoch trains on and an
        image's shape (resized), or the patch and the patches per epoch (native); the folds of a configuration share
        them (run_data.fold_epoch)."""
        if self.native:
            return ("native", self.cfg.patch_size, self.samples_per_epoch)
        return (self.samples_per_epoch, *self.train_x.shape[1:])

    def window_logits(self, model: torch.nn.Module, image: torch.Tensor) -> torch.Tensor:
        """One whole image's logits [K, H, W] by sliding window (native resolution)."""
        return window_logits(model, image, self.cfg.patch_size, self.cfg.overlap, self.cfg.batch_size, self.device,
                             self.autocast, channels_last=self.cuda, out_channels=self.task.out_channels)
    # ---- the hot loop ------------------------------------------------------------
    def autocast(self) -> AbstractContextManager[Any]:
        """The mixed-precision context of every forward pass (a no-op when ``amp`` resolved to off)."""
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def step(self, idx: torch.Tensor) -> Step:
        """One optimisation step on the training images at ``idx`` (a LongTensor on the device), augmented as
        configured: zero the gradients, forward and loss under :meth:`autocast`, backward, optimizer step (through
        the GradScaler). The learning-rate schedule is the caller's (``train_epoch`` advances it after each step).

        The model must already be in training mode (``train_epoch`` sets it once per epoch). Returns the detached
        loss, logits and (augmented) masks, all still on the device: nothing is read back to the host.
        """
        x, y = self.batch(idx)
        if self.augment.active:
            x, y = augment_batch(x, y, self.augment, self.aug_gen, num_classes=self.task.k, ignore=self.padded)
        if self.cuda:
            x = x.contiguous(memory_format=self.memory_format)
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            logits = self.model(x)
            loss = self.loss_fn(logits, y)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return Step(loss.detach(), logits.detach(), y)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The training images and masks at ``idx`` (positions in the epoch: images, or this epoch's patches, cut
        here and moved to the device; a first call without an epoch under way draws one)."""
        if self.sampler is None:
            return self.train_x[idx], self.train_y[idx]
        if self._plan is None:
            self._plan = self.sampler.plan()
        x, y = self.sampler.crop(self._plan[idx.cpu()])
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def new_epoch(self) -> torch.Tensor:
        """The epoch's order of samples (on the device), drawn from the shuffling generator; at native resolution
        the epoch's patches are drawn first, from the patch generator."""
        if self.sampler is not None:
            self._plan = self.sampler.plan()
            return torch.randperm(self.samples_per_epoch, generator=self.shuffle_gen).to(self.device)
        # (a fold with one training image more than the smallest fold's leaves a different one out each epoch)
        return torch.randperm(self.n_train, generator=self.shuffle_gen)[:self.samples_per_epoch].to(self.device)

    def train_epoch(self, on_batch=None, should_stop=None) -> tuple[float, float | None]:
        """One pass over the training images in a seeded random order. Returns (mean loss, hard Dice).

        Loss and Dice counts are accumulated on the device and read once at the end (no per-batch sync).
        """
        bs = self.cfg.batch_size
        self.model.train()
        order = self.new_epoch()
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        counts = torch.zeros(self.task.k - 1, 3, device=self.device, dtype=torch.float64)
        steps = self.steps_per_epoch
        for step in range(steps):
            if should_stop is not None and should_stop():
                raise Stopped()
            idx = order[step * bs : (step + 1) * bs]
            out = self.step(idx)
            self.schedule.batch_end()
            loss_sum += out.loss * len(idx)
            counts += self.task.counts(out.logits, out.masks)
            if on_batch is not None:
                on_batch(self.epoch + 1, step + 1, steps)
        mean_loss = float(loss_sum) / self.samples_per_epoch
        return mean_loss, self.task.train_dice(counts)

    @torch.no_grad()
    def evaluate(self, images: torch.Tensor | None = None, masks: torch.Tensor | None = None) -> Scores:
        """The loss, hard Dice and IoU (and per class, for K >= 3) on the untouched validation images (or
        ``images``/``masks``), in eval mode; Dice and IoU from true/false positives summed over all the images."""
        images = self.val_x if images is None else images
        masks = self.val_y if masks is None else masks
        self.model.eval()
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        counts = torch.zeros(self.task.k - 1, 3, device=self.device, dtype=torch.float64)
        for logits, y in self.batched_logits(self.model, images, masks):  # (native: the loss is a mean over images)
            loss_sum += self.loss_fn(logits, y).double().to(self.device) * len(y)
            counts += self.task.counts(logits, y).to(self.device)
        return self.task.scores(float(loss_sum) / len(images), counts)

    def batched_logits(self, model: torch.nn.Module, images: Any, masks: Any):
        """(logits, masks) of ``images`` as validation computes them: in batches of the run's batch size, each yielded
        inside :meth:`autocast` (so what the caller computes from it, the loss, runs there too); at native resolution
        one whole image at a time by sliding window, [1, K, H, W] (on the CPU when its output is large)."""
        if self.native:
            for image, y in zip(images, masks):
                logits = self.window_logits(model, image)[None]
                yield logits, y[None].to(logits.device)
            return
        bs = self.cfg.batch_size
        for start in range(0, len(images), bs):
            x = images[start : start + bs]
            if self.cuda:
                x = x.contiguous(memory_format=self.memory_format)
            with self.autocast():
                yield model(x), masks[start : start + bs]

    @torch.no_grad()
    def predict_preview(self) -> dict[str, Any]:
        k = min(self.cfg.preview_count, self.n_val)
        self.model.eval()
        names, context = self.names[:k], None
        if self.native:  # a window around each image's foreground, by sliding window
            x, y, names, context = preview_context(self.val_x[:k], self.val_y[:k], names)
            prob = self.task.probabilities(torch.stack([self.window_logits(self.model, im) for im in x]))
        else:
            x, y = self.val_x[:k], self.val_y[:k]
            with self.autocast():
                prob = self.task.probabilities(self.model(x))
        return {"images": x.float().cpu(), "masks": y.clamp(min=0).cpu(), "probs": prob.cpu(), "names": names,
                "class_names": self.task.classes.names, "context": context}

    # ---- checkpoints -------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state(), "shuffle": self.shuffle_gen.get_state(), "augment": self.aug_gen.get_state(),
               "dropout": self.dropout_gen.get_state(), "dropout_device": self.device.type,
               "patches": self.patch_gen.get_state()}
        if self.cuda:
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "epoch": self.epoch,
            "fingerprint": self.cfg.fingerprint(),
            "config": self.cfg.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng,
            "history": self.history,
            "best": self.best,
            "torch_version": torch.__version__,
            "data_fingerprint": self.data_id.fingerprint if self.data_id else None,
        }

    def load_state_dict(self, ckpt: dict[str, Any]) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.schedule.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):  # (empty from a run without fp16, e.g. an fp16 card's run trained in fp32 in a pack)
            self.scaler.load_state_dict(ckpt["scaler"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        self.shuffle_gen.set_state(ckpt["rng"]["shuffle"])
        self.aug_gen.set_state(ckpt["rng"]["augment"])
        if "patches" in ckpt["rng"]:
            self.patch_gen.set_state(ckpt["rng"]["patches"])
        if ckpt["rng"].get("dropout_device") == self.device.type and "dropout" in ckpt["rng"]:
            self.dropout_gen.set_state(ckpt["rng"]["dropout"])
        else:  # resumed on another kind of device (CPU and CUDA generators differ): a new stream, still seeded
            self.dropout_gen.manual_seed(self.cfg.seed + 2 + 7919 * int(ckpt["epoch"]))
        if self.cuda and "cuda" in ckpt["rng"]:
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"], self.device)
        self.epoch = ckpt["epoch"]
        self.history = list(ckpt["history"])
        self.best = dict(ckpt["best"])

    def _why_not_resume(self, ckpt: dict[str, Any]) -> str | None:
        """Why a checkpoint cannot be resumed by this trainer (its definition or its data differ), or None."""
        recorded = ckpt.get("config")
        if isinstance(recorded, dict):
            changes = definition_changes(recorded, self.cfg)
            if changes:
                return f"definition changed ({describe_changes(changes)})"
        elif ckpt.get("fingerprint") != self.cfg.fingerprint():
            return "definition changed"
        was = ckpt.get("data_fingerprint")
        if was and self.data_id and was != self.data_id.fingerprint:
            return f"dataset {self.cfg.dataset} changed ({self.data_id.images} images now)"
        return None

    def save_best(self, path: Path, model_state: dict[str, torch.Tensor] | None = None, epoch: int | None = None,
                  val_dice: float | None = None) -> None:
        """The best epoch's model alone (best.pt: weights and what `predict` needs to rebuild and feed it), atomically.
        By default the model as it is now, at this epoch; a pack hands in weights it kept from an earlier epoch."""
        buf = io.BytesIO()
        torch.save({
            "model": {k: v.detach().cpu() for k, v in (model_state if model_state is not None
                                                         else self.model.state_dict()).items()},
            "epoch": self.epoch if epoch is None else epoch,
            "val_dice": self.best.get("val_dice") if val_dice is None else val_dice,
            "config": self.cfg.to_dict(),
            "in_channels": self.channels,
            "unettui_version": __version__,
        }, buf)
        atomic_write_bytes(path, buf.getvalue())

    def save_checkpoint(self, path: Path) -> None:
        buf = io.BytesIO()
        torch.save(self.state_dict(), buf)
        atomic_write_bytes(path, buf.getvalue())

    # ---- the whole run -----------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {
            "unettui_version": __version__,
            "torch_version": torch.__version__,
            "resolved_device": str(self.device),
            "amp_dtype": str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "off",
            "in_channels": self.channels,
            "data_notes": list(self.data_notes),
            "mode": self.mode,
            "samples_per_epoch": self.samples_per_epoch,
            "n_train": self.n_train,
            "n_val": self.n_val,
            "n_test": self.n_test,
            "val_on_train": self.val_on_train,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "fingerprint": self.cfg.fingerprint(),
            "data_fingerprint": self.data_id.fingerprint if self.data_id else None,
            "data_images": self.data_id.images if self.data_id else None,
        }

    def summary(self) -> dict[str, Any]:
        last = self.history[-1] if self.history else {}
        return {
            "best_val_dice": self.best.get("val_dice"),
            "best_epoch": self.best.get("epoch"),
            "best_val_loss": self.best.get("val_loss"),
            "final_train_loss": last.get("train_loss"),
            "final_train_dice": last.get("train_dice"),
            "final_val_loss": last.get("val_loss"),
            "final_val_dice": last.get("val_dice"),
            "final_val_iou": last.get("val_iou"),
            "epochs_done": self.epoch,
            "epochs": self.cfg.epochs,
            "seconds": round(sum(h["seconds"] for h in self.history), 3),
            "val_on_train": self.val_on_train,
            "stopped_early": self.stopped_early(),
            # the held-out test images, scored once per new best epoch with that epoch's model (the one best.pt holds)
            "test_dice": self.best.get("test_dice"),
            "test_iou": self.best.get("test_iou"),
            "test_loss": self.best.get("test_loss"),
            "n_test": self.n_test,
            "best_val_iou": self.best.get("val_iou"),
            # (tp, fp, fn) per foreground class at the best epoch: what pooled out-of-fold scores are summed from
            "best_val_counts": self.best.get("val_counts"),
            "mode": self.mode,
            **self.task.class_summary(self.best, last, self.n_test),
            **(self.best.get("end") or {}),
        }

    @torch.no_grad()
    def end_of_run(self, run: Run | None) -> dict[str, Any]:
        """The end-of-run metrics (core.learn.boundary: HD95 and NSD at ``nsd_tolerance``, per class and
        aggregated) of the best epoch's weights (the run's best.pt) on the validation and test images; kept with the
        best epoch (``best["end"]``: the summary shows them, a later new best drops them) and returned. Nothing
        without a run or a best.pt. Binary runs record the foreground's as ``val_hd95``, ``val_hd95_sd``,
        ``val_nsd``, ``val_nsd_sd`` and ``val_boundary_n``; multi-class runs also each class's (``val_hd95_<class>``
        ...) and the worst class's (``val_hd95_max``, ``val_nsd_min``)."""
        from .boundary import BoundaryAccumulator, run_keys

        if run is None or not run.file(BEST_WEIGHTS).exists() or not self.best:
            return {}
        blob = torch.load(run.file(BEST_WEIGHTS), map_location="cpu", weights_only=False)
        model = UNet(self.channels, self.task.out_channels, self.cfg.base_channels, self.cfg.depth,
                     self.cfg.dropout).to(device=self.device, dtype=next(self.model.parameters()).dtype)
        model.load_state_dict(blob["model"])
        model.eval()
        names = self.task.classes.foreground
        out: dict[str, Any] = {"nsd_tolerance": self.cfg.nsd_tolerance}
        self.image_scores = {"epoch": self.best["epoch"], "classes": list(names)}
        for prefix, images, masks in (("val", self.val_x, self.val_y), ("test", self.test_x, self.test_y)):
            if not len(images):
                continue
            acc = BoundaryAccumulator(names, self.cfg.nsd_tolerance)
            per_image = []
            for logits, y in self.batched_logits(model, images, masks):
                acc.add(y[:, 0].round().long().cpu().numpy(), self.task.decode(logits)[:, 0].cpu().numpy())
                per_image += self.task.member_counts(logits.unsqueeze(1), y.unsqueeze(1)).tolist()  # per image
            out.update({f"{prefix}_{k}": v for k, v in run_keys(acc.result(), names, self.task.binary).items()})
            self.image_scores[prefix] = [{"name": name, "dice": self.task.scores(0.0, c).dice, "counts": c}
                                         for name, c in zip(self.split[prefix], per_image)]
        self.best["end"] = out
        return out

    def save_end(self, run: Run, guard: Callable[[], AbstractContextManager[Any]]) -> None:
        """After ``end_of_run``: its per-image scores (images.json) and the summary that has its metrics."""
        with guard():
            if self.image_scores:
                atomic_write_json(run.file(IMAGES), self.image_scores)
            atomic_write_json(run.file(SUMMARY), self.summary())

    def stopped_early(self) -> bool:
        """Early stopping: ``early_stop_patience`` epochs in a row without a better val Dice (derived from the
        history, so a resumed run decides exactly as an uninterrupted one)."""
        patience = self.cfg.early_stop_patience
        return bool(patience and self.best and self.epoch - self.best["epoch"] >= patience)

    def stop_epoch(self, until_epoch: int | None) -> int:
        """The epoch a fit ends after: ``cfg.epochs``, or ``until_epoch`` (a successive-halving rung) when lower."""
        return self.cfg.epochs if until_epoch is None else max(1, min(int(until_epoch), self.cfg.epochs))

    def open_run(self, run: Run, guard: Callable[[], AbstractContextManager[Any]], run_id: str | None = None
                 ) -> tuple[bool, str | None]:
        """Before training into ``run``: resume from its checkpoint when it holds this definition and data, else
        start afresh (archiving an attempt of another definition); write config.json and metrics.jsonl as the
        checkpoint has them. Returns (resumed, why it restarted from scratch or None)."""
        ckpt_path = run.file(CHECKPOINT)
        resumed, restarted = False, None
        if ckpt_path.exists():
            # Loaded on the CPU: the RNG states must stay CPU tensors, and load_state_dict moves the weights
            # and optimizer state to this trainer's device (so a run can resume on another device too).
            try:
                ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
            except Exception as exc:  # noqa: BLE001 - torn by a foreign writer, or disk corruption
                raise CheckpointError(f"{run.path.name}/{CHECKPOINT} cannot be read ({type(exc).__name__}); "
                                      f"`unettui retry {run.path.name}` trains it again from scratch") from None
            restarted = self._why_not_resume(ckpt)
            if restarted is None:
                self.load_state_dict(ckpt)
                resumed = True
        with guard():
            if restarted:  # the runner archives changed runs before training; this catches what it could not see
                dest = run.archive_attempt(restarted, keep_status=True)
                restarted += f"; the earlier attempt is kept in {dest.parent.name}/{dest.name}"
            elif not resumed:  # a fresh start: nothing of an earlier attempt with another config may linger
                for name in (CHECKPOINT, BEST_WEIGHTS, SUMMARY, IMAGES, *PREVIEW_FILES):
                    run.file(name).unlink(missing_ok=True)
            # metrics.jsonl mirrors the checkpoint's history: drop any line of an epoch in flight at a crash
            atomic_write_text(run.file(METRICS), "".join(_jsonline(h) for h in self.history))
            atomic_write_json(run.file(CONFIG), {"id": run_id or run.id, **self.cfg.to_dict(), **self.describe()})
            atomic_write_json(run.file(SPLIT), self.split)  # which images trained, validated and were held out
        return resumed, restarted

    def end_epoch(self, train_loss: float, train_dice: float | None, lr: float, val: Scores,
                  t0: float) -> tuple[dict[str, Any], bool]:
        """After an epoch's training and validation (``val``: its Scores): step the epoch's schedule, count the
        epoch, record it in the history and keep the best epoch (scoring the test images when it is a new best).
        Returns (the epoch's metrics record, whether it is a new best)."""
        val_loss, val_dice, val_iou = val
        self.schedule.epoch_end(val_loss)
        self.epoch += 1
        rec = {
            "epoch": self.epoch,
            "train_loss": train_loss,
            "train_dice": train_dice,
            "val_loss": val_loss,
            "val_dice": val_dice,
            "val_iou": val_iou,
            **val.record("val"),
            "lr": lr,
            "seconds": round(time.perf_counter() - t0, 4),
        }
        self.history.append(rec)
        before = self.best.get("val_dice") if self.best else None
        # (a multi-class epoch whose classes all have no score has no Dice: it is never better than one that has)
        improved = not self.best or (val_dice is not None and (before is None or val_dice > before))
        if improved:
            self.best = {"epoch": self.epoch, "val_dice": val_dice, "val_loss": val_loss, "val_iou": val_iou,
                         "val_counts": val.counts}
            if val.classes:
                self.best["val_classes"] = dict(val.classes)
            if self.n_test:
                test = self.evaluate(self.test_x, self.test_y)
                self.best.update(test_loss=test.loss, test_dice=test.dice, test_iou=test.iou)
                if test.classes:
                    self.best["test_classes"] = dict(test.classes)
        return rec, improved

    def fit(self, run: Run | None = None, events: Events | None = None, run_id: str | None = None,
            until_epoch: int | None = None) -> Result:
        """Train to ``cfg.epochs``, resuming from ``run``'s checkpoint when it has one for the same config.

        ``until_epoch`` stops earlier, after that epoch (successive halving's rungs): the run is "done" for now
        with a checkpoint, and a later ``fit`` with a larger ``until_epoch`` goes on from there exactly as an
        uninterrupted run would (the config, hence the LR schedule, is the full run's).
        """
        ev = events or Events()
        guard = ev.guard or contextlib.nullcontext
        stop_at = self.stop_epoch(until_epoch)
        resumed, restarted = self.open_run(run, guard, run_id) if run is not None else (False, None)
        if ev.on_start:
            ev.on_start({**self.describe(), "resumed_epoch": self.epoch if resumed else None, "restarted": restarted})
        try:
            while self.epoch < stop_at and not self.stopped_early():
                t0 = time.perf_counter()
                train_loss, train_dice = self.train_epoch(ev.on_batch, ev.should_stop)
                lr = self.optimizer.param_groups[0]["lr"]
                if not math.isfinite(train_loss):
                    raise Diverged(diverged_message(train_loss, self.epoch + 1, lr))
                rec, improved = self.end_epoch(train_loss, train_dice, lr, self.evaluate(), t0)
                if run is not None:
                    previews = self.cfg.preview_count > 0
                    with guard():
                        if improved:
                            self.save_best(run.file(BEST_WEIGHTS))
                        if improved and previews:
                            save_preview(run.path, "best", epoch=self.epoch, **self.predict_preview())
                        if previews and (self.epoch == stop_at or self.stopped_early()):
                            save_preview(run.path, "last", epoch=self.epoch, **self.predict_preview())
                        # checkpoint first (it holds the history), then the metrics line and summary
                        self.save_checkpoint(run.file(CHECKPOINT))
                        append_jsonl(run.file(METRICS), rec)
                        atomic_write_json(run.file(SUMMARY), self.summary())
                if ev.on_epoch:
                    ev.on_epoch(rec)
            if run is not None:  # the end-of-run metrics, on the best epoch's weights
                self.end_of_run(run)
                self.save_end(run, guard)
        except Stopped:
            return Result("interrupted", self.summary())
        except Diverged as exc:
            if run is not None:
                with guard():
                    atomic_write_json(run.file(SUMMARY), self.summary())
            return Result("failed", self.summary(), str(exc))
        return Result("done", self.summary())


def _jsonline(obj: dict[str, Any]) -> str:
    return json.dumps(obj) + "\n"
