"""sidepair: kidney segmentation with a side-pair self-supervised encoder.

Implements, reproduces and extends Dhere & Sivaswamy, *Self-Supervised Learning for Segmentation*
(arXiv:2101.05456). From Python: :func:`predict` runs a trained model on a scan.
"""

from sidepair.inference.predictor import predict
from sidepair.version import __version__

__all__ = ["__version__", "predict"]
