"""The segmentation U-Net: the pretraining :class:`Encoder` (same class) plus a :class:`Decoder`."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sidepair.errors import SidepairError
from sidepair.models.decoder import Decoder
from sidepair.models.encoder import Encoder


def set_encoder_trainable(model: nn.Module, trainable: bool) -> None:
    """Freeze or unfreeze the parameters of a segmentation network's ``encoder``."""
    for p in model.encoder.parameters():
        p.requires_grad_(trainable)


class UNet(nn.Module):
    """Encoder + decoder with skip connections.

    Args:
        encoder_config: Arguments of :class:`Encoder` (as saved in pretraining checkpoints).
        out_channels: Output classes, background included.
        deep_supervision: Output heads on the decoder's intermediate stages (:class:`Decoder`); in
            training the network then returns a list of logits, full resolution first.
    """

    def __init__(
        self, encoder_config: dict[str, Any], out_channels: int, deep_supervision: bool = False
    ) -> None:
        super().__init__()
        self.encoder_config = dict(encoder_config)
        self.encoder = Encoder(**encoder_config)
        self.decoder = Decoder(
            self.encoder.spatial_dims,
            self.encoder.channels,
            self.encoder.strides,
            out_channels,
            norm=encoder_config.get("norm", "instance"),
            deep_supervision=deep_supervision,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Logits ``(N, out_channels, *spatial)`` (in training with deep supervision, a list of them)."""
        skips, bottleneck = self.encoder(x)
        return self.decoder(skips, bottleneck)

    def load_encoder(self, weights: dict[str, torch.Tensor], source: str) -> int:
        """Strictly load every encoder tensor from a pretraining checkpoint (:func:`transfer_encoder`)."""
        return transfer_encoder(self.encoder, weights, source, "the U-Net's")

    def set_encoder_trainable(self, trainable: bool) -> None:
        """Freeze or unfreeze the encoder's parameters."""
        set_encoder_trainable(self, trainable)


def transfer_encoder(encoder: nn.Module, weights: dict[str, torch.Tensor], source: str, whose: str) -> int:
    """Strictly load every encoder tensor of a pretraining checkpoint into ``encoder``.

    Args:
        encoder: The receiving encoder module.
        weights: Encoder state dict (prefix removed).
        source: Checkpoint path, named in errors.
        whose: The receiving network, in words (``"the U-Net's"``).

    Returns:
        The number of tensors transferred (all of the encoder's).

    Raises:
        SidepairError: On a missing or unexpected name, a shape mismatch, or 2D weights for a 3D
            model (and the reverse), naming the first offending tensor.
    """
    own = encoder.state_dict()
    for name, tensor in weights.items():
        if name in own and tensor.ndim != own[name].ndim and tensor.ndim >= 4:
            raise SidepairError(
                f"{source}: {tensor.ndim - 2}D weights cannot initialise a "
                f"{own[name].ndim - 2}D encoder ({name})"
            )
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    if missing or unexpected:
        what = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise SidepairError(
            f"{source}: encoder tensors do not match {whose} ({what}; "
            f"{len(missing)} missing, {len(unexpected)} unexpected)"
        )
    for name, tensor in weights.items():
        if tuple(tensor.shape) != tuple(own[name].shape):
            raise SidepairError(
                f"{source}: shape of {name} is {tuple(tensor.shape)}, {whose} encoder needs "
                f"{tuple(own[name].shape)}"
            )
    encoder.load_state_dict(weights, strict=True)
    return len(weights)
