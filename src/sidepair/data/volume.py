"""Volumes in one canonical orientation (RAS+), read from NIfTI with the checks a user needs.

A :class:`Volume` holds an array whose axes run toward patient Right, Anterior and Superior, with the
affine that maps its voxel indices to world millimetres. Body side is always read from that affine,
never from an array index of the file as stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from sidepair.atomic import atomic_path
from sidepair.data.axes import reorient_to_ras, spacing_of
from sidepair.errors import DataError


@dataclass
class Volume:
    """A 3D array in RAS+ orientation with its affine and where it came from.

    Attributes:
        array: Voxel values, axes (x toward Right, y toward Anterior, z toward Superior).
        affine: 4x4 voxel-to-world (RAS mm) matrix of ``array``.
        source: The file or folder it was read from.
        original_shape: Shape of the array as stored in the file.
        original_affine: Affine of the array as stored in the file.
    """

    array: np.ndarray
    affine: np.ndarray
    source: Path
    original_shape: tuple[int, ...] = field(default=())
    original_affine: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not self.original_shape:
            self.original_shape = tuple(self.array.shape)
        if self.original_affine is None:
            self.original_affine = self.affine.copy()

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along the array's axes (x, y, z)."""
        return spacing_of(self.affine)  # type: ignore[return-value]

    @property
    def original_axcodes(self) -> str:
        """Axis codes of the file as stored, e.g. ``"IPL"`` for KiTS19."""
        return "".join(nib.aff2axcodes(self.original_affine))


def check_affine(affine: np.ndarray, source: str | Path) -> None:
    """Refuse an affine that cannot place voxels in the body.

    Args:
        affine: 4x4 matrix.
        source: File named in the error.

    Raises:
        DataError: If the affine has non-finite entries or a (near) singular 3x3 part.
    """
    affine = np.asarray(affine, dtype=float)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise DataError(source, "degenerate affine (non-finite entries)")
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    if np.any(zooms < 1e-6):
        raise DataError(source, f"degenerate affine (zero voxel size, zooms {np.round(zooms, 6).tolist()})")
    det = abs(np.linalg.det(affine[:3, :3] / zooms))
    if det < 1e-3:
        raise DataError(source, "degenerate affine (axes are collinear, determinant ~0)")


def _squeeze_to_3d(array: np.ndarray, source: Path) -> np.ndarray:
    # A trailing singleton axis (X, Y, Z, 1) is a common way to store a 3D volume; anything else is not 3D.
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise DataError(source, f"expected a 3D volume, got {array.ndim}D with shape {tuple(array.shape)}")
    return array


def load_nifti(path: str | Path, role: str = "image") -> Volume:
    """Read a NIfTI file, check it, and return it in RAS+ orientation.

    Args:
        path: ``.nii`` or ``.nii.gz`` file.
        role: ``"image"`` (must be finite and not constant) or ``"label"`` (must hold integers).

    Returns:
        The volume in RAS+ orientation.

    Raises:
        DataError: If the file is missing, unreadable or truncated, not 3D, has no or a degenerate
            affine, or (image) holds NaN or a constant, or (label) holds non-integer values.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for a bad header
        raise DataError(path, f"cannot read as NIfTI ({type(exc).__name__}: {exc})") from None
    if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        raise DataError(path, f"not a NIfTI image ({type(img).__name__})")
    return volume_from_image(img, path, role)


def check_nifti_header(img: nib.Nifti1Image, path: Path) -> None:
    """Refuse, from the header alone, an image that is not 3D or has no or a degenerate affine."""
    shape = tuple(int(s) for s in img.shape)
    dims = list(shape)
    while len(dims) > 3 and dims[-1] == 1:
        dims.pop()
    if len(dims) != 3:
        raise DataError(path, f"expected a 3D volume, got {len(dims)}D with shape {shape}")
    header = img.header
    if int(header["qform_code"]) == 0 and int(header["sform_code"]) == 0:
        raise DataError(
            path, "missing affine (qform_code and sform_code are both 0); refusing to guess sides"
        )
    check_affine(img.affine, path)


def volume_from_image(img: nib.Nifti1Image, path: Path, role: str = "image") -> Volume:
    """Check a NIfTI image (header and voxels) and return it as a RAS+ :class:`Volume`.

    Args:
        img: The image (from a file, or built in memory).
        path: What to name in errors.
        role: ``"image"`` or ``"label"``, as for :func:`load_nifti`.
    """
    check_nifti_header(img, path)
    affine = img.affine
    try:
        array = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel, numpy and mmap raise many types for damaged files
        raise DataError(path, f"truncated or corrupt data ({type(exc).__name__}: {exc})") from None
    array = _squeeze_to_3d(np.asarray(array), path)
    if role == "image":
        check_image_values(array, path)
    elif role == "label":
        array = as_integer_labels(array, path)
    ras, ras_affine = reorient_to_ras(array, affine)
    return Volume(ras, ras_affine, path, tuple(array.shape), affine.copy())


def check_image_values(array: np.ndarray, source: str | Path) -> None:
    """Refuse images with NaN/inf voxels or a single constant value."""
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise DataError(source, f"image has {bad} NaN or infinite voxels")
    if array.size == 0 or array.min() == array.max():
        raise DataError(source, "image is constant (a single value everywhere)")


def as_integer_labels(array: np.ndarray, source: str | Path) -> np.ndarray:
    """Return a label array as ``int16``; refuse fractional or out-of-range values."""
    if np.issubdtype(array.dtype, np.integer) or array.dtype == bool:
        values = array
    else:
        if not np.all(np.isfinite(array)):
            raise DataError(source, "label has NaN or infinite voxels")
        values = np.rint(array)
        if np.any(np.abs(values - array) > 1e-3):
            raise DataError(source, "label has non-integer values (is this an image rather than a label?)")
    if values.size and (values.min() < 0 or values.max() > 32767):
        raise DataError(source, f"label values out of range [{values.min()}, {values.max()}]")
    return values.astype(np.int16, copy=False)


def check_same_grid(image: Volume, label: Volume) -> None:
    """Refuse an image/label pair whose shapes or affines differ.

    Raises:
        DataError: Naming the label file, with both shapes or the largest affine difference.
    """
    if image.original_shape != label.original_shape:
        raise DataError(
            label.source,
            f"label shape {label.original_shape} differs from image shape {image.original_shape} "
            f"({image.source.name})",
        )
    assert image.original_affine is not None and label.original_affine is not None
    diff = float(np.max(np.abs(image.original_affine - label.original_affine)))
    # Tolerance: a small fraction of a voxel, as written by tools that round the header to float32.
    tol = 1e-3 * max(1.0, float(np.max(np.abs(image.original_affine[:3, 3]))) / 100.0)
    if diff > tol:
        raise DataError(
            label.source,
            f"label affine differs from image affine of {image.source.name} (max difference {diff:.4g} mm)",
        )


def save_nifti(array: np.ndarray, affine: np.ndarray, path: str | Path) -> None:
    """Write a NIfTI file atomically with both qform and sform set to ``affine``."""
    img = nib.Nifti1Image(array, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    suffix = ".nii.gz" if str(path).endswith(".gz") else ".nii"
    with atomic_path(path, suffix=suffix) as tmp:
        nib.save(img, str(tmp))


NIFTI_SUFFIXES = (".nii.gz", ".nii")


def is_nifti(path: Path) -> bool:
    """Whether a path names a NIfTI file (.nii.gz or .nii)."""
    return path.name.endswith(NIFTI_SUFFIXES)
