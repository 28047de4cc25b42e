"""The store grid: sidepair's own, or nnU-Net's, chosen once from the store settings (issue #29)."""

import numpy as np

from sidepair.config import PreprocessSettings
from sidepair.data.axes import xyz_to_zyx
from sidepair.data.grid import SAME_ORDER, OwnGrid, grid_of, store_settings
from sidepair.data.preprocess import normalize, resample_case
from sidepair.data.volume import load_nifti


def test_our_grid_scans_a_volume_as_the_store_holds_it(small_phantom):
    settings = PreprocessSettings(spacing_zyx=(4.0, 4.0, 4.0))
    grid = grid_of(settings)
    assert isinstance(grid, OwnGrid)
    volume = load_nifti(small_phantom / "case_00000" / "imaging.nii.gz")
    on = grid.scan(volume)
    res = resample_case(volume.array, volume.affine, settings)
    expected = np.asarray(xyz_to_zyx(normalize(res.image, settings)[0]), dtype=np.float32)
    assert on.image.dtype == np.float32 and np.array_equal(on.image, expected)
    assert np.array_equal(on.affine, res.affine)
    assert on.view == SAME_ORDER and np.array_equal(on.view.to_store(on.image), on.image)
    prediction = np.zeros((3, 4, 5, 6), dtype=np.float32)  # what the predictor maps back: never copied
    assert np.shares_memory(SAME_ORDER.to_store(prediction), prediction)
    assert SAME_ORDER.network_size((8, 16, 32)) == (8, 16, 32)


def test_sidepairs_architecture_keeps_the_presets_preprocessing():
    settings = PreprocessSettings()
    assert store_settings(settings, "monai", None, None) is settings
