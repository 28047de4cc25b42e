"""The side-pair task: a siamese network learns whether two sections come from the same body side."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import DataLoader

from sidepair.data.augment import Augmenter
from sidepair.data.pairs import Pair, PairDataset, sample_pairs
from sidepair.data.store import Store
from sidepair.evaluation.proxy import pair_metrics
from sidepair.models import Siamese
from sidepair.training.distributed import gather_lists, shard
from sidepair.training.losses import ContrastiveLoss, PairBCELoss, pair_distance
from sidepair.training.pretext.base import SectionTask
from sidepair.training.pretrain_config import VAL_EPOCH, PretrainConfig


class SidePairTask(SectionTask):
    """The side-pair task for the training loop: pair accuracy and ROC-AUC on held-out pairs."""

    monitor: ClassVar[str] = "val_acc"
    measure: ClassVar[str] = "held-out pair accuracy"

    def __init__(self, config: PretrainConfig, store: Store) -> None:
        super().__init__(config, store)
        self.val_pairs = sample_pairs(self.val_sampler, config.val_pairs, config.seed, VAL_EPOCH)
        self.model = Siamese(self.encoder, config.embedding_dim, head=config.loss)
        self.loss = ContrastiveLoss(config.margin) if config.loss == "contrastive" else PairBCELoss()
        self.curves = ["train_loss", "val_loss", "val_acc", "val_auc", "val_mirror_acc"] + (
            ["val_acc_best"] if config.loss == "contrastive" else []
        )

    def train_pairs(self, epoch: int) -> list[Pair]:
        """The training pairs of ``epoch``, drawn from ``(seed, epoch)``.

        With ``side_labels: random`` the pairs are the same and only their targets change: a balanced,
        seeded random same/different for each pair, drawn apart from the sides (the random-target control).
        """
        pairs = sample_pairs(self.train_sampler, self.config.pairs_per_epoch, self.config.seed, epoch)
        if self.config.side_labels == "random":
            rng = np.random.default_rng([self.config.seed, epoch, 4049])
            targets = rng.permutation([1] * (len(pairs) // 2) + [0] * (len(pairs) - len(pairs) // 2))
            pairs = [dataclasses.replace(p, same=int(t)) for p, t in zip(pairs, targets, strict=True)]
        return pairs

    def train_batches(self, epoch: int) -> DataLoader:
        """The pairs of ``epoch``, drawn from ``(seed, epoch)``."""
        pairs = self.train_pairs(epoch)
        augment = Augmenter(self.config.dims, with_label=False) if self.config.augment else None
        dataset = PairDataset(
            self.train_sampler, pairs, augment, (self.config.seed, epoch), mirror=self.config.mirror
        )
        return self.loader(dataset, self.config.batch_size)

    def _outputs(self, batch: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x1, x2, same = (t.to(device, non_blocking=True) for t in batch)
        e1, e2 = self.model(x1, x2)
        return e1, e2, same

    def train_step(self, batch: Any, device: torch.device) -> torch.Tensor:
        """Loss of one batch of pairs."""
        e1, e2, same = self._outputs(batch, device)
        if self.config.loss == "contrastive":
            return self.loss(e1, e2, same)
        return self.loss(self.model.same_logit(e1, e2), same)

    def _pair_scores(
        self, e1: torch.Tensor, e2: torch.Tensor, same: torch.Tensor
    ) -> tuple[np.ndarray, float]:
        """The head's score of each pair ("same" distance or probability) and the batch's summed loss."""
        if self.config.loss == "contrastive":
            return pair_distance(e1.float(), e2.float()).cpu().numpy(), float(self.loss(e1, e2, same)) * len(
                same
            )
        logit = self.model.same_logit(e1, e2)
        return torch.sigmoid(logit.float()).cpu().numpy(), float(self.loss(logit, same)) * len(same)

    def _metrics(self, same: np.ndarray, scores: np.ndarray) -> dict[str, float]:
        if self.config.loss == "contrastive":
            return pair_metrics(same, distance=scores, threshold=self.config.threshold)
        return pair_metrics(same, prob_same=scores)

    def validate(self, device: torch.device) -> dict[str, float]:
        """Pair accuracy and ROC-AUC on the held-out pairs, and the mirror score.

        The mirror score is the accuracy (and AUC) on the same pairs with every second section mirrored
        left-right, each keeping the side of the patient it came from: what a mirrored section shows is
        unchanged, its handedness reversed. A model that tells sides by organs scores as on plain pairs;
        one that tells them by handedness (which edge the spine is on, which way a hilum faces) near 0.
        For kidney-only sections a low score is expected: a kidney's shape is its handedness.
        """
        labels, plain, mirrored, losses = [], [], [], []
        # Under DDP each rank scores its share of the pairs; the scores of all are gathered below.
        for batch in self.loader(
            PairDataset(self.val_sampler, shard(self.val_pairs)), self.config.batch_size
        ):
            x1, x2, same = (t.to(device, non_blocking=True) for t in batch)
            e1, e2 = self.model(x1, x2)
            scores, loss = self._pair_scores(e1, e2, same)
            plain.append(scores)
            losses.append(loss)
            # The same pairs, second section mirrored on the lateral (last) axis: only it is embedded again.
            mirrored.append(self._pair_scores(e1, self.model.embed(torch.flip(x2, dims=(-1,))), same)[0])
            labels.append(same.cpu().numpy())
        y = np.concatenate(gather_lists(labels))
        metrics = self._metrics(y, np.concatenate(gather_lists(plain)))
        mirror = self._metrics(y, np.concatenate(gather_lists(mirrored)))
        loss = sum(gather_lists(losses)) / len(y)
        return {"loss": loss, **metrics, "mirror_acc": mirror["acc"], "mirror_auc": mirror["auc"]}
