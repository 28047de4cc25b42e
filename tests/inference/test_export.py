"""`sidepair export`: ONNX and TorchScript files that give PyTorch's logits and predict alone."""

import nibabel as nib
import numpy as np
import pytest

from sidepair.errors import SidepairError
from sidepair.inference.export import export_model
from sidepair.inference.predictor import Predictor, predict_paths
from tests.conftest import run_cli


@pytest.mark.parametrize("fmt,suffix", [("onnx", ".onnx"), ("torchscript", ".ts")])
def test_export_matches_pytorch_and_predicts_alone(seg_run, small_phantom, tmp_path, fmt, suffix):
    result = export_model(seg_run, fmt, tmp_path / f"model{suffix}")
    assert result["max_abs_diff"] < 1e-4 and result["bytes"] > 10_000
    exported = Predictor.load(tmp_path / f"model{suffix}")
    native = Predictor.load(seg_run)
    assert exported.info == native.info  # preprocessing, labels, dims and window travel in the file
    ct = small_phantom / "case_00003" / "imaging.nii.gz"
    (a,) = predict_paths(ct, tmp_path / "native.nii.gz", native, progress=False)
    (b,) = predict_paths(ct, tmp_path / "exported.nii.gz", exported, progress=False)
    ma, mb = (np.asarray(nib.load(r["output"]).dataobj) for r in (a, b))
    assert ma.shape == mb.shape == nib.load(ct).shape
    assert (ma == mb).mean() > 0.999


def test_cli_export_reports_the_difference(seg_run, tmp_path):
    out = tmp_path / "m.onnx"
    result = run_cli("export", "--model", seg_run, "--format", "onnx", "--out", out)
    assert result.returncode == 0, result.stderr
    assert "max abs logit difference against PyTorch" in result.stdout and out.exists()


def test_export_refuses_what_is_not_a_segmentation_model(pretrained, tmp_path):
    with pytest.raises(SidepairError, match="a pretrain checkpoint, not a segmentation model"):
        export_model(pretrained.parent, "onnx", tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
    with pytest.raises(SidepairError, match="unknown export format 'tflite'"):
        export_model(pretrained.parent, "tflite")  # type: ignore[arg-type]
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(SidepairError, match="bad.onnx: not an ONNX model"):
        Predictor.load(bad)
