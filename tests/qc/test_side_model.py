"""``qc.side_model``: a single slice is read at several grid phases, each pixel where it lay."""

import numpy as np
import pytest
from scipy.ndimage import zoom

from sidepair.data.volume import Volume, load_nifti
from sidepair.qc.side_model import SHIFTS, SLICE_PHASES, SideModel, grid_phases


def one_slice(spacing: float, size: int = 40) -> Volume:
    affine = np.diag([spacing, spacing, 3.0, 1.0])
    affine[:3, 3] = (-100.0, 20.0, 7.0)
    array = np.arange(size * size, dtype=np.float32).reshape(size, size, 1)
    return Volume(array, affine, source=__file__)  # type: ignore[arg-type]


@pytest.mark.parametrize(("spacing", "steps"), [(0.78, [0, 1, 3]), (1.0, [0, 1, 2]), (0.5, [0, 2, 4])])
def test_grid_phases_drop_first_pixels_and_keep_each_kept_pixel_where_it_lay(spacing, steps):
    volume = one_slice(spacing)
    phases = grid_phases(volume, (3.0, 3.0), 3)
    assert len(phases) == len(steps) ** 2
    for phase, (kx, ky) in zip(phases, [(a, b) for a in steps for b in steps], strict=True):
        assert np.array_equal(phase.array, volume.array[kx:, ky:])
        # Voxel (0, 0) of the phase is voxel (kx, ky) of the slice, in world millimetres.
        assert phase.affine[:3, 3] == pytest.approx((volume.affine @ [kx, ky, 0, 1])[:3])
        assert np.array_equal(phase.affine[:3, :3], volume.affine[:3, :3])


def test_a_slice_as_coarse_as_the_model_s_grid_has_one_phase():
    assert len(grid_phases(one_slice(3.0), (3.0, 3.0), 3)) == 1
    assert len(grid_phases(one_slice(0.78), (3.0, 3.0), 1)) == 1


def test_a_single_slice_is_read_at_every_phase_a_volume_at_one(states):
    model = SideModel.load()
    volume = load_nifti(states / "asis.nii.gz")
    middle = volume.array[:, :, volume.array.shape[2] // 2, None].astype(np.float32)
    affine = volume.affine.copy()
    affine[:3, :2] /= 4  # the small phantom's pixels are coarse: a slice of four times as many
    axial = Volume(zoom(middle, (4, 4, 1), order=1), affine, volume.source)
    levels, logits, _ = model.section_logits(axial)
    phases = grid_phases(axial, (3.0, 3.0), SLICE_PHASES)
    assert len(phases) > 1 and logits.shape == (1, 2, SHIFTS * len(phases))
    model.slice_phases = 1
    each = np.concatenate([model.section_logits(p)[1] for p in phases], axis=2)
    assert logits == pytest.approx(each, abs=1e-5)  # the crops of every phase, side by side
    single = model.check(axial)
    assert single.sections == 2 * SHIFTS  # one phase now
    model.slice_phases = SLICE_PHASES
    assert model.check(axial).sections == 2 * SHIFTS * len(phases)
    whole_levels, whole, _ = model.section_logits(volume)
    assert whole.shape == (len(whole_levels), 2, SHIFTS)
