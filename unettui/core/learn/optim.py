"""Optimizers and learning-rate schedulers by their canonical names."""

from __future__ import annotations

import torch

from ..define.config import Config


def make_optimizer(cfg: Config, params) -> torch.optim.Optimizer:
    """adam, adamw, adagrad, adamax, rmsprop, sgd (with ``momentum``) or adadelta at ``lr`` and ``weight_decay``.

    weight_decay is each optimizer's own (L2 added to the gradient; decoupled for adamw).
    """
    lr, wd = cfg.lr, cfg.weight_decay
    name = cfg.optimizer
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=wd)
    if name == "adamax":
        return torch.optim.Adamax(params, lr=lr, weight_decay=wd)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=wd)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=wd)
    if name == "adadelta":
        return torch.optim.Adadelta(params, lr=lr, weight_decay=wd)
    raise ValueError(f"unknown optimizer {name!r}")


class Schedule:
    """Wraps a torch scheduler and knows when to step it: per batch (onecycle) or per epoch (the rest)."""

    def __init__(self, cfg: Config, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
        self.name = cfg.scheduler
        self.per_batch = self.name == "onecycle"
        o = optimizer
        if self.name == "none":
            self.sched = None
        elif self.name == "step":
            self.sched = torch.optim.lr_scheduler.StepLR(o, step_size=cfg.lr_step_size, gamma=cfg.lr_gamma)
        elif self.name == "plateau":
            self.sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
                o, mode="min", factor=cfg.lr_factor, patience=cfg.lr_patience, min_lr=cfg.lr_min
            )
        elif self.name == "cosine":
            self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=cfg.epochs, eta_min=cfg.lr_min)
        elif self.name == "onecycle":
            # the configured lr is the peak; the cycle spans the whole run
            self.sched = torch.optim.lr_scheduler.OneCycleLR(
                o, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch
            )
        else:
            raise ValueError(f"unknown scheduler {self.name!r}")

    def batch_end(self) -> None:
        if self.per_batch:
            self.sched.step()

    def epoch_end(self, val_loss: float) -> None:
        if self.sched is None or self.per_batch:
            return
        if self.name == "plateau":
            self.sched.step(val_loss)
        else:
            self.sched.step()

    def state_dict(self) -> dict | None:
        return self.sched.state_dict() if self.sched is not None else None

    def load_state_dict(self, state: dict | None) -> None:
        if self.sched is not None and state is not None:
            self.sched.load_state_dict(state)
