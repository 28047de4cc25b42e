"""Reasons to withhold a verdict from what a scan is (``qc.inputs``) and the thresholds that apply."""

import numpy as np
import pytest

from sidepair import check_sides
from sidepair.data.volume import Volume, load_nifti
from sidepair.errors import SidepairError
from sidepair.qc.inputs import read_scan
from sidepair.qc.side_model import SideModel
from sidepair.qc.verdict import decide, threshold_for


def windowed(volume: Volume, level: float, width: float) -> Volume:
    """An 8-bit export through a display window whose pixels are then read as HU."""
    lo = level - width / 2
    pixels = np.round((np.clip(volume.array, lo, lo + width) - lo) / width * 255)
    return Volume(pixels.astype(np.float32), volume.affine, volume.source)


def test_one_level_needs_the_slice_threshold_and_reasons_withhold_any_verdict():
    assert threshold_for(1, 0.75, 0.95) == 0.95 and threshold_for(2, 0.75, 0.95) == 0.75
    weak = "weak evidence: p 0.90 from one level, needs 0.95 either way"
    assert decide(0.9, 1, []) == ("unsure", weak, 0.95)
    assert decide(0.9, 12, []) == ("ok", "", 0.75)
    assert decide(0.03, 1, []) == ("flipped", "", 0.95)
    assert decide(0.999, 40, ["values not HU"]) == ("unsure", "values not HU", 0.75)


def test_the_phantom_as_hu_clipped_and_windowed(states):
    volume = load_nifti(states / "asis.nii.gz")
    plain = read_scan(volume)
    assert plain.reasons() == [] and not plain.clipped_low and plain.slices == 12
    assert 200 < plain.body_width_mm < 400 and plain.rim_fat > 0.3
    clipped = read_scan(Volume(np.clip(volume.array, 0, 255), volume.affine, volume.source))
    assert clipped.reasons() == [] and clipped.notes() == ["values clipped to [0, 255]"]
    assert clipped.rim_fat > 0.2  # fat under the skin sits at the clip floor
    # The phantom's fat (-100 HU, noise up to 20) reaches below windows starting at -125: not those.
    for level, width in ((40, 400), (0, 500)):
        reading = read_scan(windowed(volume, level, width))
        assert reading.rim_fat < 0.15, reading
        [reason] = reading.reasons()
        assert reason.startswith("values not HU:") and "--intensity" in reason


def test_a_wrong_spacing_makes_an_implausible_body(states):
    volume = load_nifti(states / "asis.nii.gz")
    affine = volume.affine.copy()
    affine[:3, :2] *= 3  # pixels read three times too large
    reading = read_scan(Volume(volume.array, affine, volume.source))
    [reason] = reading.reasons()
    assert reason.startswith("body ") and "wide, outside 120-650 mm" in reason


def test_a_withheld_scan_is_unsure_with_its_reason_and_keeps_its_probability(states):
    model = SideModel.load()
    volume = load_nifti(states / "asis.nii.gz")
    check = model.check(windowed(volume, 40, 400))
    assert check.verdict == "unsure" and check.abstained and check.reason.startswith("values not HU")
    assert 0 <= check.probability <= 1 and len(check.level_evidence) == check.levels
    assert model.check(volume).verdict == "ok" and not model.check(volume).abstained


@pytest.mark.parametrize("threshold", [0.5, 1.0])
def test_thresholds_outside_the_open_interval_are_refused(states, threshold):
    with pytest.raises(SidepairError, match="slice_threshold must lie between 0.5 and 1"):
        check_sides(states / "asis.nii.gz", slice_threshold=threshold)
