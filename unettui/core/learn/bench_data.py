"""`unettui bench --data`: does the data loader keep up with the training step? For one experiment's settings, the
loader's samples/s (native resolution: drawing and cutting patches and moving them to the device; resized images:
indexing the tensors already on the device) beside the training step's samples/s on batches already cut, each timed
over whole rounds and given as a range; the slower one limits training."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from ..define.config import Config
from .train import Trainer


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _range(values: list[float]) -> str:
    return f"{min(values):,.0f}-{max(values):,.0f} (median {statistics.median(values):,.0f})"


def run_data_bench(cfg: Config, project: Path | None = None, device: str | None = None, batches: int = 20,
                   rounds: int = 3) -> Iterator[str]:
    """Yield report lines: the data (decoding time, images, pixels), then per round the loader's and the step's
    samples/s over ``batches`` batches of ``cfg.batch_size``, then which one limits and ``ratio = loader / step``."""
    t0 = time.perf_counter()
    trainer = Trainer(cfg, project, device)
    load_s = time.perf_counter() - t0
    dev, bs = trainer.device, cfg.batch_size
    if trainer.native:
        pixels = sum(int(im.shape[-2]) * int(im.shape[-1]) for im in trainer.train_x)
        mode = f"patches of {cfg.patch_size}x{cfg.patch_size}, {trainer.samples_per_epoch} per epoch"
    else:
        pixels = int(trainer.train_x.shape[0]) * cfg.image_size**2
        mode = f"whole images resized to {cfg.image_size}x{cfg.image_size}"
    yield (f"bench --data: {cfg.dataset}, {trainer.n_train} training images ({pixels / 1e6:.2f} Mpx), {mode}; "
           f"batch {bs}, {batches} batches x {rounds} rounds, device {dev}, threads {torch.get_num_threads()}")
    yield f"data: read and prepared in {load_s:.2f} s (once per run)"
    n = batches * bs
    trainer.model.train()
    # the batches the step trains on, cut once (the step's time alone)
    ready = [trainer.batch(torch.randint(0, trainer.samples_per_epoch, (bs,), generator=trainer.shuffle_gen)
                           .to(dev)) for _ in range(min(batches, 8))]

    def loader() -> None:
        order = trainer.new_epoch()
        for i in range(batches):
            idx = order[(i * bs) % max(1, trainer.samples_per_epoch - bs + 1):][:bs]
            trainer.batch(idx)

    def step() -> None:
        for i in range(batches):
            x, y = ready[i % len(ready)]
            trainer.optimizer.zero_grad(set_to_none=True)
            with trainer.autocast():
                loss = trainer.loss_fn(trainer.model(x), y)
            loss.backward()
            trainer.optimizer.step()

    loader(), step()  # warm-up
    load_rates, step_rates = [], []
    for _ in range(rounds):
        for fn, acc in ((loader, load_rates), (step, step_rates)):
            _sync(dev)
            t = time.perf_counter()
            fn()
            _sync(dev)
            acc.append(n / (time.perf_counter() - t))
    yield f"loader: {_range(load_rates)} samples/s"
    yield f"step:   {_range(step_rates)} samples/s (forward, loss, backward, optimizer step)"
    ratio = statistics.median(load_rates) / statistics.median(step_rates)
    if ratio >= 1:
        yield f"the training step limits: the loader is {ratio:.1f}x as fast"
    else:
        yield (f"the loader limits: it delivers {ratio:.2f}x what the step could take; larger patches, fewer "
               "channels or a faster disk help")
    yield f"ratio = loader / step = {ratio:.2f}"
