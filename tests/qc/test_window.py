"""An export's display window found from the scan (``qc.window``): fat and soft tissue as anchors."""

from pathlib import Path

import numpy as np
import pytest

from sidepair.data.volume import Volume
from sidepair.qc.window import FAT_HU, TISSUE_HU, find_window, line, through_window


def exported_slice(level: float, width: float, seed: int = 0, fat_mm: float = 20.0) -> Volume:
    """A 1 mm axial slice in HU (air, a rim of fat, soft tissue inside) exported through a window."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.arange(-200, 200), np.arange(-150, 150), indexing="ij")
    r = (x / 160.0) ** 2 + (y / 120.0) ** 2
    hu = np.full(x.shape, -1000.0)
    hu[r <= 1] = FAT_HU
    hu[(x / (160.0 - fat_mm)) ** 2 + (y / (120.0 - fat_mm)) ** 2 <= 1] = TISSUE_HU
    hu += rng.normal(0, 10, hu.shape) * (r <= 1)
    lo = level - width / 2
    pixels = np.round((np.clip(hu, lo, lo + width) - lo) / width * 255)
    return Volume(pixels[:, :, None].astype(np.float32), np.eye(4), Path("export.png"))


@pytest.mark.parametrize(("level", "width"), [(40, 400), (50, 350), (0, 500)])
def test_the_window_is_found_from_fat_and_soft_tissue(level, width):
    fit = find_window(exported_slice(level, width))
    assert fit is not None
    slope, intercept = fit
    # The anchors are the two tissues' commonest values, to the width of a histogram bin (4 of 255).
    assert slope == pytest.approx(width / 255, rel=0.1)
    assert intercept == pytest.approx(level - width / 2, abs=15)
    back = through_window(exported_slice(level, width), fit).array
    assert float(np.median(back[back > -50])) == pytest.approx(TISSUE_HU, abs=10)


def test_nothing_is_found_without_a_body_or_with_one_tissue():
    air = Volume(np.zeros((100, 100, 1), dtype=np.float32), np.eye(4), Path("air.png"))
    assert find_window(air) is None
    assert line(120.0, 120.0) is None and line(130.0, 120.0) is None
    assert line(60.0, 100.0) == pytest.approx(((TISSUE_HU - FAT_HU) / 40, FAT_HU - 4.0 * 60.0))


def test_hu_clipped_at_zero_gives_no_window():
    """HU clipped to [0, 255] (an archive's 8-bit copy) with fat at the floor, with the air: no fat value.

    A lean patient's thin rim of fat may make the fat test call such values not HU. The body then ends at
    the muscle, whose value must not be taken for fat's (it would give a line 30 times too steep).
    """
    clipped = exported_slice(127.5, 255.0, fat_mm=12.0)  # window [0, 255]: values are HU clipped
    assert find_window(clipped) is None
