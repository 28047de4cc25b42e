"""Axis conventions, in one place: RAS orientation, (x, y, z) against (z, y, x), SimpleITK's order.

Three orders meet in sidepair:

- files as stored: any orientation (KiTS19 is ``IPL``); a volume is read, then brought to RAS+;
- RAS arrays indexed ``(x, y, z)`` (x toward the patient's right, y anterior, z superior), the order of
  NIfTI and nibabel, with a 4x4 affine from those indices to world millimetres;
- store arrays indexed ``(z, y, x)`` on the same RAS grid, so that an axial slice is one contiguous
  block; their affine maps ``(z, y, x)`` indices to world millimetres.

SimpleITK reads DICOM as ``(z, y, x)`` arrays in an LPS world. Every swap between these lives here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from nibabel import orientations as nio

RAS = ("R", "A", "S")
_XYZ_ZYX = (2, 1, 0)
# SimpleITK's world frame is LPS; RAS flips the first two world axes.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def xyz_to_zyx(array: np.ndarray) -> np.ndarray:
    """An ``(x, y, z)`` array as a contiguous ``(z, y, x)`` one (and back: the swap is its own inverse)."""
    return np.ascontiguousarray(np.transpose(array, _XYZ_ZYX))


zyx_to_xyz = xyz_to_zyx


def affine_xyz_to_zyx(affine: np.ndarray) -> np.ndarray:
    """The affine of the swapped array: its first three columns reversed (also the inverse swap)."""
    return np.asarray(affine, dtype=float)[:, [2, 1, 0, 3]]


affine_zyx_to_xyz = affine_xyz_to_zyx


def shape_xyz_to_zyx(shape: Sequence[int]) -> tuple[int, ...]:
    """A shape (or any per-axis triple) in the other order."""
    return tuple(int(s) for s in shape)[::-1]


def box_xyz_to_zyx(box: list[list[int]] | None) -> list[list[int]] | None:
    """A per-axis ``[[start, stop], ...]`` box in the other order."""
    return None if box is None else [box[2], box[1], box[0]]


def spacing_of(affine: np.ndarray) -> tuple[float, ...]:
    """Voxel size (mm) along each array axis of ``affine`` (the lengths of its columns)."""
    return tuple(float(s) for s in np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0)))


def orientation_to_ras(affine: np.ndarray) -> np.ndarray:
    """The nibabel orientation transform from ``affine``'s axes to RAS+."""
    return nio.ornt_transform(nio.io_orientation(affine), nio.axcodes2ornt(RAS))


def reorient_to_ras(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flip and permute ``array`` so its axes run toward R, A, S; return it with its new affine."""
    transform = orientation_to_ras(affine)
    out = nio.apply_orientation(array, transform)
    new_affine = affine @ nio.inv_ornt_aff(transform, array.shape)
    return np.ascontiguousarray(out), new_affine


def ras_to_original(array: np.ndarray, original_affine: np.ndarray) -> np.ndarray:
    """Undo :func:`reorient_to_ras`: bring a RAS array back to the file's own axis order."""
    back = nio.ornt_transform(nio.axcodes2ornt(RAS), nio.io_orientation(original_affine))
    return np.ascontiguousarray(nio.apply_orientation(array, back))


def sitk_to_xyz(array_zyx: np.ndarray) -> np.ndarray:
    """SimpleITK's ``(z, y, x)`` array as an ``(x, y, z)`` one."""
    return np.transpose(array_zyx, _XYZ_ZYX)


def sitk_affine(direction: Sequence[float], spacing: Sequence[float], origin: Sequence[float]) -> np.ndarray:
    """RAS affine of a SimpleITK image (for its array indexed ``(x, y, z)``).

    Args:
        direction: ``image.GetDirection()``, 9 values, row-major.
        spacing: ``image.GetSpacing()``.
        origin: ``image.GetOrigin()`` (LPS millimetres).
    """
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(direction, dtype=float).reshape(3, 3) * np.asarray(spacing, dtype=float)
    affine[:3, 3] = origin
    return LPS_TO_RAS @ affine
