"""sidepair: kidney segmentation with a side-pair self-supervised encoder.

Implements, reproduces and extends Dhere & Sivaswamy, *Self-Supervised Learning for Segmentation*
(arXiv:2101.05456). From Python, the verbs of the command line: :func:`prepare`, :func:`pretrain`,
:func:`train`, :func:`evaluate`, :func:`predict` (a trained model on a scan) and :func:`check_sides`
(whether a scan's left-right is believable); :func:`load_encoder` gives a run's pretrained encoder as a
``torch.nn.Module`` for one's own network. ``import sidepair`` loads neither torch nor MONAI: each public
function is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sidepair.lazy import load
from sidepair.version import __version__

if TYPE_CHECKING:
    from sidepair.api import evaluate, load_encoder, prepare, pretrain, train
    from sidepair.inference.predictor import predict
    from sidepair.qc.check import check_sides

# Public name -> where it lives.
PUBLIC = {
    "prepare": "sidepair.api:prepare",
    "pretrain": "sidepair.api:pretrain",
    "train": "sidepair.api:train",
    "evaluate": "sidepair.api:evaluate",
    "predict": "sidepair.inference.predictor:predict",
    "check_sides": "sidepair.qc.check:check_sides",
    "load_encoder": "sidepair.api:load_encoder",
}

__all__ = [  # the names of PUBLIC, and the version
    "__version__",
    "check_sides",
    "evaluate",
    "load_encoder",
    "predict",
    "prepare",
    "pretrain",
    "train",
]


def __getattr__(name: str) -> Any:
    if name in PUBLIC:
        return load(PUBLIC[name])
    raise AttributeError(f"module 'sidepair' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
