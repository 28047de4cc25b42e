import json
from typing import get_args

import numpy as np
import pytest
from PIL import Image

from sidepair.choices import FormatName
from sidepair.data.formats import FORMATS, detect_format, open_dataset
from sidepair.data.labels import LEFT, RIGHT
from sidepair.errors import DataError
from tests.conftest import two_kidney_volume, write_nifti


@pytest.fixture
def volume():
    return two_kidney_volume()


def make_nnunet(root, volume, labels=None):
    image, label, affine = volume
    write_nifti(root / "imagesTr" / "kid_001_0000.nii.gz", image, affine)
    write_nifti(root / "labelsTr" / "kid_001.nii.gz", label, affine)
    (root / "dataset.json").write_text(
        json.dumps(
            {
                "channel_names": {"0": "CT"},
                "labels": labels or {"background": 0, "kidney": 1, "tumor": 2},
                "numTraining": 1,
                "file_ending": ".nii.gz",
            }
        )
    )
    return root


def make_msd(root, volume):
    image, label, affine = volume
    write_nifti(root / "imagesTr" / "kid_001.nii.gz", image, affine)
    write_nifti(root / "labelsTr" / "kid_001.nii.gz", label, affine)
    (root / "dataset.json").write_text(
        json.dumps(
            {
                "labels": {"0": "background", "1": "kidney"},
                "modality": {"0": "CT"},
                "training": [{"image": "./imagesTr/kid_001.nii.gz", "label": "./labelsTr/kid_001.nii.gz"}],
            }
        )
    )
    return root


def make_totalseg(root, volume):
    image, label, affine = volume
    write_nifti(root / "ct.nii.gz", image, affine)
    half = label.shape[0] // 2
    right, left = label.copy(), label.copy()
    right[:half] = 0  # RAS: +x (high index) is the patient's right
    left[half:] = 0
    write_nifti(root / "segmentations" / "kidney_right.nii.gz", right.astype(np.float64), affine)
    write_nifti(root / "segmentations" / "kidney_left.nii.gz", left.astype(np.float64), affine)
    return root


def make_slices(root, convention_flip=False):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    image = np.full((64, 64), 40, np.uint8)
    image[8:56, 4:60] = 120  # a body
    mask = np.zeros((64, 64, 3), np.uint8)
    mask[30:40, 50:58] = (0, 0, 255)  # on the image's right: the patient's left (radiological)
    mask[30:40, 6:12] = (0, 0, 255)
    mask[32:35, 52:55] = (255, 0, 0)
    Image.fromarray(image).save(root / "images" / "p1_10.png")
    Image.fromarray(mask).save(root / "masks" / "p1_10.png")
    return root


def make_kits(root, volume):
    image, label, affine = volume
    write_nifti(root / "case_00000" / "imaging.nii.gz", image, affine)
    write_nifti(root / "case_00000" / "segmentation.nii.gz", label, affine)
    return root


@pytest.mark.parametrize(
    "maker,name",
    [
        (make_nnunet, "nnunet"),
        (make_msd, "msd"),
        (make_totalseg, "totalseg"),
        (make_kits, "kits"),
    ],
)
def test_each_format_is_detected_and_read(tmp_path, volume, maker, name):
    root = maker(tmp_path / name, volume)
    assert detect_format(root) == name
    ds = open_dataset(root)
    (case,) = ds.cases()
    loaded = ds.load(case)
    assert loaded.image.array.shape == volume[0].shape
    np.testing.assert_array_equal(loaded.labels.label > 0, volume[1] > 0)


def test_totalseg_declares_sides_from_file_names(tmp_path, volume):
    ds = open_dataset(make_totalseg(tmp_path / "ts", volume))
    loaded = ds.load(ds.cases()[0])
    side = loaded.labels.declared_side
    xs_right = np.argwhere(side == RIGHT) @ loaded.image.affine[0, :3] + loaded.image.affine[0, 3]
    xs_left = np.argwhere(side == LEFT) @ loaded.image.affine[0, :3] + loaded.image.affine[0, 3]
    assert xs_right.min() > 0 > xs_left.max()


def test_nnunet_label_names_with_sides(tmp_path, volume):
    image, label, affine = volume
    sided = label.copy()
    sided[: label.shape[0] // 2][sided[: label.shape[0] // 2] > 0] = 3
    sided[label.shape[0] // 2 :][sided[label.shape[0] // 2 :] > 0] = 2
    root = make_nnunet(
        tmp_path / "amos",
        (image, sided, affine),
        labels={"background": 0, "spleen": 1, "kidney_right": 2, "kidney_left": 3},
    )
    ds = open_dataset(root)
    assert ds.label_map.right == (2,) and ds.label_map.left == (3,)
    loaded = ds.load(ds.cases()[0])
    assert set(np.unique(loaded.labels.declared_side)) == {0, RIGHT, LEFT}


def test_slices_radiological_left_is_image_right(tmp_path):
    root = make_slices(tmp_path / "slices")
    assert detect_format(root) == "slices"
    ds = open_dataset(root)
    (case,) = ds.cases()
    assert case.group == "p1"
    loaded = ds.load(case)
    aff = loaded.image.affine
    kidney = np.argwhere(loaded.labels.label == 2)  # the tumour, drawn at image columns 52-55
    x = kidney @ aff[0, :3] + aff[0, 3]
    centre_x = (np.array([[loaded.image.array.shape[0] / 2 - 0.5, 0, 0]]) @ aff[0, :3] + aff[0, 3])[0]
    assert np.all(x < centre_x)  # patient's left: negative side of the midline in RAS
    neuro = open_dataset(root, convention="neurological").load(case)
    x_neuro = np.argwhere(neuro.labels.label == 2) @ neuro.image.affine[0, :3] + neuro.image.affine[0, 3]
    assert np.all(x_neuro > centre_x)


def test_unknown_colour_in_mask_is_refused(tmp_path):
    root = make_slices(tmp_path / "slices")
    mask = np.asarray(Image.open(root / "masks" / "p1_10.png")).copy()
    mask[0, 0] = (0, 255, 0)
    Image.fromarray(mask).save(root / "masks" / "p1_10.png")
    ds = open_dataset(root)
    with pytest.raises(
        DataError, match=r"p1_10.png: mask colours \[\[0, 255, 0\]\] are not in the colour map"
    ):
        ds.load(ds.cases()[0])


def test_undetectable_folder_lists_what_was_looked_for(tmp_path):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(DataError, match="cannot tell the dataset format; pass --format") as info:
        detect_format(tmp_path / "stuff")
    assert "nnunet" in str(info.value) and "slices" in str(info.value)


def test_wrong_explicit_format_and_unknown_format(tmp_path, volume):
    root = make_kits(tmp_path / "k", volume)
    with pytest.raises(DataError, match="does not look like the nnunet format"):
        open_dataset(root, "nnunet")
    with pytest.raises(DataError, match="unknown format 'nifti'"):
        open_dataset(root, "nifti")


def test_kits_case_without_image_is_refused(tmp_path, volume):
    root = make_kits(tmp_path / "k", volume)
    (root / "case_00000" / "imaging.nii.gz").unlink()
    with pytest.raises(DataError, match="imaging.nii.gz: missing image"):
        open_dataset(root, "kits").cases()


def test_nnunet_missing_label_is_refused(tmp_path, volume):
    root = make_nnunet(tmp_path / "n", volume)
    (root / "labelsTr" / "kid_001.nii.gz").unlink()
    with pytest.raises(DataError, match="kid_001.nii.gz: missing label for image kid_001_0000.nii.gz"):
        open_dataset(root).cases()


def test_msd_missing_label_file_is_named(tmp_path, volume):
    root = make_msd(tmp_path / "m", volume)
    (root / "labelsTr" / "kid_001.nii.gz").unlink()
    ds = open_dataset(root)
    with pytest.raises(DataError, match="kid_001.nii.gz: file not found"):
        ds.load(ds.cases()[0])


def test_totalseg_without_kidney_files_is_refused(tmp_path, volume):
    root = make_totalseg(tmp_path / "t", volume)
    for p in (root / "segmentations").iterdir():
        p.unlink()
    with pytest.raises(DataError, match="none of the label map's structures found"):
        open_dataset(root).cases()


def test_the_cli_choices_name_every_reader_in_detection_order():
    """``choices.FormatName`` (the CLI's --format, torch-free) and the readers stay one list."""
    assert tuple(FORMATS) == get_args(FormatName)
