"""Real CT (TotalSegmentator example): orientation, sides, DICOM geometry, prepare."""

import numpy as np
import pydicom
import pytest

from sidepair.config import get_preset
from sidepair.data.dicom import load_dicom_series
from sidepair.data.formats import detect_format, open_dataset
from sidepair.data.labels import LEFT, RIGHT
from sidepair.data.prepare import prepare
from sidepair.data.sides import assign_sides, body_midline_x
from sidepair.data.store import Store

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def ts_case(shared_data):
    ds = open_dataset(shared_data / "ts_example")
    return ds, ds.load(ds.cases()[0])


def _centre_x(mask, affine):
    return float((np.argwhere(mask).mean(axis=0) @ affine[:3, :3].T + affine[:3, 3])[0])


def test_detected_as_totalseg_and_left_kidney_at_negative_x(shared_data, ts_case):
    assert detect_format(shared_data / "ts_example") == "totalseg"
    _, case = ts_case
    side = case.labels.declared_side
    assert _centre_x(side == LEFT, case.image.affine) < 0 < _centre_x(side == RIGHT, case.image.affine)


def test_component_sides_agree_with_the_per_structure_files(ts_case):
    _, case = ts_case
    aff = case.image.affine
    side, report = assign_sides(case.labels.label > 0, aff, body_midline_x(case.image.array, aff))
    assert report.sides_present == ["right", "left"] and report.tiny == 0
    kidney = case.labels.label > 0
    np.testing.assert_array_equal(side[kidney], case.labels.declared_side[kidney])


def test_prepare_paper_preset_store(shared_data, tmp_path, ts_case):
    out = prepare(
        open_dataset(shared_data / "ts_example"), tmp_path / "store", get_preset("kits19-paper").preprocess
    )
    store = Store(out)
    (entry,) = store.cases.values()
    assert entry.spacing == pytest.approx([3.22, 1.62, 1.62])
    assert entry.original.shape == [122, 101, 112] and entry.original.axcodes == "RAS"
    image = store.array(entry.case_id)
    assert list(image.shape) == entry.shape
    assert image.shape == pytest.approx((112 * 3 / 3.22, 101 * 3 / 1.62, 122 * 3 / 1.62), abs=1.5)
    affine = np.asarray(entry.affine)
    for name, sign in (("right", 1), ("left", -1)):
        box = entry.side_box(name)
        centre = [(lo + hi - 1) / 2 for lo, hi in box]
        assert np.sign((affine @ [*centre, 1])[0]) == sign
    _, case = ts_case
    vox_ml = abs(np.linalg.det(case.image.affine[:3, :3])) / 1000
    for name, code in (("right", RIGHT), ("left", LEFT)):
        source_ml = float((case.labels.declared_side == code).sum()) * vox_ml
        assert entry.sides[name].volume_ml == pytest.approx(source_ml, rel=0.05)
    assert store.split("train") == [entry.case_id] and store.split("test") == []


def test_dicom_series_geometry_matches_the_headers(shared_data):
    folder = shared_data / "ts_example" / "dicom"
    vol = load_dicom_series(folder)
    assert vol.original_shape == (512, 512, 20)
    headers = sorted(
        (pydicom.dcmread(p, stop_before_pixels=True) for p in folder.iterdir()),
        key=lambda h: float(h.ImagePositionPatient[2]),
    )
    first = headers[0]
    lps = np.array([float(v) for v in first.ImagePositionPatient])
    ras_origin = lps * [-1, -1, 1]
    np.testing.assert_allclose(vol.original_affine[:3, 3], ras_origin, atol=1e-3)
    spacing = [float(v) for v in first.PixelSpacing]
    assert vol.spacing[0] == pytest.approx(spacing[1], abs=1e-4)
    assert vol.spacing[2] == pytest.approx(
        float(headers[1].ImagePositionPatient[2]) - float(headers[0].ImagePositionPatient[2]), abs=1e-3
    )
    raw = first.RescaleSlope * 1.0
    assert raw == pytest.approx(1.0) and vol.array.min() < -900  # HU, rescaled: air is below -900


def test_prepare_unlabelled_dicom_series(shared_data, tmp_path):
    out = prepare(
        open_dataset(shared_data / "ts_example" / "dicom"),
        tmp_path / "store",
        get_preset("kits19-paper").preprocess,
    )
    store = Store(out)
    (entry,) = store.cases.values()
    assert entry.labelled is False and entry.sides is None
    assert entry.original.shape == [512, 512, 20]
    image = store.array(entry.case_id)
    sx, sy, sz = entry.original.spacing  # 0.98 mm pixels, slices every 2 mm (3 mm thick)
    assert image.shape == pytest.approx((20 * sz / 3.22, 512 * sy / 1.62, 512 * sx / 1.62), abs=1)
    # The body midline, needed by annotation-free sections, is found from the image alone.
    assert 0 < entry.midline.x_index < image.shape[2]
    assert store.split("train") == [entry.case_id]


def test_evaluate_own_masks_gives_dice_one_in_original_geometry(shared_data, tmp_path):
    import nibabel as nib

    from sidepair.evaluation.evaluate import evaluate_predictions

    seg = shared_data / "ts_example" / "segmentations"
    right, left = nib.load(seg / "kidney_right.nii.gz"), nib.load(seg / "kidney_left.nii.gz")
    labels = (np.asanyarray(right.dataobj) > 0) * 1 + (np.asanyarray(left.dataobj) > 0) * 2
    pred = nib.Nifti1Image(labels.astype(np.uint8), right.affine)
    pred.set_sform(right.affine, 1)
    (tmp_path / "pred").mkdir()
    nib.save(pred, tmp_path / "pred" / "ts_example.nii.gz")
    summary = evaluate_predictions(tmp_path / "pred", shared_data / "ts_example")
    m = summary["metrics"]
    for part in ("kidney", "right", "left"):
        assert m[f"{part}_dice"]["mean"] == 1.0 and m[f"{part}_hd95"]["mean"] == 0.0
        assert m[f"{part}_nsd"]["mean"] == 1.0
    assert summary["data"] == "real ts_example"
    # One voxel layer removed from the left kidney: Dice drops, HD95 stays within a voxel (3 mm).
    eroded = labels.copy()
    eroded[(labels == 2) & ~np.roll(labels == 2, 1, axis=0)] = 0
    nib.save(nib.Nifti1Image(eroded.astype(np.uint8), right.affine), tmp_path / "pred" / "ts_example.nii.gz")
    m = evaluate_predictions(tmp_path / "pred", shared_data / "ts_example")["metrics"]
    assert m["right_dice"]["mean"] == 1.0 and 0.8 < m["left_dice"]["mean"] < 1.0
    assert m["left_hd95"]["mean"] <= 3.0 + 1e-6
