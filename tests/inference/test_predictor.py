"""`sidepair predict`: files, folders and DICOM in, masks in each input's own geometry out."""

import json

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

import sidepair
from sidepair.data.sides import voxel_volume_ml
from sidepair.errors import ConfigError
from sidepair.inference.predictor import Predictor, predict_paths
from tests.conftest import run_cli as cli
from tests.conftest import write_dicom_series


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
        preprocess = predictor.info.preprocess.model_copy(update={"normalize": "zscore"})
        oracle = Predictor(Oracle(), predictor.info.model_copy(update={"preprocess": preprocess}))
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

    from sidepair.data.dicom import image_affine

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
    np.testing.assert_allclose(mask.affine, image_affine(image), atol=1e-5)
