"""An export's display window, found from the scan itself: two tissues of known CT number.

A slice exported through a display window to 0-255 and read as if its pixels were HU is withheld by
check-sides (``values not HU``, ``qc.inputs``). Where nobody recorded the window, the scan still holds two
tissues whose CT numbers physics fixes, found by where they lie: subcutaneous fat (-100 HU), the commonest
value of the band 2-15 mm under the skin, and soft tissue (+60 HU: muscle 40-60, enhanced organs up to
about 120), the commonest value deeper than 20 mm that lies above the fat. The two fix the line from
pixel values to HU. Measured on real slices exported through four abdominal windows, with the slope off by
a factor of 0.8-1.3 (``benchmarks/studies/window_estimate.py``).
"""

from __future__ import annotations

import numpy as np

from sidepair.data.volume import Volume
from sidepair.qc.inputs import RIM_MM, body_slices, depth_under_skin
from sidepair.qc.levels import outline

FAT_HU, TISSUE_HU = -100.0, 60.0
DEEP_MM = 20.0
BINS = 64
MIN_PIXELS = 50
# Fat and soft tissue (160 HU apart) at least this share of the value range apart: a window at most about
# 2000 HU wide. Closer, the "fat" is muscle: fat lies at the floor with the air (HU clipped at 0).
MIN_SPREAD = 0.08


def _mode(values: np.ndarray, lo: float, hi: float) -> float:
    counts, edges = np.histogram(values, bins=BINS, range=(lo, hi))
    k = int(np.argmax(counts))
    return float((edges[k] + edges[k + 1]) / 2)


def anchors(image: np.ndarray, spacing: float, lo: float, hi: float) -> tuple[float, float] | None:
    """The pixel values of subcutaneous fat and of deep soft tissue in one axial slice.

    Args:
        image: The slice, array axis 0 left-right, in the export's values.
        spacing: Its pixel spacing (mm).
        lo: The scan's smallest value (the window's floor).
        hi: Its largest value (the window's ceiling).

    Returns:
        ``(fat, tissue)``, or None where the slice holds no body or too little of either.
    """
    read = outline(image, spacing, lo + 1.0)
    if read is None:
        return None
    image, hull = read.image, read.hull
    depth = depth_under_skin(hull, read.spacing)
    band = image[hull & (depth > RIM_MM[0]) & (depth < RIM_MM[1])]
    band = band[(band > lo) & (band < hi)]  # values at the window's ends say nothing of where they lie
    if band.size < MIN_PIXELS:
        return None
    fat = _mode(band, lo, hi)
    deep = image[hull & (depth > DEEP_MM)]
    deep = deep[(deep > fat + 2 * (hi - lo) / BINS) & (deep < hi)]
    if deep.size < MIN_PIXELS:
        return None
    return fat, _mode(deep, lo, hi)


def line(fat: float, tissue: float) -> tuple[float, float] | None:
    """``(slope, intercept)`` from pixel values to HU through the two anchors; None if they coincide."""
    if tissue <= fat:
        return None
    slope = (TISSUE_HU - FAT_HU) / (tissue - fat)
    return slope, FAT_HU - slope * fat


def find_window(volume: Volume) -> tuple[float, float] | None:
    """``(slope, intercept)`` turning ``volume``'s values into HU, from the anchors of up to 12 axial slices.

    The anchors' medians over the slices fix the line (one slice can miss its fat band). None when no
    slice gives both anchors, or when they lie too close for a display window (fat clipped away).
    """
    array = volume.array
    lo, hi = float(array.min()), float(array.max())
    picks = body_slices(array, lo + 1.0)  # as read_scan picks them: spread over the body
    spacing = float(min(volume.spacing[:2]))
    found = [a for k in picks if (a := anchors(np.asarray(array[:, :, k]), spacing, lo, hi)) is not None]
    if not found:
        return None
    fat, tissue = np.median(np.array(found), axis=0)
    if tissue - fat < MIN_SPREAD * (hi - lo):
        return None
    return line(float(fat), float(tissue))


def through_window(volume: Volume, fit: tuple[float, float]) -> Volume:
    """The volume with its values turned into HU by ``fit`` (same geometry and source)."""
    slope, intercept = fit
    array = np.asarray(volume.array, dtype=np.float32) * np.float32(slope) + np.float32(intercept)
    return Volume(array, volume.affine, volume.source)
