"""DICOM series through SimpleITK, converted to RAS+ volumes with their affine.

SimpleITK is imported where a series is read: it is large, and NIfTI-only work (training on a store,
GPU machines without it) should not need it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sidepair.data.axes import reorient_to_ras, sitk_affine, sitk_to_xyz
from sidepair.data.volume import Volume, check_affine, check_image_values
from sidepair.errors import DataError

if TYPE_CHECKING:
    import SimpleITK as sitk


def image_affine(image: sitk.Image) -> np.ndarray:
    """RAS affine of a SimpleITK image for its array indexed (x, y, z)."""
    return sitk_affine(image.GetDirection(), image.GetSpacing(), image.GetOrigin())


def list_series(folder: str | Path) -> dict[str, list[str]]:
    """DICOM series ids in ``folder`` -> their files, sorted by position (SimpleITK/GDCM).

    A folder is scanned once while it is unchanged (its modification time and number of entries): reading
    a series and naming its group (``check-sides``) ask for the same listing.
    """
    path = Path(folder)
    stamp = (path.stat().st_mtime_ns, sum(1 for _ in path.iterdir()))
    return {sid: list(files) for sid, files in _scan_series(str(folder), stamp).items()}


@functools.lru_cache(maxsize=64)
def _scan_series(folder: str, stamp: tuple[int, int]) -> dict[str, tuple[str, ...]]:
    import SimpleITK as sitk  # large; imported only where DICOM is read

    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder) or ()
    return {sid: tuple(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, sid)) for sid in ids}


def is_dicom_folder(folder: Path) -> bool:
    """Whether ``folder`` directly holds at least one DICOM file (by the DICM preamble)."""
    for path in sorted(folder.iterdir())[:50]:
        if path.is_file():
            try:
                with open(path, "rb") as handle:
                    handle.seek(128)
                    if handle.read(4) == b"DICM":
                        return True
            except OSError:
                continue
    return False


def choose_series(folder: Path, series: str | None = None) -> tuple[str, list[str]]:
    """The series to read from ``folder`` and its files; never one picked silently among several.

    Raises:
        DataError: No folder or no series, several series and none chosen (they are listed), or an
            unknown ``series``.
    """
    if not folder.is_dir():
        raise DataError(folder, "DICOM folder not found")
    found = list_series(folder)
    if not found:
        raise DataError(folder, "no DICOM series found")
    if series is None:
        if len(found) > 1:
            listing = ", ".join(f"{sid} ({len(files)} files)" for sid, files in sorted(found.items()))
            raise DataError(folder, f"holds {len(found)} DICOM series; choose one with --series: {listing}")
        series = next(iter(found))
    if series not in found:
        raise DataError(folder, f"no series {series!r}; found {', '.join(sorted(found))}")
    return series, found[series]


def load_dicom_series(folder: str | Path, series: str | None = None) -> Volume:
    """Read one DICOM series as a RAS+ volume in HU.

    Args:
        folder: Folder holding the series' files.
        series: Series instance UID to take when the folder holds several.

    Returns:
        The volume; ``original_affine`` and ``original_shape`` describe the series as SimpleITK reads
        it (array indexed x, y, z), the geometry predictions are written back in.

    Raises:
        DataError: No series, several series and none chosen (they are listed), an unknown
            ``series``, or unreadable slices.
    """
    folder = Path(folder)
    import SimpleITK as sitk  # large; imported only where DICOM is read

    series, files = choose_series(folder, series)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise DataError(folder, f"cannot read DICOM series ({str(exc).strip().splitlines()[-1]})") from None
    array = sitk_to_xyz(sitk.GetArrayFromImage(image))
    if array.ndim != 3:
        raise DataError(folder, f"expected a 3D series, got shape {array.shape}")
    affine = image_affine(image)
    check_affine(affine, folder)
    check_image_values(array, folder)
    ras, ras_affine = reorient_to_ras(array, affine)
    return Volume(ras, ras_affine, folder, tuple(array.shape), affine)
