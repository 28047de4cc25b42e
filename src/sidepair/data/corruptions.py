"""Models Genesis-style corruptions for the restoration pretext task, composed from MONAI transforms.

Zhou et al. (Models Genesis, 2019) corrupt a sub-volume with local pixel shuffling, a non-linear
intensity curve, and in- or out-painting, and train a network to restore it. Here each is a MONAI
transform:

- local pixel shuffling: ``RandCoarseShuffle`` (pixels shuffled inside many small windows);
- the non-linear intensity curve: ``RandHistogramShift``, a random monotone piecewise-linear curve through
  control points, in place of Models Genesis's Bezier curves (no transform is written by hand);
- in-painting: ``RandCoarseDropout`` filling 1-5 boxes of 1/6 to 1/3 of the section with random values;
- out-painting: ``RandCoarseDropout`` with ``dropout_holes=False``, keeping 3-5 such boxes and filling
  the rest.

As in Models Genesis, shuffling applies with probability 0.5, the intensity curve 0.9 and painting 0.9
(in-painting four times as often as out-painting). A left-right mirror comes first, only with ``mirror``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from monai.transforms import (
    Compose,
    Identity,
    OneOf,
    RandCoarseDropout,
    RandCoarseShuffle,
    RandHistogramShift,
)
from torch.utils.data import Dataset

from sidepair.data.augment import item_state, lateral_flip
from sidepair.data.sections import Section, SectionSampler

SHUFFLE_P, INTENSITY_P, PAINT_P, INPAINT_SHARE = 0.5, 0.9, 0.9, 0.8


def _sizes(size: Sequence[int], lo: float, hi: float) -> tuple[list[int], list[int]]:
    return [max(1, int(s * lo)) for s in size], [max(2, int(s * hi)) for s in size]


class Corruptor:
    """Random, seeded corruption of a channel-first section.

    Args:
        size: The section's spatial size ((y, x) in 2D, (z, y, x) in 3D).
        corruptions: Any of ``shuffle``, ``intensity``, ``inpaint``, ``outpaint``.
        mirror: Mirror left-right with probability 0.5 before corrupting (input and target alike).
    """

    def __init__(self, size: Sequence[int], corruptions: Sequence[str], mirror: bool = False) -> None:
        size = list(size)
        self.flip = lateral_flip(len(size)) if mirror else None
        steps = []
        if "shuffle" in corruptions:
            small, large = _sizes(size, 1 / 16, 1 / 8)
            # Enough windows to cover about half the section on average.
            mean_window = math.prod((a + b) / 2 for a, b in zip(small, large, strict=True))
            holes = max(1, int(0.5 * math.prod(size) / mean_window))
            steps.append(
                RandCoarseShuffle(
                    holes=holes,
                    max_holes=2 * holes,
                    spatial_size=small,
                    max_spatial_size=large,
                    prob=SHUFFLE_P,
                )
            )
        if "intensity" in corruptions:
            steps.append(RandHistogramShift(num_control_points=(5, 10), prob=INTENSITY_P))
        paint, weights = [], []
        small, large = _sizes(size, 1 / 6, 1 / 3)
        if "inpaint" in corruptions:
            paint.append(
                RandCoarseDropout(holes=1, max_holes=5, spatial_size=small, max_spatial_size=large, prob=1.0)
            )
            weights.append(INPAINT_SHARE)
        if "outpaint" in corruptions:
            paint.append(
                RandCoarseDropout(
                    holes=3,
                    max_holes=5,
                    spatial_size=small,
                    max_spatial_size=large,
                    dropout_holes=False,
                    prob=1.0,
                )
            )
            weights.append(1 - INPAINT_SHARE)
        if paint:
            share = [PAINT_P * w / sum(weights) for w in weights]
            steps.append(OneOf([*paint, Identity()], weights=[*share, 1 - PAINT_P]))
        self.transform = Compose(steps)

    def __call__(self, section: np.ndarray, seed: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """The corrupted section and its target (the section, mirrored alike where mirroring is on)."""
        target = section.astype(np.float32, copy=False)
        if self.flip is not None:
            self.flip.set_random_state(seed=item_state(seed, 31))
            target = np.asarray(self.flip(target), dtype=np.float32)
        self.transform.set_random_state(seed=item_state(seed, 577))
        corrupted = np.asarray(self.transform(target.copy()), dtype=np.float32)
        return corrupted, target


class RestorationDataset(Dataset):
    """Items ``(corrupted, original)`` of a list of sections.

    Args:
        sampler: Where the sections are read.
        sections: The sections.
        corruptor: The corruption.
        seed: Integers fixing the draws, e.g. ``(run seed, epoch)``.
    """

    def __init__(
        self, sampler: SectionSampler, sections: list[Section], corruptor: Corruptor, seed: tuple[int, ...]
    ) -> None:
        self.sampler, self.sections, self.corruptor, self.seed = sampler, sections, corruptor, seed

    def __len__(self) -> int:
        return len(self.sections)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        corrupted, target = self.corruptor(self.sampler.read(self.sections[i]), (*self.seed, i))
        return torch.from_numpy(np.ascontiguousarray(corrupted)), torch.from_numpy(
            np.ascontiguousarray(target)
        )
