"""Optimiser and learning-rate schedule of a run, built from its settings.

Two families, both measured on this problem (docs/method.md, "The segmentation recipe"):

- ``plateau``: Adam with ReduceLROnPlateau on the monitored validation metric, stepped once an epoch (the
  paper's: factor 0.5, patience 3);
- ``poly`` and ``cosine``: a decay over the run's whole budget of optimiser steps, stepped after every
  step, with an optional linear warm-up (nnU-Net: SGD with Nesterov momentum 0.99 and poly decay with
  exponent 0.9; or AdamW with warm-up). A step-wise schedule makes the budget a number of optimiser steps,
  whatever an epoch holds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch

OptimizerName = Literal["adam", "adamw", "sgd"]
ScheduleName = Literal["plateau", "poly", "cosine", "constant"]
POLY_EXPONENT = 0.9  # nnU-Net's PolyLRScheduler


@dataclass(frozen=True)
class OptimSettings:
    """How a run optimises.

    Attributes:
        optimizer: ``adam``, ``adamw`` or ``sgd`` (Nesterov).
        lr: Initial (peak) learning rate.
        weight_decay: Weight decay (decoupled for AdamW).
        momentum: SGD's momentum (nnU-Net: 0.99).
        schedule: ``plateau`` (per epoch, on the monitored metric), ``poly``, ``cosine`` or ``constant``
            (per step).
        warmup_steps: Linear warm-up from 0 over this many steps (step-wise schedules).
        plateau_factor: ReduceLROnPlateau factor.
        plateau_patience: ReduceLROnPlateau patience in epochs.
    """

    optimizer: OptimizerName = "adam"
    lr: float = 1e-4
    weight_decay: float = 0.0
    momentum: float = 0.99
    schedule: ScheduleName = "plateau"
    warmup_steps: int = 0
    plateau_factor: float = 0.5
    plateau_patience: int = 3

    @property
    def per_step(self) -> bool:
        """Whether the schedule steps after every optimiser step (else once an epoch)."""
        return self.schedule != "plateau"


def build_optimizer(params: Iterable[torch.nn.Parameter], settings: OptimSettings) -> torch.optim.Optimizer:
    """The optimiser of ``settings`` over ``params``."""
    if settings.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=settings.lr,
            momentum=settings.momentum,
            nesterov=True,
            weight_decay=settings.weight_decay,
        )
    if settings.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    return torch.optim.Adam(params, lr=settings.lr, weight_decay=settings.weight_decay)


def lr_factor(step: int, total: int, settings: OptimSettings) -> float:
    """The learning rate at ``step`` (0-based) of ``total``, as a factor of the peak."""
    if step < settings.warmup_steps:
        return (step + 1) / settings.warmup_steps
    if settings.schedule == "constant":
        return 1.0
    span = max(1, total - settings.warmup_steps)
    done = min(1.0, (step - settings.warmup_steps) / span)
    if settings.schedule == "poly":
        return (1 - done) ** POLY_EXPONENT
    return 0.5 * (1 + math.cos(math.pi * done))


def build_scheduler(
    optimizer: torch.optim.Optimizer, settings: OptimSettings, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau:
    """The schedule of ``settings``; ``total_steps`` is the run's budget of optimiser steps."""
    if settings.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=settings.plateau_factor, patience=settings.plateau_patience
        )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total_steps, settings))
