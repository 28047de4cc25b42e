"""Network backends: who builds the networks an encoder config describes.

An encoder config (saved in every checkpoint) names its ``architecture``: ``monai`` for sidepair's
:class:`~sidepair.models.encoder.Encoder` and :class:`~sidepair.models.unet.UNet` of MONAI blocks, or
``nnunet`` for nnU-Net's own network built from its plans (:mod:`sidepair.models.nnunet`). Every module
that builds or reads a network asks :func:`backend_of` for it; none branches on the architecture.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from sidepair.models.encoder import Encoder, Stride
from sidepair.models.nnunet import build_nnunet, nnunet_encoder
from sidepair.models.unet import UNet


class NetworkBackend(ABC):
    """Builds the encoder and the segmentation network of one architecture."""

    name: ClassVar[str]

    @abstractmethod
    def encoder(self, config: dict[str, Any]) -> nn.Module:
        """The encoder (the siamese branch, and the part a U-Net's ``encoder`` transfers)."""

    @abstractmethod
    def segmentation_network(
        self, config: dict[str, Any], out_channels: int, deep_supervision: bool = False
    ) -> nn.Module:
        """The whole segmentation network, with an ``encoder`` module that :meth:`encoder` matches.

        With ``deep_supervision`` it returns, in training, a list of logits (full resolution first, then
        each lower decoder stage nnU-Net supervises); in evaluation always the full-resolution logits.
        """

    @abstractmethod
    def strides(self, config: dict[str, Any]) -> Sequence[Stride]:
        """The encoder's downsampling per stage."""


class MonaiBackend(NetworkBackend):
    """sidepair's encoder and U-Net of MONAI blocks (:class:`Encoder`, :class:`UNet`)."""

    name = "monai"

    def encoder(self, config: dict[str, Any]) -> nn.Module:
        """An :class:`Encoder` of the config's arguments."""
        return Encoder(**config)

    def segmentation_network(
        self, config: dict[str, Any], out_channels: int, deep_supervision: bool = False
    ) -> nn.Module:
        """A :class:`UNet` around that encoder."""
        return UNet(config, out_channels, deep_supervision)

    def strides(self, config: dict[str, Any]) -> Sequence[Stride]:
        """The config's ``strides``."""
        return config["strides"]


class NnUNetBackend(NetworkBackend):
    """nnU-Net's network from the plans' architecture, copied into the config (no plans file needed)."""

    name = "nnunet"

    def encoder(self, config: dict[str, Any]) -> nn.Module:
        """nnU-Net's encoder module, returning every stage's output."""
        return nnunet_encoder(config)

    def segmentation_network(
        self, config: dict[str, Any], out_channels: int, deep_supervision: bool = False
    ) -> nn.Module:
        """nnU-Net's whole network; its state dict keeps nnU-Net's own key names.

        Its output heads exist with deep supervision on or off (the state dicts are the same). With it
        on, nnU-Net returns every decoder stage's logits, finest first, and weights the lowest 0: here
        that one is dropped, and evaluation gets the finest alone.
        """
        network = build_nnunet(config, out_channels, deep_supervision=deep_supervision)
        if deep_supervision:
            network.register_forward_hook(_supervised_outputs)
        return network

    def strides(self, config: dict[str, Any]) -> Sequence[Stride]:
        """The plans' ``strides``."""
        return config["arch_kwargs"]["strides"]


def _supervised_outputs(
    module: nn.Module, args: Any, output: list[torch.Tensor]
) -> torch.Tensor | list[torch.Tensor]:
    return list(output[:-1]) if module.training else output[0]


BACKENDS: dict[str, NetworkBackend] = {b.name: b for b in (MonaiBackend(), NnUNetBackend())}


def backend_of(config: dict[str, Any]) -> NetworkBackend:
    """The backend of an encoder config (configs saved before ``architecture`` existed are ``monai``)."""
    return BACKENDS[config.get("architecture", "monai")]


def build_encoder(config: dict[str, Any]) -> nn.Module:
    """The encoder an encoder config describes."""
    return backend_of(config).encoder(config)


def segmentation_network(
    config: dict[str, Any], out_channels: int, deep_supervision: bool = False
) -> nn.Module:
    """The segmentation network an encoder config describes, with an ``encoder`` module.

    Args:
        config: The encoder config.
        out_channels: Output classes, background included.
        deep_supervision: Output heads on the decoder's lower stages
            (:meth:`NetworkBackend.segmentation_network`).
    """
    return backend_of(config).segmentation_network(config, out_channels, deep_supervision)


def total_stride(config: dict[str, Any]) -> list[int]:
    """An encoder's overall downsampling per axis, from its saved config."""
    dims = int(config["spatial_dims"])
    total = [1] * dims
    for s in backend_of(config).strides(config):
        step = [s] * dims if isinstance(s, int) else list(s)
        total = [a * b for a, b in zip(total, step, strict=True)]
    return total


def bottleneck(features: torch.Tensor | list[torch.Tensor] | tuple[Any, torch.Tensor]) -> torch.Tensor:
    """The deepest features of any backend's encoder output: ``(skips, bottleneck)``, or a list of stages."""
    if isinstance(features, list):
        return features[-1]
    if isinstance(features, tuple):
        return features[1]
    return features
