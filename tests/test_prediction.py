"""`sidepair predict`: files, folders and DICOM in, masks in each input's own geometry out."""

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

import sidepair
from sidepair.data.sides import voxel_volume_ml
from sidepair.errors import ConfigError, DataError, SidepairError
from sidepair.prediction import Predictor, plan_inputs, predict_paths
from tests.conftest import write_dicom_series, write_nifti


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "sidepair", *map(str, args)],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=600,
    )


def test_predict_file_keeps_shape_and_affine_and_writes_volumes(seg_run, small_phantom, tmp_path):
    source = small_phantom / "case_00001" / "imaging.nii.gz"
    out = tmp_path / "mask.nii.gz"
    result = cli("predict", "-i", source, "-o", out, "--model", seg_run)
    assert result.returncode == 0, result.stderr
    img, mask = nib.load(source), nib.load(out)
    assert mask.shape == img.shape
    np.testing.assert_allclose(mask.affine, img.affine, atol=1e-6)
    data = np.asarray(mask.dataobj)
    assert set(np.unique(data)) <= {0, 1, 2}
    facts = json.loads((tmp_path / "mask.json").read_text(encoding="utf-8"))
    vox = voxel_volume_ml(img.affine)
    assert facts["volume_ml"]["right"] == pytest.approx((data == 1).sum() * vox, abs=0.01)
    assert facts["volume_ml"]["left"] == pytest.approx((data == 2).sum() * vox, abs=0.01)
    assert facts["labels"] == {"1": "right kidney", "2": "left kidney"}
    assert facts["model"]["labels"] == "kidney" and facts["model"]["dims"] == 2
    assert f"{out}: right" in result.stdout


def test_folder_input_every_orientation_and_label_modes(seg_run, small_phantom, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    codes = set()
    for case in sorted(small_phantom.glob("case_*"))[:4]:
        (folder / f"{case.name}.nii.gz").symlink_to(case / "imaging.nii.gz")
        codes.add(nib.aff2axcodes(nib.load(case / "imaging.nii.gz").affine))
    assert len(codes) > 1  # the phantom writes cases in several orientations
    predictor = Predictor.load(seg_run)
    sides = predict_paths(folder, tmp_path / "sides", predictor, "sides", progress=False)
    kidney = predict_paths(folder, tmp_path / "kidney", predictor, "kidney", progress=False)
    largest = predict_paths(folder, tmp_path / "largest", predictor, largest_component=True, progress=False)
    assert len(sides) == len(kidney) == len(largest) == 4
    for a, b, c in zip(sides, kidney, largest, strict=True):
        src = nib.load(a["input"])
        s, k, g = (np.asarray(nib.load(r["output"]).dataobj) for r in (a, b, c))
        assert s.shape == k.shape == src.shape
        np.testing.assert_allclose(nib.load(b["output"]).affine, src.affine, atol=1e-6)
        np.testing.assert_array_equal(k, (s > 0).astype(np.uint8))
        for code in (1, 2):
            assert ndimage.label(g == code)[1] <= 1
            assert ((g == code) <= (s == code)).all()


def test_sides_follow_world_coordinates(seg_run, small_phantom, tmp_path):
    """A model whose 'prediction' is the reference label: sides come out by world x, in any orientation."""
    predictor = Predictor.load(seg_run)
    for case in sorted(small_phantom.glob("case_*"))[:3]:
        img = nib.load(case / "imaging.nii.gz")
        ref = np.asarray(nib.load(case / "segmentation.nii.gz").dataobj) > 0

        class Oracle:
            def eval(self):
                return self

            def __call__(self, x):
                import torch

                return torch.stack([-x[:, 0], x[:, 0]], 1)  # argmax 1 where the input is positive

        # Build the input so that only kidney voxels are positive after normalisation.
        hu = np.where(ref, 300.0, -1000.0).astype(np.float32)
        scan = nib.Nifti1Image(hu, img.affine)
        oracle = Predictor(Oracle(), {**predictor.info, "preprocess": {**predictor.info["preprocess"]}})
        oracle.info["preprocess"]["normalize"] = "zscore"
        mask = sidepair.predict(scan, oracle)
        out = np.asarray(mask.dataobj)
        np.testing.assert_allclose(mask.affine, img.affine, atol=1e-6)
        assert (out > 0).sum() > 0.8 * ref.sum()
        centre = {c: (img.affine @ [*np.argwhere(out == c).mean(axis=0), 1])[0] for c in (1, 2)}
        assert centre[1] > centre[2]  # right kidney (1) at larger world x (RAS)


def test_python_api_returns_a_nibabel_image(seg_run, small_phantom):
    path = small_phantom / "case_00002" / "imaging.nii.gz"
    mask = sidepair.predict(path, seg_run, labels="kidney")
    assert isinstance(mask, nib.Nifti1Image)
    assert mask.shape == nib.load(path).shape and set(np.unique(np.asarray(mask.dataobj))) <= {0, 1}
    with pytest.raises(ConfigError, match="needs a model trained with tumour"):
        sidepair.predict(path, seg_run, labels="kidney+tumour")


def test_dicom_series_output_has_the_series_geometry(seg_run, tmp_path):
    import SimpleITK as sitk

    from sidepair.data.dicom import sitk_affine

    vol = np.full((12, 48, 56), -1000, np.int16)
    vol[:, 8:40, 6:50] = 40
    folder = write_dicom_series(tmp_path / "ct", vol, spacing=(3.0, 3.0, 4.0), origin=(-80.0, -60.0, 10.0))
    out = tmp_path / "out"
    result = cli("predict", "-i", folder, "-o", out, "--model", seg_run)
    assert result.returncode == 0, result.stderr
    mask = nib.load(out / "ct.nii.gz")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    image = reader.Execute()
    assert mask.shape == image.GetSize() == (56, 48, 12)
    np.testing.assert_allclose(mask.affine, sitk_affine(image), atol=1e-5)


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
    assert result.returncode == 1 and "a pretrain run, not a segmentation model" in result.stderr
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
