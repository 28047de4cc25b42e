"""Check scans' left-right: one scan (the public ``check_sides``) or every scan of several inputs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from tqdm import tqdm

from sidepair.choices import DEFAULT_SIDE_THRESHOLD
from sidepair.data.volume import Volume
from sidepair.errors import DataError, SidepairError
from sidepair.qc.scans import PngReading, plan_scans, warn_unknown_spacing
from sidepair.qc.side_model import SideCheck, SideModel


def check_sides(
    image: str | Path | Volume,
    model: str | Path | Sequence[str | Path] | SideModel | None = None,
    threshold: float = DEFAULT_SIDE_THRESHOLD,
    pixel_spacing: float | None = None,
    convention: Literal["radiological", "neurological"] = "radiological",
    intensity: tuple[float, float] = (1.0, 0.0),
) -> SideCheck:
    """Check one scan's left-right: ``sidepair.check_sides("ct.nii.gz").verdict``.

    Args:
        image: A NIfTI file, a DICOM series folder, a PNG slice, or a loaded :class:`Volume`.
        model: A side-pair run or checkpoint with a side head, several read together, or a loaded model;
            the shipped one when None.
        threshold: Probability at or above which the verdict is ``ok`` (``flipped`` at or below 1 - it).
        pixel_spacing: Pixel spacing (mm) of a PNG slice that no ``slices.json`` gives one for (else
            1 mm, with a warning).
        convention: A PNG's left-right convention where ``slices.json`` gives no axis codes.
        intensity: A PNG's ``(slope, intercept)`` from pixel values to HU (see :class:`PngReading`).
    """
    if not 0.5 < threshold < 1:
        raise SidepairError(f"threshold must lie between 0.5 and 1, got {threshold}")
    side_model = model if isinstance(model, SideModel) else SideModel.load(model)
    if isinstance(image, Volume):
        return side_model.check(image, threshold)
    scans = plan_scans([image], PngReading(pixel_spacing, convention, tuple(intensity)))
    if len(scans) != 1:
        raise DataError(Path(image), f"holds {len(scans)} scans; check them with check_paths")
    warn_unknown_spacing(scans, pixel_spacing)
    path, loader = scans[0]
    return side_model.check(loader(path), threshold)


def check_paths(
    inputs: list[str | Path],
    model: SideModel,
    threshold: float = DEFAULT_SIDE_THRESHOLD,
    progress: bool = True,
    pixel_spacing: float | None = None,
    convention: Literal["radiological", "neurological"] = "radiological",
    intensity: tuple[float, float] = (1.0, 0.0),
) -> list[SideCheck]:
    """Check every scan of ``inputs`` (see :func:`plan_scans`; PNG options as :func:`check_sides`).

    Raises:
        DataError: The first scan that cannot be checked, naming its file and why.
    """
    scans = plan_scans(inputs, PngReading(pixel_spacing, convention, tuple(intensity)))
    warn_unknown_spacing(scans, pixel_spacing)
    bar = tqdm(scans, desc="check-sides", unit="scan", disable=None if progress and len(scans) > 1 else True)
    return [model.check(loader(path), threshold) for path, loader in bar]
