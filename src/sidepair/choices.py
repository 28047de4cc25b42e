"""The named choices that the command line and the settings offer, free of heavy imports.

``sidepair --help`` builds every verb's options from these without loading torch, MONAI or SciPy. The
module that implements a choice imports its name from here, so each vocabulary is written once.
"""

from __future__ import annotations

import re
from typing import Literal

# Dataset layouts, in the order detection tries them (data.formats.FORMATS holds their readers).
FormatName = Literal["nnunet", "msd", "kits", "totalseg", "slices", "dicom"]
# `sidepair phantom --layout`.
PhantomLayout = Literal["kits", "slices", "nnunet"]
# The phantom's anatomy: one template (the demo's), varied per case, or varied with chest and pelvis.
AnatomyChoice = Literal["fixed", "varied", "trunk"]
# `sidepair export --format` for a model that predict runs alone.
ExportFormat = Literal["onnx", "torchscript"]
# What prepare and predict do with a scan the shipped side model calls flipped.
SideCheckMode = Literal["warn", "error", "off"]
# The label values of predicted masks.
OutputLabels = Literal["sides", "kidney", "kidney+tumour"]
# How a prediction goes back to the scan's grid: probabilities then argmax (nnU-Net's way), or labels.
Resample = Literal["probabilities", "labels"]
DEFAULT_RESAMPLE: Resample = "probabilities"
# check-sides: ok at or above this probability of the header's side, flipped at or below 1 - it.
DEFAULT_SIDE_THRESHOLD = 0.75
# ... and the threshold of a single slice (one level of evidence; docs/check-sides.md).
DEFAULT_SLICE_THRESHOLD = 0.95
# ... and a scan whose values are not HU is read through the window found from its fat and soft tissue
# (ten trainings, 12 000 real exported slices: no confident error; docs/check-sides.md).
DEFAULT_FIND_WINDOWS = True
# Where a run computes: auto (CUDA when present), cpu, cuda or cuda:N, mps.
DEVICE_NAME = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def check_device_name(name: str) -> str:
    """``name`` if it names a device (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``).

    Raises:
        ValueError: Any other name (settings validation turns it into a one-line error).
    """
    if not DEVICE_NAME.fullmatch(name):
        raise ValueError(f"unknown device {name!r} (auto, cpu, cuda, cuda:N or mps)")
    return name
