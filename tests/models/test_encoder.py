import pytest
import torch

from sidepair.models import Encoder, Siamese


@pytest.mark.parametrize(
    "dims,size,strides", [(2, (64, 64), (1, 2, 2)), (3, (16, 32, 32), (1, (1, 2, 2), 2))]
)
def test_encoder_returns_skips_and_bottleneck(dims, size, strides):
    enc = Encoder(dims, 1, (4, 8, 16), strides)
    skips, bottleneck = enc(torch.randn(2, 1, *size))
    assert [s.shape[1] for s in skips] == [4, 8]
    assert bottleneck.shape[1] == 16
    factor = enc.total_stride()
    assert tuple(bottleneck.shape[2:]) == tuple(s // f for s, f in zip(size, factor, strict=True))


def test_siamese_branches_share_the_encoder():
    model = Siamese(Encoder(2, 1, (4, 8, 16), (1, 2, 2)), embedding_dim=8)
    x = torch.randn(3, 1, 32, 32)
    e1, e2 = model(x, x)
    torch.testing.assert_close(e1, e2)
    assert all(k.startswith(("encoder.", "projection.")) for k in model.state_dict())
    # The siamese branch and a fresh encoder are the same class: a strict load transfers every tensor.
    fresh = Encoder(2, 1, (4, 8, 16), (1, 2, 2))
    weights = {k[len("encoder.") :]: v for k, v in model.state_dict().items() if k.startswith("encoder.")}
    assert fresh.load_state_dict(weights, strict=True).missing_keys == []
    assert len(weights) == len(fresh.state_dict())


def test_bce_head_gives_a_logit_per_pair():
    model = Siamese(Encoder(2, 1, (4, 8), (1, 2)), embedding_dim=8, head="bce")
    e1, e2 = model(torch.randn(5, 1, 16, 16), torch.randn(5, 1, 16, 16))
    assert model.same_logit(e1, e2).shape == (5,)


def test_bad_encoder_arguments():
    with pytest.raises(ValueError, match="spatial_dims must be 2 or 3"):
        Encoder(4)
    with pytest.raises(ValueError, match="one stride per stage"):
        Encoder(2, 1, (4, 8), (1,))
