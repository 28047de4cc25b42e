"""The phantom in nnU-Net v2's raw layout: ``imagesTr/``, ``labelsTr/`` and ``dataset.json``.

Labels carry sides (``kidney_right``, ``kidney_left``), taken from each kidney's world position, and
``tumor`` where one was drawn. Every case is written in one orientation (``LPS`` by default: what a DICOM
series converted by SimpleITK gives), since nnU-Net reads arrays as they are and never reorients.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path

import nibabel as nib
import numpy as np
from tqdm import tqdm

from sidepair.atomic import atomic_path, write_json
from sidepair.choices import AnatomyChoice
from sidepair.data.labels import LEFT, RIGHT, TUMOUR
from sidepair.data.phantom import DEFAULT_SHAPE, CaseSpec, generate_case
from sidepair.errors import DataError

DATASET_NAME = re.compile(r"^Dataset\d{3}_[A-Za-z0-9_-]+$")
NNUNET_LABELS = {"background": 0, "kidney_right": 1, "kidney_left": 2, "tumor": 3}


def _save(img: nib.Nifti1Image, path: Path) -> None:
    with atomic_path(path, suffix=".nii.gz") as tmp:
        nib.save(img, str(tmp))


def write_nnunet(
    out: str | Path,
    cases: int = 20,
    seed: int = 0,
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    axcodes: str = "LPS",
    progress: bool = False,
    anatomy: AnatomyChoice = "fixed",
) -> list[CaseSpec]:
    """Write phantom cases as an nnU-Net v2 raw dataset (``out`` is the ``DatasetNNN_Name`` folder).

    Args:
        out: The dataset folder; nnU-Net finds datasets by a name ``DatasetNNN_Name``.
        cases: Number of cases (``case_00000`` ...).
        seed: Dataset seed (the same seed gives the same files as the KiTS layout's cases).
        shape: RAS grid shape (x, y, z).
        axcodes: Orientation every case is written in.
        progress: Show a progress bar.
        anatomy: ``fixed`` organs or ``varied`` per case (see :func:`~sidepair.data.phantom.generate_case`).

    Returns:
        The spec of every case drawn.

    Raises:
        DataError: A folder name nnU-Net would not find, or a bad case count.
    """
    out = Path(out)
    if not DATASET_NAME.match(out.name):
        raise DataError(
            out, "nnU-Net finds raw datasets by a folder name DatasetNNN_Name, e.g. Dataset501_Phantom"
        )
    if cases < 1:
        raise DataError(out, f"--cases must be at least 1, got {cases}")
    specs = []
    tumour = False
    for i in tqdm(range(cases), desc="phantom (nnU-Net)", unit="case", disable=None if progress else True):
        case_id = f"case_{i:05d}"
        drawn = generate_case(case_id, seed, i, tuple(shape), axcodes=axcodes, anatomy=anatomy)  # type: ignore[arg-type]
        label = np.asanyarray(drawn.label.dataobj)
        sides = np.asanyarray(drawn.sides.dataobj)
        target = np.zeros(label.shape, dtype=np.uint8)
        target[sides == RIGHT] = NNUNET_LABELS["kidney_right"]
        target[sides == LEFT] = NNUNET_LABELS["kidney_left"]
        target[label == TUMOUR] = NNUNET_LABELS["tumor"]
        tumour |= bool((label == TUMOUR).any())
        seg = nib.Nifti1Image(target, drawn.label.affine, drawn.label.header)
        _save(drawn.image, out / "imagesTr" / f"{case_id}_0000.nii.gz")
        _save(seg, out / "labelsTr" / f"{case_id}.nii.gz")
        specs.append(drawn.spec)
    labels = {k: v for k, v in NNUNET_LABELS.items() if k != "tumor" or tumour}
    write_json(
        out / "dataset.json",
        {
            "name": out.name,
            "description": "sidepair phantom: synthetic abdominal CT, not patient data",
            "channel_names": {"0": "CT"},
            "labels": labels,
            "numTraining": cases,
            "file_ending": ".nii.gz",
            "license": "Apache-2.0 (generated)",
        },
    )
    write_json(
        out / "phantom.json",
        {
            "generator": "sidepair phantom --layout nnunet",
            "seed": seed,
            "shape": list(shape),
            "axcodes": axcodes,
            "note": "synthetic phantom, not patient data",
            "cases": [asdict(s) for s in specs],
        },
    )
    return specs
