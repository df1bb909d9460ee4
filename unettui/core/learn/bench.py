"""Benchmark: unettui's training epoch against a minimal hand-written PyTorch loop, same model, data and steps."""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Iterator

import torch

from ..define.config import Config
from .devices import resolve_amp, resolve_device
from .train import Trainer


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reference_epoch(model, opt, x, y, loss_fn, batch_size, gen, device, amp_dtype, scaler, channels_last) -> None:
    """The loop a person would write by hand: shuffle, slice, forward, loss, backward, step."""
    model.train()
    n = len(x)
    order = torch.randperm(n, generator=gen).to(device)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        xb, yb = x[idx], y[idx]
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = loss_fn(model(xb), yb)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()


def _pair(cfg: Config, device: str, rounds: int) -> tuple[float, float, Trainer]:
    """Median images/s of the trainer's epoch and the reference epoch, alternating, after one warm-up each."""
    trainer = Trainer(cfg, device=device)
    dev = trainer.device
    model = copy.deepcopy(trainer.model)
    from .optim import make_optimizer

    opt = make_optimizer(cfg, model.parameters())
    scaler = torch.amp.GradScaler("cuda", enabled=trainer.amp_dtype == torch.float16)
    gen = torch.Generator().manual_seed(cfg.seed)
    x, y = trainer.train_x, trainer.train_y

    def ref() -> None:
        _reference_epoch(model, opt, x, y, trainer.loss_fn, cfg.batch_size, gen, dev, trainer.amp_dtype, scaler, trainer.cuda)

    def ours() -> None:
        trainer.train_epoch()

    ours(), ref()  # warm-up (cudnn autotuning, allocator)
    t_ours, t_ref = [], []
    for _ in range(rounds):
        for fn, acc in ((ours, t_ours), (ref, t_ref)):
            _sync(dev)
            t0 = time.perf_counter()
            fn()
            _sync(dev)
            acc.append(time.perf_counter() - t0)
    n = trainer.n_train
    return n / statistics.median(t_ours), n / statistics.median(t_ref), trainer


def run_bench(device: str = "auto", steps: int = 20, rounds: int = 5, image_size: int = 64, batch_size: int = 8,
              base_channels: int = 16, depth: int = 4) -> Iterator[str]:
    """Yield report lines; the last one is ``ratio = trainer / reference``."""
    n = steps * batch_size
    cfg = Config(num_images=n, train_fraction=1.0, image_size=image_size, batch_size=batch_size,
                 base_channels=base_channels, depth=depth, device=device, amp="off")
    dev = resolve_device(device)
    yield (f"bench: UNet base {base_channels} depth {depth}, {image_size}x{image_size}, batch {batch_size}, "
           f"{steps} steps x {rounds} rounds, device {dev}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    ours, ref, _ = _pair(cfg, device, rounds)
    if dev.type == "cuda":
        yield f"fp32: trainer {ours:.1f} images/s, reference {ref:.1f} images/s, ratio {ours / ref:.3f}"
        amp_ours, amp_ref, t = _pair(cfg.replace(amp="auto"), device, rounds)
        dtype = str(t.amp_dtype).replace("torch.", "")
        yield f"amp ({dtype}): trainer {amp_ours:.1f} images/s, reference {amp_ref:.1f} images/s, ratio {amp_ours / amp_ref:.3f}"
        yield f"amp speed-up over fp32: trainer {amp_ours / ours:.2f}x, reference {amp_ref / ref:.2f}x"
        ours, ref = amp_ours, amp_ref
    else:
        yield f"trainer {ours:.1f} images/s, reference {ref:.1f} images/s"
    yield f"ratio = trainer / reference = {ours / ref:.3f}"


def _member_settings(dropout: float, augment: bool) -> dict:
    """What `bench --pack --dropout P --augment` gives every member."""
    return {"dropout": dropout, **({"augment_hflip": 0.5, "augment_vflip": 0.5, "augment_rotate": 15.0} if augment
                                   else {})}


def _settings_text(dropout: float, augment: bool, dropout_mode: str | None = None) -> str:
    """The members' settings for a header line; ``dropout_mode``: the pack's (PackedUNet.dropout_mode), shown with
    dropout."""
    mode = f" ({dropout_mode} masks)" if dropout and dropout_mode else ""
    return (f", dropout {dropout:g}{mode}" if dropout else "") + (", flips + rotation 15°" if augment else "")


def run_launch_model(packs: tuple[int, ...] = (1, 4, 8, 16), image_size: int = 64, batch_size: int = 8,
                     base_channels: int = 16, depth: int = 4, dropout: float = 0.0, augment: bool = False,
                     dropout_mode: str = "exact") -> Iterator[str]:
    """The modelled CUDA launches of one training step (core.learn.launches), counted on the CPU: one solo run's
    (Adam, fp32), then a pack of each N in ``packs`` (each member its own lr), one line ``launches N=<n>: <count>``
    each; the last line compares the largest pack with the solo step. ``dropout_mode``: the packs' (PackTrainer's)."""
    from .launches import step_launches
    from .pack_train import PackTrainer

    extra = _member_settings(dropout, augment)

    def cfg(steps: int, **kw) -> Config:
        return Config(num_images=steps * batch_size, train_fraction=1.0, image_size=image_size, batch_size=batch_size,
                      base_channels=base_channels, depth=depth, device="cpu", amp="off", preview_count=0,
                      **extra, **kw)

    yield (f"launch model (CUDA kernels of one training step, counted on the CPU: core/learn/launches.py): UNet base "
           f"{base_channels} depth {depth}, {image_size}x{image_size}, batch {batch_size}, adam, fp32"
           f"{_settings_text(dropout, augment, dropout_mode)}, torch {torch.__version__}")

    def optimizer(c) -> int:
        return sum(v for k, v in c.by_op.items() if k.startswith("_foreach_"))

    solo, _ = step_launches(lambda steps: Trainer(cfg(steps)))
    yield f"solo: {solo.launches} launches per step (optimizer {optimizer(solo)}), {solo.syncs} syncs"
    last = solo
    for n in packs:
        last, _ = step_launches(lambda steps, n=n: PackTrainer.from_configs(
            [cfg(steps, seed=i, lr=1e-3 * (1 + 0.1 * i)) for i in range(n)], dropout_mode=dropout_mode))
        yield f"launches N={n}: {last.launches} (optimizer {optimizer(last)}, syncs {last.syncs})"
    n = packs[-1]
    yield (f"pack of {n} / solo = {last.launches / solo.launches:.2f}x the launches of one solo step, for {n} steps' "
           f"work ({n * solo.launches} launches as {n} solo runs)")


def run_pack_bench(device: str = "auto", packs: tuple[int, ...] = (1, 4, 8), steps: int = 20, rounds: int = 3,
                   image_size: int = 64, batch_size: int = 8, base_channels: int = 16, depth: int = 4,
                   amp: str = "off", dropout: float = 0.0, augment: bool = False, dropout_mode: str = "exact"
                   ) -> Iterator[str]:
    """For each N in ``packs``: the same N experiments (seeds 0..N-1, each its own lr) trained one after the other
    (N solo trainers' epochs) and as one pack (PackTrainer's epoch, its dropout ``dropout_mode``), in one process,
    alternating, after a warm-up of each; yield images/s of both per N. The last line is ``ratio = packed /
    sequential = ...`` (one per N)."""
    from .pack_train import PackMember, PackTrainer

    dev = resolve_device(device)
    dtype = resolve_amp(amp, dev)
    if dtype == torch.float16:
        raise RuntimeError("amp resolves to fp16 here: packs train in bf16 or fp32 only; use --amp bf16 or off")
    n_images = steps * batch_size
    yield (f"bench --pack: UNet base {base_channels} depth {depth}, {image_size}x{image_size}, batch {batch_size}, "
           f"{steps} steps x {rounds} rounds, amp {str(dtype).replace('torch.', '') if dtype else 'off'}, device {dev}"
           + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else "")
           + f"{_settings_text(dropout, augment, dropout_mode)}, torch {torch.__version__}, "
           f"threads {torch.get_num_threads()}")
    ratios = []
    for n in packs:
        cfgs = [Config(num_images=n_images, train_fraction=1.0, image_size=image_size, batch_size=batch_size,
                       base_channels=base_channels, depth=depth, device=device, amp=amp, seed=i,
                       lr=1e-3 * (1 + 0.1 * i), **_member_settings(dropout, augment)) for i in range(n)]
        solos = [Trainer(cfgs[0], device=device)]
        solos += [Trainer(c, device=device, data_from=solos[0]) for c in cfgs[1:]]
        pack = PackTrainer([PackMember(c, device=device, data_from=solos[0]) for c in cfgs], dropout_mode)

        def sequential(solos: list[Trainer] = solos) -> None:
            for t in solos:
                t.train_epoch()

        sequential(), pack.train_epoch()  # warm-up (cudnn autotuning, allocator)
        t_seq, t_pack = [], []
        for _ in range(rounds):
            for fn, acc in ((sequential, t_seq), (pack.train_epoch, t_pack)):
                _sync(dev)
                t0 = time.perf_counter()
                fn()
                _sync(dev)
                acc.append(time.perf_counter() - t0)
        seq, packed = n * n_images / statistics.median(t_seq), n * n_images / statistics.median(t_pack)
        ratios.append((n, packed / seq))
        yield f"N={n}: sequential {seq:.1f} images/s, packed {packed:.1f} images/s, ratio {packed / seq:.2f}"
        del solos, pack
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    yield "ratio = packed / sequential = " + ", ".join(f"{r:.2f} (N={n})" for n, r in ratios)
