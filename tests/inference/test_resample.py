"""The way back to the scan's grid: probabilities then argmax, in slabs, equals the plain computation."""

import numpy as np
import pytest
from scipy import ndimage

from sidepair.choices import DEFAULT_RESAMPLE
from sidepair.experiment.config import EvaluationConfig
from sidepair.inference import resample as rs
from sidepair.inference.predictor import Predictor
from sidepair.inference.resample import resample_labels, resample_probabilities


def _naive(probs, src, dst, shape):
    """Every class resampled over the whole grid, then argmax: the definition."""
    mapping = np.linalg.inv(src) @ dst
    layers = [
        ndimage.affine_transform(
            p, mapping[:3, :3], offset=mapping[:3, 3], output_shape=shape, order=1, mode="nearest"
        )
        for p in probs
    ]
    return np.argmax(np.stack(layers), axis=0).astype(np.uint8)


@pytest.mark.parametrize("classes", [2, 3])
def test_slabs_and_the_implicit_background_equal_the_plain_argmax(classes, monkeypatch):
    rng = np.random.default_rng(classes)
    logits = rng.normal(size=(classes, 12, 10, 8)).astype(np.float32) * 3
    probs = np.exp(logits) / np.exp(logits).sum(axis=0, keepdims=True)
    src = np.diag([3.0, 3.0, 5.0, 1.0])
    dst = np.diag([1.1, 1.3, 1.7, 1.0])
    dst[:3, 3] = [0.4, -0.3, 0.9]
    shape = (30, 24, 20)
    monkeypatch.setattr(rs, "SLAB_VOXELS", 30 * 24 * 3)  # slabs of 3 slices, the last one shorter
    got = resample_probabilities(probs, src, dst, shape)
    want = _naive(probs, src, dst, shape)
    assert (got == want).mean() > 0.999  # float32 sums can flip an exact tie, nothing more
    assert set(np.unique(got)) == set(range(classes))


def test_probabilities_follow_the_boundary_between_coarse_voxels():
    """A coarse two-voxel step: nearest labels keep the step, probabilities put the edge at p = 0.5."""
    p1 = np.zeros((1, 1, 4), np.float32)
    p1[..., 2:] = 1.0
    probs = np.stack([1 - p1, p1])
    src = np.diag([1.0, 1.0, 4.0, 1.0])
    dst = np.eye(4)
    shape = (1, 1, 13)
    soft = resample_probabilities(probs, src, dst, shape)[0, 0]
    hard = resample_labels((p1 > 0.5).astype(np.uint8), src, dst, shape)[0, 0]
    assert soft.tolist() == [0] * 7 + [1] * 6  # edge halfway between source voxels 1 and 2 (mm 4 and 8)
    assert hard.tolist() == [0] * 6 + [1] * 7  # nearest: the edge falls at mm 6, rounded


def test_one_default_for_predict_and_evaluate():
    assert DEFAULT_RESAMPLE == "probabilities"
    assert EvaluationConfig().resample == DEFAULT_RESAMPLE
    assert Predictor.__dataclass_fields__["resample"].default == DEFAULT_RESAMPLE
