"""On-the-fly augmentation of training patches and sections with MONAI transforms (``--augment``).

Off in the paper's preset (the paper trains without augmentation). Two recipes:

- ``light``: a small in-plane rotation (up to 15 degrees) and scaling (up to 10 %), then intensity
  scaling, shift, gamma and noise;
- ``strong``: nnU-Net's ranges, in MONAI transforms: in-plane rotation up to 30 degrees, scaling 0.7 to
  1.4, Gaussian noise, Gaussian blur, brightness, contrast about the mean, low-resolution simulation,
  gamma, and inverted gamma.

Left-right mirroring is separate (``mirror``) and only for segmentation targets without a side: a mirrored
kidney is still a kidney, but a mirrored right kidney looks like a left one, which is the very signal of
the side-pair task and the meaning of the ``sides`` labels (nnU-Net issues #80, #2225). Other flips give
anatomy no scan shows. Each item's draw is seeded from ``(seed, epoch, item)``, so an epoch is the same
in any worker process and after a resume.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from monai.transforms import (
    Compose,
    RandAdjustContrastd,
    RandAffined,
    RandFlip,
    RandFlipd,
    RandGaussianNoised,
    RandGaussianSmoothd,
    RandScaleIntensityd,
    RandScaleIntensityFixedMeand,
    RandShiftIntensityd,
    RandSimulateLowResolutiond,
    Transform,
)

ROTATION_RAD = math.radians(15.0)
SCALE = 0.1
STRONG_ROTATION_RAD = math.radians(30.0)
STRONG_SCALE = (-0.3, 0.4)  # factors 0.7 to 1.4, nnU-Net's
Recipe = Literal["light", "strong"]


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
        recipe: ``light`` or ``strong`` spatial and intensity transforms, or None for none.
        mirror: Also mirror left-right (the last spatial axis of sidepair's RAS stores) half the time.
    """

    def __init__(
        self, dims: int, with_label: bool, recipe: Recipe | None = "light", mirror: bool = False
    ) -> None:
        keys = ["image", "label"] if with_label else ["image"]
        self.with_label = with_label
        transforms: list[Transform] = []
        if recipe is not None:
            transforms += _spatial(dims, keys, recipe) + _intensity(recipe, dims)
        if mirror:
            transforms.append(RandFlipd(keys=keys, prob=0.5, spatial_axis=dims - 1))
        self.transform = Compose(transforms)

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


def _spatial(dims: int, keys: list[str], recipe: Recipe) -> list[Transform]:
    strong = recipe == "strong"
    angle = STRONG_ROTATION_RAD if strong else ROTATION_RAD
    # In-plane only: about the z axis in 3D (MONAI's first angle turns the plane of axes 1 and 2).
    rotate = (angle,) if dims == 2 else (angle, 0.0, 0.0)
    scale = (STRONG_SCALE if strong else SCALE,) * dims
    return [
        RandAffined(
            keys=keys,
            prob=0.5 if not strong else 0.4,
            rotate_range=rotate,
            scale_range=scale,
            mode=["bilinear", "nearest"] if len(keys) == 2 else "bilinear",
            padding_mode="border",
        )
    ]


def _intensity(recipe: Recipe, dims: int) -> list[Transform]:
    if recipe == "light":
        return [
            RandScaleIntensityd(keys="image", factors=0.1, prob=0.5),
            RandShiftIntensityd(keys="image", offsets=0.1, prob=0.5),
            RandAdjustContrastd(keys="image", gamma=(0.8, 1.25), prob=0.3),
            RandGaussianNoised(keys="image", std=0.05, prob=0.2),
        ]
    # nnU-Net's default intensity augmentation, probabilities and ranges as in its trainer.
    return [
        RandGaussianNoised(keys="image", std=0.1, prob=0.1),
        RandGaussianSmoothd(
            keys="image", sigma_x=(0.5, 1.0), sigma_y=(0.5, 1.0), sigma_z=(0.5, 1.0), prob=0.2
        ),
        RandScaleIntensityd(keys="image", factors=0.25, prob=0.15),
        RandScaleIntensityFixedMeand(keys="image", factors=0.25, preserve_range=True, prob=0.15),
        RandSimulateLowResolutiond(
            keys="image",
            zoom_range=(0.5, 1.0),
            upsample_mode="bilinear" if dims == 2 else "trilinear",
            prob=0.25,
        ),
        RandAdjustContrastd(keys="image", gamma=(0.7, 1.5), invert_image=True, retain_stats=True, prob=0.1),
        RandAdjustContrastd(keys="image", gamma=(0.7, 1.5), retain_stats=True, prob=0.3),
    ]
