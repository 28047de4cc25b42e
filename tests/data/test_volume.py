import gzip

import nibabel as nib
import numpy as np
import pytest

from sidepair.data.axes import ras_to_original
from sidepair.data.volume import check_same_grid, load_nifti
from sidepair.errors import DataError
from tests.conftest import write_nifti


def _lps_affine(shape, spacing=(2.0, 2.0, 3.0)):
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    affine[:3, 3] = [100.0, 80.0, -40.0]
    return affine


def test_reorients_to_ras_and_keeps_world_positions(tmp_path):
    shape = (10, 12, 8)
    array = np.zeros(shape, dtype=np.int16)
    array[2, 3, 4] = 7
    affine = _lps_affine(shape)
    vol = load_nifti(write_nifti(tmp_path / "a.nii.gz", array, affine), role="label")
    assert "".join(nib.aff2axcodes(vol.affine)) == "RAS"
    assert vol.original_axcodes == "LPS"
    ((i, j, k),) = np.argwhere(vol.array == 7)
    world_before = affine @ [2, 3, 4, 1]
    world_after = vol.affine @ [i, j, k, 1]
    np.testing.assert_allclose(world_after, world_before)
    assert vol.spacing == pytest.approx((2.0, 2.0, 3.0))
    np.testing.assert_array_equal(ras_to_original(vol.array, vol.original_affine), array)


def test_missing_affine_is_refused(tmp_path):
    path = write_nifti(tmp_path / "noaff.nii.gz", np.random.rand(8, 8, 8).astype(np.float32), codes=False)
    with pytest.raises(DataError, match="missing affine"):
        load_nifti(path)


def test_degenerate_affine_is_refused(tmp_path):
    affine = np.eye(4)
    affine[:3, 1] = affine[:3, 0]  # two axes pointing the same way
    path = write_nifti(tmp_path / "deg.nii.gz", np.random.rand(8, 8, 8).astype(np.float32), affine)
    with pytest.raises(DataError, match="degenerate affine") as info:
        load_nifti(path)
    assert "deg.nii.gz" in str(info.value)


@pytest.mark.parametrize("shape,dims", [((8, 8, 8, 3), "4D"), ((8, 8), "2D")])
def test_not_3d_is_refused(tmp_path, shape, dims):
    path = write_nifti(tmp_path / "x.nii.gz", np.random.rand(*shape).astype(np.float32))
    with pytest.raises(DataError, match=f"expected a 3D volume, got {dims}"):
        load_nifti(path)


def test_trailing_singleton_axis_is_accepted(tmp_path):
    path = write_nifti(tmp_path / "x.nii.gz", np.random.rand(8, 9, 10, 1).astype(np.float32))
    assert load_nifti(path).array.shape == (8, 9, 10)


def test_truncated_gzip_is_refused(tmp_path):
    path = write_nifti(tmp_path / "t.nii.gz", np.random.rand(32, 32, 32).astype(np.float32))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated or corrupt|cannot read"):
        load_nifti(path)


def test_not_gzip_at_all_is_refused(tmp_path):
    path = tmp_path / "junk.nii.gz"
    path.write_bytes(gzip.compress(b"not a nifti header" * 3))
    with pytest.raises(DataError, match="cannot read as NIfTI"):
        load_nifti(path)


def test_nan_and_constant_images_are_refused(tmp_path):
    arr = np.random.rand(8, 8, 8).astype(np.float32)
    arr[1, 2, 3] = np.nan
    with pytest.raises(DataError, match="1 NaN"):
        load_nifti(write_nifti(tmp_path / "nan.nii.gz", arr))
    with pytest.raises(DataError, match="constant"):
        load_nifti(write_nifti(tmp_path / "c.nii.gz", np.zeros((8, 8, 8), np.float32)))


def test_fractional_label_is_refused(tmp_path):
    with pytest.raises(DataError, match="non-integer"):
        load_nifti(write_nifti(tmp_path / "l.nii.gz", np.full((4, 4, 4), 0.5, np.float32)), role="label")


def test_float_label_with_integer_values_is_accepted(tmp_path):
    arr = np.zeros((4, 4, 4), np.float64)
    arr[1, 1, 1] = 1.0
    vol = load_nifti(write_nifti(tmp_path / "l.nii.gz", arr), role="label")
    assert vol.array.dtype == np.int16 and vol.array.sum() == 1


def test_grid_mismatch_names_the_label(tmp_path):
    image = load_nifti(write_nifti(tmp_path / "i.nii.gz", np.random.rand(8, 8, 8).astype(np.float32)))
    other_shape = load_nifti(write_nifti(tmp_path / "s.nii.gz", np.zeros((8, 8, 9), np.uint8)), role="label")
    with pytest.raises(DataError, match=r"s.nii.gz: label shape \(8, 8, 9\) differs"):
        check_same_grid(image, other_shape)
    shifted = np.eye(4)
    shifted[0, 3] = 5.0
    other_affine = load_nifti(
        write_nifti(tmp_path / "a.nii.gz", np.zeros((8, 8, 8), np.uint8), shifted), role="label"
    )
    with pytest.raises(DataError, match="label affine differs"):
        check_same_grid(image, other_affine)
