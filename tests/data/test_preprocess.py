"""Resampling to a preset's grid, with and without anti-aliasing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from sidepair.api import prepare
from sidepair.config import PRESETS, PreprocessSettings
from sidepair.data.preprocess import resample_case, smooth_for
from sidepair.data.store import Store
from sidepair.experiment.config import ExperimentConfig
from sidepair.experiment.runner import _store_settings
from tests.conftest import two_kidney_volume, write_nifti

REPO = Path(__file__).resolve().parents[2]


def _stripes(spacing: float, shape: tuple[int, int, int] = (256, 256, 1)) -> tuple[np.ndarray, np.ndarray]:
    """Stripes of 0 and 100 HU one pixel wide along x (a pattern at the grid's Nyquist limit)."""
    image = np.zeros(shape, dtype=np.float32)
    image[::2] = 100.0
    return image, np.diag([spacing, spacing, 1.0, 1.0])


def test_a_pattern_finer_than_the_new_grid_averages_out_only_with_antialias():
    image, affine = _stripes(0.75)
    plain = PreprocessSettings(spacing_zyx=(None, 3.0, 3.0))
    smooth = plain.model_copy(update={"antialias": True})
    a, b = resample_case(image, affine, plain), resample_case(image, affine, smooth)
    np.testing.assert_allclose(a.affine, b.affine)  # the same grid: only the values differ
    inner = (slice(4, -4), slice(4, -4), 0)
    # Bilinear from 0.75 mm to 3 mm lands every output pixel on the same stripe phase: 0 or 100, not 50.
    assert abs(float(a.image[inner].mean()) - 50.0) > 40.0
    assert abs(float(b.image[inner].mean()) - 50.0) < 2.0
    assert float(b.image[inner].std()) < 2.0


def test_smoothing_follows_each_axis_factor_and_leaves_a_kept_axis_alone():
    image = np.zeros((33, 33, 5), dtype=np.float32)
    image[16, 16, 2] = 1.0
    out = smooth_for(image, (0.75, 1.5, 1.0), (3.0, 3.0, 1.0))
    assert out[:, 16, 2].std() > out[16, :, 2].std()  # x downsampled 4x, y 2x: wider along x
    np.testing.assert_array_equal(out[:, :, 1], 0.0)  # z kept: nothing spreads across slices
    assert abs(float(out.sum()) - 1.0) < 1e-4
    assert smooth_for(image, (3.0, 3.0, 1.0), (3.0, 3.0, 1.0)) is image  # no downsampling, untouched


def test_antialias_off_keeps_every_store_fingerprint():
    # Fingerprints of the presets' preprocessing before the setting existed: stores already prepared
    # must still be found.
    before = {
        "kits19-paper": "9a002245fe29",
        "fast-2d": "a8c2203ccf99",
        "demo": "45124a688377",
        "laterality": "8f3514576210",
    }
    for name, fingerprint in before.items():
        assert PRESETS[name].preprocess.fingerprint() == fingerprint
    on = PreprocessSettings(antialias=True)
    assert on.fingerprint() != PreprocessSettings().fingerprint()


def test_prepare_with_antialias_records_it_and_smooths_the_store(tmp_path):
    image, label, affine = two_kidney_volume(shape=(200, 160, 6), spacing=(0.75, 0.75, 5.0))
    image += np.random.default_rng(0).normal(0.0, 20.0, image.shape).astype(np.float32)  # CT noise
    write_nifti(tmp_path / "data" / "case_00000" / "imaging.nii.gz", image, affine)
    write_nifti(tmp_path / "data" / "case_00000" / "segmentation.nii.gz", label, affine)
    stores = {
        on: Store(
            prepare(tmp_path / "data", tmp_path / f"store_{on}", "demo", fmt="kits", antialias=on,
                    side_check="off", progress=False)
        )
        for on in (False, True)
    }  # fmt: skip
    assert stores[True].settings.antialias and not stores[False].settings.antialias
    assert stores[True].fingerprint != stores[False].fingerprint
    a, b = (np.asarray(s.array("case_00000"), np.float32) for s in (stores[False], stores[True]))
    assert a.shape == b.shape
    inner = (slice(None), slice(5, 15), slice(20, 30))  # body in front of the midline, no kidney, no edge
    # 3 mm from 0.75: bilinear keeps the noise of single voxels, the smoothed store averages about 16.
    assert float(b[inner].std()) < 0.5 * float(a[inner].std())


def test_an_experiment_can_ask_for_antialias():
    raw = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text(encoding="utf-8"))
    assert not _store_settings(ExperimentConfig.model_validate(raw)).antialias
    raw["prepare"] = {**raw.get("prepare", {}), "antialias": True}
    assert _store_settings(ExperimentConfig.model_validate(raw)).antialias
