"""Where a level lies (``qc.levels``): chest and pelvis levels set aside, a single slice there withheld."""

from pathlib import Path

import numpy as np
import pytest

from sidepair import check_sides
from sidepair.data.phantom import generate_case
from sidepair.data.volume import Volume, volume_from_image
from sidepair.qc.levels import LevelReading, outline, read_level
from sidepair.qc.side_model import SideModel


@pytest.fixture(scope="module")
def trunk() -> tuple[Volume, dict[str, float]]:
    """One ``--anatomy trunk`` phantom case (RAS) and its lung base and iliac crest heights."""
    drawn = generate_case("trunk", 0, 0, shape=(128, 128, 80), axcodes="RAS", anatomy="trunk")
    return volume_from_image(drawn.image, Path("trunk.nii.gz")), drawn.spec.levels


def from_level(volume: Volume, z_mm: float, count: int | None = 1) -> Volume:
    """``count`` axial slices (all the rest: None) from the one nearest ``z_mm``, with their own affine."""
    k = int(round((z_mm - volume.affine[2, 3]) / volume.affine[2, 2]))
    affine = volume.affine.copy()
    affine[2, 3] += k * volume.affine[2, 2]
    stop = None if count is None else k + count
    return Volume(volume.array[:, :, k:stop].astype(np.float32), affine, Path(f"{volume.source}#z{k}"))


def reading(slice_: Volume, bounds: tuple[float, float] | None = None) -> LevelReading:
    image = slice_.array[:, :, 0] if bounds is None else np.clip(slice_.array[:, :, 0], *bounds)
    found = read_level(image, float(slice_.spacing[0]), float(image.min()), float(image.max()))
    assert found is not None
    return found


def test_kinds_from_the_two_measures():
    assert LevelReading((80.0, 95.0), (0.0, 0.0)).kind == "chest"
    assert LevelReading((80.0, 20.0), (0.0, 0.0)).kind == "abdomen"  # air on one side: bowel gas
    assert LevelReading((10.0, 12.0), (6.0, 4.5)).kind == "pelvis"
    assert LevelReading((10.0, 12.0), (9.0, 1.0)).kind == "abdomen"  # bone on one side only
    assert LevelReading((10.0, 12.0), (9.0, 1.0)).reason() == ""
    assert (
        LevelReading((80.0, 95.0), (0.0, 0.0)).reason()
        == "level in the chest: air regions of 80 and 95 cm2 (lungs)"
    )
    pelvis = LevelReading((10.0, 12.0), (6.0, 4.5)).reason()
    assert pelvis == "level at the pelvis: bone plates of 4.5 and 6.0 cm2 at the sides (iliac wings)"


@pytest.mark.parametrize("bounds", [None, (-125, 275), (0, 255)])
def test_the_phantom_trunk_levels_as_hu_and_clipped(trunk, bounds):
    volume, levels = trunk
    kidneys = (levels["lung_base_z"] + levels["iliac_crest_z"]) / 2
    chest = reading(from_level(volume, levels["lung_base_z"] + 60), bounds)
    assert chest.kind == "chest" and min(chest.air_cm2) > 60
    pelvis = reading(from_level(volume, levels["iliac_crest_z"] - 40), bounds)
    assert pelvis.kind == "pelvis" and min(pelvis.bone_cm2) > 4
    middle = reading(from_level(volume, kidneys), bounds)
    assert middle.kind == "abdomen" and max(middle.bone_cm2) < 1


def test_a_slice_in_the_chest_or_pelvis_is_withheld_and_a_volume_sets_them_aside(trunk):
    volume, levels = trunk
    model = SideModel.load()
    pelvis = check_sides(from_level(volume, levels["iliac_crest_z"] - 40), model=model)
    assert pelvis.verdict == "unsure" and pelvis.abstained and pelvis.levels == 1
    assert pelvis.reason.startswith("level at the pelvis: bone plates of ")
    chest = check_sides(from_level(volume, levels["lung_base_z"] + 60), model=model)
    assert chest.verdict == "unsure" and chest.reason.startswith("level in the chest: air regions of ")
    whole = check_sides(volume, model=model)
    assert whole.verdict == "ok" and not whole.abstained
    assert (
        "levels set aside: " in whole.notes
        and " in the chest" in whole.notes
        and " in the pelvis" in whole.notes
    )
    assert len(whole.level_evidence) == whole.levels < len(model.level_evidence(volume))


def test_a_volume_of_chest_levels_only_is_withheld(trunk):
    volume, levels = trunk
    check = check_sides(from_level(volume, levels["lung_base_z"] + 40, count=None))
    assert check.verdict == "unsure" and check.abstained
    assert (
        check.reason.startswith("no level between the lungs and the pelvis: ")
        and "in the chest" in check.reason
    )


def _slice_with_bones(plates: bool, joined: bool) -> np.ndarray:
    """A 1 mm axial slice: an elliptic body of soft tissue, a sacrum on the midline, and either two iliac
    wings (plates 12 mm thick, a 2 mm cortex of 700 HU around marrow of 200 HU, as on real CT) or two rib
    sections (rings 12 mm across)."""
    x, y = np.meshgrid(np.arange(-200, 200), np.arange(-150, 150), indexing="ij")
    image = np.full(x.shape, -1000.0)
    image[(x / 170.0) ** 2 + (y / 120.0) ** 2 <= 1] = 40.0
    sacrum = np.hypot(x, y + 60) <= 25
    image[sacrum] = 700.0
    for side in (1, -1):
        if plates:  # along x, out to 110 mm, from beside the sacrum (touching it when joined)
            start = 20 if joined else 40
            band = np.abs(y + 60 - 0.2 * side * x)
            outer = (side * x >= start) & (side * x <= 110) & (band <= 6)
            inner = (side * x >= start + 2) & (side * x <= 108) & (band <= 4)
        else:
            r = np.hypot(x - side * 110, y + 40)
            outer, inner = r <= 6, r <= 4
        image[outer] = 700.0
        image[inner] = 200.0  # marrow: under the 300 HU a bone's cortex reaches
    return image


@pytest.mark.parametrize("joined", [False, True])
def test_iliac_wings_count_with_their_marrow_and_where_they_meet_the_sacrum(joined):
    found = read_level(_slice_with_bones(plates=True, joined=joined), 1.0, -1000.0, 700.0)
    assert found is not None and found.kind == "pelvis", found
    # The plate beyond the lateral band (0.4 of the half-width, 68 mm): 42 x 12 mm, not its cortex alone (2)
    assert found.bone_cm2 == pytest.approx((5.0, 5.0), abs=1.0)


def test_rib_sections_beside_the_organs_stay_under_the_pelvis_test():
    found = read_level(_slice_with_bones(plates=False, joined=False), 1.0, -1000.0, 700.0)
    assert found is not None and found.kind == "abdomen"
    assert max(found.bone_cm2) == pytest.approx(np.pi * 0.6**2, rel=0.3)  # a rib ring 12 mm across, filled


def test_outline_reads_at_about_2_mm_and_drops_what_is_smaller_than_a_trunk():
    """A 300 x 200 mm elliptic body at 0.7 mm is read at 1.4 mm; its hull is the ellipse; a 80 mm one is
    no trunk."""
    x, y = np.mgrid[-250:250, -200:200] * 0.7  # mm, axis 0 left-right
    body = (x / 150) ** 2 + (y / 100) ** 2 <= 1
    image = np.where(body, 40.0, -1000.0).astype(np.float32)
    read = outline(image, 0.7, -500.0)
    assert read is not None and read.step == 2 and read.spacing == pytest.approx(1.4)
    assert read.image.shape == (250, 200)
    assert read.hull.sum() * read.spacing**2 == pytest.approx(np.pi * 150 * 100, rel=0.02)
    small = np.where((x / 40) ** 2 + (y / 40) ** 2 <= 1, 40.0, -1000.0).astype(np.float32)
    assert outline(small, 0.7, -500.0) is None
