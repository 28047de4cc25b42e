import pytest
import torch

from sidepair.training.losses import ContrastiveLoss, PairBCELoss, pair_distance


def test_contrastive_loss_matches_hand_computed_values():
    loss = ContrastiveLoss(margin=1.0)
    e1 = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    e2 = torch.tensor([[3.0, 4.0], [3.0, 4.0], [0.6, 0.0], [1.0, 1.0]])
    # d = 5, 5, 0.6, 0; same = 1, 0, 0, 1
    same = torch.tensor([1.0, 0.0, 0.0, 1.0])
    # terms: 1*25; 0*25 + max(0, 1-5)^2 = 0; max(0, 1-0.6)^2 = 0.16; 0
    assert float(loss(e1, e2, same)) == pytest.approx((25 + 0 + 0.16 + 0) / 4, abs=1e-5)
    assert float(loss(e1[2:3], e2[2:3], torch.tensor([1.0]))) == pytest.approx(0.36, abs=1e-5)
    assert float(ContrastiveLoss(margin=2.0)(e1[2:3], e2[2:3], torch.tensor([0.0]))) == pytest.approx(
        1.96, abs=1e-5
    )


def test_distance_and_gradient_at_zero():
    e = torch.zeros(1, 3, requires_grad=True)
    d = pair_distance(e, torch.zeros(1, 3))
    d.sum().backward()
    assert float(d.detach()) == pytest.approx(0.0, abs=1e-5) and torch.isfinite(e.grad).all()


def test_pair_bce():
    logit = torch.tensor([0.0, 100.0])
    value = PairBCELoss()(logit, torch.tensor([1.0, 1.0]))
    assert float(value) == pytest.approx(torch.log(torch.tensor(2.0)).item() / 2, abs=1e-5)
