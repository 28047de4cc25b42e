"""What a run config starts from: the preset, and what an nnU-Net store's plans already say (issue #29)."""

import pytest

from sidepair.errors import ConfigError
from sidepair.nnunet_plans import nnunet_dims, plans_configuration
from sidepair.training.pretrain_config import resolve_config
from sidepair.training.run_defaults import nnunet_defaults
from sidepair.training.segment_config import resolve_train_config


def test_a_3d_preset_on_a_2d_nnunet_store_needs_only_the_architecture(nnunet_planned, nnunet_store):
    """The issue's symptom: the store and the plans both say 2d; the 3D preset used to win."""
    config = resolve_config("kits19-paper", nnunet_store, architecture="nnunet", sections="half")
    assert (config.dims, config.configuration) == (2, "2d")
    assert config.plans == str(nnunet_planned["plans"])
    assert config.section_size == (112, 112)  # the preset's half sections, in-plane
    assert config.encoder_config()["spatial_dims"] == 2  # no "2D but the run is 3D"
    train = resolve_train_config("kits19-paper", nnunet_store, architecture="nnunet")
    assert (train.dims, train.configuration, train.plans) == (2, "2d", str(nnunet_planned["plans"]))
    assert len(train.patch_size) == 2


def test_given_plans_and_dims_win_and_other_architectures_are_left_alone(nnunet_planned, nnunet_store):
    plans = str(nnunet_planned["plans"])
    assert nnunet_defaults(nnunet_store, {"architecture": "monai"}) == {}
    assert nnunet_defaults(nnunet_store, {"architecture": "nnunet", "dims": 3}) == {
        "plans": plans,
        "configuration": "2d",
    }
    given = {"architecture": "nnunet", "plans": plans, "configuration": "3d_fullres"}
    assert nnunet_defaults(nnunet_store, given) == {"dims": 3}
    # An explicit --dims that disagrees with the preset still asks for a section size, as before.
    with pytest.raises(ConfigError, match="--dims 3 differs from preset fast-2d"):
        resolve_config("fast-2d", nnunet_store, dims=3)


def test_a_configuration_inherits_its_parent_and_an_unknown_one_is_named(tmp_path):
    plans = tmp_path / "plans.json"
    plans.write_text(
        '{"transpose_forward": [0, 1, 2], "configurations": {'
        '"3d_lowres": {"patch_size": [64, 64, 64], "spacing": [2, 2, 2]},'
        '"3d_cascade_fullres": {"inherits_from": "3d_lowres", "spacing": [1, 1, 1]}}}'
    )
    assert plans_configuration(plans, "3d_cascade_fullres") == {
        "patch_size": [64, 64, 64],
        "spacing": [1, 1, 1],
        "inherits_from": "3d_lowres",
    }
    assert nnunet_dims(plans, "3d_cascade_fullres") == 3
    with pytest.raises(
        ConfigError, match="no configuration '2d'; the plans have 3d_lowres, 3d_cascade_fullres"
    ):
        nnunet_dims(plans, "2d")
