"""Slice folders: colour maps (with sides and other organs), the intensity mapping, pixel spacing."""

import warnings

import numpy as np
import pytest
from PIL import Image

from sidepair.config import ColourMap, LabelMap, get_label_map
from sidepair.data.formats import open_dataset
from sidepair.data.formats.slices import SlicesFormat
from sidepair.data.labels import KIDNEY, LEFT, RIGHT, TUMOUR
from sidepair.errors import ConfigError, DataError, DataWarning


def _folder(tmp_path, mask):
    (tmp_path / "images").mkdir(parents=True)
    (tmp_path / "masks").mkdir()
    image = np.full(mask.shape[:2], 30, np.uint8)
    image[4:28, 4:28] = 120
    Image.fromarray(image).save(tmp_path / "images" / "p1_10.png")
    Image.fromarray(mask).save(tmp_path / "masks" / "p1_10.png")
    return tmp_path


def test_colours_with_sides_and_other_organs(tmp_path):
    mask = np.zeros((32, 32, 3), np.uint8)
    mask[10:20, 4:10] = (255, 255, 0)  # right kidney, on the image's left (radiological)
    mask[10:20, 22:28] = (0, 255, 0)  # left kidney
    mask[12:14, 22:24] = (255, 0, 255)  # tumour
    mask[0:3, 0:3] = (0, 255, 255)  # another organ
    lm = get_label_map(
        {
            "colours": {
                "right": [255, 255, 0],
                "left": [[0, 255, 0]],
                "tumour": [255, 0, 255],
                "other": [[0, 255, 255]],
            }
        }
    )
    ds = open_dataset(_folder(tmp_path, mask), "slices", lm)
    labels = ds.load(ds.cases()[0]).labels
    values = set(np.unique(labels.label).tolist())
    assert values == {0, KIDNEY, TUMOUR}
    assert set(np.unique(labels.declared_side).tolist()) == {0, RIGHT, LEFT}
    assert (labels.label > 0).sum() == 120  # the other organ is background


def test_bad_colour_maps_name_the_field():
    with pytest.raises(ConfigError, match="colour .*is both kidney and other"):
        get_label_map({"colours": {"kidney": [1, 2, 3], "other": [[1, 2, 3]]}})
    with pytest.raises(ConfigError, match="not RGB in 0-255"):
        get_label_map({"colours": {"kidney": [300, 2, 3]}})
    with pytest.raises(ConfigError, match="names no kidney colour"):
        get_label_map({"colours": {"other": [[1, 2, 3]]}})
    assert ColourMap(kidney=[(1, 2, 3)]).kidney == [(1, 2, 3)]
    assert LabelMap(colours=ColourMap(kidney=[(1, 2, 3)])).colours is not None


def test_intensity_maps_pixels_to_hu(tmp_path):
    mask = np.zeros((32, 32, 3), np.uint8)
    mask[10:20, 4:10] = (0, 0, 255)
    root = _folder(tmp_path, mask)
    plain = open_dataset(root, "slices")
    mapped = open_dataset(root, "slices", intensity=(2.0, -1024.0))
    a = plain.load(plain.cases()[0]).image.array
    b = mapped.load(mapped.cases()[0]).image.array
    np.testing.assert_allclose(b, a * 2 - 1024)
    with pytest.raises(DataError, match="intensity must be a nonzero slope"):
        open_dataset(root, "slices", intensity=(0.0, 1.0))


def test_a_folder_without_pixel_spacing_warns_once_and_takes_one_given(tmp_path):
    mask = np.zeros((32, 32, 3), np.uint8)
    mask[10:20, 4:10] = (0, 0, 255)
    root = _folder(tmp_path, mask)
    Image.fromarray(np.full((32, 32), 40, np.uint8)).save(root / "images" / "p1_11.png")
    bare = open_dataset(root, "slices")
    with pytest.warns(DataWarning, match=r"2 of 2 PNG slices have no pixel spacing.*assumed 1 mm") as caught:
        cases = bare.cases()
    assert len(caught) == 1 and str(root) in str(caught[0].message)
    assert np.allclose(np.abs(np.diag(bare.load(cases[0]).image.affine))[:3], 1.0)
    told = open_dataset(root, "slices", spacing=0.8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cases = told.cases()
    assert np.allclose(np.abs(np.diag(told.load(cases[0]).image.affine))[:2], 0.8)
    with pytest.raises(DataError, match="pixel spacing must be positive, got 0"):
        open_dataset(root, "slices", spacing=0.0)


def test_an_assumed_field_of_view_sets_a_bare_slice_s_spacing_from_its_size(tmp_path):
    """What check-sides reads bare PNGs with; ``prepare`` keeps 1 mm a pixel (above)."""
    mask = np.zeros((40, 32, 3), np.uint8)  # 40 rows, 32 columns: the larger side spans the field of view
    root = _folder(tmp_path, mask)
    bare = SlicesFormat(root, field_of_view=400.0)
    with pytest.warns(DataWarning, match=r"assumed a 400 mm field of view \(0.78 mm at 512 pixels\)"):
        cases = bare.cases()
    assert np.allclose(np.abs(np.diag(bare.load(cases[0]).image.affine))[:2], 10.0)
    told = SlicesFormat(root, spacing=0.8, field_of_view=400.0)  # a spacing given wins
    assert np.allclose(np.abs(np.diag(told.load(told.cases()[0]).image.affine))[:2], 0.8)
    with pytest.raises(DataError, match="field of view must be positive, got -1"):
        SlicesFormat(root, field_of_view=-1.0)
