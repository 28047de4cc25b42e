"""What a scan's values and outline say before the side model reads it: reasons to abstain, and notes.

The side model was trained on CT numbers in HU (whole, or clipped at 0 and 255 as an 8-bit export of HU
is) on trunks of adult size. A scan unlike that gets ``unsure`` with the reason, whatever the model says:
its probability would be a reading of something it never saw. Two things are checked here, both from
physics rather than from the model, so that they hold on any hospital's scans:

- **Values that are not HU.** Under the skin lies fat, at -150 to -50 HU; in an image stored with HU
  clipped from below (an 8-bit export of HU holds [0, 255]) it sits at the clip floor instead. An 8-bit
  export through a display window (level 40, width 400: -160 HU to 0, 240 HU to 255) read as if its
  pixels were HU puts that fat at 20-60 "HU", neither below -30 nor at the floor. Measured on the real
  CT here (every third axial slice of ircadb 01, 07 and ts_example, read at about 2 mm a pixel as this
  module reads; docs/check-sides.md): the share of the band 2-15 mm under the skin that reads as fat is
  0.20-0.92 per slice as HU (whole, clipped to [-125, 275] or to [0, 255]; the scans' medians
  0.33-0.86) and 0.28-0.54 on KiTS19's [0, 255] PNGs, against 0.00-0.23 for windows of level 0-60 and
  width 350-500 read as HU (medians 0.00-0.10). A scan is withheld below 0.15 (its median over the
  slices read) when its values are clipped from below above -200 HU; unclipped values that reach air
  are taken as HU.
- **A body of implausible width.** The model reads half-slices of fixed size in millimetres; a trunk
  narrower than 120 mm or wider than 650 mm (real abdomens here: 240-370 mm) means a pixel spacing that
  is wrong, or an image that is not a trunk.

Notes that do not change the verdict: clipped values (and where), and a field of view that cuts the
body's sides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from sidepair.data.sides import body_region, hull_mask
from sidepair.data.volume import Volume

AIR_HU = -900.0  # an unclipped CT reaches air (-1000) below this
FAT_HU = -30.0
RIM_MM = (2.0, 15.0)  # the band under the skin whose fat is read
MIN_RIM_FAT = 0.15
NOT_HU_FLOOR = -200.0  # values clipped from below above this can hide a display window
BODY_WIDTH_MM = (120.0, 650.0)
SLICES_READ = 12
READ_MM = 2.0
OPEN_MM = 8.0  # a table 16 mm thick or less is cut off the body before its hull is taken


@dataclass(frozen=True)
class Reading:
    """What a scan's values and outline say.

    Attributes:
        floor: The smallest value.
        ceiling: The largest value.
        clipped_low: Whether the values stop above air (clipped from below at ``floor``).
        clipped_high: Whether a share of the body sits exactly at ``ceiling`` (clipped from above).
        rim_fat: Median share of the band 2-15 mm under the skin that reads as fat (at most -30 HU, or at
            the clip floor), over the slices read.
        body_width_mm: Median left-right width of the body (its convex hull) over the slices read.
        cut_sides: Share of the slices read whose body touches the image's left or right edge.
        slices: Axial slices read.
    """

    floor: float
    ceiling: float
    clipped_low: bool
    clipped_high: bool
    rim_fat: float
    body_width_mm: float
    cut_sides: float
    slices: int

    @property
    def not_hu(self) -> bool:
        """Values clipped from below with almost no fat under the skin: an export through a window."""
        return self.clipped_low and self.floor > NOT_HU_FLOOR and self.rim_fat < MIN_RIM_FAT

    def reasons(self) -> list[str]:
        """Why the side model cannot be trusted on this scan; empty when nothing says so."""
        out = []
        if self.not_hu:
            out.append(
                f"values not HU: only {self.rim_fat:.0%} of the band under the skin reads as fat "
                "(a display-window export read as HU?); give its window with --intensity"
            )
        lo, hi = BODY_WIDTH_MM
        if self.slices and not lo <= self.body_width_mm <= hi:
            out.append(
                f"body {self.body_width_mm:.0f} mm wide, outside {lo:.0f}-{hi:.0f} mm: a wrong pixel "
                "spacing, or not a trunk"
            )
        return out

    def notes(self) -> list[str]:
        """What is unusual but does not withhold the verdict."""
        out = []
        if self.clipped_low or self.clipped_high:
            low = f"{self.floor:g}" if self.clipped_low else ""
            high = f"{self.ceiling:g}" if self.clipped_high else ""
            out.append(f"values clipped to [{low}, {high}]")
        if self.cut_sides > 0.5:
            out.append("the field of view cuts the body's sides")
        return out


def disk(radius_mm: float, spacing: float) -> np.ndarray:
    """A disk of ``radius_mm`` (at least one pixel) on a grid of ``spacing`` mm, for morphology."""
    r = max(1, int(round(radius_mm / spacing)))
    return np.hypot(*np.mgrid[-r : r + 1, -r : r + 1]) <= r


def depth_under_skin(hull: np.ndarray, spacing: float) -> np.ndarray:
    """Each pixel's distance (mm) from the edge of ``hull``, the body's convex outline."""
    return ndimage.distance_transform_edt(np.pad(hull, 1))[1:-1, 1:-1] * spacing


def trunk_region(body: np.ndarray | None, spacing: float) -> np.ndarray | None:
    """The body without what hangs on it by less than 16 mm (a patient table the skin touches)."""
    if body is None:
        return None
    labels, n = ndimage.label(ndimage.binary_opening(body, structure=disk(OPEN_MM, spacing)))
    if n == 0:
        return body
    return labels == (int(np.argmax(np.bincount(labels.ravel())[1:])) + 1)


def body_slices(array: np.ndarray, tissue_floor: float, count: int = SLICES_READ) -> np.ndarray:
    """Up to ``count`` axial slices (indices) spread evenly over those holding body.

    A slice holds body when its voxels above ``tissue_floor`` cover a quarter of the largest such area.
    """
    areas = (array > tissue_floor).reshape(-1, array.shape[2]).sum(axis=0)
    with_body = np.nonzero(areas >= 0.25 * areas.max())[0] if areas.any() else np.zeros(0, int)
    spread = np.linspace(0, len(with_body) - 1, min(count, len(with_body)))
    return with_body[spread.round().astype(int)]


def read_scan(volume: Volume) -> Reading:
    """Measure what :class:`Reading` holds on up to 12 axial slices of ``volume`` spread over its body."""
    array = volume.array
    floor, ceiling = float(array.min()), float(array.max())
    clipped_low = floor > AIR_HU
    # Read at about 2 mm a pixel: the band under the skin is 13 mm deep, and morphology is cheap there.
    step = max(1, int(READ_MM // float(min(volume.spacing[:2]))))
    spacing = float(min(volume.spacing[:2])) * step
    fat_at = max(floor + 0.5, FAT_HU) if clipped_low else FAT_HU
    tissue_floor = max(floor + 1.0, -500.0)
    picks = body_slices(array, tissue_floor)
    rims, widths, cut, at_ceiling, body_voxels = [], [], 0, 0, 0
    for z in picks:
        # Every step-th pixel, not block means (as qc.levels reads): a mean of fat at a clip floor and the
        # tissue beside it is no longer at the floor. Block means took one slice of ircadb 01 clipped to
        # [0, 255] from 0.21 to 0.14 of its band read as fat, under MIN_RIM_FAT: HU withheld as "not HU"
        # (benchmarks/studies/rim_fat_reading.py).
        image = array[::step, ::step, int(z)]
        body = trunk_region(body_region(image, spacing, tissue_floor), spacing)
        if body is None:
            continue
        hull = hull_mask(body)
        depth = depth_under_skin(hull, spacing)
        rim = hull & (depth >= RIM_MM[0]) & (depth <= RIM_MM[1])
        if rim.any():
            rims.append(float((image[rim] <= fat_at).mean()))
        columns = np.nonzero(hull.any(axis=1))[0]  # array axis 0 runs left-right (RAS)
        widths.append(float((columns.max() - columns.min() + 1) * volume.spacing[0] * step))
        cut += bool(hull[0].any() or hull[-1].any())
        at_ceiling += int((image[body] >= ceiling).sum())
        body_voxels += int(body.sum())
    read = len(widths)
    return Reading(
        floor=floor,
        ceiling=ceiling,
        clipped_low=clipped_low,
        clipped_high=bool(body_voxels and at_ceiling / body_voxels >= 0.002 and ceiling < 1500),
        rim_fat=float(np.median(rims)) if rims else 1.0,
        body_width_mm=float(np.median(widths)) if widths else 0.0,
        cut_sides=cut / read if read else 0.0,
        slices=read,
    )
