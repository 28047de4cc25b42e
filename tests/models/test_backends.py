"""Network backends: one dispatch from an encoder config to the networks it describes (issue #29)."""

import torch

from sidepair.models.backends import (
    MonaiBackend,
    NnUNetBackend,
    backend_of,
    bottleneck,
    build_encoder,
    segmentation_network,
    total_stride,
)
from sidepair.models.encoder import Encoder
from sidepair.models.unet import UNet

MONAI = {
    "spatial_dims": 2,
    "in_channels": 1,
    "channels": [4, 8, 16],
    "strides": [1, 2, [2, 1]],
    "norm": "instance",
}


def test_a_config_without_architecture_is_sidepairs_and_builds_its_networks():
    assert isinstance(backend_of(MONAI), MonaiBackend)
    assert isinstance(backend_of({**MONAI, "architecture": "nnunet"}), NnUNetBackend)
    encoder, unet = build_encoder(MONAI), segmentation_network(MONAI, 3)
    assert type(encoder) is Encoder and type(unet) is UNet
    assert unet.encoder.state_dict().keys() == encoder.state_dict().keys()  # transfer is a strict load
    assert total_stride(MONAI) == [4, 2]
    x = torch.zeros(2, 1, 16, 16)
    assert unet(x).shape == (2, 3, 16, 16)
    assert bottleneck(encoder(x)).shape == (2, 16, 4, 8)


def test_nnunets_strides_come_from_its_plans_architecture():
    config = {
        "architecture": "nnunet",
        "spatial_dims": 3,
        "arch_kwargs": {"strides": [[1, 1, 1], [1, 2, 2], 2]},
    }
    assert total_stride(config) == [2, 4, 4]
    stages = [torch.zeros(1, 4, 8, 8), torch.zeros(1, 8, 4, 4)]
    assert bottleneck(stages) is stages[-1]
