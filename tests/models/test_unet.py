import pytest
import torch

from sidepair.errors import SidepairError
from sidepair.models import Encoder, UNet

CFG2D = {
    "spatial_dims": 2,
    "in_channels": 1,
    "channels": [4, 8, 16],
    "strides": [1, 2, 2],
    "norm": "instance",
}


def test_unet_is_encoder_plus_decoder_in_2d_and_3d():
    assert UNet(CFG2D, 3)(torch.randn(2, 1, 32, 32)).shape == (2, 3, 32, 32)
    cfg3d = {**CFG2D, "spatial_dims": 3, "strides": [1, [1, 2, 2], 2]}
    assert UNet(cfg3d, 2)(torch.randn(1, 1, 8, 32, 32)).shape == (1, 2, 8, 32, 32)
    assert type(UNet(CFG2D, 2).encoder) is Encoder


def test_transfer_loads_every_encoder_tensor():
    source = Encoder(**CFG2D)
    unet = UNet(CFG2D, 2)
    n = unet.load_encoder(source.state_dict(), "pre.pt")
    assert n == len(source.state_dict()) == len(unet.encoder.state_dict())
    for name, tensor in source.state_dict().items():
        torch.testing.assert_close(unet.encoder.state_dict()[name], tensor, rtol=0, atol=0)


def test_transfer_mismatches_are_named():
    unet = UNet(CFG2D, 2)
    weights = Encoder(**CFG2D).state_dict()
    missing = dict(weights)
    name = next(iter(missing))
    del missing[name]
    with pytest.raises(
        SidepairError, match=f"pre.pt: encoder tensors do not match the U-Net's \\(missing {name}"
    ):
        unet.load_encoder(missing, "pre.pt")
    wider = Encoder(**{**CFG2D, "channels": [4, 8, 32]}).state_dict()
    with pytest.raises(SidepairError, match="shape of stages.2.* is .*32.*needs"):
        unet.load_encoder(wider, "pre.pt")
    three_d = Encoder(**{**CFG2D, "spatial_dims": 3}).state_dict()
    with pytest.raises(SidepairError, match="pre.pt: 3D weights cannot initialise a 2D encoder"):
        unet.load_encoder(three_d, "pre.pt")


DEEP = {**CFG2D, "channels": [4, 8, 16, 32], "strides": [1, 2, 2, 2]}


def test_deep_supervision_heads_train_at_lower_resolutions_and_leave_prediction_alone():
    torch.manual_seed(0)
    unet = UNet(DEEP, 3, deep_supervision=True)
    # Four stages: decoder outputs at 8, 16 and 32 pixels; nnU-Net leaves the lowest unsupervised.
    assert [k for k in unet.state_dict() if k.startswith("decoder.heads.")] == [
        "decoder.heads.0.conv.conv.weight",
        "decoder.heads.0.conv.conv.bias",
    ]
    x = torch.randn(2, 1, 32, 32)
    outputs = unet.train()(x)
    assert [tuple(o.shape) for o in outputs] == [(2, 3, 32, 32), (2, 3, 16, 16)]
    plain = UNet(DEEP, 3)
    assert not any(k.startswith("decoder.heads.") for k in plain.state_dict())
    # Evaluation reads the full-resolution output alone, as a network without heads computes it.
    weights = {k: v for k, v in unet.state_dict().items() if not k.startswith("decoder.heads.")}
    plain.load_state_dict(weights)
    torch.testing.assert_close(unet.eval()(x), plain.eval()(x), rtol=0, atol=0)
    torch.testing.assert_close(outputs[0], plain.train()(x), rtol=0, atol=0)


def test_a_shallow_network_has_no_lower_stage_to_supervise():
    unet = UNet(CFG2D, 2, deep_supervision=True).train()
    assert len(unet.decoder.heads) == 0
    assert unet(torch.randn(1, 1, 16, 16)).shape == (1, 2, 16, 16)
