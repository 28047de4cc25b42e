"""On-the-fly augmentation: seeded, label-aligned, off in the paper preset, and never a flip."""

import numpy as np
import pytest
import torch
import yaml

from sidepair.data.augment import Augmenter
from sidepair.data.store import Store
from sidepair.training.patches import PatchDataset
from sidepair.training.pretrain import resolve_config
from sidepair.training.segment_config import resolve_train_config
from tests.conftest import tiny_pretrain_config, tiny_train_config


def blob(dims: int) -> tuple[np.ndarray, np.ndarray]:
    """A bright block off-centre in every axis: at low x (left of the array) and low y."""
    shape = (48, 48) if dims == 2 else (24, 48, 48)
    label = np.zeros((1, *shape), dtype=np.int64)
    if dims == 2:
        label[0, 8:20, 6:18] = 1
    else:
        label[0, 8:16, 8:20, 6:18] = 1
    return (label * 10.0).astype(np.float32), label


def centroid(a: np.ndarray) -> np.ndarray:
    return np.argwhere(a[0] > 0).mean(axis=0)


@pytest.mark.parametrize("dims", [2, 3])
def test_never_flips_and_label_follows_image(dims):
    image, label = blob(dims)
    aug = Augmenter(dims, with_label=True)
    centre = np.array(image.shape[1:]) / 2
    moved = 0
    for seed in range(60):
        new_image, new_label = aug(image, label, (seed, 0, 0))
        assert new_image.shape == image.shape and new_image.dtype == np.float32
        assert new_label.shape == label.shape and new_label.dtype == label.dtype
        c = centroid(new_label)
        # Every in-plane axis keeps its side of the centre (a flip would move the block across it).
        assert (c[-2:] < centre[-2:]).all(), (seed, c)
        if dims == 3:
            assert abs(c[0] - centroid(label)[0]) < 1.0  # no rotation out of the axial plane
        bright = new_image[0] > new_image[0].min() + 0.5 * np.ptp(new_image[0])
        dice = 2 * (bright & (new_label[0] > 0)).sum() / (bright.sum() + (new_label[0] > 0).sum())
        assert dice > 0.85, (seed, dice)
        moved += not np.array_equal(new_label, label)
    assert moved > 10  # the geometric transform really runs


def test_same_seed_same_draw_other_seed_other_draw():
    image, label = blob(2)
    aug = Augmenter(2, with_label=True)
    a, la = aug(image, label, (1, 2, 3))
    b, lb = Augmenter(2, with_label=True)(image, label, (1, 2, 3))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    others = [aug(image, label, (1, 2, k))[0] for k in range(4, 10)]
    assert any(not np.array_equal(a, o) for o in others)


def test_paper_preset_has_no_augmentation():
    assert resolve_train_config("kits19-paper", "s").augment is False
    assert resolve_config("kits19-paper", "s").augment is False


def test_patch_dataset_items_are_seeded_by_epoch_and_index(small_store):
    store = Store(small_store)
    config = tiny_train_config(small_store, augment=True, samples_per_epoch=8)
    ids = store.split("train")
    first = PatchDataset(store, ids, config, epoch=3)
    again = PatchDataset(store, ids, config, epoch=3)
    plain = PatchDataset(store, ids, config.model_copy(update={"augment": False}), epoch=3)
    for i in range(4):
        (x1, y1), (x2, y2), (x3, _) = first[i], again[i], plain[i]
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
        assert x1.shape == x3.shape == (1, 32, 32)
    assert any(not torch.equal(first[i][0], plain[i][0]) for i in range(4))


@pytest.mark.integration
def test_augmented_runs_record_it(small_store, tmp_path):
    from sidepair.training.pretrain import run_pretrain
    from sidepair.training.segment import run_train

    seg = run_train(tiny_train_config(small_store, augment=True, epochs=1), tmp_path / "seg", progress=False)
    pre = run_pretrain(tiny_pretrain_config(small_store, augment=True), tmp_path / "pre", progress=False)
    assert np.isfinite(seg[0]["train_loss"]) and np.isfinite(pre[0]["train_loss"])
    for run in ("seg", "pre"):
        assert yaml.safe_load((tmp_path / run / "config.yaml").read_text(encoding="utf-8"))["augment"] is True


@pytest.mark.parametrize("dims", [2, 3])
def test_mirror_flips_left_right_half_the_time_with_the_label(dims):
    image, label = blob(dims)
    aug = Augmenter(dims, with_label=True, recipe=None, mirror=True)
    width = image.shape[-1]
    flipped = 0
    for seed in range(40):
        new_image, new_label = aug(image, label, (seed, 0, 0))
        if np.array_equal(new_label, label):
            np.testing.assert_array_equal(new_image, image)
            continue
        # Mirrored along the last (left-right) axis only: the block moved to the other side, nowhere else.
        np.testing.assert_array_equal(new_label, label[..., ::-1])
        np.testing.assert_array_equal(new_image, image[..., ::-1])
        assert centroid(new_label)[-1] > width / 2
        flipped += 1
    assert 10 < flipped < 30


def test_strong_recipe_keeps_label_and_image_aligned():
    image, label = blob(2)
    aug = Augmenter(2, with_label=True, recipe="strong", mirror=True)
    for seed in range(20):
        new_image, new_label = aug(image, label, (seed, 1, 2))
        assert new_image.shape == image.shape and new_label.dtype == label.dtype
        assert set(np.unique(new_label)) <= {0, 1} and new_label.any()
        # The block is the brightest part wherever it went (noise, blur and gamma aside).
        assert new_image[0][new_label[0] > 0].mean() > new_image[0][new_label[0] == 0].mean() + 3


def test_patch_dataset_mirrors_kidney_targets_and_never_sides(small_store):
    store = Store(small_store)
    ids = store.split("train")
    kidney = PatchDataset(store, ids, tiny_train_config(small_store, augment=False, samples_per_epoch=8), 0)
    sides = PatchDataset(
        store, ids, tiny_train_config(small_store, augment=False, labels="sides", samples_per_epoch=8), 0
    )
    assert kidney.augment is not None and sides.augment is None
