"""nnU-Net's preprocessing in a store: pretraining reads nnU-Net's array, sides from world coordinates."""

import numpy as np
import pytest

from sidepair.data.nnunet_grid import nnunet_settings
from sidepair.data.sections import Section, SectionSampler
from sidepair.data.store import Store
from sidepair.errors import ConfigError, DataError

pytestmark = pytest.mark.integration


def test_pretraining_reads_exactly_the_array_nnunets_preprocessor_writes(nnunet_planned, nnunet_store):
    import blosc2

    store = Store(nnunet_store)
    assert store.settings.nnunet.configuration == "2d"
    for case_id, entry in store.cases.items():
        written = blosc2.open(str(nnunet_planned["preprocessed"] / f"{case_id}.b2nd"), mode="r")[:][0]
        sampler = SectionSampler(store, [case_id], "half", 3, (8, 8, 8))
        whole = Section(case_id, "right", (0, 0, 0), tuple(entry.shape))
        read = sampler.read(whole)[0]  # in nnU-Net's axis order
        assert read.shape == written.shape
        assert float(np.abs(read - written).max()) == 0.0


def test_sides_from_world_coordinates_match_nnunets_own_labels_on_an_ipl_dataset(
    nnunet_planned, nnunet_store
):
    import blosc2

    store = Store(nnunet_store)
    for case_id, entry in store.cases.items():
        assert entry.original.axcodes == "IPL"
        seg = blosc2.open(str(nnunet_planned["preprocessed"] / f"{case_id}_seg.b2nd"), mode="r")[:][0]
        side = np.transpose(np.asarray(store.array(case_id, "side")), entry.network.order)
        flips = tuple(m for m, f in enumerate(entry.network.flips) if f)
        side = np.flip(side, flips)
        # nnU-Net resamples labels linearly, sidepair by nearest neighbour: only rims may differ.
        assert (side[seg == 1] == 1).mean() > 0.9, case_id  # kidney_right
        assert (side[seg == 2] == 2).mean() > 0.9, case_id  # kidney_left
        assert entry.sides["right"].bbox[2][0] > entry.midline.x_index > entry.sides["left"].bbox[2][1]


def test_a_section_is_mirrored_along_the_axis_that_runs_left_right(nnunet_store):
    store = Store(nnunet_store)
    case_id = sorted(store.cases)[0]
    sampler = SectionSampler(store, [case_id], "half", 2, (32, 32))
    order = store.cases[case_id].network.order
    assert sampler.lateral_dim == order.index(2) - 3


def test_a_plans_file_without_the_configuration_is_refused(nnunet_planned):
    with pytest.raises(DataError, match="no configuration '3d_lowres_x'"):
        nnunet_settings(nnunet_planned["plans"], "3d_lowres_x")


def test_pretraining_nnunet_on_a_store_of_our_preprocessing_is_refused(nnunet_planned, small_store):
    from sidepair.training.pretext import build_task
    from tests.conftest import tiny_pretrain_config

    config = tiny_pretrain_config(
        small_store, sections="half", section_size=(32, 32), architecture="nnunet",
        plans=str(nnunet_planned["plans"]), configuration="2d",
    )  # fmt: skip
    with pytest.raises(ConfigError, match="prepared with ours preprocessing, not nnU-Net's"):
        build_task(config, Store(small_store))
