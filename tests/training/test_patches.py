"""Validation on fixed patches: the same patches for every arm and seed, and a pooled Dice checked by hand."""

import numpy as np
import pytest
import torch

from sidepair.data.store import Store
from sidepair.training.patches import ValidationPatches, read_patch
from sidepair.training.segment_task import SegmentationTask
from tests.conftest import tiny_train_config


class Constant(torch.nn.Module):
    """Predicts one class everywhere."""

    def __init__(self, label: int) -> None:
        super().__init__()
        self.label = label

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(x.shape[0], 2, *x.shape[2:])
        logits[:, self.label] = 1.0
        return logits


def test_validation_patches_are_identical_across_arms_and_seeds(small_store, pretrained):
    store = Store(small_store)
    tasks = [
        SegmentationTask(tiny_train_config(small_store, seed=0), store),
        SegmentationTask(tiny_train_config(small_store, seed=1, label_fraction=0.5), store),
        SegmentationTask(tiny_train_config(small_store, seed=2, init=str(pretrained)), store),
    ]
    items = [t.val_patches.items for t in tasks]
    assert len(items[0]) == tasks[0].config.val_patches == 256
    assert items[0] == items[1] == items[2]
    assert {case for case, _ in items[0]} == set(store.labelled("val"))
    # Half of them on a kidney: the patches hold kidney, and background far from it.
    targets = [read_patch(store, c, s, (1, 32, 32), 2, "kidney")[1] for c, s in items[0]]
    with_kidney = np.mean([t.any() for t in targets])
    assert 0.4 < with_kidney < 0.9


def test_pooled_pseudo_dice_by_hand(small_store):
    store = Store(small_store)
    patches = ValidationPatches.draw(store, store.labelled("val"), (32, 32), 2, 40, "kidney")
    assert patches.score(Constant(0), torch.device("cpu"), 8) == 0.0  # nothing found
    fg = sum(int(read_patch(store, c, s, patches.size, 2, "kidney")[1].sum()) for c, s in patches.items)
    total = len(patches.items) * 32 * 32
    everything = patches.score(Constant(1), torch.device("cpu"), 8)
    assert everything == pytest.approx(2 * fg / (2 * fg + (total - fg)))
    again = ValidationPatches.draw(store, store.labelled("val"), (32, 32), 2, 40, "kidney")
    assert again.items == patches.items
