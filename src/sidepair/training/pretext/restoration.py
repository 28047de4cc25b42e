"""The restoration task (Models Genesis-style): restore a corrupted section with encoder + light decoder."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from sidepair.data.corruptions import Corruptor, RestorationDataset
from sidepair.data.sections import VAL_EPOCH, sample_sections
from sidepair.data.store import Store
from sidepair.models.restorer import Restorer
from sidepair.training.distributed import gather_lists, shard
from sidepair.training.pretext.base import SectionTask
from sidepair.training.pretrain_config import PretrainConfig


class RestorationTask(SectionTask):
    """Restoration for the training loop.

    Validation corrupts held-out sections with fixed draws and reports ``error`` (the mean L2 or L1 of
    the restoration, the training loss's own kind), ``identity_error`` (that of the corrupted input
    itself) and ``gain`` = 1 - error / identity_error, the share of the corruption undone: 0 for a network
    that returns its input, 1 for a perfect one. ``gain`` picks the best checkpoint.
    """

    monitor = "val_gain"
    name = "restoration"
    measure: ClassVar[str] = "share of the corruption undone (held-out)"
    curves: ClassVar[list[str]] = ["train_loss", "val_loss", "val_gain"]

    def __init__(self, config: PretrainConfig, store: Store) -> None:
        super().__init__(config, store)
        self.corruptor = Corruptor(config.section_size, config.corruptions, config.mirror)
        self.val_sections = sample_sections(self.val_sampler, config.val_pairs, config.seed, VAL_EPOCH)
        self.model = Restorer(self.encoder)

    def _loss(self, restored: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        if self.config.restoration_loss == "l1":
            return F.l1_loss(restored.float(), target.float(), reduction=reduction)
        return F.mse_loss(restored.float(), target.float(), reduction=reduction)

    def train_batches(self, epoch: int) -> DataLoader:
        """``2 * pairs_per_epoch`` sections of ``epoch``, ``2 * batch_size`` a batch: the pairs' budget."""
        n = 2 * self.config.pairs_per_epoch
        sections = sample_sections(self.train_sampler, n, self.config.seed, epoch)
        dataset = RestorationDataset(self.train_sampler, sections, self.corruptor, (self.config.seed, epoch))
        return self.loader(dataset, 2 * self.config.batch_size)

    def train_step(self, net: nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
        """Restoration loss of one batch."""
        corrupted, target = (t.to(device, non_blocking=True) for t in batch)
        return self._loss(net(corrupted), target)

    def validate(self, device: torch.device) -> dict[str, float]:
        """Restoration error, the corrupted input's error, and the share undone, on held-out sections."""
        errors, identity = [], []
        dataset = RestorationDataset(
            self.val_sampler, shard(self.val_sections), self.corruptor, (self.config.seed, VAL_EPOCH)
        )
        for corrupted, target in self.loader(dataset, 2 * self.config.batch_size):
            corrupted, target = corrupted.to(device), target.to(device)
            per_item = self._loss(self.model(corrupted), target, "none").flatten(1).mean(1)
            errors.append(per_item.cpu().numpy())
            identity.append(self._loss(corrupted, target, "none").flatten(1).mean(1).cpu().numpy())
        error = float(np.concatenate(gather_lists(errors)).mean())
        base = float(np.concatenate(gather_lists(identity)).mean())
        return {
            "loss": error,
            "error": error,
            "identity_error": base,
            "gain": 1 - error / base if base else 0.0,
        }
