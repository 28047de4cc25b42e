"""sidepair: kidney segmentation with a side-pair self-supervised encoder.

Implements, reproduces and extends Dhere & Sivaswamy, *Self-Supervised Learning for Segmentation*
(arXiv:2101.05456).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sidepair")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
