"""sidepair: kidney segmentation with a side-pair self-supervised encoder.

Implements, reproduces and extends Dhere & Sivaswamy, *Self-Supervised Learning for Segmentation*
(arXiv:2101.05456). From Python: :func:`predict` runs a trained model on a scan, and :func:`check_sides`
says whether a scan's left-right is believable.
"""

from sidepair.inference.laterality import check_sides
from sidepair.inference.predictor import predict
from sidepair.version import __version__

__all__ = ["__version__", "check_sides", "predict"]
