"""The one path from a scan to a mask: a volume in, kidney masks out in the volume's own geometry.

A :class:`Predictor` carries everything prediction needs (the network or an exported ONNX /
TorchScript file, and a :class:`ModelInfo`: preprocessing, output labels, spatial dims, window size),
so that a run folder or a single exported file is enough. The scan is brought to RAS, resampled,
windowed and normalised exactly as the training store was, predicted (2D: whole slices; 3D: sliding
windows), brought back to the scan's grid (nearest labels, or probabilities then argmax), and written
with the input's own shape and affine. Sides come from world coordinates, or from the model itself
when it was trained to say them. ``sidepair predict`` and ``sidepair evaluate`` both run this path.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import nibabel as nib
import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, ValidationError
from scipy import ndimage
from tqdm import tqdm

from sidepair.atomic import write_json
from sidepair.choices import DEFAULT_RESAMPLE, OutputLabels, Resample
from sidepair.config import PreprocessSettings
from sidepair.data.axes import ras_to_original, zyx_to_xyz
from sidepair.data.dicom import choose_series, is_dicom_folder, load_dicom_series
from sidepair.data.grid import StoreGrid, grid_of
from sidepair.data.labels import LEFT, RIGHT, SIDE_NAMES
from sidepair.data.sides import assign_sides, body_midline_x, voxel_volume_ml
from sidepair.data.volume import (
    NIFTI_SUFFIXES,
    Volume,
    check_nifti_header,
    is_nifti,
    load_nifti,
    save_nifti,
    volume_from_image,
)
from sidepair.devices import resolve_device
from sidepair.errors import ConfigError, DataError, SidepairError
from sidepair.inference.resample import resample_labels, resample_probabilities
from sidepair.inference.sliding import predict_array
from sidepair.models.backends import segmentation_network, total_stride
from sidepair.models.checkpoint import SegmentationCheckpoint, read_checkpoint
from sidepair.version import __version__

PACKAGE_KEY = "sidepair"


class ModelInfo(BaseModel):
    """What prediction needs besides the weights (exported files carry it as JSON).

    Attributes:
        format: Always ``sidepair-model``.
        source: The run folder or checkpoint it came from.
        labels: What the model predicts: ``kidney``, ``kidney+tumour`` or ``sides``.
        out_channels: Output classes, background included.
        dims: 2 or 3.
        patch_size: Training patch (3D: the sliding window).
        batch_size: Slices (2D) or windows (3D) per pass.
        encoder_config: Arguments that rebuild the encoder.
        stride: The encoder's total stride per axis.
        preprocess: The training store's preprocessing.
        epoch: The checkpoint's epoch.
        sidepair_version: Version that trained it.
    """

    model_config = ConfigDict(extra="ignore")

    format: str = "sidepair-model"
    source: str
    labels: Literal["kidney", "kidney+tumour", "sides"]
    out_channels: int
    dims: int
    patch_size: list[int]
    batch_size: int
    encoder_config: dict[str, Any]
    stride: list[int]
    preprocess: PreprocessSettings
    epoch: int
    sidepair_version: str = "unknown"

    @classmethod
    def of(cls, checkpoint: SegmentationCheckpoint, source: str) -> ModelInfo:
        """The description of a segmentation checkpoint."""
        if checkpoint.preprocess is None:
            raise SidepairError(
                f"{source}: checkpoint without its preprocessing settings; rerun `sidepair train`"
            )
        return cls(
            source=source,
            labels=checkpoint.labels,  # type: ignore[arg-type]
            out_channels=checkpoint.out_channels,
            dims=checkpoint.dims,
            patch_size=list(checkpoint.patch_size),
            batch_size=checkpoint.batch_size,
            encoder_config=checkpoint.encoder_config,
            stride=total_stride(checkpoint.encoder_config),
            preprocess=PreprocessSettings.model_validate(checkpoint.preprocess),
            epoch=checkpoint.epoch,
            sidepair_version=checkpoint.sidepair_version,
        )

    @classmethod
    def from_json(cls, text: str, source: Path) -> ModelInfo:
        """Read the JSON an exported file carries.

        Raises:
            SidepairError: Not sidepair's description (naming the file).
        """
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise SidepairError(
                f"{source}: model description lacks {'.'.join(map(str, err['loc']))} ({err['msg']}); "
                "export it again with this sidepair"
            ) from None


class _OnnxModule:
    """An ONNX Runtime session with the call signature of the PyTorch network (logits out)."""

    def __init__(self, path: Path) -> None:
        try:
            import onnxruntime as ort  # optional dependency (the `export` extra)
        except ImportError:  # pragma: no cover
            raise SidepairError("ONNX models need onnxruntime: pip install 'sidepair[export]'") from None
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def eval(self) -> _OnnxModule:
        return self

    def to(self, device: torch.device) -> _OnnxModule:
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        (logits,) = self.session.run(None, {self.input: x.detach().float().cpu().numpy()})
        return torch.from_numpy(logits)


@dataclass
class Prediction:
    """One scan's prediction.

    Attributes:
        classes: The model's own class map on the scan's RAS grid (0 background; 1 kidney, or 1 kidney
            and 2 tumour, or 1 right and 2 left, as the model was trained).
        side: Side map on the RAS grid (1 right, 2 left): the model's own for a ``sides`` model, else by
            world position.
        output: The labels asked for, in the file's own axis order and shape.
        affine: The file's own affine (``output`` goes with it).
        facts: Kidney volume per side, the midline, label meanings.
    """

    classes: np.ndarray
    side: np.ndarray
    output: np.ndarray
    affine: np.ndarray
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass
class Predictor:
    """A trained segmentation model ready for new scans.

    Attributes:
        model: The network (PyTorch, TorchScript or ONNX Runtime), logits out.
        info: The model's description.
        device: Where it runs.
        batch_size: Slices (2D) or windows (3D) per forward pass (default: the training batch).
        resample: How predictions go back to the scan's grid: ``labels`` or ``probabilities``.
    """

    model: Any
    info: ModelInfo
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    batch_size: int | None = None
    resample: Resample = DEFAULT_RESAMPLE

    @classmethod
    def load(
        cls,
        model: str | Path,
        device: str = "cpu",
        checkpoint: str = "best",
        resample: Resample = DEFAULT_RESAMPLE,
    ) -> Predictor:
        """Load a run folder, a segmentation checkpoint, or an exported ``.onnx`` / ``.ts`` file.

        Raises:
            SidepairError: Naming the path, if it is not a segmentation model (e.g. a pretraining run).
        """
        path = Path(model)
        dev = resolve_device(device)
        if not path.exists():
            raise SidepairError(
                f"{path}: model not found (give a segmentation run folder or an exported file)"
            )
        if path.suffix == ".onnx":
            info = _onnx_info(path)  # first: it names a file that is no sidepair ONNX model
            return cls(_OnnxModule(path), info, torch.device("cpu"), resample=resample)
        if path.suffix in (".ts", ".torchscript"):
            extra = {f"{PACKAGE_KEY}.json": ""}
            try:
                with warnings.catch_warnings():  # torch 2.13 marks TorchScript deprecated; it still works
                    warnings.simplefilter("ignore", DeprecationWarning)
                    module = torch.jit.load(str(path), map_location=dev, _extra_files=extra)
            except RuntimeError as exc:
                raise SidepairError(f"{path}: not a TorchScript model ({str(exc).splitlines()[0]})") from None
            info = ModelInfo.from_json(extra[f"{PACKAGE_KEY}.json"] or "{}", path)
            return cls(module.eval(), info, dev, resample=resample)
        if path.is_dir() and not (path / f"checkpoint_{checkpoint}.pt").exists():
            raise SidepairError(f"{path}: not a run folder (no checkpoint_{checkpoint}.pt)")
        net, ckpt = load_segmentation_model(path, checkpoint)
        return cls(net.to(dev).eval(), ModelInfo.of(ckpt, str(path)), dev, resample=resample)

    @property
    def grid(self) -> StoreGrid:
        """The grid of the model's training store: how a scan is brought to what the model read."""
        return grid_of(self.info.preprocess)

    def predict_volume(
        self, volume: Volume, labels: OutputLabels = "sides", largest_component: bool = False
    ) -> Prediction:
        """Predict one scan and bring the result back to its own grid.

        Args:
            volume: The scan as loaded (RAS array, with ``original_affine`` / ``original_shape``).
            labels: ``sides`` (1 right, 2 left), ``kidney`` (1) or ``kidney+tumour`` (1, 2; only for a
                model trained with tumour).
            largest_component: Keep only the largest connected component per side.

        Raises:
            ConfigError: ``kidney+tumour`` asked of a model trained without tumour.
        """
        if labels == "kidney+tumour" and self.info.labels != "kidney+tumour":
            raise ConfigError(
                "--labels kidney+tumour needs a model trained with tumour; "
                f"this one predicts {self.info.labels}"
            )
        on_grid = self.grid.scan(volume)
        view, grid_affine = on_grid.view, on_grid.affine
        out = view.to_store(
            predict_array(
                self.model,
                on_grid.image,
                self.info.dims,
                view.network_size(self.info.patch_size),
                self.device,
                batch_size=self.batch_size or self.info.batch_size,
                stride=tuple(self.info.stride),
                output=self.resample,
            )
        )
        if self.resample == "labels":
            classes = resample_labels(zyx_to_xyz(out), grid_affine, volume.affine, volume.array.shape)
        else:
            probs_cxyz = np.transpose(out, (0, 3, 2, 1))
            classes = resample_probabilities(probs_cxyz, grid_affine, volume.affine, volume.array.shape)
        kidney = classes > 0
        midline = body_midline_x(volume.array, volume.affine)
        if self.info.labels == "sides":
            side = np.where(kidney, classes, 0).astype(np.uint8)
        else:
            side, _ = assign_sides(kidney, volume.affine, midline)
        if largest_component:
            side = largest_per_side(side)
            kidney = side > 0
        if labels == "sides":
            result, meanings = side, {"1": "right kidney", "2": "left kidney"}
        elif labels == "kidney":
            result, meanings = kidney.astype(np.uint8), {"1": "kidney"}
        else:
            result = np.where(kidney, np.where(classes == 2, 2, 1), 0).astype(np.uint8)
            meanings = {"1": "kidney", "2": "tumour"}
        vox = voxel_volume_ml(volume.affine)
        facts = {
            "labels": meanings,
            "volume_ml": {SIDE_NAMES[c]: round(float((side == c).sum()) * vox, 2) for c in (RIGHT, LEFT)},
            "midline_world_x_mm": round(float(midline), 2),
            "sides_from": "model" if self.info.labels == "sides" else "world position",
            "largest_component": largest_component,
            "resample": self.resample,
        }
        original = np.asarray(volume.original_affine if volume.original_affine is not None else volume.affine)
        return Prediction(classes, side, ras_to_original(result, original), original, facts)


def load_segmentation_model(
    run: str | Path, which: str = "best"
) -> tuple[torch.nn.Module, SegmentationCheckpoint]:
    """The trained U-Net of a run folder (or a checkpoint file) and its checkpoint.

    Raises:
        SidepairError: If the folder holds no segmentation run (e.g. a pretraining run).
    """
    run = Path(run)
    path = run if run.is_file() else run / f"checkpoint_{which}.pt"
    ckpt = read_checkpoint(path, SegmentationCheckpoint)
    # Built as trained, so the weights load strictly; a deep supervision head is unused in evaluation.
    deep = bool(ckpt.config.get("deep_supervision", False))
    model = segmentation_network(ckpt.encoder_config, int(ckpt.out_channels), deep)
    model.load_state_dict(ckpt.network_weights)
    return model, ckpt


def largest_per_side(side: np.ndarray) -> np.ndarray:
    """Only the largest connected component of each side."""
    out = np.zeros_like(side)
    for code in (RIGHT, LEFT):
        components, n = ndimage.label(side == code)
        if n:
            sizes = np.bincount(components.ravel())[1:]
            out[components == int(np.argmax(sizes)) + 1] = code
    return out


def _onnx_info(path: Path) -> ModelInfo:
    try:
        import onnx  # optional dependency (the `export` extra)
    except ImportError:  # pragma: no cover
        raise SidepairError("ONNX models need onnx and onnxruntime: pip install 'sidepair[export]'") from None
    try:
        meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    except Exception as exc:  # onnx raises its own DecodeError types
        raise SidepairError(f"{path}: not an ONNX model ({type(exc).__name__})") from None
    if PACKAGE_KEY not in meta:
        raise SidepairError(
            f"{path}: an ONNX model without sidepair's metadata (export it with `sidepair export`)"
        )
    return ModelInfo.from_json(meta[PACKAGE_KEY], path)


def _stem(path: Path) -> str:
    for suffix in NIFTI_SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.name


def _check_header(path: Path) -> None:
    """Refuse, before any prediction, a NIfTI file that is not a 3D volume with an affine."""
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for unreadable files
        raise DataError(path, f"cannot read as NIfTI ({type(exc).__name__}: {exc})") from None
    check_nifti_header(img, path)


def plan_inputs(
    source: str | Path, output: str | Path, series: str | None = None
) -> list[tuple[Path, Path, str | None]]:
    """Pair every input (NIfTI file or DICOM series folder) with its output file.

    Args:
        source: A NIfTI file, a folder of NIfTI files, or a folder holding one DICOM series.
        output: A ``.nii.gz``/``.nii`` file (for one input) or a folder.
        series: DICOM series instance UID, when the folder holds several.

    Raises:
        DataError: A missing or empty input, a DICOM folder with several series and no ``series``
            (they are listed), a file output for several inputs, a bad NIfTI header.
    """
    source, output = Path(source), Path(output)
    if not source.exists():
        raise DataError(source, "input not found")
    if source.is_dir() and is_dicom_folder(source):
        inputs: list[tuple[Path, str | None]] = [(source, choose_series(source, series)[0])]
    elif source.is_dir():
        files = sorted(p for p in source.iterdir() if p.is_file() and is_nifti(p))
        if not files:
            raise DataError(source, "no NIfTI files (*.nii.gz, *.nii) and no DICOM series in the folder")
        inputs = [(p, None) for p in files]
    elif is_nifti(source):
        inputs = [(source, None)]
    else:
        raise DataError(source, "not a NIfTI file (.nii.gz, .nii) or a folder")
    if is_nifti(output):
        if len(inputs) > 1:
            raise DataError(output, f"one output file for {len(inputs)} inputs; give an output folder")
        pairs = [(inputs[0][0], output, inputs[0][1])]
    else:
        pairs = [(path, output / f"{_stem(path)}.nii.gz", uid) for path, uid in inputs]
    for path, _, uid in pairs:
        if uid is None:
            _check_header(path)
    return pairs


def sidecar_of(output: Path) -> Path:
    """The JSON beside an output mask."""
    return output.with_name(f"{_stem(output)}.json")


def check_outputs_free(pairs: list[tuple[Path, Path, str | None]]) -> None:
    """Refuse outputs that exist, naming the file that is in the way (the mask or its JSON).

    Raises:
        SidepairError: An output mask or sidecar exists.
    """
    existing = [str(p) for _, o, _ in pairs for p in (o, sidecar_of(o)) if p.exists()]
    if existing:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise SidepairError(f"{existing[0]}: output exists{more}; pass --overwrite to replace it")


def load_scan(path: Path, series: str | None = None) -> Volume:
    """A NIfTI file, or a DICOM series folder, as a RAS volume."""
    return load_dicom_series(path, series) if path.is_dir() else load_nifti(path)


def write_prediction(prediction: Prediction, out: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Write a mask (the scan's shape and affine) and its JSON sidecar; return the sidecar's record."""
    save_nifti(prediction.output, prediction.affine, out)
    record = {**record, "output": str(out), "shape": list(prediction.output.shape), **prediction.facts}
    write_json(sidecar_of(out), record)
    return record


def predict_paths(
    source: str | Path,
    output: str | Path,
    predictor: Predictor,
    labels: OutputLabels = "sides",
    overwrite: bool = False,
    largest_component: bool = False,
    series: str | None = None,
    progress: bool = True,
    scan_check: Callable[[Volume], None] | None = None,
) -> list[dict[str, Any]]:
    """Predict every input and write each mask (input's shape and affine) and its JSON.

    ``scan_check`` is called on each scan first (the CLI's laterality check, which warns or raises).

    Returns:
        One record per input: the files and the kidney volumes.

    Raises:
        DataError: Bad input (before anything is written where it can be seen before predicting).
        SidepairError: An existing output without ``overwrite``.
    """
    pairs = plan_inputs(source, output, series)
    if not overwrite:
        check_outputs_free(pairs)
    records = []
    bar = tqdm(pairs, desc="predict", unit="scan", disable=None if progress and len(pairs) > 1 else True)
    model = {k: getattr(predictor.info, k) for k in ("source", "labels", "dims", "epoch", "sidepair_version")}
    for path, out, uid in bar:
        volume = load_scan(path, uid)
        if scan_check is not None:
            scan_check(volume)
        prediction = predictor.predict_volume(volume, labels, largest_component)
        record = {"input": str(path), "series": uid, "model": model, "sidepair_version": __version__}
        records.append(write_prediction(prediction, out, record))
    return records


def predict(
    image: Any,
    model: str | Path | Predictor,
    labels: OutputLabels = "sides",
    device: str = "auto",
    largest_component: bool = False,
) -> nib.Nifti1Image:
    """Kidney masks for one scan, as a nibabel image on the scan's own grid.

    Args:
        image: A nibabel image, a NIfTI path, or a DICOM series folder.
        model: A segmentation run folder, an exported file, or a :class:`Predictor`.
        labels: ``sides`` (1 right, 2 left), ``kidney`` or ``kidney+tumour``.
        device: ``auto`` (CUDA where there is one), ``cpu`` or ``cuda``.
        largest_component: Keep the largest component per side only.

    Returns:
        A ``nibabel.Nifti1Image`` with the input's shape and affine.
    """
    predictor = model if isinstance(model, Predictor) else Predictor.load(model, device)
    if isinstance(image, nib.spatialimages.SpatialImage):
        volume = volume_from_image(image, Path("<in-memory image>"))
    else:
        volume = load_scan(Path(image))
    prediction = predictor.predict_volume(volume, labels, largest_component)
    out = nib.Nifti1Image(prediction.output, prediction.affine)
    out.set_qform(prediction.affine, code=1)
    out.set_sform(prediction.affine, code=1)
    return out
