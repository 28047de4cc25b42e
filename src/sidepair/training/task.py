"""What the training loop asks of a task (a pretext task or segmentation), as typed hooks.

The loop (``loop.fit``) owns the optimisation and the bookkeeping, and the run lifecycle (``lifecycle``)
owns the run folder; a task says what is trained and how it is scored. Hooks that most tasks need not
change have defaults here, so the loop calls every hook of every task and never asks whether it exists.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from sidepair.config import Performance
from sidepair.data.store import Store
from sidepair.models.checkpoint import Checkpoint


class Task(ABC):
    """One kind of training run: its network, batches, loss, validation and what its run folder records.

    Attributes:
        kind: ``pretrain`` or ``segmentation``: ``run.json``'s kind, and what a resumed checkpoint must be.
        checkpoint_type: The checkpoint record it writes.
        monitor: The validation metric that picks the best checkpoint (higher is better).
        smoothing: With > 0, the monitor is read through an exponential moving average of this factor.
        curves: The metrics its learning-curve figure shows.
        model: The network. The loop hands :meth:`train_step` the module to call (laid out, wrapped in
            DDP or compiled as the speed options ask); everything else uses ``model`` itself.
        store: The store it reads.
    """

    kind: ClassVar[str]
    checkpoint_type: ClassVar[type[Checkpoint]]
    monitor: str = "val_acc"
    smoothing: float = 0.0
    curves: list[str]
    model: nn.Module
    store: Store

    @abstractmethod
    def train_batches(self, epoch: int) -> Iterable[Any]:
        """Batches of one epoch (deterministic for the epoch)."""

    @abstractmethod
    def train_step(self, net: nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
        """Loss of one batch (inside autocast), computed with ``net``."""

    @abstractmethod
    def validate(self, device: torch.device) -> dict[str, float]:
        """Validation metrics of the current model."""

    @abstractmethod
    def checkpoint_fields(self) -> dict[str, Any]:
        """The task's own checkpoint fields (config, encoder description, store settings ...)."""

    @abstractmethod
    def run_info(self) -> dict[str, Any]:
        """The task's own fields of ``run.json`` (labels read, transfers, splits ...)."""

    @abstractmethod
    def title(self) -> str:
        """What the run is, in words (the learning-curve figure's title, before its data)."""

    def announce(self) -> str:
        """A line printed when the run starts (empty: none)."""
        return ""

    def on_epoch_start(self, epoch: int) -> None:
        """Called before each epoch's batches (for example to release a frozen encoder)."""
        return None

    def should_stop(self, history: list[dict[str, Any]]) -> bool:
        """Whether the run ends after the epoch ``history`` ends with (a plateau), before its budget."""
        return False

    def finish(
        self, run_dir: Path, history: list[dict[str, Any]], device: str, performance: Performance
    ) -> dict[str, Any]:
        """Work after the last epoch (scoring the chosen checkpoint); returns fields for ``run.json``."""
        return {}
