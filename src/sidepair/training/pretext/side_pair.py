"""The side-pair task: a siamese network learns whether two sections come from the same body side."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from sidepair.data.augment import Augmenter
from sidepair.data.pairs import Pair, PairDataset, sample_pairs
from sidepair.data.sections import VAL_EPOCH
from sidepair.data.store import Store
from sidepair.errors import StoreError
from sidepair.evaluation.proxy import pair_metrics
from sidepair.models import Siamese
from sidepair.training.distributed import gather_lists, shard
from sidepair.training.losses import ContrastiveLoss, PairBCELoss, pair_distance
from sidepair.training.pretext.base import SectionTask
from sidepair.training.pretrain_config import PretrainConfig


class SidePairTask(SectionTask):
    """The side-pair task for the training loop: pair accuracy and ROC-AUC on held-out pairs."""

    monitor = "val_acc"
    name = "side-pair"
    measure: ClassVar[str] = "held-out pair accuracy"

    def __init__(self, config: PretrainConfig, store: Store) -> None:
        if config.export_clip and store.settings.normalize != "window":
            raise StoreError(
                f"{store.path}: export_clip clips HU, and this store is z-scored per volume; prepare it with "
                "a preset normalised by a fixed window (laterality)"
            )
        super().__init__(config, store)
        self.val_pairs = sample_pairs(self.val_sampler, config.val_pairs, config.seed, VAL_EPOCH)
        self.model = Siamese(self.encoder, config.embedding_dim, head=config.loss, side_head=config.side_head)
        self.loss = ContrastiveLoss(config.margin) if config.loss == "contrastive" else PairBCELoss()
        self.curves = (
            ["train_loss", "val_loss", "val_acc", "val_auc", "val_mirror_acc"]
            + (["val_acc_best"] if config.loss == "contrastive" else [])
            + (["val_side_acc", "val_side_mirror_acc"] if config.side_head else [])
        )
        if config.side_head:
            # What check-sides reads is the side head; its held-out accuracy, plain and mirrored, picks the
            # checkpoint.
            self.monitor = "val_side_score"
            self.measure = "held-out side accuracy (mean of plain and mirrored)"

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
        settings = self.store.settings
        dataset = PairDataset(
            self.train_sampler,
            pairs,
            augment,
            (self.config.seed, epoch),
            mirror=self.config.mirror,
            export_clip=self.config.export_clip,
            window=tuple(settings.window) if settings.normalize == "window" else None,  # type: ignore[arg-type]
        )
        return self.loader(dataset, self.config.batch_size)

    def train_step(self, net: nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
        """Loss of one batch of pairs (plus the absolute side loss of both sections with a side head)."""
        x1, x2, same, right1, right2 = (t.to(device, non_blocking=True) for t in batch)
        e1, e2 = net(x1, x2)
        if self.config.loss == "contrastive":
            loss = self.loss(e1, e2, same)
        else:
            loss = self.loss(net.same_logit(e1, e2), same)
        if self.config.side_head:
            logits = net.side_logit(torch.cat([e1, e2]))
            loss = loss + F.binary_cross_entropy_with_logits(logits.float(), torch.cat([right1, right2]))
        return loss

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

        With a side head, also its absolute side accuracy on both sections of every held-out pair
        (``side_acc``) and on both mirrored (``side_mirror_acc``), each judged against its patient's side:
        the same sections and meaning as the side probe's metrics of those names.
        """
        labels, plain, mirrored, losses = [], [], [], []
        sides: dict[str, list[np.ndarray]] = {"truth": [], "plain": [], "mirrored": []}
        # Under DDP each rank scores its share of the pairs; the scores of all are gathered below.
        for batch in self.loader(
            PairDataset(self.val_sampler, shard(self.val_pairs)), self.config.batch_size
        ):
            x1, x2, same, right1, right2 = (t.to(device, non_blocking=True) for t in batch)
            e1, e2 = self.model(x1, x2)
            scores, loss = self._pair_scores(e1, e2, same)
            plain.append(scores)
            losses.append(loss)
            # The same pairs, second section mirrored left-right: only it is embedded again.
            e2_mirrored = self.model.embed(torch.flip(x2, dims=(self.val_sampler.lateral_dim,)))
            mirrored.append(self._pair_scores(e1, e2_mirrored, same)[0])
            labels.append(same.cpu().numpy())
            if self.config.side_head:
                e1_mirrored = self.model.embed(torch.flip(x1, dims=(self.val_sampler.lateral_dim,)))
                sides["truth"].append(torch.cat([right1, right2]).cpu().numpy())
                for key, pair in (("plain", (e1, e2)), ("mirrored", (e1_mirrored, e2_mirrored))):
                    sides[key].append((self.model.side_logit(torch.cat(pair)) > 0).float().cpu().numpy())
        y = np.concatenate(gather_lists(labels))
        metrics = self._metrics(y, np.concatenate(gather_lists(plain)))
        mirror = self._metrics(y, np.concatenate(gather_lists(mirrored)))
        loss = sum(gather_lists(losses)) / len(y)
        out = {"loss": loss, **metrics, "mirror_acc": mirror["acc"], "mirror_auc": mirror["auc"]}
        if self.config.side_head:
            truth = np.concatenate(gather_lists(sides["truth"]))
            for key, name in (("plain", "side_acc"), ("mirrored", "side_mirror_acc")):
                out[name] = float((np.concatenate(gather_lists(sides[key])) == truth).mean())
            out["side_score"] = (out["side_acc"] + out["side_mirror_acc"]) / 2
        return out
