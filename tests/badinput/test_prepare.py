"""Bad datasets at `sidepair prepare`: one line naming the file and the problem, no store left behind."""

import json

import numpy as np
import pytest

from tests.badinput.helpers import assert_debug_shows_traceback, assert_refused, files_in
from tests.conftest import two_kidney_volume, write_nifti


def kits(root, image=None, label=None, affine=None, label_affine=None):
    img, lab, aff = two_kidney_volume()
    aff = aff if affine is None else affine
    write_nifti(root / "case_00000" / "imaging.nii.gz", img if image is None else image, aff)
    return write_nifti(
        root / "case_00000" / "segmentation.nii.gz",
        lab if label is None else label,
        aff if label_affine is None else label_affine,
    )


def shifted(aff):
    out = aff.copy()
    out[0, 3] += 5.0
    return out


IMG, LAB, AFF = two_kidney_volume()
CASES = {
    "shape mismatch": (dict(label=LAB[:-2]), "differs from image shape"),
    "affine mismatch": (dict(label_affine=shifted(AFF)), "label affine differs from image affine"),
    "labels outside the map": (dict(label=np.where(LAB > 0, 9, 0).astype(np.uint8)), "outside the label map"),
    "no kidney": (dict(label=np.zeros_like(LAB)), "no kidney voxels in the label"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_case(tmp_path, capsys, name):
    kwargs, problem = CASES[name]
    seg = kits(tmp_path / "kits", **kwargs)
    out = tmp_path / "store"
    assert_refused(capsys, ["prepare", "--data", tmp_path / "kits", "--out", out], seg, problem, out)


def test_dataset_level_problems(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "store"
    assert_refused(
        capsys,
        ["prepare", "--data", tmp_path / "empty", "--out", out],
        tmp_path / "empty",
        "cannot tell the dataset format",
        out,
    )
    assert_refused(
        capsys,
        ["prepare", "--data", tmp_path / "nowhere", "--out", out],
        tmp_path / "nowhere",
        "dataset folder not found",
        out,
    )
    nn = tmp_path / "nnunet"
    (nn / "imagesTr").mkdir(parents=True)
    (nn / "labelsTr").mkdir()
    (nn / "dataset.json").write_text(
        json.dumps(
            {"labels": {"background": 0, "kidney": 1}, "file_ending": ".nii.gz", "channel_names": {"0": "CT"}}
        ),
        encoding="utf-8",
    )
    write_nifti(nn / "imagesTr" / "k_001_0000.nii.gz", IMG, AFF)
    write_nifti(nn / "imagesTr" / "k_002_0000.nii.gz", IMG, AFF)
    write_nifti(nn / "labelsTr" / "k_002.nii.gz", LAB, AFF)
    assert_refused(
        capsys,
        ["prepare", "--data", nn, "--out", out, "--format", "nnunet"],
        nn / "labelsTr" / "k_001.nii.gz",
        "",
        out,
    )
    (nn / "dataset.json").write_text("{not json", encoding="utf-8")
    assert_refused(
        capsys, ["prepare", "--data", nn, "--out", out, "--format", "nnunet"], nn / "dataset.json", "", out
    )
    assert_debug_shows_traceback(["prepare", "--data", tmp_path / "empty", "--out", out])


def test_store_made_with_other_settings_is_refused_untouched(tmp_path, capsys):
    from sidepair.cli import main

    kits(tmp_path / "kits")
    out = tmp_path / "store"
    main(["prepare", "--data", str(tmp_path / "kits"), "--out", str(out), "--preset", "fast-2d"])
    before = {p: p.stat().st_mtime_ns for p in files_in(out)}
    assert_refused(
        capsys,
        ["prepare", "--data", tmp_path / "kits", "--out", out, "--preset", "kits19-paper"],
        out,
        "other settings",
        out,
        set(before),
    )
    assert {p: p.stat().st_mtime_ns for p in files_in(out)} == before
