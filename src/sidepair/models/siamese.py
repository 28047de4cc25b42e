"""The siamese side-pair network: a shared :class:`Encoder`, global pooling and a projection head."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch
from torch import nn

from sidepair.models.backends import bottleneck, build_encoder
from sidepair.models.encoder import Encoder

if TYPE_CHECKING:
    from sidepair.models.checkpoint import PretrainCheckpoint


class Siamese(nn.Module):
    """Two weight-sharing branches embed two sections; the head scores "same side".

    Args:
        encoder: The encoder (later transferred into the U-Net): :class:`Encoder`, or nnU-Net's encoder
            module (:mod:`~sidepair.models.backends`).
        embedding_dim: Size of the projected embedding.
        head: ``"contrastive"`` (the paper: distance between embeddings) or ``"bce"`` (a linear
            same/different classifier on ``|e1 - e2|``).
        side_head: Add a linear head giving each section's absolute side (logit of "right"), trained
            beside the pairs: a pair model alone cannot say which side a section shows.
    """

    def __init__(
        self,
        encoder: Encoder | nn.Module,
        embedding_dim: int = 128,
        head: Literal["contrastive", "bce"] = "contrastive",
        side_head: bool = False,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head
        pool = nn.AdaptiveAvgPool3d if encoder.spatial_dims == 3 else nn.AdaptiveAvgPool2d
        self.pool = pool(1)
        width = encoder.out_channels
        self.projection = nn.Sequential(
            nn.Linear(width, width), nn.ReLU(inplace=True), nn.Linear(width, embedding_dim)
        )
        self.classifier = nn.Linear(embedding_dim, 1) if head == "bce" else None
        self.side_classifier = nn.Linear(embedding_dim, 1) if side_head else None

    @classmethod
    def from_checkpoint(cls, ckpt: PretrainCheckpoint) -> Siamese:
        """The side-pair network a pretraining checkpoint holds, weights loaded strictly."""
        config = ckpt.config
        network = cls(
            build_encoder(ckpt.encoder_config),
            int(config["embedding_dim"]),
            head=config.get("loss", "contrastive"),
            side_head="side_classifier.weight" in ckpt.network_weights,
        )
        network.load_state_dict(ckpt.network_weights)
        return network

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Embedding of a batch of sections."""
        return self.projection(self.pool(bottleneck(self.encoder(x))).flatten(1))

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings of both sections; one encoder pass over the concatenated batch."""
        e = self.embed(torch.cat([x1, x2], dim=0))
        return e[: x1.shape[0]], e[x1.shape[0] :]

    def same_logit(self, e1: torch.Tensor, e2: torch.Tensor) -> torch.Tensor:
        """The BCE head's logit that a pair is from the same side."""
        if self.classifier is None:
            raise RuntimeError("same_logit needs head='bce'")
        return self.classifier((e1 - e2).abs()).squeeze(1)

    def side_logit(self, e: torch.Tensor) -> torch.Tensor:
        """The side head's logit that each section shows the patient's right side."""
        if self.side_classifier is None:
            raise RuntimeError("side_logit needs side_head=True")
        return self.side_classifier(e).squeeze(1)
