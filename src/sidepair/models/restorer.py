"""The restoration network: the shared :class:`Encoder` and a light decoder without skips.

Without skip connections every restored voxel has to pass through the bottleneck, so what the task
teaches lands in the whole encoder (the part that transfers), not in a shortcut from the first stage
to the output. The decoder is light: one MONAI transposed-convolution upsampling and one basic block
per encoder stride, at most ``width`` channels.
"""

from __future__ import annotations

import torch
from monai.networks.blocks import UpSample
from monai.networks.blocks.dynunet_block import UnetBasicBlock, UnetOutBlock
from torch import nn

from sidepair.models.encoder import Encoder


class Restorer(nn.Module):
    """Encoder plus light decoder, mapping a corrupted section to its restoration.

    Args:
        encoder: The encoder (later transferred into the U-Net).
        width: Most channels of a decoder stage.
        norm: MONAI norm name.
    """

    def __init__(self, encoder: Encoder, width: int = 32, norm: str = "instance") -> None:
        super().__init__()
        self.encoder = encoder
        dims = encoder.spatial_dims
        layers: list[nn.Module] = []
        previous = encoder.out_channels
        for level in range(len(encoder.channels) - 1, -1, -1):
            stride = encoder.strides[level]
            factors = [stride] * dims if isinstance(stride, int) else list(stride)
            if all(f == 1 for f in factors):
                continue
            out = min(width, encoder.channels[max(level - 1, 0)])
            layers.append(UpSample(dims, previous, out, scale_factor=factors, mode="deconv"))
            layers.append(UnetBasicBlock(dims, out, out, 3, 1, norm_name=norm))
            previous = out
        self.decoder = nn.Sequential(*layers)
        self.out = UnetOutBlock(dims, previous, encoder.in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The restored section, the input's shape."""
        _, bottleneck = self.encoder(x)
        return self.out(self.decoder(bottleneck))
