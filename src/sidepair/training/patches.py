"""Segmentation patches: where they are drawn, how they are read, the training set, the fixed validation set.

Training draws new patches every epoch from ``(seed, epoch)``, a share of them centred on kidney voxels
(nnU-Net forces a third of each batch onto foreground). Validation during training reads one fixed set of
patches, drawn once per store from its validation cases with a seed of its own, so every arm and every
seed of an experiment is scored on the very same patches; its pseudo-Dice pools true and false positives
over all of them, as nnU-Net's does. Whole validation volumes are scored once, for the chosen checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from sidepair.config import LabelMode
from sidepair.data.augment import Augmenter
from sidepair.data.sections import read_crop
from sidepair.data.store import Store
from sidepair.errors import StoreError
from sidepair.training.distributed import gather_lists, shard
from sidepair.training.segment_config import TrainConfig

VAL_PATCH_SEED = 7919  # validation patches depend on the store and their count, never on a run's seed
VAL_FOREGROUND = 0.5  # half on a kidney, half anywhere: false positives far from the kidneys count


def target_of(label: np.ndarray, side: np.ndarray | None, mode: LabelMode) -> np.ndarray:
    """Training target: kidney (0/1), kidney+tumour (0/1/2) or sides (0, 1 right, 2 left)."""
    if mode == "kidney":
        return (label > 0).astype(np.int64)
    if mode == "kidney+tumour":
        return label.astype(np.int64)
    if side is None:
        raise StoreError("label mode 'sides' needs the store's side maps")
    return np.where(label > 0, side, 0).astype(np.int64)


def crop_size(patch_size: Sequence[int], dims: int) -> tuple[int, ...]:
    """The store crop of a patch: one slice of ``patch_size`` in 2D, the patch itself in 3D."""
    return (1, *patch_size) if dims == 2 else tuple(patch_size)


def draw_starts(
    store: Store,
    case_ids: Sequence[str],
    count: int,
    size: tuple[int, ...],
    dims: int,
    foreground_fraction: float,
    rng: np.random.Generator,
) -> list[tuple[str, tuple[int, ...]]]:
    """``count`` patch corners (case, start on the store grid), a share centred in a kidney's box.

    A case without kidney on the grid (a negative) gives background patches only.
    """
    items: list[tuple[str, tuple[int, ...]]] = []
    for _ in range(count):
        case_id = case_ids[int(rng.integers(len(case_ids)))]
        entry = store.cases[case_id]
        shape = entry.shape
        if rng.random() < foreground_fraction and entry.kidney_sides:
            side = rng.choice(entry.kidney_sides)
            box = entry.side_box(side)
            assert box is not None
            centre = [rng.uniform(lo, hi) for lo, hi in box]
        else:
            centre = [rng.uniform(0, n) for n in shape]
        if dims == 2:
            start = (int(np.clip(centre[0], 0, shape[0] - 1)),)
            start += tuple(int(c - s / 2) for c, s in zip(centre[1:], size[1:], strict=True))
        else:
            start = tuple(int(c - s / 2) for c, s in zip(centre, size, strict=True))
        items.append((case_id, start))
    return items


def read_patch(
    store: Store, case_id: str, start: tuple[int, ...], size: tuple[int, ...], dims: int, labels: LabelMode
) -> tuple[np.ndarray, np.ndarray]:
    """Image and target of one patch, channel first, in store order."""
    image = read_crop(store.array(case_id), start, size, store.background_value(case_id))
    label = read_crop(store.array(case_id, "label"), start, size, 0)
    side = read_crop(store.array(case_id, "side"), start, size, 0) if labels == "sides" else None
    target = target_of(label, side, labels)
    return (image[0:1], target[0:1]) if dims == 2 else (image[None], target[None])


@dataclass(frozen=True)
class ValidationPatches:
    """A fixed set of validation patches and their pooled kidney pseudo-Dice.

    Attributes:
        store: The store.
        items: (case, start) of every patch, the same for every run on the store.
        size: Store crop size of a patch.
        dims: 2 or 3.
        labels: Target mode (the score is of the kidney region, every non-zero label).
    """

    store: Store
    items: tuple[tuple[str, tuple[int, ...]], ...]
    size: tuple[int, ...]
    dims: int
    labels: LabelMode

    @classmethod
    def draw(
        cls,
        store: Store,
        case_ids: Sequence[str],
        patch_size: Sequence[int],
        dims: int,
        count: int,
        labels: LabelMode,
    ) -> ValidationPatches:
        """Draw ``count`` patches from ``case_ids`` with the fixed validation seed."""
        size = crop_size(patch_size, dims)
        rng = np.random.default_rng([VAL_PATCH_SEED, count, *(ord(c) for c in "".join(sorted(case_ids)))])
        items = draw_starts(store, sorted(case_ids), count, size, dims, VAL_FOREGROUND, rng)
        return cls(store, tuple(items), size, dims, labels)

    def score(self, model: nn.Module, device: torch.device, batch_size: int) -> float:
        """Kidney Dice pooled over every patch (2 TP / (2 TP + FP + FN)); NaN if none has kidney or any."""
        counts = np.zeros(3)
        mine = shard(list(self.items))  # under DDP each rank scores its share
        for lo in range(0, len(mine), batch_size):
            pairs = [
                read_patch(self.store, c, s, self.size, self.dims, self.labels)
                for c, s in mine[lo : lo + batch_size]
            ]
            images, targets = (np.stack(x) for x in zip(*pairs, strict=True))
            views = [self.store.cases[c].network for c, _ in mine[lo : lo + batch_size]]
            if views[0] is not None:  # nnU-Net's axis order (one per store)
                images = np.stack([views[0].to_network(i) for i in images])
            logits = model(torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).to(device))
            pred = logits.argmax(1).cpu().numpy()
            if views[0] is not None:
                pred = np.stack([views[0].to_store(p[None])[0] for p in pred])
            p, t = pred > 0, targets[:, 0] > 0
            counts += [np.sum(p & t), np.sum(p & ~t), np.sum(~p & t)]
        tp, fp, fn = np.sum(np.asarray(gather_lists([counts.tolist()])), axis=0)
        total = 2 * tp + fp + fn
        return float(2 * tp / total) if total > 0 else math.nan


class PatchDataset(Dataset):
    """Random training patches (2D slices or 3D crops), a share of them centred on kidney voxels.

    Args:
        store: The store.
        case_ids: Labelled training cases.
        config: Run config.
        epoch: Epoch; with the seed it fixes every draw.
    """

    def __init__(self, store: Store, case_ids: list[str], config: TrainConfig, epoch: int) -> None:
        self.store = store
        self.config = config
        self.epoch = epoch
        recipe = config.augment_recipe if config.augment else None
        self.augment = (
            Augmenter(config.dims, with_label=True, recipe=recipe, mirror=config.mirror)
            if config.augment or config.mirror
            else None
        )
        rng = np.random.default_rng([config.seed, epoch, 31337])
        self.size = crop_size(config.patch_size, config.dims)
        self.items = draw_starts(
            store, case_ids, config.samples_per_epoch, self.size, config.dims, config.foreground_fraction, rng
        )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        case_id, start = self.items[i]
        image, target = read_patch(
            self.store, case_id, start, self.size, self.config.dims, self.config.labels
        )
        if self.augment is not None:  # in store order: the rotation is in the axial plane
            image, target = self.augment(image, target, (self.config.seed, self.epoch, i))
        view = self.store.cases[case_id].network
        if view is not None:  # nnU-Net's axis order, as nnU-Net feeds its network this case
            image, target = view.to_network(image), view.to_network(target)
        return torch.from_numpy(np.ascontiguousarray(image)), torch.from_numpy(np.ascontiguousarray(target))
