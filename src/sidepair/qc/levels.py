"""Where in the trunk an axial level lies: chest, pelvis or abdomen, from what it holds.

The side model was trained on abdominal levels (kidneys, liver, spleen). In the chest it reads the heart,
left of the midline, as it reads a liver on the wrong side, and at the pelvis little differs between the
sides: read one by one, those levels are where its confident errors on real slices lie (ircadb's slices
above the liver dome and below the kidneys; docs/check-sides.md). This module finds them from physics, on
the scan's own axial slice at about 2 mm a pixel, so that a scan's verdict rests on its abdominal levels
and a single slice at such a level is withheld:

- **Pelvis**: an iliac wing on each side. Bone (300 HU or more, or the ceiling of values clipped below
  that), closed over 3 mm gaps and its holes filled (the marrow inside a cortex), counted only further
  from the body's centre than 0.4 of its half-width: each side's largest region of it must reach 4 cm².
  Ribs beside the liver stay under it on real CT; the thin iliac crest just below the kidneys often does
  too, so the test catches the pelvis below it more than the crest.
- **Chest**: lungs, a large compact region of air on each side of the midline. Deeper than 15 mm under
  the skin, small gaps (vessels) closed, opened by a disk of radius 10 mm (fat strands and gas in bowel
  loops do not survive it), the largest region on each side must reach 60 cm². Where values are clipped
  above -100 HU (an 8-bit export of HU holds [0, 255]) fat reads as the floor, as air does, and a fatty
  abdomen holds such regions too: there it must reach 90 cm².

Both tests err toward ``abdomen``: a level they miss is read as before. What they call each real and
phantom slice, against where it lies: ``benchmarks/studies/level_detector.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

from sidepair.data.sides import body_region, hull_mask
from sidepair.qc.inputs import depth_under_skin, disk, trunk_region

LevelKind = Literal["abdomen", "chest", "pelvis"]

READ_MM = 2.0
UNDER_SKIN_MM = 15.0
OPEN_MM = 10.0
CLOSE_MM = 3.0
LUNG_CM2 = 60.0
LUNG_CM2_CLIPPED = 90.0
AIR_HU = -400.0
FAT_HU = -100.0  # clipped above this, most fat reads as the floor, as air does
BONE_HU = 300.0
LATERAL = 0.4
ILIAC_CM2 = 4.0


@dataclass(frozen=True)
class LevelReading:
    """What one axial level holds on each side of the body's centre.

    Attributes:
        air_cm2: Each side's largest compact region of air (or of the clip floor), deep in the body.
        bone_cm2: Each side's largest region of bone away from the midline.
        clipped: Values clipped above -100 HU, where most fat reads as the floor, as air does.
    """

    air_cm2: tuple[float, float]
    bone_cm2: tuple[float, float]
    clipped: bool = False

    @property
    def kind(self) -> LevelKind:
        """``chest`` (lungs on both sides), ``pelvis`` (iliac bone on both sides) or ``abdomen``."""
        # Bone plates first: iliac wings and lungs never share a level, but fat in a pelvis clipped at 0 HU
        # reads as air does.
        if min(self.bone_cm2) >= ILIAC_CM2:
            return "pelvis"
        if min(self.air_cm2) >= (LUNG_CM2_CLIPPED if self.clipped else LUNG_CM2):
            return "chest"
        return "abdomen"

    def reason(self) -> str:
        """Why this level is not read, or an empty string for an abdominal level."""
        if self.kind == "chest":
            a, b = sorted(self.air_cm2)
            return f"level in the chest: air regions of {a:.0f} and {b:.0f} cm2 (lungs)"
        if self.kind == "pelvis":
            a, b = sorted(self.bone_cm2)
            return f"level at the pelvis: bone plates of {a:.1f} and {b:.1f} cm2 at the sides (iliac wings)"
        return ""


def block_means(image: np.ndarray, step: int) -> np.ndarray:
    """Means of ``step`` x ``step`` blocks (not every step-th pixel: a skin line one pixel thin must stay)."""
    if step == 1:
        return np.asarray(image, dtype=np.float32)
    nx, ny = (image.shape[0] // step) * step, (image.shape[1] // step) * step
    blocks = np.asarray(image[:nx, :ny], dtype=np.float32).reshape(nx // step, step, ny // step, step)
    return blocks.mean(axis=(1, 3))


def _largest_per_side(mask: np.ndarray, centre: float, pixel_cm2: float) -> tuple[float, float]:
    """Area (cm²) of the largest region of ``mask`` on each side of ``centre`` (array axis 0).

    A region counts on the side its centre lies.
    """
    labels, n = ndimage.label(mask)
    if n == 0:
        return 0.0, 0.0
    sizes = np.bincount(labels.ravel())[1:]
    where = ndimage.center_of_mass(mask, labels, index=np.arange(1, n + 1))
    best = [0.0, 0.0]
    for size, (x, _) in zip(sizes, where, strict=True):
        side = int(x > centre)
        best[side] = max(best[side], float(size) * pixel_cm2)
    return best[0], best[1]


@dataclass(frozen=True)
class Outline:
    """An axial slice read at about ``READ_MM`` a pixel, and its body's convex outline.

    Attributes:
        image: Block means of ``step`` x ``step`` pixels of the slice.
        spacing: Their pixel spacing (mm).
        step: Pixels of the slice per pixel of ``image``, each way.
        hull: The body's convex outline (without a table it lies on).
    """

    image: np.ndarray
    spacing: float
    step: int
    hull: np.ndarray


def outline(image: np.ndarray, spacing: float, tissue_floor: float) -> Outline | None:
    """Read a slice at about 2 mm a pixel and outline its body: tissue above ``tissue_floor``.

    None when the slice holds no body of a trunk's size (under 100 cm²).
    """
    step = max(1, int(READ_MM // max(spacing, 1e-3)))
    image, spacing = block_means(image, step), spacing * step
    body = trunk_region(body_region(image, spacing, tissue_floor), spacing)
    if body is None or body.sum() * spacing**2 < 100.0 * 100.0:
        return None
    return Outline(image, spacing, step, hull_mask(body))


def read_level(image: np.ndarray, spacing: float, floor: float, ceiling: float) -> LevelReading | None:
    """Read one axial level.

    Args:
        image: The level, array axis 0 left-right, in HU (possibly clipped).
        spacing: Its pixel spacing (mm).
        floor: The scan's smallest value (the clip floor when clipped above air).
        ceiling: The scan's largest value.

    Returns:
        The reading, or None when the level holds no body.
    """
    read = outline(image, spacing, max(floor + 1.0, -500.0))
    if read is None:
        return None
    # Bone at the scan's own resolution: averaged, a plate's edge in values clipped at 255 falls below it.
    bright = block_means(image >= min(ceiling - 0.5, BONE_HU), read.step) >= 0.5
    image, spacing, hull = read.image, read.spacing, read.hull
    columns = np.nonzero(hull.any(axis=1))[0]
    centre, half_width = (columns.min() + columns.max()) / 2, (columns.max() - columns.min()) / 2
    pixel_cm2 = spacing**2 / 100.0
    depth = depth_under_skin(hull, spacing)
    air = (image <= max(floor + 0.5, AIR_HU)) & hull & (depth > UNDER_SKIN_MM)
    # Vessels in the lung are tissue in values clipped at 0: close them first, or the opening frays the lung.
    air = ndimage.binary_closing(air, structure=disk(CLOSE_MM, spacing))
    air = ndimage.binary_opening(air, structure=disk(OPEN_MM, spacing))
    # A bone's cross-section includes its marrow: on real CT an iliac wing's cancellous inside lies under
    # 300 HU and only its cortex passes, in broken lines. Closed over small gaps and filled, the plate counts
    # whole (the phantom's marrow passes 300 HU already).
    bone = ndimage.binary_fill_holes(ndimage.binary_closing(bright & hull, structure=disk(CLOSE_MM, spacing)))
    # The lungs can meet in front of the spine: cut the air at the midline, so each side has its own.
    x = np.arange(image.shape[0])[:, None]
    return LevelReading(
        air_cm2=_largest_per_side(air & (x != int(centre)), centre, pixel_cm2),
        # Where the wings meet the sacrum they join the spine into one region on the midline: only bone
        # beyond the lateral band counts, each side's largest region of it.
        bone_cm2=_largest_per_side(bone & (np.abs(x - centre) > LATERAL * half_width), centre, pixel_cm2),
        clipped=floor > FAT_HU,
    )
