"""The named choices that the command line and the settings offer, free of heavy imports.

``sidepair --help`` builds every verb's options from these without loading torch, MONAI or SciPy. The
module that implements a choice imports its name from here, so each vocabulary is written once.
"""

from __future__ import annotations

from typing import Literal

# Dataset layouts, in the order detection tries them (data.formats.FORMATS holds their readers).
FormatName = Literal["nnunet", "msd", "kits", "totalseg", "slices", "dicom"]
# `sidepair phantom --layout`.
PhantomLayout = Literal["kits", "slices", "nnunet"]
# The phantom's anatomy: one template (the demo's) or varied per case.
AnatomyChoice = Literal["fixed", "varied"]
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
