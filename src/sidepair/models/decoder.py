"""The U-Net decoder: MONAI ``UnetUpBlock`` stages that undo the encoder's strides, with skips."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks.dynunet_block import UnetOutBlock, UnetUpBlock
from torch import nn

from sidepair.models.encoder import Stride


class Decoder(nn.Module):
    """Upsampling path from the bottleneck back to full resolution, then a 1x1 output convolution.

    Args:
        spatial_dims: 2 or 3.
        channels: The encoder's channels per stage (shallow to deep).
        strides: The encoder's strides per stage; stage i's stride is undone before skip i - 1 joins.
        out_channels: Output classes (background included).
        kernel_size: Convolution kernel size.
        norm: MONAI norm name.
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: Sequence[int],
        strides: Sequence[Stride],
        out_channels: int,
        kernel_size: int = 3,
        norm: str = "instance",
    ) -> None:
        super().__init__()
        ups = []
        for level in range(len(channels) - 1, 0, -1):
            ups.append(
                UnetUpBlock(
                    spatial_dims,
                    channels[level],
                    channels[level - 1],
                    kernel_size,
                    stride=1,
                    upsample_kernel_size=strides[level],
                    norm_name=norm,
                )
            )
        self.ups = nn.ModuleList(ups)
        self.out = UnetOutBlock(spatial_dims, channels[0], out_channels)

    def forward(self, skips: list[torch.Tensor], bottleneck: torch.Tensor) -> torch.Tensor:
        """Logits at the input's resolution."""
        x = bottleneck
        for up, skip in zip(self.ups, reversed(skips), strict=True):
            x = up(x, skip)
        return self.out(x)
