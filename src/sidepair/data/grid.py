"""The store grid: how a scan becomes the arrays a network reads, and the grid a prediction goes back from.

Two grids exist: sidepair's own (the preset's spacing and normalisation, :class:`OwnGrid`) and nnU-Net's
(its reader, crop, transpose, spacing and normalisation from its plans, ``nnunet_grid.NnUNetGrid``).
``prepare`` and the predictor ask ``grids.grid_of(settings)`` for the store's grid and never branch on
which it is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from sidepair.config import PreprocessSettings
from sidepair.data.axes import xyz_to_zyx
from sidepair.data.formats.base import LoadedCase
from sidepair.data.index import NetworkView
from sidepair.data.preprocess import Resampled, normalize, resample_case
from sidepair.data.sides import body_centre
from sidepair.data.volume import Volume
from sidepair.lazy import load

# Store order is the network's order on sidepair's own grid.
SAME_ORDER = NetworkView(order=[0, 1, 2], flips=[False, False, False])


@dataclass
class OnGrid:
    """A scan on a store grid, as the network reads it.

    Attributes:
        image: The normalised image, float32, in the network's axis order (its last three axes).
        affine: The RAS affine of the store grid, for ``(x, y, z)`` indices.
        view: The network's axis order against the store's.
    """

    image: np.ndarray
    affine: np.ndarray
    view: NetworkView


class StoreGrid(ABC):
    """How scans are brought onto a store's grid."""

    @abstractmethod
    def resample(self, loaded: LoadedCase) -> tuple[Resampled, np.ndarray, NetworkView | None]:
        """A case on the grid (RAS, ``(x, y, z)``), its body centre and the network's axis order.

        The body centre is in world mm; the order is None where the network reads the store's order.
        """

    @abstractmethod
    def normalize(self, image: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
        """The grid image's normalised intensities and the statistics used."""

    @abstractmethod
    def scan(self, volume: Volume) -> OnGrid:
        """A scan to predict, as the model's training store held it."""


class OwnGrid(StoreGrid):
    """sidepair's grid: resampled to the settings' spacing, normalised by their rule.

    Args:
        settings: The store's preprocessing.
    """

    def __init__(self, settings: PreprocessSettings) -> None:
        self.settings = settings

    def resample(self, loaded: LoadedCase) -> tuple[Resampled, np.ndarray, NetworkView | None]:
        """The case resampled (labels nearest), and its body centre on that grid."""
        image, labels = loaded.image, loaded.labels
        res = resample_case(
            image.array,
            image.affine,
            self.settings,
            labels.label if labels else None,
            labels.declared_side if labels else None,
        )
        return res, body_centre(res.image, res.affine), None

    def normalize(self, image: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
        """The settings' normalisation, in the store's dtype."""
        return normalize(image, self.settings)

    def scan(self, volume: Volume) -> OnGrid:
        """Resampled and normalised in the store's dtype: the very values training read."""
        res = resample_case(volume.array, volume.affine, self.settings)
        norm, _ = self.normalize(res.image)
        return OnGrid(np.asarray(xyz_to_zyx(norm), dtype=np.float32), res.affine, SAME_ORDER)


def grid_of(settings: PreprocessSettings) -> StoreGrid:
    """The grid of a store's preprocessing: nnU-Net's where it names a plans file, else sidepair's own."""
    if settings.nnunet is not None:
        # nnU-Net's grid needs its optional extra: loaded only for a store that asks for it.
        return load("sidepair.data.nnunet_grid:NnUNetGrid")(settings.nnunet)
    return OwnGrid(settings)


def store_settings(
    settings: PreprocessSettings, architecture: str, plans: str | None, configuration: str | None
) -> PreprocessSettings:
    """The preprocessing a network architecture reads: ``settings``, or nnU-Net's of its plans (float32).

    Raises:
        ConfigError: nnU-Net not installed, or not a plans file.
        DataError: A configuration the plans do not have.
    """
    if architecture == "monai":
        return settings
    return load("sidepair.data.nnunet_grid:with_nnunet")(settings, str(plans), str(configuration))
