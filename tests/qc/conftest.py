"""Fixtures of the laterality-QC tests: one phantom scan in three states, and PNG slices cut from it."""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from sidepair.data.volume import load_nifti
from tests.conftest import write_nifti


@pytest.fixture(scope="module")
def states(small_phantom, tmp_path_factory):
    """One phantom scan as it is, with its header's x flipped, and with its array mirrored."""
    out = tmp_path_factory.mktemp("states")
    img = nib.load(small_phantom / "case_00001" / "imaging.nii.gz")
    data, affine = np.asanyarray(img.dataobj), img.affine
    nib.save(img, out / "asis.nii.gz")
    lateral = int(np.argmax(np.abs(affine[0, :3])))  # the array axis that runs left-right
    flipped = affine.copy()
    flipped[:, lateral] *= -1
    write_nifti(out / "header.nii.gz", data, flipped)
    write_nifti(out / "array.nii.gz", np.flip(data, axis=lateral).copy(), affine)
    return out


@pytest.fixture(scope="module")
def png_slices(states, tmp_path_factory) -> Path:
    """Two axial slices of the phantom scan, 8-bit radiological PNGs of HU clipped to [0, 255], named
    ``case1_001.png`` and ``case1_002.png``, in a folder whose ``slices.json`` gives their spacing only."""
    volume = load_nifti(states / "asis.nii.gz")
    folder = tmp_path_factory.mktemp("png_slices")
    (folder / "images").mkdir()
    x, y, z = (float(v) for v in volume.spacing)
    meta = {}
    for i, fraction in enumerate((0.55, 0.7), start=1):
        axial = volume.array[:, :, int(volume.array.shape[2] * fraction)]
        # Rows run posterior-ward, columns toward the patient's left (radiological).
        pixels = np.clip(axial[::-1, ::-1].T, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / "images" / f"case1_{i:03d}.png")
        meta[f"case1_{i:03d}.png"] = {"voxel_spacing_mm_axis0_1_2": [z, y, x]}
    (folder / "slices.json").write_text(json.dumps(meta), encoding="utf-8")
    return folder
