"""The U-Net decoder: MONAI ``UnetUpBlock`` stages that undo the encoder's strides, with skips.

With deep supervision (nnU-Net's), the decoder's intermediate stages get 1x1 output heads of their own.
"""

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
        deep_supervision: Output heads on the decoder's intermediate stages, as nnU-Net's: every stage but
            the lowest, whose output nnU-Net weights 0. In training the decoder then returns a list of
            logits, full resolution first; in evaluation only the full-resolution logits.
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: Sequence[int],
        strides: Sequence[Stride],
        out_channels: int,
        kernel_size: int = 3,
        norm: str = "instance",
        deep_supervision: bool = False,
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
        # Heads for the outputs of ups[1:-1] (ups[i] returns channels[-2 - i]), deepest first.
        supervised = range(1, len(ups) - 1) if deep_supervision else range(0)
        self.heads = nn.ModuleList(
            UnetOutBlock(spatial_dims, channels[len(channels) - 2 - i], out_channels) for i in supervised
        )

    def forward(
        self, skips: list[torch.Tensor], bottleneck: torch.Tensor
    ) -> torch.Tensor | list[torch.Tensor]:
        """Logits at the input's resolution; in training with deep supervision, every head's, finest first."""
        x = bottleneck
        lower = []
        for i, (up, skip) in enumerate(zip(self.ups, reversed(skips), strict=True)):
            x = up(x, skip)
            if self.training and 1 <= i <= len(self.heads):
                lower.append(self.heads[i - 1](x))
        out = self.out(x)
        return [out, *reversed(lower)] if self.training and len(self.heads) else out
