import json

import nibabel as nib
import numpy as np
import pytest

from sidepair.data.phantom import ORGANS, generate_case, write_slices
from sidepair.data.phantom_anatomy import UNENHANCED, Anatomy, anatomy_for
from sidepair.data.phantom_nnunet import write_nnunet
from sidepair.data.sides import body_midline_x
from tests.conftest import run_cli

SHAPE = (96, 96, 48)


def _first(unenhanced: bool, seed: int = 5) -> int:
    return next(i for i in range(100) if anatomy_for("varied", seed, i).unenhanced == unenhanced)


def test_fixed_is_the_template_and_varied_is_drawn_per_case():
    assert anatomy_for("fixed", 5, 3) == Anatomy()
    assert anatomy_for("varied", 5, 3) == anatomy_for("varied", 5, 3)
    draws = [anatomy_for("varied", 5, i) for i in range(300)]
    assert len({d.liver for d in draws}) == 300
    assert 0.22 < np.mean([d.unenhanced for d in draws]) < 0.38  # the 30 % share, at n = 300
    assert all(-20 <= d.aorta_dx <= -8 and 14 <= d.ivc_dx <= 26 for d in draws)  # never across the midline
    assert all(min(d.liver.scale) >= 0.75 and max(d.liver.scale) <= 1.25 for d in draws)


def test_a_fixed_case_draws_nothing_from_the_varied_stream():
    """The varied stream is separate: the fixed phantom (the demo's, the tests') stays as it was."""
    a = generate_case("c", 5, 0, SHAPE)
    b = generate_case("c", 5, 0, SHAPE, anatomy="fixed")
    np.testing.assert_array_equal(np.asanyarray(a.image.dataobj), np.asanyarray(b.image.dataobj))
    assert a.spec.anatomy == "fixed" and a.spec.contrast >= 0.5


@pytest.mark.parametrize("unenhanced", [True, False])
def test_varied_cases_keep_organs_on_their_sides_in_their_phase(unenhanced):
    index = _first(unenhanced)
    drawn = generate_case("c", 5, index, SHAPE, anatomy="varied")
    assert drawn.spec.anatomy == "varied" and (drawn.spec.contrast == 0.0) == unenhanced
    organs = np.asanyarray(drawn.organs.dataobj)
    image = np.asanyarray(drawn.image.dataobj).astype(float)
    affine = drawn.organs.affine
    midline = body_midline_x(np.asanyarray(drawn.image.dataobj), affine)
    world_x = {}
    for name, code in ORGANS.items():
        idx = np.argwhere(organs == code)
        assert len(idx) > 50, name
        world_x[name] = (affine @ np.c_[idx, np.ones(len(idx))].T)[0].mean()
    assert min(world_x["liver"], world_x["ivc"]) > midline > max(world_x["spleen"], world_x["aorta"])
    aorta = float(np.median(image[organs == ORGANS["aorta"]]))
    liver = float(np.median(image[organs == ORGANS["liver"]]))
    if unenhanced:
        # Blood and liver at their unenhanced numbers (noise and the edge blur move a median a little).
        assert abs(aorta - UNENHANCED["blood"]) < 25 and abs(liver - UNENHANCED["liver"]) < 25
        assert np.percentile(image[np.asanyarray(drawn.label.dataobj) == 1], 90) < 100  # no enhancing cortex
    else:
        assert aorta > 170 and liver > 110


def test_cli_writes_varied_anatomy_into_phantom_json(tmp_path):
    result = run_cli(
        "phantom", "--out", tmp_path / "p", "--cases", "2", "--shape", "64", "64", "32", "--anatomy",
        "varied", "--no-montage",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    meta = json.loads((tmp_path / "p" / "phantom.json").read_text(encoding="utf-8"))
    assert meta["anatomy"] == "varied" and {c["anatomy"] for c in meta["cases"]} == {"varied"}
    assert sorted(nib.load(tmp_path / "p" / "case_00001" / "organs.nii.gz").shape) == [32, 64, 64]


def test_every_layout_draws_the_anatomy_it_is_given(tmp_path):
    """Slice folders and nnU-Net's raw layout take ``anatomy`` too (the CLI passes ``--anatomy`` to all)."""
    index = _first(unenhanced=True, seed=2)
    slices = write_slices(tmp_path / "s", cases=index + 1, seed=2, shape=(64, 64, 32), anatomy="varied")
    raw = write_nnunet(
        tmp_path / "Dataset509_T", cases=index + 1, seed=2, shape=(64, 64, 32), anatomy="varied"
    )
    for specs in (slices, raw):
        assert {s.anatomy for s in specs} == {"varied"} and specs[index].contrast == 0.0


def test_varied_draws_masses_on_either_side_and_enlarged_spleens():
    draws = [anatomy_for("varied", 5, i) for i in range(300)]
    masses = [d.mass for d in draws if d.mass is not None]
    assert 0.27 < len(masses) / 300 < 0.43  # the 35 % share, at n = 300
    sides = [m.side for m in masses]
    assert 0.3 < sides.count(-1) / len(sides) < 0.7  # side independent of anatomy: no shortcut
    assert all(35 <= m.radius <= 60 and 0 <= m.below_liver <= 35 for m in masses)
    enlarged = [d for d in draws if min(d.spleen.scale) > 1.35]
    assert 0.13 < len(enlarged) / 300 < 0.27 and all(d.spleen.shift[2] < 0 for d in enlarged)


@pytest.mark.parametrize("side", [1, -1])
def test_a_mass_is_liver_grey_tumour_on_its_own_side(side):
    index = next(i for i in range(200) if (m := anatomy_for("varied", 5, i).mass) and m.side == side)
    anat = anatomy_for("varied", 5, index)
    drawn = generate_case("c", 5, index, SHAPE, anatomy="varied", axcodes="RAS")
    label = np.asanyarray(drawn.label.dataobj)
    image = np.asanyarray(drawn.image.dataobj).astype(float)
    affine = drawn.label.affine
    tumour = np.argwhere(label == 2)
    # Larger than any tumour of the template (radius at most 28 mm).
    volume_mm3 = len(tumour) * abs(np.linalg.det(affine[:3, :3]))
    assert volume_mm3 > 4 / 3 * np.pi * 28**3
    midline = body_midline_x(image, affine)
    x = (affine @ np.c_[tumour, np.ones(len(tumour))].T)[0]
    assert np.mean(np.sign(x - midline) == side) > 0.95
    assert drawn.spec.tumour in ({1: "right", -1: "left"}[side], "both")
    liver = float(np.median(image[np.asanyarray(drawn.organs.dataobj) == ORGANS["liver"]]))
    mass = float(np.median(image[label == 2]))
    assert -80 < mass - liver < 10 and anat.mass is not None
