"""Bad input at `sidepair evaluate`: run folders and prediction folders."""

import shutil

import nibabel as nib
import numpy as np

from tests.badinput.helpers import assert_debug_shows_traceback, assert_refused, files_in


def test_bad_runs(pretrained, tmp_path, capsys):
    assert_refused(
        capsys,
        ["evaluate", "--run", tmp_path / "nope"],
        tmp_path / "nope",
        "checkpoint not found",
        tmp_path / "nope",
    )
    run = pretrained.parent
    before = set(files_in(run))
    problem = "a pretrain checkpoint, not a segmentation model"
    assert_refused(capsys, ["evaluate", "--run", run], run, problem, run, before)
    assert_refused(capsys, ["evaluate"], [], "give either --run, or --predictions with --data", code=2)
    assert_debug_shows_traceback(["evaluate", "--run", run])


def test_bad_prediction_folders(small_phantom, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(small_phantom / "case_00000", data / "case_00000")
    preds = tmp_path / "preds"
    preds.mkdir()
    assert_refused(
        capsys,
        ["evaluate", "--predictions", preds, "--data", data],
        preds / "case_00000.nii.gz",
        "no prediction for case case_00000",
        preds,
    )
    src = nib.load(data / "case_00000" / "segmentation.nii.gz")
    wrong = nib.Nifti1Image(np.zeros(src.shape[:2] + (src.shape[2] - 1,), np.uint8), src.affine)
    nib.save(wrong, preds / "case_00000.nii.gz")
    before = set(files_in(preds))
    assert_refused(
        capsys,
        ["evaluate", "--predictions", preds, "--data", data],
        preds / "case_00000.nii.gz",
        "differs from image shape",
        preds,
        before,
    )
    assert_refused(
        capsys, ["evaluate", "--predictions", preds], [], "--predictions needs --data", preds, before, code=2
    )
