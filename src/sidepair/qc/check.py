"""Check scans' left-right: one scan (the public ``check_sides``) or every scan of several inputs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from tqdm import tqdm

from sidepair.choices import DEFAULT_FIND_WINDOWS, DEFAULT_SIDE_THRESHOLD, DEFAULT_SLICE_THRESHOLD
from sidepair.data.volume import Volume
from sidepair.errors import DataError, SidepairError
from sidepair.qc.groups import group_key, group_pattern, pool
from sidepair.qc.inputs import read_scan
from sidepair.qc.scans import PngReading, plan_scans, warn_unknown_spacing
from sidepair.qc.side_model import SideModel
from sidepair.qc.verdict import SideCheck
from sidepair.qc.window import find_window, through_window


def read_checked(
    model: SideModel,
    volume: Volume,
    threshold: float = DEFAULT_SIDE_THRESHOLD,
    slice_threshold: float = DEFAULT_SLICE_THRESHOLD,
    find_windows: bool = DEFAULT_FIND_WINDOWS,
) -> SideCheck:
    """``model.check(volume)``, through a window found from the scan where its values are not HU.

    With ``find_windows``, a scan whose values are not HU is first read through the window found from its
    fat and soft tissue (``qc.window``), and ``notes`` says so; where none is found it is withheld, and
    ``notes`` says that too. Without, it is withheld.
    """
    note = ""
    reading = read_scan(volume)
    if reading.not_hu and not find_windows:
        note = "no window sought (--no-find-window)"
    elif reading.not_hu:
        fit = find_window(volume)
        note = "no display window found from fat and soft tissue"
        if fit is not None:
            volume = through_window(volume, fit)
            reading = None  # the values read are no longer this volume's
            note = f"window found from fat and soft tissue: HU = {fit[0]:.3g} x value {fit[1]:+.0f}"
    check = model.check(volume, threshold, slice_threshold, reading)
    if note:
        check.notes = "; ".join(n for n in (note, check.notes) if n)
    return check


def check_sides(
    image: str | Path | Volume,
    model: str | Path | Sequence[str | Path] | SideModel | None = None,
    threshold: float = DEFAULT_SIDE_THRESHOLD,
    pixel_spacing: float | None = None,
    convention: Literal["radiological", "neurological"] = "radiological",
    intensity: tuple[float, float] = (1.0, 0.0),
    slice_threshold: float = DEFAULT_SLICE_THRESHOLD,
    find_windows: bool = DEFAULT_FIND_WINDOWS,
) -> SideCheck:
    """Check one scan's left-right: ``sidepair.check_sides("ct.nii.gz").verdict``.

    Args:
        image: A NIfTI file, a DICOM series folder, a PNG slice, or a loaded :class:`Volume`.
        model: A side-pair run or checkpoint with a side head, several read together, or a loaded model;
            the shipped one when None.
        threshold: Probability at or above which the verdict is ``ok`` (``flipped`` at or below 1 - it).
        pixel_spacing: Pixel spacing (mm) of a PNG slice that no ``slices.json`` gives one for (else its
            larger side is taken to span a 400 mm field of view, with a warning).
        convention: A PNG's left-right convention where ``slices.json`` gives no axis codes.
        intensity: A PNG's ``(slope, intercept)`` from pixel values to HU (see :class:`PngReading`).
        slice_threshold: The threshold of a scan of one level (a single slice), stricter than
            ``threshold``: one level is thin evidence.
        find_windows: Read a scan whose values are not HU (an export through an unknown display window)
            through the window found from its fat and soft tissue (default); False withholds it.
    """
    for name, value in (("threshold", threshold), ("slice_threshold", slice_threshold)):
        if not 0.5 < value < 1:
            raise SidepairError(f"{name} must lie between 0.5 and 1, got {value}")
    side_model = model if isinstance(model, SideModel) else SideModel.load(model)
    if isinstance(image, Volume):
        return read_checked(side_model, image, threshold, slice_threshold, find_windows)
    scans = plan_scans([image], PngReading(pixel_spacing, convention, tuple(intensity)))
    if len(scans) != 1:
        raise DataError(Path(image), f"holds {len(scans)} scans; check them with check_paths")
    warn_unknown_spacing(scans, pixel_spacing)
    path, loader = scans[0]
    return read_checked(side_model, loader(path), threshold, slice_threshold, find_windows)


def check_paths(
    inputs: list[str | Path],
    model: SideModel,
    threshold: float = DEFAULT_SIDE_THRESHOLD,
    progress: bool = True,
    pixel_spacing: float | None = None,
    convention: Literal["radiological", "neurological"] = "radiological",
    intensity: tuple[float, float] = (1.0, 0.0),
    slice_threshold: float = DEFAULT_SLICE_THRESHOLD,
    group_by: str | None = None,
    find_windows: bool = DEFAULT_FIND_WINDOWS,
) -> list[SideCheck]:
    """Check every scan of ``inputs`` (see :func:`plan_scans`), then every group of them (``qc.groups``).

    Args:
        inputs: Files and folders.
        model: The side model.
        threshold: As :func:`check_sides`.
        progress: Show a progress bar for several scans.
        pixel_spacing: As :func:`check_sides`.
        convention: As :func:`check_sides`.
        intensity: As :func:`check_sides`.
        slice_threshold: As :func:`check_sides`.
        group_by: A regular expression on file names whose first capture group (or whole match) names a
            scan's group; None: groups from ``slices.json`` and DICOM series UIDs.
        find_windows: As :func:`check_sides`.

    Returns:
        One check per scan (``kind`` ``scan``, with its ``group``), then one per group (``kind`` ``group``).

    Raises:
        DataError: The first scan that cannot be checked, naming its file and why.
        UsageError: ``group_by`` is not a regular expression.
    """
    pattern = group_pattern(group_by)
    scans = plan_scans(inputs, PngReading(pixel_spacing, convention, tuple(intensity)))
    warn_unknown_spacing(scans, pixel_spacing)
    bar = tqdm(scans, desc="check-sides", unit="scan", disable=None if progress and len(scans) > 1 else True)
    checks = []
    for path, loader in bar:
        check = read_checked(model, loader(path), threshold, slice_threshold, find_windows)
        check.group = group_key(path, loader, pattern)
        checks.append(check)
    return checks + pool(checks, threshold, slice_threshold)


def final_verdicts(checks: list[SideCheck]) -> list[SideCheck]:
    """The verdicts that stand: each group's, and each scan's that belongs to none."""
    return [c for c in checks if c.kind == "group" or not c.group]
