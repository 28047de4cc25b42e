"""The encoder shared by the siamese side-pair network and the segmentation U-Net.

One class serves both, so transfer is a strict ``state_dict`` load of every tensor. Stages are MONAI
``UnetBasicBlock``/``UnetResBlock`` (conv-norm-act twice, nnU-Net style), in 2D or 3D by
``spatial_dims``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks.dynunet_block import UnetBasicBlock, UnetResBlock
from torch import nn

Stride = int | Sequence[int]


class Encoder(nn.Module):
    """A U-Net encoder: one stage per resolution, the last one the bottleneck.

    Args:
        spatial_dims: 2 or 3.
        in_channels: Input channels (1 for CT).
        channels: Output channels of each stage, shallow to deep.
        strides: Stride of each stage's first convolution (the first is usually 1); an int or one
            value per spatial axis (anisotropic downsampling for thick slices).
        kernel_size: Convolution kernel size.
        norm: MONAI norm name (``"instance"``, ``"batch"``, ``"group"`` ...).
        residual: Use residual blocks.
        dropout: Dropout probability inside blocks.
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = 1,
        channels: Sequence[int] = (16, 32, 64, 128, 256),
        strides: Sequence[Stride] = (1, 2, 2, 2, 2),
        kernel_size: int = 3,
        norm: str = "instance",
        residual: bool = False,
        dropout: float | None = None,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if len(channels) != len(strides) or len(channels) < 2:
            raise ValueError(f"need one stride per stage and at least 2 stages: {channels} vs {strides}")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.channels = tuple(int(c) for c in channels)
        self.strides = tuple(s if isinstance(s, int) else tuple(int(v) for v in s) for s in strides)
        block = UnetResBlock if residual else UnetBasicBlock
        stages = []
        previous = in_channels
        for out, stride in zip(self.channels, self.strides, strict=True):
            stages.append(
                block(spatial_dims, previous, out, kernel_size, stride, norm_name=norm, dropout=dropout)
            )
            previous = out
        self.stages = nn.ModuleList(stages)

    @property
    def out_channels(self) -> int:
        """Channels of the bottleneck."""
        return self.channels[-1]

    def total_stride(self) -> tuple[int, ...]:
        """Overall downsampling factor per spatial axis (input sizes must be multiples of it)."""
        factor = [1] * self.spatial_dims
        for stride in self.strides:
            values = [stride] * self.spatial_dims if isinstance(stride, int) else list(stride)
            factor = [f * v for f, v in zip(factor, values, strict=True)]
        return tuple(factor)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Return the skip features of every stage but the last, and the bottleneck."""
        skips = []
        for stage in self.stages[:-1]:
            x = stage(x)
            skips.append(x)
        return skips, self.stages[-1](x)
