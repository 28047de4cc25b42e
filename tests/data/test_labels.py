import numpy as np
import pytest

from sidepair.config import LABEL_MAPS, LabelMap, get_label_map
from sidepair.data.labels import KIDNEY, LEFT, RIGHT, TUMOUR, map_label_values, merge_structure_masks
from sidepair.errors import ConfigError, DataError


def test_kits_merges_tumour_into_kidney_region():
    values = np.array([0, 1, 2, 1, 0], dtype=np.int16)
    out = map_label_values(values, LABEL_MAPS["kits19"], "x")
    np.testing.assert_array_equal(out.label, [0, KIDNEY, TUMOUR, KIDNEY, 0])
    assert out.declared_side is None


def test_values_outside_the_map_are_refused_with_the_values():
    with pytest.raises(DataError, match=r"label values \[3, 7\] are outside the label map"):
        map_label_values(np.array([0, 1, 3, 7], np.int16), LABEL_MAPS["kits19"], "seg.nii.gz")


def test_multilabel_sides_declare_right_and_left():
    values = np.array([0, 2, 3, 5, 1], dtype=np.int16)  # 5 and 1: other organs
    out = map_label_values(values, LABEL_MAPS["sides-multilabel"], "x")
    np.testing.assert_array_equal(out.label, [0, KIDNEY, KIDNEY, 0, 0])
    np.testing.assert_array_equal(out.declared_side, [0, RIGHT, LEFT, 0, 0])


def test_structure_masks_merge():
    right = np.array([1, 0, 0, 0])
    left = np.array([0, 1, 0, 0])
    tumour = np.array([0, 1, 0, 0])
    out = merge_structure_masks({"right": right, "left": left, "tumour": tumour})
    np.testing.assert_array_equal(out.label, [KIDNEY, TUMOUR, 0, 0])
    np.testing.assert_array_equal(out.declared_side, [RIGHT, LEFT, 0, 0])


def test_label_map_validation_messages():
    with pytest.raises(ConfigError, match="label_map: Value error, values \\[2\\] are both right and left"):
        get_label_map({"right": [2], "left": [2]})
    with pytest.raises(ConfigError, match="label_map.colour: Extra inputs"):
        get_label_map({"colour": 1})
    with pytest.raises(ConfigError, match="unknown label map 'nope'"):
        get_label_map("nope")
    assert get_label_map({"kidney": [1], "tumour": []}) == LabelMap(kidney=(1,), tumour=())


def test_label_map_from_yaml(tmp_path):
    from sidepair.config import load_yaml

    path = tmp_path / "amos.yaml"
    path.write_text("kidney: []\ntumour: []\nright: [2]\nleft: [3]\nother: background\n", encoding="utf-8")
    lm = get_label_map(load_yaml(path))
    assert lm.right == (2,) and lm.left == (3,) and lm.has_sides and lm.kidney_values == {2, 3}
    path.write_text("right: [2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="amos.yaml: invalid YAML"):
        load_yaml(path)
