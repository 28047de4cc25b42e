"""Bad files at the readers (through `sidepair prepare`): each one line naming the file, nothing written."""

import gzip

import numpy as np
import pytest

from tests.badinput.helpers import assert_debug_shows_traceback, assert_refused
from tests.conftest import two_kidney_volume, write_nifti


def truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def not_gzip(path):
    path.write_bytes(b"this is not a NIfTI file at all")


def header_garbage(path):
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[344:348] = b"xyz\x00"  # the NIfTI magic
    path.write_bytes(gzip.compress(bytes(raw)))


CASES = {
    "truncated": (lambda img, lab, aff: (img, lab, aff), truncated, "truncated or corrupt"),
    "not a NIfTI": (lambda img, lab, aff: (img, lab, aff), not_gzip, "cannot read as NIfTI"),
    "broken header": (lambda img, lab, aff: (img, lab, aff), header_garbage, "cannot read as NIfTI"),
    "NaN voxels": (
        lambda img, lab, aff: (np.where(lab > 0, np.nan, img).astype(np.float32), lab, aff),
        None,
        "NaN or infinite voxels",
    ),
    "constant image": (lambda img, lab, aff: (np.full_like(img, 40), lab, aff), None, "constant"),
    "4D image": (
        lambda img, lab, aff: (np.stack([img, img], -1), lab, aff),
        None,
        "expected a 3D volume, got 4D",
    ),
    "2D image": (lambda img, lab, aff: (img[:, :, 0], lab, aff), None, "expected a 3D volume, got 2D"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_image_file(tmp_path, capsys, name):
    change, damage, problem = CASES[name]
    image, label, affine = change(*two_kidney_volume())
    root = tmp_path / "kits"
    path = write_nifti(root / "case_00000" / "imaging.nii.gz", image, affine)
    write_nifti(root / "case_00000" / "segmentation.nii.gz", two_kidney_volume()[1], two_kidney_volume()[2])
    if damage:
        damage(path)
    out = tmp_path / "store"
    assert_refused(capsys, ["prepare", "--data", root, "--out", out, "--format", "kits"], path, problem, out)


def test_missing_affine_and_non_integer_labels(tmp_path, capsys):
    image, label, affine = two_kidney_volume()
    root = tmp_path / "kits"
    path = write_nifti(root / "case_00000" / "imaging.nii.gz", image, affine, codes=False)
    write_nifti(root / "case_00000" / "segmentation.nii.gz", label, affine)
    out = tmp_path / "store"
    argv = ["prepare", "--data", root, "--out", out, "--format", "kits"]
    assert_refused(capsys, argv, path, "missing affine", out)
    write_nifti(path, image, affine)
    seg = write_nifti(root / "case_00000" / "segmentation.nii.gz", label.astype(np.float32) * 0.5, affine)
    assert_refused(capsys, argv, seg, "non-integer", out)
    assert_debug_shows_traceback(argv)


def test_unreadable_png_and_dicom(tmp_path, capsys):
    root = tmp_path / "slices"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "images" / "p1_1.png").write_bytes(b"\x89PNG broken")
    (root / "masks" / "p1_1.png").write_bytes(b"\x89PNG broken")
    out = tmp_path / "store"
    assert_refused(
        capsys,
        ["prepare", "--data", root, "--out", out, "--format", "slices", "--pixel-spacing", "1"],
        root / "images" / "p1_1.png",
        "",
        out,
    )
    dicom = tmp_path / "dicom"
    dicom.mkdir()
    (dicom / "a.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\x00" * 16)
    assert_refused(capsys, ["prepare", "--data", dicom, "--out", out, "--format", "dicom"], dicom, "", out)


def test_degenerate_affine(tmp_path, capsys):
    import nibabel as nib

    image, label, affine = two_kidney_volume()
    root = tmp_path / "kits"
    (root / "case_00000").mkdir(parents=True)
    flat = np.diag([1.0, 0.0, 1.0, 1.0])
    img = nib.Nifti1Image(image, None)
    img.set_sform(flat, code=1)  # a qform cannot even hold it; the sform can
    path = root / "case_00000" / "imaging.nii.gz"
    nib.save(img, str(path))
    write_nifti(root / "case_00000" / "segmentation.nii.gz", label, affine)
    out = tmp_path / "store"
    assert_refused(
        capsys, ["prepare", "--data", root, "--out", out, "--format", "kits"], path, "degenerate affine", out
    )
