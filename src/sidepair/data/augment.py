"""On-the-fly augmentation of training patches and sections with MONAI transforms (``--augment``).

Off in the paper's preset (the paper trains without augmentation). What it does: a small in-plane
rotation (up to 15 degrees) and scaling (up to 10 %), then intensity scaling, shift, gamma and noise.
What it never does: flip. A left-right flip turns a right kidney into a left-looking one, which is the
very signal of the side-pair task and the meaning of the ``sides`` labels; other flips give anatomy no
scan shows. Each item's draw is seeded from ``(seed, epoch, item)``, so an epoch is the same in any
worker process and after a resume.
"""

from __future__ import annotations

import math

import numpy as np
from monai.transforms import (
    Compose,
    RandAdjustContrastd,
    RandAffined,
    RandFlip,
    RandGaussianNoised,
    RandScaleIntensityd,
    RandShiftIntensityd,
)

ROTATION_RAD = math.radians(15.0)
SCALE = 0.1


def item_state(seed: tuple[int, ...], salt: int = 977) -> int:
    """A random state for one item's draw, from integers such as ``(run seed, epoch, item)``."""
    return int(np.random.SeedSequence([*seed, salt]).generate_state(1)[0])


def lateral_flip(dims: int, prob: float = 0.5, lateral_dim: int = -1) -> RandFlip:
    """A random left-right mirror of a channel-first section.

    Args:
        dims: Spatial dimensions.
        prob: Probability of a flip.
        lateral_dim: The tensor dimension (from the end) that runs left-right: the last one in sidepair's
            RAS stores (:attr:`~sidepair.data.sections.SectionSampler.lateral_dim`).
    """
    return RandFlip(prob=prob, spatial_axis=dims + lateral_dim)


class Augmenter:
    """Random, seeded augmentation of an image patch (and its label) laid out as (channel, *spatial).

    Args:
        dims: 2 (axial slices, spatial y, x) or 3 (spatial z, y, x).
        with_label: Whether a label travels with the image (nearest-neighbour resampled).
    """

    def __init__(self, dims: int, with_label: bool) -> None:
        keys = ["image", "label"] if with_label else ["image"]
        # In-plane only: about the z axis in 3D (MONAI's first angle turns the plane of axes 1 and 2).
        rotate = (ROTATION_RAD,) if dims == 2 else (ROTATION_RAD, 0.0, 0.0)
        self.with_label = with_label
        self.transform = Compose(
            [
                RandAffined(
                    keys=keys,
                    prob=0.5,
                    rotate_range=rotate,
                    scale_range=(SCALE,) * dims,
                    mode=["bilinear", "nearest"] if with_label else "bilinear",
                    padding_mode="border",
                ),
                RandScaleIntensityd(keys="image", factors=0.1, prob=0.5),
                RandShiftIntensityd(keys="image", offsets=0.1, prob=0.5),
                RandAdjustContrastd(keys="image", gamma=(0.8, 1.25), prob=0.3),
                RandGaussianNoised(keys="image", std=0.05, prob=0.2),
            ]
        )

    def __call__(
        self, image: np.ndarray, label: np.ndarray | None, seed: tuple[int, ...]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Augment one item.

        Args:
            image: Float image, (channel, *spatial).
            label: Integer label of the same shape, or ``None``.
            seed: Integers fixing this item's draw, e.g. ``(run seed, epoch, item index)``.

        Returns:
            The image (float32) and label (its own dtype), the same shapes as given.
        """
        self.transform.set_random_state(seed=item_state(seed))
        data = {"image": image.astype(np.float32, copy=False)}
        if self.with_label and label is not None:
            data["label"] = label
        out = self.transform(data)
        new_image = np.asarray(out["image"], dtype=np.float32)
        if not (self.with_label and label is not None):
            return new_image, label
        return new_image, np.asarray(out["label"]).round().astype(label.dtype)
