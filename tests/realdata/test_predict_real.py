"""Prediction on the real ts_example CT: NIfTI and DICOM outputs keep the input's exact geometry."""

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from sidepair.data.dicom import image_affine
from sidepair.inference.predictor import Predictor, predict_paths

pytestmark = pytest.mark.realdata


def test_predict_real_nifti_keeps_shape_and_affine(shared_data, seg_run, tmp_path):
    ct = shared_data / "ts_example" / "ct.nii.gz"
    (record,) = predict_paths(ct, tmp_path / "ct_mask.nii.gz", Predictor.load(seg_run), progress=False)
    source, mask = nib.load(ct), nib.load(record["output"])
    assert mask.shape == source.shape == (122, 101, 112)
    np.testing.assert_array_equal(mask.affine, source.affine)
    assert set(np.unique(np.asarray(mask.dataobj))) <= {0, 1, 2}


def test_predict_real_dicom_keeps_the_series_geometry(shared_data, seg_run, tmp_path):
    folder = shared_data / "ts_example" / "dicom"
    (record,) = predict_paths(folder, tmp_path / "out", Predictor.load(seg_run), progress=False)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    image = reader.Execute()
    mask = nib.load(record["output"])
    assert mask.shape == image.GetSize() == (512, 512, 20)
    np.testing.assert_allclose(mask.affine, image_affine(image), atol=1e-6)
