"""Bad input at `sidepair predict` (through the real command line): one line, exit 1, nothing written."""

import json

import nibabel as nib
import numpy as np
import pytest

from sidepair.errors import DataError, SidepairError
from sidepair.inference.predictor import Predictor, plan_inputs
from tests.conftest import run_cli as cli
from tests.conftest import write_dicom_series, write_nifti


@pytest.mark.parametrize(
    "make,message",
    [
        (
            lambda d: write_nifti(d / "flat.nii.gz", np.zeros((20, 20), np.int16)),
            "expected a 3D volume, got 2D",
        ),
        (
            lambda d: write_nifti(d / "four.nii.gz", np.zeros((8, 8, 8, 2), np.int16)),
            "expected a 3D volume, got 4D",
        ),
        (
            lambda d: (d / "empty").mkdir() or d / "empty",
            "no NIfTI files (*.nii.gz, *.nii) and no DICOM series",
        ),
        (
            lambda d: write_nifti(d / "noaff.nii.gz", np.zeros((8, 8, 8), np.int16), codes=False),
            "missing affine",
        ),
        (lambda d: d / "missing.nii.gz", "input not found"),
    ],
)
def test_bad_inputs_are_refused_and_nothing_is_written(seg_run, tmp_path, make, message):
    bad = make(tmp_path)
    out = tmp_path / "out"
    result = cli("predict", "-i", bad, "-o", out, "--model", seg_run)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"sidepair predict: error: {bad}") and message in lines[0]
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_two_dicom_series_are_listed_or_chosen(seg_run, tmp_path):
    vol = np.full((6, 32, 40), -1000, np.int16)
    vol[:, 8:24, 5:35] = 40
    folder = tmp_path / "mixed"
    write_dicom_series(folder, vol, series_uid="1.2.826.0.1.3680043.2.1125.1.111")
    write_dicom_series(folder, vol, series_uid="1.2.826.0.1.3680043.2.1125.1.222")
    result = cli("predict", "-i", folder, "-o", tmp_path / "out", "--model", seg_run)
    assert result.returncode == 1 and "holds 2 DICOM series; choose one with --series" in result.stderr
    assert "1.111 (6 files)" in result.stderr and "1.222 (6 files)" in result.stderr
    assert not (tmp_path / "out").exists()
    chosen = cli(
        "predict",
        "-i",
        folder,
        "-o",
        tmp_path / "out",
        "--model",
        seg_run,
        "--series",
        "1.2.826.0.1.3680043.2.1125.1.222",
    )
    assert chosen.returncode == 0, chosen.stderr
    assert json.loads((tmp_path / "out" / "mixed.json").read_text(encoding="utf-8"))["series"].endswith(
        ".222"
    )


def test_existing_output_needs_overwrite(seg_run, small_phantom, tmp_path):
    source = small_phantom / "case_00001" / "imaging.nii.gz"
    out = tmp_path / "mask.nii.gz"
    out.write_bytes(b"keep me")
    result = cli("predict", "-i", source, "-o", out, "--model", seg_run)
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == f"sidepair predict: error: {out}: output exists; pass --overwrite to replace it"
    )
    assert out.read_bytes() == b"keep me" and not (tmp_path / "mask.json").exists()
    assert cli("predict", "-i", source, "-o", out, "--model", seg_run, "--overwrite").returncode == 0
    assert nib.load(out).shape == nib.load(source).shape


def test_wrong_kind_of_model_is_refused(pretrained, small_phantom, tmp_path):
    pre = pretrained.parent
    source = small_phantom / "case_00001" / "imaging.nii.gz"
    result = cli("predict", "-i", source, "-o", tmp_path / "m.nii.gz", "--model", pre)
    assert result.returncode == 1 and "a pretrain checkpoint, not a segmentation model" in result.stderr
    empty = tmp_path / "nothing"
    empty.mkdir()
    result = cli("predict", "-i", source, "-o", tmp_path / "m.nii.gz", "--model", empty)
    assert result.returncode == 1 and "not a run folder (no checkpoint_best.pt)" in result.stderr
    assert not (tmp_path / "m.nii.gz").exists()
    with pytest.raises(DataError, match="one output file for 2 inputs"):
        folder = tmp_path / "two"
        folder.mkdir()
        for name in ("a", "b"):
            (folder / f"{name}.nii.gz").symlink_to(source)
        plan_inputs(folder, tmp_path / "one.nii.gz")
    with pytest.raises(SidepairError, match="model not found"):
        Predictor.load(tmp_path / "nope")


def test_the_file_in_the_way_is_named(seg_run, small_phantom, tmp_path):
    """A deleted mask with its JSON left behind: the JSON is what is in the way, and it is named."""
    source = small_phantom / "case_00001" / "imaging.nii.gz"
    out = tmp_path / "mask.nii.gz"
    assert cli("predict", "-i", source, "-o", out, "--model", seg_run).returncode == 0
    out.unlink()
    result = cli("predict", "-i", source, "-o", out, "--model", seg_run)
    assert result.returncode == 1
    sidecar = tmp_path / "mask.json"
    assert result.stderr.strip() == (
        f"sidepair predict: error: {sidecar}: output exists; pass --overwrite to replace it"
    )
    assert not out.exists()
