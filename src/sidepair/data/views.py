"""Two augmented views of one section for the contrastive-views pretext task (SimCLR-style).

The views are composed from MONAI transforms as in MONAI's self-supervised tutorial and nnssl's SimCLR:
an affine (rotation up to 15 degrees in-plane, scaling up to 20 %, a shift up to 10 % of the size),
intensity scaling, shift, gamma, noise and smoothing, and coarse dropout. A left-right mirror is added
only with ``mirror``: SimCLR's recipe flips by default, here it is off so that the generic tasks and
side-pair differ only in the task. Nothing here is written by hand.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from monai.transforms import (
    Compose,
    RandAdjustContrast,
    RandAffine,
    RandCoarseDropout,
    RandGaussianNoise,
    RandGaussianSmooth,
    RandScaleIntensity,
    RandShiftIntensity,
)
from torch.utils.data import Dataset

from sidepair.data.augment import item_state, lateral_flip
from sidepair.data.sections import Section, SectionSampler


class ViewMaker:
    """Random, seeded views of a channel-first section.

    Args:
        size: The section's spatial size ((y, x) in 2D, (z, y, x) in 3D).
        mirror: Mirror each view left-right with probability 0.5.
    """

    def __init__(self, size: Sequence[int], mirror: bool = False) -> None:
        dims = len(size)
        rotate = (math.radians(15.0),) if dims == 2 else (math.radians(15.0), 0.0, 0.0)
        steps = [lateral_flip(dims)] if mirror else []
        steps += [
            RandAffine(
                prob=1.0,
                rotate_range=rotate,
                scale_range=(0.2,) * dims,
                translate_range=tuple(0.1 * s for s in size),
                padding_mode="border",
            ),
            RandScaleIntensity(factors=0.2, prob=0.8),
            RandShiftIntensity(offsets=0.2, prob=0.8),
            RandAdjustContrast(gamma=(0.7, 1.5), prob=0.5),
            RandGaussianNoise(std=0.1, prob=0.5),
            RandGaussianSmooth(prob=0.3),
            RandCoarseDropout(
                holes=1,
                max_holes=4,
                spatial_size=[max(1, s // 8) for s in size],
                max_spatial_size=[max(2, s // 4) for s in size],
                prob=0.5,
            ),
        ]
        self.transform = Compose(steps)

    def __call__(self, section: np.ndarray, seed: tuple[int, ...]) -> np.ndarray:
        """One view of ``section``, fixed by ``seed``."""
        self.transform.set_random_state(seed=item_state(seed, 1601))
        return np.asarray(self.transform(section.astype(np.float32, copy=False)), dtype=np.float32)


class ViewDataset(Dataset):
    """Items ``(view 1, view 2)``: two views of each section.

    Args:
        sampler: Where the sections are read.
        sections: The sections.
        views: The view maker.
        seed: Integers fixing the draws, e.g. ``(run seed, epoch)``.
    """

    def __init__(
        self, sampler: SectionSampler, sections: list[Section], views: ViewMaker, seed: tuple[int, ...]
    ) -> None:
        self.sampler, self.sections, self.views, self.seed = sampler, sections, views, seed

    def __len__(self) -> int:
        return len(self.sections)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        section = self.sampler.read(self.sections[i])
        a, b = (self.views(section, (*self.seed, i, k)) for k in (0, 1))
        return torch.from_numpy(np.ascontiguousarray(a)), torch.from_numpy(np.ascontiguousarray(b))
