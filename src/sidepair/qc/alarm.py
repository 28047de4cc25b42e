"""The side check that ``prepare`` and ``predict`` run on each scan: a warning or an error when flipped."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

from sidepair.choices import SideCheckMode
from sidepair.data.volume import Volume
from sidepair.errors import DataError, DataWarning
from sidepair.qc.side_model import SideModel


@functools.lru_cache(maxsize=1)
def _shipped_model() -> SideModel:
    return SideModel.load()


def scan_alarm(mode: SideCheckMode = "warn") -> Callable[[Volume], None] | None:
    """What ``prepare`` and ``predict`` call on each scan: warn or raise when the shipped model says flipped.

    Only a ``flipped`` verdict of a 3D scan alarms. ``unsure`` stays quiet (many scans give the model little
    to read), and so do single slices: one level is too little to rest an alarm on (on 24 real KiTS19
    slices as they are, the shipped model called 5 flipped; docs/measurements.md).

    Args:
        mode: ``warn`` (a one-line :class:`DataWarning` naming the file), ``error`` (a :class:`DataError`)
            or ``off`` (None: no check).
    """
    if mode == "off":
        return None

    def alarm(volume: Volume) -> None:
        if min(volume.array.shape) < 2:
            return
        check = _shipped_model().check(volume)
        if check.verdict != "flipped":
            return
        what = (
            f"looks flipped left-right: the shipped side model gives {check.probability:.2f} that its "
            f"header's right is the patient's right ({check.levels} levels); check its header"
        )
        if mode == "error":
            raise DataError(volume.source, f"{what}, or pass --side-check warn or off")
        warnings.warn(DataWarning(f"{volume.source}: {what} (--side-check off silences this)"), stacklevel=2)

    return alarm
