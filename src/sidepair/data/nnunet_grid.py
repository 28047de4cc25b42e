"""nnU-Net's preprocessing of one scan, and where each of its voxels lies in the patient.

nnU-Net's own preprocessor (the plans' ``preprocessor_name``, normally ``DefaultPreprocessor``) reads the
scan with the plans' reader (which does not reorient), transposes it (``transpose_forward``), crops it to
non-zero, normalises it (``CTNormalization`` with the fingerprint's foreground statistics) and resamples it
to the configuration's spacing. Nothing of that is reimplemented: the array is nnU-Net's.

What sidepair adds is the geometry: the affine from that array's indices to RAS world millimetres, carried
through the reader's axis order, the transpose, the crop and the resampling (nnU-Net resamples voxel
centres: old index = (new index + 0.5) * old size / new size - 0.5). Left and right then come from world
coordinates, as for every other store. The store keeps the array with its axes permuted (and flipped) to
RAS ``(z, y, x)``, values untouched, and records how to put a section back into nnU-Net's axis order,
which is what the encoder is fed.
"""

from __future__ import annotations

import copy
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sidepair.config import NnUNetPreprocessing, PreprocessSettings
from sidepair.data.axes import affine_zyx_to_xyz, ras_to_original
from sidepair.data.formats.base import LoadedCase
from sidepair.data.grid import OnGrid, StoreGrid
from sidepair.data.index import NetworkView
from sidepair.data.preprocess import Resampled, nearest_onto
from sidepair.data.sides import body_centre
from sidepair.data.volume import Volume, is_nifti, save_nifti
from sidepair.errors import DataError
from sidepair.nnunet_plans import plans_digest, read_plans, require_nnunet

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass
class NnUNetCase:
    """One scan as nnU-Net preprocesses it, with its geometry.

    Attributes:
        array: nnU-Net's preprocessed image (its axis order, float32).
        affine: nnU-Net array index -> RAS world (4 x 4).
        store_axes: For each store axis (z, y, x) the nnU-Net axis it is.
        store_flips: For each store axis, whether it runs against the nnU-Net axis.
    """

    array: np.ndarray
    affine: np.ndarray
    store_axes: tuple[int, int, int]
    store_flips: tuple[bool, bool, bool]

    def store_array(self) -> np.ndarray:
        """The array in store order: RAS ``(z, y, x)``, each axis increasing toward S, A, R."""
        return self.view().to_store(self.array)

    def store_affine(self) -> np.ndarray:
        """Store index (z, y, x) -> RAS world."""
        to_nn = np.zeros((4, 4))
        to_nn[3, 3] = 1.0
        for s, (m, flip) in enumerate(zip(self.store_axes, self.store_flips, strict=True)):
            to_nn[m, s] = -1.0 if flip else 1.0
            to_nn[m, 3] = self.array.shape[m] - 1 if flip else 0.0
        return self.affine @ to_nn

    def view(self) -> NetworkView:
        """How store-order arrays go to nnU-Net's axis order and back (what the store index keeps)."""
        order = [self.store_axes.index(m) for m in range(3)]
        return NetworkView(order=order, flips=[self.store_flips[s] for s in order])


def reader_affine(properties: dict[str, Any], source: Path) -> np.ndarray:
    """Index of the reader's array (axes reversed against the file's) -> RAS world.

    Raises:
        DataError: A reader whose geometry sidepair cannot follow.
    """
    flip = np.eye(4)[[2, 1, 0, 3]]  # array (a0, a1, a2) = file (k, j, i)
    if "sitk_stuff" in properties:
        sitk = properties["sitk_stuff"]
        direction = np.asarray(sitk["direction"], dtype=float).reshape(3, 3)
        lps = np.eye(4)
        lps[:3, :3] = direction @ np.diag(np.asarray(sitk["spacing"], dtype=float))
        lps[:3, 3] = np.asarray(sitk["origin"], dtype=float)
        return LPS_TO_RAS @ lps @ flip
    if "nibabel_stuff" in properties:
        stuff = properties["nibabel_stuff"]
        affine = stuff.get("reoriented_affine", stuff["original_affine"])
        return np.asarray(affine, dtype=float) @ flip
    raise DataError(source, "nnU-Net's reader for this dataset gives no geometry sidepair can follow")


def _store_axes(affine: np.ndarray, source: Path) -> tuple[tuple[int, int, int], tuple[bool, bool, bool]]:
    """Which nnU-Net axis runs along world S, A and R (store z, y, x), and in which direction."""
    axes, flips = [], []
    for world in (2, 1, 0):
        row = affine[world, :3]
        m = int(np.argmax(np.abs(row)))
        axes.append(m)
        flips.append(bool(row[m] < 0))
    if sorted(axes) != [0, 1, 2]:
        raise DataError(source, "oblique orientation: no array axis runs along each of S, A and R")
    return tuple(axes), tuple(flips)  # type: ignore[return-value]


def nnunet_settings(plans: str | Path, configuration: str) -> NnUNetPreprocessing:
    """The store setting naming a plans file's configuration (checked to exist).

    Raises:
        ConfigError: nnU-Net not installed, or not a plans file.
        DataError: A configuration the plans do not have.
    """
    require_nnunet()
    content = read_plans(plans)
    if configuration not in content["configurations"]:
        raise DataError(Path(plans), f"no configuration {configuration!r} in the plans")
    return NnUNetPreprocessing(
        plans=str(Path(plans).resolve()), configuration=configuration, plans_sha=plans_digest(content)
    )


def with_nnunet(settings: PreprocessSettings, plans: str | Path, configuration: str) -> PreprocessSettings:
    """Store settings that take nnU-Net's preprocessing of a plans file's configuration (float32 arrays).

    Raises:
        ConfigError: nnU-Net not installed, or not a plans file.
        DataError: A configuration the plans do not have.
    """
    return settings.model_copy(update={"nnunet": nnunet_settings(plans, configuration), "dtype": "float32"})


def preprocess_case(image: Path, settings: NnUNetPreprocessing) -> NnUNetCase:
    """Run nnU-Net's preprocessor of ``settings`` on one scan file.

    Raises:
        DataError: Plans changed since the store was made, a missing ``dataset.json`` beside the plans, or
            an orientation sidepair cannot follow; naming the file.
    """
    require_nnunet()
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager  # optional extra

    plans_path = Path(settings.plans)
    plans = read_plans(plans_path)
    if plans_digest(plans) != settings.plans_sha:
        raise DataError(plans_path, "the plans changed since this store was prepared; prepare a new store")
    dataset_json = plans_path.parent / "dataset.json"
    if not dataset_json.is_file():
        raise DataError(dataset_json, "missing (nnU-Net keeps dataset.json beside the plans)")
    manager = PlansManager(copy.deepcopy(plans))
    conf = manager.get_configuration(settings.configuration)
    preprocessor = conf.preprocessor_class(verbose=False)
    data, _, props = preprocessor.run_case([str(image)], None, manager, conf, str(dataset_json))
    if data.shape[0] != 1:
        raise DataError(image, f"{data.shape[0]} channels; sidepair reads single-channel CT")
    to_reader = np.zeros((4, 4))
    to_reader[3, 3] = 1.0
    for m, a in enumerate(manager.transpose_forward):  # transposed axis m is reader axis a
        to_reader[a, m] = 1.0
    lo = np.array([b[0] for b in props["bbox_used_for_cropping"]], dtype=float)
    before = np.asarray(props["shape_after_cropping_and_before_resampling"], dtype=float)
    scale = before / np.asarray(data.shape[1:], dtype=float)
    resampled = np.eye(4)
    resampled[:3, :3] = np.diag(scale)
    resampled[:3, 3] = lo + 0.5 * scale - 0.5
    affine = reader_affine(props, image) @ to_reader @ resampled
    axes, flips = _store_axes(affine, image)
    return NnUNetCase(np.asarray(data[0], dtype=np.float32), affine, axes, flips)


class NnUNetGrid(StoreGrid):
    """nnU-Net's preprocessing of a plans file's configuration as a store grid.

    Its reader, crop, transpose, spacing and CT normalisation (run by nnU-Net itself); the store keeps
    nnU-Net's array in store axis order with the network's order beside it (:class:`NetworkView`).

    Args:
        settings: The plans, configuration and plans hash the store was prepared with.
    """

    def __init__(self, settings: NnUNetPreprocessing) -> None:
        self.settings = settings

    def resample(self, loaded: LoadedCase) -> tuple[Resampled, np.ndarray, NetworkView | None]:
        """nnU-Net's array of the scan in RAS (x, y, z), the case's label and side maps brought onto it.

        Labels go through world coordinates (nearest neighbour) from the grid sidepair's reader gave them.
        The body centre is found in HU on the scan's own grid (nnU-Net's array is normalised).
        """
        case = preprocess_case(loaded.source.image, self.settings)
        image = np.ascontiguousarray(case.store_array().transpose(2, 1, 0))
        affine = affine_zyx_to_xyz(case.store_affine())

        def onto(array: np.ndarray | None) -> np.ndarray | None:
            if array is None:
                return None
            return nearest_onto(array, loaded.image.affine, affine, image.shape).astype(np.uint8)

        labels = loaded.labels
        res = Resampled(
            image,
            onto(labels.label if labels else None),
            onto(labels.declared_side if labels else None),
            affine,
        )
        return res, body_centre(loaded.image.array, loaded.image.affine), case.view()

    def normalize(self, image: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
        """The image as it is (nnU-Net normalised it, in float32), and the fingerprint's statistics."""
        props = read_plans(self.settings.plans)["foreground_intensity_properties_per_channel"]["0"]
        low = float(props["percentile_00_5"])
        return image, {"mean": float(props["mean"]), "std": float(props["std"]), "low": low}

    def scan(self, volume: Volume) -> OnGrid:
        """nnU-Net's preprocessing of a loaded scan: of its file, or of the scan written as NIfTI as read.

        A DICOM series (or an in-memory image) is written to a temporary NIfTI in its own orientation first,
        as a user converting it for nnU-Net would.
        """
        if volume.source.is_file() and is_nifti(volume.source):
            case = preprocess_case(volume.source, self.settings)
        else:
            with tempfile.TemporaryDirectory(prefix="sidepair-nnunet-") as tmp:
                original = np.asarray(volume.original_affine)
                path = Path(tmp) / "scan_0000.nii.gz"
                save_nifti(ras_to_original(volume.array, original).astype(np.float32), original, path)
                case = preprocess_case(path, self.settings)
        return OnGrid(case.array, affine_zyx_to_xyz(case.store_affine()), case.view())
