"""All 210 real KiTS19 segmentations: left and right from the affine (IPL), one or two kidneys."""

from multiprocessing import Pool

import pytest

from sidepair.data.sides import survey_label_file

pytestmark = [pytest.mark.realdata, pytest.mark.slow]  # 210 files: about 4 minutes on 2 cores


@pytest.fixture(scope="module")
def survey(shared_data):
    files = sorted(str(p) for p in (shared_data / "kits19_masks").glob("case_*/segmentation.nii.gz"))
    with Pool(2) as pool:
        return pool.map(survey_label_file, files)


def test_every_case_is_read_and_has_a_kidney(survey):
    assert len(survey) == 210
    assert [r for r in survey if "error" in r] == []
    assert all(r["sides"] for r in survey)
    assert {r["axcodes"] for r in survey} == {"IPL"}


def test_two_and_one_kidney_counts(survey):
    two = [r for r in survey if r["sides"] == ["right", "left"]]
    one = {r["path"].split("/")[-2]: r["sides"] for r in survey if len(r["sides"]) == 1}
    assert len(two) == 207
    assert one == {"case_00005": ["left"], "case_00165": ["right"], "case_00194": ["right"]}


def test_sides_in_world_coordinates_and_right_kidney_lower(survey):
    two = [r for r in survey if r["sides"] == ["right", "left"]]
    for r in two:
        assert r["centres_mm"]["right"][0] > r["centres_mm"]["left"][0], r["path"]
    # Anatomy, independent of the assignment rule: the right kidney usually sits lower (the liver).
    lower = sum(r["centres_mm"]["right"][2] < r["centres_mm"]["left"][2] for r in two)
    # Measured: 131/207 (63 %); a left-right swap would give about 37 %.
    assert lower / len(two) > 0.55, lower
