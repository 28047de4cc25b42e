"""The scans check-sides reads: NIfTI files and folders, DICOM series, PNG slices alone or in folders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import nibabel as nib
import numpy as np

from sidepair.data.dicom import is_dicom_folder, load_dicom_series
from sidepair.data.formats.base import CaseSource
from sidepair.data.formats.slices import SPACING_KEY, SlicesFormat, warn_assumed_spacing
from sidepair.data.volume import Volume, is_nifti, load_nifti, volume_from_image
from sidepair.errors import DataError

IMAGE_SUFFIXES = (".png",)
# The side model reads millimetres: a PNG of unknown pixel size is read as a CT of a typical field of view,
# 400 mm, the median of the 205 KiTS19 scans whose patients are not among the repository's test slices
# (0.78 mm at 512 pixels; 72 % of them within 15 % of it, against 32 % of 1 mm:
# benchmarks/studies/png_field_of_view.py).
ASSUMED_FIELD_OF_VIEW = 400.0


def _nifti_loader(path: Path) -> Volume:
    """A NIfTI scan; a 2D one (a single slice stored without its third axis) as a volume of one slice."""
    try:
        img = nib.load(str(path))
    except Exception:  # load_nifti names the file and the problem
        return load_nifti(path)
    if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        return load_nifti(path)
    if len(img.shape) == 2:
        img = type(img)(np.asanyarray(img.dataobj)[..., None], img.affine, img.header)
    return volume_from_image(img, path)


def _png_root(png: Path) -> Path:
    return png.parent.parent if png.parent.name == "images" else png.parent


@dataclass(frozen=True)
class PngReading:
    """How to read PNG slices where their ``slices.json`` says nothing (as ``prepare`` reads slice folders).

    Attributes:
        spacing: Pixel spacing (mm); None: a slice's larger side spans ``field_of_view``, with a warning.
        convention: ``radiological`` (the patient's left on the image's right) or ``neurological``.
        intensity: ``(slope, intercept)`` turning pixel values into HU (an export windowed at level L and
            width W to 0-255: ``(W / 255, L - W / 2)``).
        field_of_view: Without a spacing: the field of view (mm) a slice's larger side is taken to span
            (None: 1 mm a pixel, as ``prepare`` reads slice folders).
    """

    spacing: float | None = None
    convention: Literal["radiological", "neurological"] = "radiological"
    intensity: tuple[float, float] = (1.0, 0.0)
    field_of_view: float | None = ASSUMED_FIELD_OF_VIEW


class PngFolders:
    """Reads PNG slices, each folder's ``slices.json`` once (a slice folder can hold thousands of slices).

    Args:
        reading: How to read them where their ``slices.json`` says nothing.
    """

    def __init__(self, reading: PngReading) -> None:
        self.reading = reading
        self._folders: dict[Path, tuple[SlicesFormat, dict[str, dict[str, Any]]]] = {}

    def folder(self, root: Path) -> tuple[SlicesFormat, dict[str, dict[str, Any]]]:
        """The reader of the slice folder ``root`` and its ``slices.json`` entries (read on first use)."""
        if root not in self._folders:
            dataset = SlicesFormat(
                root,
                convention=self.reading.convention,
                spacing=self.reading.spacing,
                intensity=self.reading.intensity,
                field_of_view=self.reading.field_of_view,
            )
            self._folders[root] = (dataset, dataset._meta())
        return self._folders[root]

    def entry(self, png: Path) -> dict[str, Any]:
        """What the ``slices.json`` of ``png``'s folder says of it (empty when nothing)."""
        return dict(self.folder(_png_root(png))[1].get(png.name, {}))

    def __call__(self, png: Path) -> Volume:
        """A PNG slice, in a slice folder (``images/``) with its ``slices.json`` or alone."""
        dataset, _ = self.folder(_png_root(png))
        return dataset.load_image(CaseSource(png.stem, png, None, extra=self.entry(png)))


def _png_loader(png: Path, reading: PngReading = PngReading()) -> Volume:  # noqa: B008 (frozen, shared)
    """A PNG slice, in a slice folder (``images/``) with its ``slices.json`` or alone."""
    return PngFolders(reading)(png)


def warn_unknown_spacing(scans: list[tuple[Path, Any]], spacing: float | None) -> None:
    """One warning per folder whose PNG slices have no pixel spacing (none in ``slices.json``, none given).

    The halves a single slice is read in cover a share of the body that the spacing sets.
    """
    if spacing is not None:
        return
    by_root: dict[Path, tuple[PngFolders, list[Path]]] = {}
    for path, loader in scans:
        if isinstance(loader, PngFolders):
            by_root.setdefault(_png_root(path), (loader, []))[1].append(path)
    for root in sorted(by_root):
        folders, pngs = by_root[root]
        dataset, meta = folders.folder(root)
        bare = [p for p in pngs if not meta.get(p.name, {}).get(SPACING_KEY)]
        if bare:
            warn_assumed_spacing(
                root, len(bare), len(pngs), "a wrong one changes verdicts", dataset.assumed()
            )


def plan_scans(inputs: list[str | Path], png: PngReading = PngReading()) -> list[tuple[Path, Any]]:  # noqa: B008
    """Every scan to check: ``(path, loader)``, loaders called one at a time.

    Each input is a NIfTI file, a folder of NIfTI files, a DICOM series folder, a slice folder
    (``images/*.png``) or a folder of PNG slices, or a PNG slice; ``png`` says how to read PNGs where their
    ``slices.json`` says nothing.

    Raises:
        DataError: A missing input, or one that holds nothing to check.
    """
    png_loader = PngFolders(png)
    scans: list[tuple[Path, Any]] = []
    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            raise DataError(path, "input not found")
        if path.is_file():
            if is_nifti(path):
                scans.append((path, _nifti_loader))
            elif path.suffix.lower() in IMAGE_SUFFIXES:
                scans.append((path, png_loader))
            else:
                raise DataError(path, "not a NIfTI file (.nii.gz, .nii), a PNG slice or a folder")
            continue
        if is_dicom_folder(path):
            scans.append((path, load_dicom_series))
            continue
        images = path / "images" if (path / "images").is_dir() else path
        pngs = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        niftis = sorted(p for p in path.iterdir() if p.is_file() and is_nifti(p))
        if not pngs and not niftis:
            raise DataError(path, "no NIfTI files, PNG slices or DICOM series in the folder")
        scans += [(p, _nifti_loader) for p in niftis] + [(p, png_loader) for p in pngs]
    return scans
