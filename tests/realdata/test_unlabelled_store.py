"""A store of real scans without any label pretrains with annotation-free sections."""

import json

import pytest

from sidepair.config import get_preset
from sidepair.data.formats import open_dataset
from sidepair.data.prepare import prepare
from sidepair.data.store import Store
from sidepair.training.pretrain import resolve_config, run_pretrain

pytestmark = pytest.mark.realdata


def test_unlabelled_real_scans_pretrain_half_sections(shared_data, tmp_path):
    # A KiTS layout of real CT with no segmentation file at all: nothing to delete afterwards.
    sources = [
        shared_data / "ts_example" / "ct.nii.gz",
        shared_data / "ircadb" / "patient_01" / "ct.nii.gz",
        shared_data / "ircadb" / "patient_07" / "ct.nii.gz",
    ]
    root = tmp_path / "kits"
    for i, source in enumerate(sources):
        (root / f"case_{i:05d}").mkdir(parents=True)
        (root / f"case_{i:05d}" / "imaging.nii.gz").symlink_to(source)
    store = Store(prepare(open_dataset(root, "kits"), tmp_path / "store", get_preset("fast-2d").preprocess))
    assert len(store) == 3 and not any(e.labelled for e in store.cases.values())
    index = json.loads((store.path / "index.json").read_text(encoding="utf-8"))
    assert [c["labelled"] for c in index["cases"]] == [False] * 3
    assert store.split("val") == [] and store.split("test") == []
    config = resolve_config(
        "fast-2d",
        store.path,
        sections="half",
        section_size=(64, 64),
        channels=(4, 8, 16),
        strides=(1, 2, 2),
        epochs=2,
        pairs_per_epoch=32,
        val_pairs=32,
        batch_size=8,
        device="cpu",
    )
    history = run_pretrain(config, tmp_path / "run", progress=False)
    info = json.loads((tmp_path / "run" / "run.json").read_text(encoding="utf-8"))
    assert info["validation"].startswith("held-out unlabelled training patients")
    assert len(info["val_cases"]) == 1 and info["labels_read"] == {"train": [], "selection": []}
    assert [h["epoch"] for h in history] == [1, 2]
    assert all(0 <= h["val_acc"] <= 1 and 0 <= h["val_mirror_acc"] <= 1 for h in history)
