"""Real 2D slices (KiTS19 PNGs, radiological): sides, groups and the store."""

import numpy as np
import pytest

from sidepair.config import get_preset
from sidepair.data.axes import ras_to_original
from sidepair.data.formats import open_dataset
from sidepair.data.labels import LEFT, RIGHT
from sidepair.data.prepare import prepare
from sidepair.data.sides import assign_sides, body_midline_x, kept_mask
from sidepair.data.store import Store

pytestmark = pytest.mark.realdata


def test_left_kidney_is_on_the_image_right(shared_data):
    ds = open_dataset(shared_data / "kits19_slices")
    assert ds.name == "slices"
    checked = 0
    for source in ds.cases():
        case = ds.load(source)
        aff = case.image.affine
        side, _ = assign_sides(case.labels.label > 0, aff, body_midline_x(case.image.array, aff))
        # Back to the PNG's own layout (rows, columns): radiological, so the patient's left is on the right.
        png_side = ras_to_original(side, case.image.original_affine)[:, :, 0]
        png_kept = {
            c: ras_to_original(kept_mask(side, aff, c), case.image.original_affine)[:, :, 0]
            for c in (RIGHT, LEFT)
        }
        assert png_side.shape == (512, 512)
        cols_left = np.nonzero(png_kept[LEFT])[1]
        cols_right = np.nonzero(png_kept[RIGHT])[1]
        if len(cols_left) and len(cols_right):
            assert cols_left.mean() > 256 > cols_right.mean(), source.case_id
            checked += 1
    assert checked >= 15


def test_prepare_groups_by_source_case(shared_data, tmp_path):
    out = prepare(
        open_dataset(shared_data / "kits19_slices"), tmp_path / "store", get_preset("fast-2d").preprocess
    )
    store = Store(out)
    assert len(store) == 24
    groups = {}
    for case_id, entry in store.cases.items():
        groups.setdefault(entry.group, set()).add(case_id)
        assert entry.spacing[1:] == pytest.approx([2.0, 2.0])
        assert entry.shape[0] == 1  # one slice
        assert entry.original.axcodes == "PLI"  # rows posterior, columns left, slice axis
        image = store.array(case_id)
        rows_mm, cols_mm = (512 * s for s in entry.original.spacing[:2])
        assert image.shape[1:] == pytest.approx((rows_mm / 2.0, cols_mm / 2.0), abs=1.0)
    assert len(groups) == 5
    for split in ("train", "val", "test"):
        ids = set(store.split(split))
        for members in groups.values():
            assert members <= ids or not members & ids  # a patient's slices never straddle splits
