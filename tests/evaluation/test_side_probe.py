"""The side probe: organ maps on the store grid, occlusion, and the same pairs validation scores."""

import json

import numpy as np
import pytest

from sidepair.data.store import Store
from sidepair.errors import SidepairError
from sidepair.evaluation.side_probe import occlude, organ_files, organ_mask_on_store, probe
from sidepair.training.pretrain import run_pretrain
from tests.conftest import tiny_pretrain_config


def test_organ_maps_land_on_the_store_grid_on_their_side_in_every_orientation(small_store):
    store = Store(small_store)
    orientations = set()
    for case_id, entry in store.cases.items():
        orientations.add(entry.original.axcodes)
        liver = organ_mask_on_store(store, case_id, ("liver",))
        spleen = organ_mask_on_store(store, case_id, ("spleen",))
        assert liver is not None and spleen is not None
        assert liver.shape == tuple(entry.shape)
        # Store arrays are RAS (z, y, x), x toward the patient's right: the liver right of the midline.
        mid = entry.midline.x_index
        assert np.argwhere(liver)[:, 2].mean() > mid > np.argwhere(spleen)[:, 2].mean(), case_id
        both = organ_mask_on_store(store, case_id)
        assert both.sum() == liver.sum() + spleen.sum()
    assert len(orientations) >= 3


def test_no_organ_maps_beside_a_scan_gives_none(tmp_path):
    scan = tmp_path / "ct.nii.gz"
    scan.write_bytes(b"")
    assert organ_files(scan) == []
    (tmp_path / "segmentations").mkdir()
    (tmp_path / "segmentations" / "liver.nii.gz").write_bytes(b"")
    assert organ_files(scan) == [(tmp_path / "segmentations" / "liver.nii.gz", None)]


def test_occlude_fills_the_organ_and_its_rim_with_the_median_body_value():
    crop = np.full((1, 9, 9), -2.0, dtype=np.float32)  # air
    crop[0, 1:8, 1:8] = 1.0  # body
    crop[0, 1:4, 1:8] = 3.0  # more body, brighter
    crop[0, 5, 5] = 10.0  # the organ
    organ = np.zeros_like(crop, dtype=bool)
    organ[0, 5, 5] = True
    out = occlude(crop, organ, background=-2.0)
    assert out[0, 5, 5] == 1.0 and out[0, 4, 5] == 1.0 and out[0, 5, 6] == 1.0  # organ and its rim
    assert out[0, 4, 4] == crop[0, 4, 4] and out[0, 0, 0] == -2.0  # the rest untouched
    assert out[0, 2, 2] == 3.0


def test_probe_scores_exactly_the_pairs_validation_scored(small_store, tmp_path):
    config = tiny_pretrain_config(
        small_store, sections="half", section_size=(32, 32), side_head=True, loss="bce"
    )
    run_pretrain(config, tmp_path / "run", progress=False)
    logged = json.loads((tmp_path / "run" / "metrics.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    out = probe(tmp_path / "run", small_store, n_pairs=config.val_pairs, seed=config.seed)
    assert out["acc"] == pytest.approx(logged["val_acc"])
    assert out["mirror_acc"] == pytest.approx(logged["val_mirror_acc"])
    assert out["pairs"] == config.val_pairs and out["cases_with_organs"] == out["cases"] >= 1
    assert 0 <= out["organ_pairs"] <= out["pairs"]
    for key in ("side_acc", "side_mirror_acc", "occluded_acc"):
        assert 0.0 <= out[key] <= 1.0 or (key == "occluded_acc" and out["organ_pairs"] == 0)
    assert out["organ_sections"] > 0  # half sections of the phantom hold liver or spleen


def test_probe_refuses_another_task(small_store, tmp_path):
    config = tiny_pretrain_config(small_store, task="restoration", sections="half", section_size=(32, 32))
    run_pretrain(config, tmp_path / "run", progress=False)
    with pytest.raises(SidepairError, match="restoration pretraining run"):
        probe(tmp_path / "run", small_store)
