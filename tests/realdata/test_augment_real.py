"""Augmentation on real CT (TotalSegmentator example): the right kidney stays on its side of the left one."""

import numpy as np
import pytest

from sidepair.config import get_preset
from sidepair.data.formats import open_dataset
from sidepair.data.prepare import prepare
from sidepair.data.store import Store
from sidepair.training.patches import PatchDataset
from sidepair.training.segment_config import resolve_train_config

pytestmark = pytest.mark.realdata


def test_augmented_real_patches_keep_the_sides(shared_data, tmp_path):
    store_dir = prepare(
        open_dataset(shared_data / "ts_example"), tmp_path / "store", get_preset("fast-2d").preprocess
    )
    store = Store(store_dir)
    config = resolve_train_config(
        "fast-2d",
        store_dir,
        labels="sides",
        patch_size=(160, 224),
        samples_per_epoch=40,
        foreground_fraction=1.0,
        augment=True,
        device="cpu",
    )
    ids = list(store.cases)
    augmented = PatchDataset(store, ids, config, epoch=0)
    plain = PatchDataset(store, ids, config.model_copy(update={"augment": False}), epoch=0)
    both, changed = 0, 0
    for i in range(len(plain)):
        (x0, y0), (x1, y1) = plain[i], augmented[i]
        y0, y1 = y0.numpy()[0], y1.numpy()[0]
        assert x1.shape == x0.shape == (1, 160, 224) and y1.shape == y0.shape
        assert set(np.unique(y1)) <= {0, 1, 2}
        changed += not np.array_equal(y0, y1)
        if all((y0 == c).sum() > 50 and (y1 == c).sum() > 50 for c in (1, 2)):
            both += 1
            # Columns are RAS x: the right kidney (1) lies at larger x than the left (2), before and after.
            before = np.argwhere(y0 == 1)[:, 1].mean() - np.argwhere(y0 == 2)[:, 1].mean()
            after = np.argwhere(y1 == 1)[:, 1].mean() - np.argwhere(y1 == 2)[:, 1].mean()
            assert before > 0 and after > 0, (i, before, after)
    assert both >= 10 and changed >= 10
