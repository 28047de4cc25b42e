import numpy as np
import pytest

from sidepair.evaluation.metrics import binary_metrics, case_metrics, summarise


def _sphere(shape, centre, radius, spacing):
    idx = np.indices(shape).astype(float)
    d2 = sum(((idx[a] - centre[a]) * spacing[a]) ** 2 for a in range(3))
    return d2 <= radius**2


def test_identical_masks_give_dice_one():
    a = _sphere((30, 30, 30), (15, 15, 15), 8, (1, 1, 1))
    assert binary_metrics(a, a, (1, 1, 1)) == {"dice": 1.0, "hd95": 0.0, "nsd": 1.0, "failed": 0.0}


def test_disjoint_masks_give_dice_zero():
    a = _sphere((40, 40, 40), (10, 10, 10), 5, (1, 1, 1))
    b = _sphere((40, 40, 40), (30, 30, 30), 5, (1, 1, 1))
    m = binary_metrics(a, b, (1, 1, 1))
    assert m["dice"] == 0.0 and m["nsd"] == 0.0 and m["hd95"] > 20


@pytest.mark.parametrize("axis,shift_vox", [(0, 4), (2, 2)])
def test_shifted_spheres_with_anisotropic_spacing_give_the_known_hd95(axis, shift_vox):
    spacing = (1.0, 1.0, 3.0)
    shape, centre, radius = (64, 64, 32), [32, 32, 16], 18.0
    a = _sphere(shape, centre, radius, spacing)
    moved = list(centre)
    moved[axis] += shift_vox
    b = _sphere(shape, moved, radius, spacing)
    shift_mm = shift_vox * spacing[axis]
    # Surface points of one sphere lie |s cos(theta)| from the other, cos(theta) uniform on a sphere:
    # the 95th percentile is 0.95 s, up to a voxel of discretisation.
    hd95 = binary_metrics(a, b, spacing)["hd95"]
    assert hd95 == pytest.approx(0.95 * shift_mm, abs=spacing[axis])
    ignoring_spacing = binary_metrics(a, b, (1.0, 1.0, 1.0))["hd95"]
    if axis == 2:
        assert ignoring_spacing < hd95 / 2  # the spacing is really used


def test_failures_are_scored_and_counted():
    """Nothing predicted where the reference has a kidney: Dice 0, NSD 0, HD95 the image's diagonal."""
    spacing = (2.0, 1.0, 4.0)
    empty = np.zeros((10, 20, 5), bool)
    full = empty.copy()
    full[4:6, 8:12, 2] = True
    diagonal = float(np.sqrt(20.0**2 + 20.0**2 + 20.0**2))
    m = binary_metrics(empty, full, spacing)
    assert m == {"dice": 0.0, "hd95": pytest.approx(diagonal), "nsd": 0.0, "failed": 1.0}
    assert binary_metrics(full, empty, spacing)["hd95"] == pytest.approx(diagonal)  # a false alarm too
    both = binary_metrics(empty, empty, spacing)  # nothing to find, nothing found: not scored
    assert all(np.isnan(both[k]) for k in ("dice", "hd95", "nsd")) and both["failed"] == 0.0
    good = binary_metrics(full, full, spacing)
    assert good["dice"] == 1.0 and good["failed"] == 0.0
    # The failure enters the mean, with its n; the unscored case does not, and n says so.
    s = summarise(
        [
            {"case_id": "a", "kidney_dice": good["dice"]},
            {"case_id": "b", "kidney_dice": m["dice"]},
            {"case_id": "c", "kidney_dice": both["dice"]},
        ]
    )
    assert s["kidney_dice"]["mean"] == 0.5 and s["kidney_dice"]["n"] == 2 and s["kidney_dice"]["of"] == 3


def test_json_outputs_are_strict(tmp_path):
    import json

    from sidepair.atomic import write_json

    write_json(tmp_path / "m.json", {"hd95": float("nan"), "rows": [1.0, float("inf")], "n": 0})
    text = (tmp_path / "m.json").read_text(encoding="utf-8")
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"hd95": None, "rows": [1.0, None], "n": 0}


def test_case_metrics_per_side_and_summary():
    spacing = (2.0, 2.0, 2.0)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = [-40, -40, -20]
    gt = np.zeros((40, 40, 20), np.uint8)
    gt |= _sphere(gt.shape, (30, 20, 10), 8, spacing).astype(np.uint8)  # right: +x
    gt |= _sphere(gt.shape, (10, 20, 10), 8, spacing).astype(np.uint8)  # left
    pred = gt.copy()
    pred[:20] = 0  # the left kidney is missed
    m = case_metrics(pred, gt, affine, midline_x=0.0)
    assert m["right_dice"] == 1.0 and m["left_dice"] == 0.0
    assert 0.6 < m["kidney_dice"] < 0.7
    s = summarise([{"case_id": "a", **m}, {"case_id": "b", **m}])
    assert s["kidney_dice"]["n"] == 2 and s["kidney_dice"]["sd"] == 0.0
    # the missed left kidney is a failure: it counts, with the HD95 penalty, not a dropped NaN
    assert s["left_hd95"]["n"] == 2 and s["left_failed"]["mean"] == 1.0 and m["left_hd95"] > 80


def _two_kidneys(shape=(60, 30, 30)):
    right = _sphere(shape, (45, 15, 15), 7, (1, 1, 1))  # larger index = larger world x = right (RAS)
    left = _sphere(shape, (15, 15, 15), 7, (1, 1, 1))
    side = np.zeros(shape, np.uint8)
    side[right], side[left] = 1, 2
    return side


def test_a_sides_model_is_scored_as_it_labelled_and_a_swap_is_counted():
    gt_side = _two_kidneys()
    gt = (gt_side > 0).astype(np.uint8)
    affine = np.eye(4)
    swapped = np.where(gt_side == 1, 2, np.where(gt_side == 2, 1, 0)).astype(np.uint8)
    m = case_metrics(gt, gt, affine, 30.0, gt_side=gt_side, pred_side=swapped)
    assert m["kidney_dice"] == 1.0  # the kidney is perfect ...
    assert m["right_dice"] == 0.0 and m["left_dice"] == 0.0  # ... its sides are not
    assert m["side_swap"] == 1.0 and m["side_voxel_error"] == 1.0
    by_position = case_metrics(gt, gt, affine, 30.0, gt_side=gt_side)
    assert by_position["right_dice"] == 1.0 and "side_swap" not in by_position  # re-assigned by position
    right = case_metrics(gt, gt, affine, 30.0, gt_side=gt_side, pred_side=gt_side)
    assert right["side_swap"] == 0.0 and right["side_voxel_error"] == 0.0 and right["left_dice"] == 1.0
