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

import torch

from sidepair.config import OptimiserSettings

POLY_EXPONENT = 0.9  # nnU-Net's PolyLRScheduler
PLATEAU_FACTOR = 0.5  # ReduceLROnPlateau, as the paper
PLATEAU_PATIENCE = 3  # epochs


def build_optimizer(
    params: Iterable[torch.nn.Parameter], settings: OptimiserSettings
) -> torch.optim.Optimizer:
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


def lr_factor(step: int, total: int, settings: OptimiserSettings) -> float:
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
    optimizer: torch.optim.Optimizer, settings: OptimiserSettings, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau:
    """The schedule of ``settings``; ``total_steps`` is the run's budget of optimiser steps."""
    if settings.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=PLATEAU_FACTOR, patience=PLATEAU_PATIENCE
        )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total_steps, settings))
