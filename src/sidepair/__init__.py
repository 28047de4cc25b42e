"""sidepair: kidney segmentation with a side-pair self-supervised encoder.

Implements, reproduces and extends Dhere & Sivaswamy, *Self-Supervised Learning for Segmentation*
(arXiv:2101.05456).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sidepair")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"


def predict(image, model, labels="sides", device="cpu", largest_component=False):  # noqa: ANN001, ANN201
    """Kidney masks for one scan as a nibabel image on the scan's own grid.

    See :func:`sidepair.prediction.predict`; imported on first use so that ``import sidepair`` stays
    light.
    """
    from sidepair.prediction import predict as _predict

    return _predict(image, model, labels, device, largest_component)


__all__ = ["__version__", "predict"]
