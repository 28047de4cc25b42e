import json

import nibabel as nib
import numpy as np
import pytest

from sidepair.data.formats import open_dataset
from sidepair.data.labels import LEFT, RIGHT
from sidepair.data.phantom import generate_case, load_phantom_specs
from sidepair.data.sides import assign_sides, body_midline_x


def test_same_seed_same_case_different_seed_different():
    a = generate_case("c", seed=3, index=1, shape=(64, 64, 32))
    b = generate_case("c", seed=3, index=1, shape=(64, 64, 32))
    c = generate_case("c", seed=4, index=1, shape=(64, 64, 32))
    np.testing.assert_array_equal(np.asanyarray(a[0].dataobj), np.asanyarray(b[0].dataobj))
    assert a.spec == b.spec
    assert not np.array_equal(np.asanyarray(a[0].dataobj), np.asanyarray(c[0].dataobj))


def test_phantom_folder_is_kits_layout_with_ground_truth(small_phantom):
    assert sorted(p.name for p in small_phantom.glob("case_*")) == [f"case_{i:05d}" for i in range(8)]
    meta = json.loads((small_phantom / "phantom.json").read_text(encoding="utf-8"))
    assert "not patient data" in meta["note"]
    codes = {c["axcodes"] for c in meta["cases"]}
    assert len(codes) >= 3, codes  # orientations vary, so readers are exercised
    assert len({c["spacing"][2] for c in meta["cases"]}) >= 2  # slice spacing varies


def test_hu_values_are_realistic(small_phantom):
    image = np.asanyarray(nib.load(small_phantom / "case_00000" / "imaging.nii.gz").dataobj).astype(float)
    label = np.asanyarray(nib.load(small_phantom / "case_00000" / "segmentation.nii.gz").dataobj)
    hist, edges = np.histogram(image[(image > -300) & (image < 300)], bins=60, range=(-300, 300))
    assert -140 <= edges[np.argmax(hist[:25])] <= -60  # fat peak about -100
    assert np.percentile(image, 1) < -900  # air and bowel gas
    assert 400 <= np.percentile(image[image > 300], 50) <= 1000  # bone
    kidney = image[label == 1]
    assert np.percentile(kidney, 90) > 150 > np.percentile(kidney, 40)  # cortex enhances more than medulla
    assert (kidney < -50).mean() > 0.02  # renal sinus fat inside the kidney outline


def test_sides_right_lower_and_hilum_medial_in_every_orientation(small_phantom):
    specs = load_phantom_specs(small_phantom)
    ds = open_dataset(small_phantom)
    for source in ds.cases():
        case = ds.load(source)
        aff = case.image.affine
        side, report = assign_sides(case.labels.label > 0, aff, body_midline_x(case.image.array, aff))
        assert report.sides_present == ["right", "left"], source.case_id
        centres = {}
        for name, code in (("right", RIGHT), ("left", LEFT)):
            idx = np.argwhere((side == code) & (case.labels.label == 1))
            world = idx @ aff[:3, :3].T + aff[:3, 3]
            centres[name] = world.mean(axis=0)
            # The drawn centre and the found one agree (the tumour, if any, is excluded above).
            assert np.linalg.norm(centres[name] - specs[source.case_id]["kidneys"][name]) < 12, source.case_id
            # Hilum faces medially: the renal sinus fat lies medial to the kidney's centre.
            sinus = np.argwhere((side == code) & (case.labels.label == 1) & (case.image.array < -50))
            sinus_x = (sinus @ aff[:3, :3].T + aff[:3, 3])[:, 0].mean()
            medial_shift = (centres[name][0] - sinus_x) * (1 if name == "right" else -1)
            assert medial_shift > 2.0, source.case_id
        assert centres["right"][0] > 0 > centres["left"][0]
        assert centres["right"][2] < centres["left"][2], "the right kidney sits lower"


@pytest.mark.realdata
def test_masks_from_real_kits_geometry(shared_data, tmp_path):
    from sidepair.data.phantom import generate_phantom

    masks = shared_data / "kits19_masks"
    src = tmp_path / "src" / "case_00152"  # a small real case: 38 slices
    src.mkdir(parents=True)
    (src / "segmentation.nii.gz").symlink_to(masks / "case_00152" / "segmentation.nii.gz")
    generate_phantom(tmp_path / "out", cases=1, seed=0, masks_from=tmp_path / "src")
    real = nib.load(masks / "case_00152" / "segmentation.nii.gz")
    out_label = nib.load(tmp_path / "out" / "case_00000" / "segmentation.nii.gz")
    out_image = nib.load(tmp_path / "out" / "case_00000" / "imaging.nii.gz")
    # Same kidney voxels in world space, whatever orientation the phantom was written in.
    real_world = np.argwhere(np.asanyarray(real.dataobj) > 0) @ real.affine[:3, :3].T + real.affine[:3, 3]
    out_world = (
        np.argwhere(np.asanyarray(out_label.dataobj) > 0) @ out_label.affine[:3, :3].T
        + out_label.affine[:3, 3]
    )
    assert len(real_world) == len(out_world)
    np.testing.assert_allclose(real_world.mean(axis=0), out_world.mean(axis=0), atol=1e-3)
    image = np.asanyarray(out_image.dataobj)
    assert image.shape == out_label.shape and np.percentile(image, 1) < -900


def test_organ_map_marks_liver_and_ivc_right_spleen_stomach_and_aorta_left_never_kidney(small_phantom):
    from sidepair.data.phantom import ORGANS

    case = small_phantom / "case_00001"
    organs_img = nib.load(case / "organs.nii.gz")
    label_img = nib.load(case / "segmentation.nii.gz")
    np.testing.assert_allclose(organs_img.affine, label_img.affine)
    organs = np.asanyarray(organs_img.dataobj)
    label = np.asanyarray(label_img.dataobj)
    assert organs.shape == label.shape
    assert not ((organs > 0) & (label > 0)).any()  # a kidney drawn over an organ clears it there
    meta = json.loads((small_phantom / "phantom.json").read_text(encoding="utf-8"))
    assert meta["organs"]["codes"] == ORGANS
    # World x (RAS, + toward the patient's right) of each organ's centre, against the body's midline.
    idx = {name: np.argwhere(organs == code) for name, code in ORGANS.items()}
    world_x = {n: (organs_img.affine @ np.c_[i, np.ones(len(i))].T)[0].mean() for n, i in idx.items()}
    image = np.asanyarray(nib.load(case / "imaging.nii.gz").dataobj)
    midline = body_midline_x(image, organs_img.affine)
    assert all(len(i) > 100 for i in idx.values()), {n: len(i) for n, i in idx.items()}
    assert min(world_x["liver"], world_x["ivc"]) > midline
    assert midline > max(world_x["spleen"], world_x["stomach"], world_x["aorta"])
