"""The contrastive-views task (SimCLR-style): two views of a section agree, other sections' views do not."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from monai.losses import ContrastiveLoss
from torch import nn
from torch.utils.data import DataLoader

from sidepair.data.sections import VAL_EPOCH, sample_sections
from sidepair.data.store import Store
from sidepair.data.views import ViewDataset, ViewMaker
from sidepair.models import Siamese
from sidepair.training.distributed import gather_lists, shard
from sidepair.training.pretext.base import SectionTask
from sidepair.training.pretrain_config import PretrainConfig


def retrieval_top1(z1: np.ndarray, z2: np.ndarray) -> float:
    """Share of sections whose first view's nearest second view (cosine) is its own."""
    a = z1 / np.maximum(np.linalg.norm(z1, axis=1, keepdims=True), 1e-12)
    b = z2 / np.maximum(np.linalg.norm(z2, axis=1, keepdims=True), 1e-12)
    return float((np.argmax(a @ b.T, axis=1) == np.arange(len(a))).mean())


class ContrastiveViewsTask(SectionTask):
    """Contrastive views for the training loop, with MONAI's NT-Xent ``ContrastiveLoss``.

    The model is the encoder, pooling and a projection head (the siamese network's). Validation embeds
    two fixed views of held-out sections and reports ``top1``: the share of sections whose first view
    finds its own second view nearest among all of them (chance is 1 / n). It picks the best checkpoint.
    """

    monitor = "val_top1"
    name = "contrastive views"
    measure: ClassVar[str] = "held-out view retrieval top-1"
    curves: ClassVar[list[str]] = ["train_loss", "val_loss", "val_top1"]

    def __init__(self, config: PretrainConfig, store: Store) -> None:
        super().__init__(config, store)
        self.views = ViewMaker(config.section_size, config.mirror)
        self.val_sections = sample_sections(self.val_sampler, config.val_pairs, config.seed, VAL_EPOCH)
        self.model = Siamese(self.encoder, config.embedding_dim, head="contrastive")
        self.loss = ContrastiveLoss(temperature=config.temperature)

    def train_batches(self, epoch: int) -> DataLoader:
        """``pairs_per_epoch`` sections of ``epoch``, two views each, ``batch_size`` sections a batch."""
        sections = sample_sections(self.train_sampler, self.config.pairs_per_epoch, self.config.seed, epoch)
        dataset = ViewDataset(self.train_sampler, sections, self.views, (self.config.seed, epoch))
        return self.loader(dataset, self.config.batch_size)

    def train_step(self, net: nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
        """NT-Xent loss of one batch of view pairs."""
        v1, v2 = (t.to(device, non_blocking=True) for t in batch)
        z1, z2 = net(v1, v2)
        return self.loss(z1.float(), z2.float())

    def validate(self, device: torch.device) -> dict[str, float]:
        """View-retrieval top-1 and NT-Xent loss over all held-out sections together."""
        first, second = [], []
        dataset = ViewDataset(
            self.val_sampler, shard(self.val_sections), self.views, (self.config.seed, VAL_EPOCH)
        )
        for v1, v2 in self.loader(dataset, self.config.batch_size):
            z1, z2 = self.model(v1.to(device), v2.to(device))
            first.append(z1.float().cpu().numpy())
            second.append(z2.float().cpu().numpy())
        z1, z2 = np.concatenate(gather_lists(first)), np.concatenate(gather_lists(second))
        loss = float(self.loss(torch.from_numpy(z1), torch.from_numpy(z2)))
        return {"loss": loss, "top1": retrieval_top1(z1, z2), "chance": 1.0 / len(z1)}
