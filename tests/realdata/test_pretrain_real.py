"""Half-mode pretraining on real data: ts_example (CT) and kits19_slices (PNG) in one store."""

import json

import numpy as np
import pytest

from sidepair.config import get_preset
from sidepair.data.formats import open_dataset
from sidepair.data.prepare import prepare
from sidepair.data.store import Store
from sidepair.training.pretrain import resolve_config, run_pretrain

pytestmark = pytest.mark.realdata


def test_combined_real_store_and_half_pretraining(shared_data, tmp_path):
    datasets = [open_dataset(shared_data / "ts_example"), open_dataset(shared_data / "kits19_slices")]
    store_dir = prepare(datasets, tmp_path / "store", get_preset("fast-2d").preprocess)
    store = Store(store_dir)
    assert len(store) == 25
    groups = {e.group for e in store.cases.values()}
    assert len(groups) == 6 and "ts_example__ts_example" in groups
    assert all(c.startswith(("ts_example__", "kits19_slices__")) for c in store.cases)
    assert len(store.split("val")) >= 1
    config = resolve_config(
        "fast-2d",
        store_dir,
        sections="half",
        section_size=(64, 64),
        channels=(4, 8, 16),
        strides=(1, 2, 2),
        epochs=1,
        pairs_per_epoch=32,
        val_pairs=32,
        batch_size=8,
        device="cpu",
    )
    history = run_pretrain(config, tmp_path / "run", progress=False)
    assert np.isfinite(history[0]["train_loss"]) and 0 <= history[0]["val_acc"] <= 1
    run = json.loads((tmp_path / "run" / "run.json").read_text(encoding="utf-8"))
    assert run["data"] == "real ts_example + real kits19_slices (25 cases)"
