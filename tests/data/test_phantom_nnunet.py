"""The phantom in nnU-Net's raw layout: files nnU-Net finds, labels that carry sides by world position."""

import json

import nibabel as nib
import numpy as np
import pytest

from sidepair.data.formats import open_dataset
from sidepair.data.phantom_nnunet import NNUNET_LABELS, write_nnunet
from sidepair.errors import DataError


def test_raw_layout_with_sided_labels_in_the_chosen_orientation(tmp_path):
    out = tmp_path / "Dataset777_Phantom"
    specs = write_nnunet(out, cases=3, seed=2, shape=(64, 64, 32), axcodes="IPL")
    meta = json.loads((out / "dataset.json").read_text(encoding="utf-8"))
    assert meta["channel_names"] == {"0": "CT"} and meta["numTraining"] == 3
    assert meta["file_ending"] == ".nii.gz"
    assert {k: v for k, v in meta["labels"].items() if k != "tumor"} == {
        "background": 0, "kidney_right": 1, "kidney_left": 2
    }  # fmt: skip
    assert ("tumor" in meta["labels"]) == any(s.tumour for s in specs)
    for spec in specs:
        image = nib.load(out / "imagesTr" / f"{spec.case_id}_0000.nii.gz")
        label = nib.load(out / "labelsTr" / f"{spec.case_id}.nii.gz")
        assert nib.aff2axcodes(image.affine) == ("I", "P", "L")
        np.testing.assert_allclose(image.affine, label.affine)
        seg = np.asanyarray(label.dataobj)
        assert set(np.unique(seg)) <= set(NNUNET_LABELS.values())
        # World x (RAS: + toward the patient's right) of each side's voxels against the drawn kidney centres.
        for name, code in (("right", 1), ("left", 2)):
            idx = np.argwhere(seg == code)
            world_x = (label.affine @ np.c_[idx, np.ones(len(idx))].T)[0].mean()
            assert abs(world_x - spec.kidneys[name][0]) < 15, (spec.case_id, name)
        assert spec.kidneys["right"][0] > spec.kidneys["left"][0]
    # sidepair reads it back with the sides its labels declare.
    dataset = open_dataset(out)
    assert dataset.name == "nnunet" and dataset.label_map.right == (1,) and dataset.label_map.left == (2,)


def test_a_folder_nnunet_would_not_find_is_refused(tmp_path):
    with pytest.raises(DataError, match="DatasetNNN_Name"):
        write_nnunet(tmp_path / "phantom", cases=1, shape=(32, 32, 16))
