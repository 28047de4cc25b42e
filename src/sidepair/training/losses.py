"""Side-pair losses: the paper's contrastive loss and a binary same/different loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pair_distance(e1: torch.Tensor, e2: torch.Tensor) -> torch.Tensor:
    """Euclidean distance between paired embeddings (a small epsilon keeps the gradient finite at 0)."""
    return torch.sqrt(((e1 - e2) ** 2).sum(dim=1) + 1e-12)


class ContrastiveLoss(nn.Module):
    """L = y·d² + (1 − y)·max(0, m − d)², averaged over pairs; y = 1 for the same side.

    Args:
        margin: m, the distance beyond which different-side pairs cost nothing (the paper: 1).
    """

    def __init__(self, margin: float = 1.0) -> None:
        super().__init__()
        self.margin = margin

    def forward(self, e1: torch.Tensor, e2: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        """Loss of a batch of embedding pairs."""
        d = pair_distance(e1.float(), e2.float())
        same = same.float()
        return (same * d**2 + (1 - same) * torch.clamp(self.margin - d, min=0) ** 2).mean()


class PairBCELoss(nn.Module):
    """Binary cross-entropy of a same/different logit (the ``bce`` head)."""

    def forward(self, logit: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        """Loss of a batch of logits."""
        return F.binary_cross_entropy_with_logits(logit.float(), same.float())
