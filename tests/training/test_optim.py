"""The optimiser and schedule are settings: SGD with Nesterov, AdamW, poly and cosine over a step budget."""

import pytest
import torch

from sidepair.config import OptimiserSettings
from sidepair.training.optim import build_optimizer, build_scheduler, lr_factor
from sidepair.training.segment_config import resolve_train_config


def test_poly_decays_to_zero_over_the_budget_after_a_warm_up():
    s = OptimiserSettings(schedule="poly", warmup_steps=10)
    assert lr_factor(0, 110, s) == pytest.approx(0.1)
    assert lr_factor(9, 110, s) == pytest.approx(1.0)
    assert lr_factor(10, 110, s) == pytest.approx(1.0)
    assert lr_factor(60, 110, s) == pytest.approx(0.5**0.9)  # nnU-Net's exponent
    assert lr_factor(110, 110, s) == 0.0
    cosine = OptimiserSettings(schedule="cosine")
    assert lr_factor(50, 100, cosine) == pytest.approx(0.5)
    assert lr_factor(0, 100, OptimiserSettings(schedule="constant")) == 1.0


def test_optimisers_and_a_scheduler_stepped_per_step():
    params = [torch.nn.Parameter(torch.ones(3))]
    sgd = build_optimizer(
        params, OptimiserSettings(optimizer="sgd", lr=0.01, momentum=0.99, weight_decay=3e-5)
    )
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.param_groups[0]["nesterov"] and sgd.param_groups[0]["momentum"] == 0.99
    assert isinstance(build_optimizer(params, OptimiserSettings(optimizer="adamw")), torch.optim.AdamW)
    scheduler = build_scheduler(sgd, OptimiserSettings(schedule="poly", lr=0.01), total_steps=4)
    lrs = []
    for _ in range(4):
        sgd.step()
        scheduler.step()
        lrs.append(sgd.param_groups[0]["lr"])
    assert lrs[-1] == 0.0 and lrs == sorted(lrs, reverse=True)
    plateau = build_scheduler(sgd, OptimiserSettings(schedule="plateau"), total_steps=4)
    assert isinstance(plateau, torch.optim.lr_scheduler.ReduceLROnPlateau)


def test_a_step_budget_sets_the_epochs_and_an_epoch_budget_replaces_it():
    config = resolve_train_config("fast-2d", "s", steps=100, samples_per_epoch=64, batch_size=16)
    assert config.steps_per_epoch == 4 and config.epochs == 25
    assert resolve_train_config("fast-2d", "s", steps=101, samples_per_epoch=64, batch_size=16).epochs == 26
    # The preset's budget is in steps; --epochs given alone replaces it.
    assert resolve_train_config("fast-2d", "s").steps == 1500
    given = resolve_train_config("fast-2d", "s", epochs=3)
    assert given.epochs == 3 and given.steps is None


def test_mirroring_is_on_for_kidney_labels_and_off_for_side_labels():
    from sidepair.errors import ConfigError

    assert resolve_train_config("fast-2d", "s").mirror is True  # a mirrored kidney is still a kidney
    assert resolve_train_config("fast-2d", "s", labels="kidney+tumour").mirror is True
    assert resolve_train_config("fast-2d", "s", labels="sides").mirror is False
    with pytest.raises(ConfigError, match="mirror: a mirrored right kidney looks like a left one"):
        resolve_train_config("fast-2d", "s", labels="sides", mirror=True)
