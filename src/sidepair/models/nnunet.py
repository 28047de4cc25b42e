"""nnU-Net's own network, built by nnU-Net from a plans file, and its encoder as the siamese branch.

The network comes from ``nnunetv2.utilities.get_network_from_plans`` with the configuration's
architecture (``PlainConvUNet``, or a ResEnc U-Net when the plans say so): nothing of it is reimplemented.
The side-pair branch is that network's ``encoder`` module, so the pretrained ``encoder.*`` tensors carry
nnU-Net's own key names, and an exported checkpoint is the whole network's state dict with them in place.

The plans' architecture is copied into the encoder config saved in checkpoints, so a run rebuilds its
network without the plans file; the plans' hash is kept to refuse mismatched plans at export.
"""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from sidepair.nnunet_plans import require_nnunet


def build_nnunet(
    encoder_config: dict[str, Any], out_channels: int, deep_supervision: bool = False
) -> nn.Module:
    """The whole nnU-Net network, built by nnU-Net (its own initialisation).

    Args:
        encoder_config: From :func:`nnunet_encoder_config`.
        out_channels: Segmentation classes (background included).
        deep_supervision: nnU-Net's deep supervision outputs (off: one output at full resolution).
    """
    require_nnunet()
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans  # optional extra

    return get_network_from_plans(
        encoder_config["network_class_name"],
        copy.deepcopy(encoder_config["arch_kwargs"]),
        encoder_config["arch_kwargs_requires_import"],
        int(encoder_config.get("in_channels", 1)),
        out_channels,
        allow_init=True,
        deep_supervision=deep_supervision,
    )


def nnunet_encoder(encoder_config: dict[str, Any]) -> nn.Module:
    """nnU-Net's encoder module of the configured network, returning every stage's output.

    It gets ``spatial_dims`` and ``out_channels`` (the bottleneck's width), as :class:`Encoder` has.
    """
    encoder = build_nnunet(encoder_config, out_channels=2).encoder
    encoder.return_skips = True
    encoder.spatial_dims = int(encoder_config["spatial_dims"])
    encoder.out_channels = int(list(encoder.output_channels)[-1])
    return encoder
