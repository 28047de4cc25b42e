"""Prediction on new scans: a volume in, kidney masks out in the volume's own geometry.

A :class:`Predictor` carries everything prediction needs (the network or an exported ONNX /
TorchScript file, the preprocessing settings, the output labels, the spatial dims and window size),
so that a run folder or a single exported file is enough. The scan is brought to RAS, resampled,
windowed and normalised as the training store was, predicted (2D: whole slices; 3D: sliding
windows), resampled back with nearest-neighbour labels, and written with the input's own shape and
affine. Sides come from world coordinates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from sidepair.config import PreprocessSettings
from sidepair.data.labels import LEFT, RIGHT, SIDE_NAMES
from sidepair.data.preprocess import normalize, resample_case
from sidepair.data.sides import assign_sides, body_midline_x, voxel_volume_ml
from sidepair.data.volume import Volume, ras_to_original
from sidepair.errors import ConfigError, SidepairError
from sidepair.inference import predict_array, resample_labels

OutputLabels = Literal["sides", "kidney", "kidney+tumour"]
PACKAGE_KEY = "sidepair"


def package_info(ckpt: dict[str, Any], source: str) -> dict[str, Any]:
    """What prediction needs besides the weights, from a segmentation checkpoint (plain data)."""
    config = ckpt["config"]
    encoder = ckpt["encoder_config"]
    return {
        "format": "sidepair-model",
        "source": source,
        "labels": ckpt["labels"],
        "out_channels": int(ckpt["out_channels"]),
        "dims": int(config["dims"]),
        "patch_size": list(config["patch_size"]),
        "batch_size": int(config["batch_size"]),
        "encoder_config": encoder,
        "stride": _total_stride(encoder),
        "preprocess": ckpt["preprocess"],
        "epoch": int(ckpt["epoch"]),
        "sidepair_version": ckpt.get("sidepair_version", "unknown"),
    }


def _total_stride(encoder: dict[str, Any]) -> list[int]:
    dims = int(encoder["spatial_dims"])
    total = [1] * dims
    for s in encoder["strides"]:
        step = [s] * dims if isinstance(s, int) else list(s)
        total = [a * b for a, b in zip(total, step, strict=True)]
    return total


class _OnnxModule:
    """An ONNX Runtime session with the call signature of the PyTorch network (logits out)."""

    def __init__(self, path: Path) -> None:
        try:
            import onnxruntime as ort
        except ImportError:  # pragma: no cover - an optional dependency
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
class Predictor:
    """A trained segmentation model ready for new scans.

    Attributes:
        model: The network (PyTorch, TorchScript or ONNX Runtime), logits out.
        info: :func:`package_info` of the model.
        device: Where it runs.
        batch_size: Slices (2D) or windows (3D) per forward pass.
    """

    model: Any
    info: dict[str, Any]
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    batch_size: int | None = None

    @classmethod
    def load(cls, model: str | Path, device: str = "cpu", checkpoint: str = "best") -> Predictor:
        """Load a run folder, a segmentation checkpoint, or an exported ``.onnx`` / ``.ts`` file.

        Raises:
            SidepairError: Naming the path, if it is not a segmentation model (e.g. a pretraining run).
        """
        from sidepair.training.loop import resolve_device

        path = Path(model)
        dev = resolve_device(device)
        if not path.exists():
            raise SidepairError(
                f"{path}: model not found (give a segmentation run folder or an exported file)"
            )
        if path.suffix == ".onnx":
            info = _onnx_info(path)
            return cls(_OnnxModule(path), info, torch.device("cpu"))
        if path.suffix in (".ts", ".torchscript"):
            import warnings

            extra = {f"{PACKAGE_KEY}.json": ""}
            try:
                with warnings.catch_warnings():  # torch 2.13 marks TorchScript deprecated; it still works
                    warnings.simplefilter("ignore", DeprecationWarning)
                    module = torch.jit.load(str(path), map_location=dev, _extra_files=extra)
            except RuntimeError as exc:
                raise SidepairError(f"{path}: not a TorchScript model ({str(exc).splitlines()[0]})") from None
            return cls(module.eval(), json.loads(extra[f"{PACKAGE_KEY}.json"]), dev)
        from sidepair.segmentation import load_segmentation_model

        if path.is_dir() and not (path / f"checkpoint_{checkpoint}.pt").exists():
            raise SidepairError(f"{path}: not a run folder (no checkpoint_{checkpoint}.pt)")
        net, ckpt = load_segmentation_model(path, checkpoint)
        return cls(net.to(dev).eval(), package_info(ckpt, str(path)), dev)

    @property
    def settings(self) -> PreprocessSettings:
        """The preprocessing the model was trained with."""
        return PreprocessSettings.model_validate(self.info["preprocess"])

    def predict_volume(
        self,
        volume: Volume,
        labels: OutputLabels = "sides",
        largest_component: bool = False,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Labels for one scan on its own grid, in the file's own axis order.

        Args:
            volume: The scan as loaded (RAS array, with ``original_affine`` / ``original_shape``).
            labels: ``sides`` (1 right, 2 left), ``kidney`` (1) or ``kidney+tumour`` (1, 2; only for a
                model trained with tumour).
            largest_component: Keep only the largest connected component per side.

        Returns:
            The uint8 label array (shape ``volume.original_shape``) and facts about it: kidney volume
            in mL per side, the midline used, the label meanings.

        Raises:
            ConfigError: ``kidney+tumour`` asked of a model trained without tumour.
        """
        if labels == "kidney+tumour" and self.info["labels"] != "kidney+tumour":
            raise ConfigError(
                "--labels kidney+tumour needs a model trained with tumour; "
                f"this one predicts {self.info['labels']}"
            )
        settings = self.settings
        res = resample_case(volume.array, volume.affine, settings)
        norm, _ = normalize(res.image, settings)
        image_zyx = np.ascontiguousarray(np.transpose(norm, (2, 1, 0)), dtype=np.float32)
        pred_zyx = predict_array(
            self.model,
            image_zyx,
            int(self.info["dims"]),
            tuple(self.info["patch_size"]),
            self.device,
            batch_size=self.batch_size or int(self.info["batch_size"]),
            stride=tuple(self.info["stride"]),
        )
        pred = resample_labels(
            np.transpose(pred_zyx, (2, 1, 0)), res.affine, volume.affine, volume.array.shape
        )
        kidney = pred > 0
        midline = body_midline_x(volume.array, volume.affine)
        if self.info["labels"] == "sides":
            side = np.where(kidney, pred, 0).astype(np.uint8)
        else:
            side, _ = assign_sides(kidney, volume.affine, midline)
        if largest_component:
            side = _largest_per_side(side)
            kidney = side > 0
        if labels == "sides":
            out = side
            meanings = {"1": "right kidney", "2": "left kidney"}
        elif labels == "kidney":
            out = kidney.astype(np.uint8)
            meanings = {"1": "kidney"}
        else:
            out = np.where(kidney, np.where(pred == 2, 2, 1), 0).astype(np.uint8)
            meanings = {"1": "kidney", "2": "tumour"}
        vox = voxel_volume_ml(volume.affine)
        facts = {
            "labels": meanings,
            "volume_ml": {SIDE_NAMES[c]: round(float((side == c).sum()) * vox, 2) for c in (RIGHT, LEFT)},
            "midline_world_x_mm": round(float(midline), 2),
            "largest_component": largest_component,
        }
        original = volume.original_affine if volume.original_affine is not None else volume.affine
        return ras_to_original(out, np.asarray(original)), facts


def _largest_per_side(side: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    out = np.zeros_like(side)
    for code in (RIGHT, LEFT):
        components, n = ndimage.label(side == code)
        if n:
            sizes = np.bincount(components.ravel())[1:]
            out[components == int(np.argmax(sizes)) + 1] = code
    return out


def _onnx_info(path: Path) -> dict[str, Any]:
    try:
        import onnx
    except ImportError:  # pragma: no cover - an optional dependency
        raise SidepairError("ONNX models need onnx and onnxruntime: pip install 'sidepair[export]'") from None
    try:
        meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    except Exception as exc:  # onnx raises its own DecodeError types
        raise SidepairError(f"{path}: not an ONNX model ({type(exc).__name__})") from None
    if PACKAGE_KEY not in meta:
        raise SidepairError(
            f"{path}: an ONNX model without sidepair's metadata (export it with `sidepair export`)"
        )
    return json.loads(meta[PACKAGE_KEY])


NIFTI_SUFFIXES = (".nii.gz", ".nii")


def _is_nifti(path: Path) -> bool:
    return path.name.endswith(NIFTI_SUFFIXES)


def _stem(path: Path) -> str:
    for suffix in NIFTI_SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.name


def _check_header(path: Path) -> None:
    """Refuse, before any prediction, a NIfTI file that is not a 3D volume with an affine."""
    import nibabel as nib

    from sidepair.data.volume import check_nifti_header
    from sidepair.errors import DataError

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
    from sidepair.data.dicom import choose_series, is_dicom_folder
    from sidepair.errors import DataError

    source, output = Path(source), Path(output)
    if not source.exists():
        raise DataError(source, "input not found")
    if source.is_dir() and is_dicom_folder(source):
        inputs: list[tuple[Path, str | None]] = [(source, choose_series(source, series)[0])]
    elif source.is_dir():
        files = sorted(p for p in source.iterdir() if p.is_file() and _is_nifti(p))
        if not files:
            raise DataError(source, "no NIfTI files (*.nii.gz, *.nii) and no DICOM series in the folder")
        inputs = [(p, None) for p in files]
    elif _is_nifti(source):
        inputs = [(source, None)]
    else:
        raise DataError(source, "not a NIfTI file (.nii.gz, .nii) or a folder")
    if _is_nifti(output):
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


def predict_paths(
    source: str | Path,
    output: str | Path,
    predictor: Predictor,
    labels: OutputLabels = "sides",
    overwrite: bool = False,
    largest_component: bool = False,
    series: str | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Predict every input and write each mask (input's shape and affine) and its JSON.

    Returns:
        One record per input: the files and the kidney volumes.

    Raises:
        DataError: Bad input (before anything is written where it can be seen before predicting).
        SidepairError: An existing output without ``overwrite``.
    """
    from tqdm import tqdm

    from sidepair import __version__
    from sidepair.atomic import write_json
    from sidepair.data.dicom import load_dicom_series
    from sidepair.data.volume import load_nifti, save_nifti

    pairs = plan_inputs(source, output, series)
    if not overwrite:
        existing = [str(o) for _, o, _ in pairs if o.exists() or sidecar_of(o).exists()]
        if existing:
            more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
            raise SidepairError(f"{existing[0]}: output exists{more}; pass --overwrite to replace it")
    records = []
    bar = tqdm(pairs, desc="predict", unit="scan", disable=None if progress and len(pairs) > 1 else True)
    for path, out, uid in bar:
        volume = load_dicom_series(path, uid) if uid is not None else load_nifti(path)
        mask, facts = predictor.predict_volume(volume, labels, largest_component)
        original = volume.original_affine if volume.original_affine is not None else volume.affine
        save_nifti(mask, np.asarray(original), out)
        record = {
            "input": str(path),
            "series": uid,
            "output": str(out),
            "shape": list(mask.shape),
            **facts,
            "model": {
                k: predictor.info[k] for k in ("source", "labels", "dims", "epoch", "sidepair_version")
            },
            "sidepair_version": __version__,
        }
        write_json(sidecar_of(out), record)
        records.append(record)
    return records


def predict(
    image: Any,
    model: str | Path | Predictor,
    labels: OutputLabels = "sides",
    device: str = "cpu",
    largest_component: bool = False,
):
    """Kidney masks for one scan, as a nibabel image on the scan's own grid.

    Args:
        image: A nibabel image, a NIfTI path, or a DICOM series folder.
        model: A segmentation run folder, an exported file, or a :class:`Predictor`.
        labels: ``sides`` (1 right, 2 left), ``kidney`` or ``kidney+tumour``.
        device: ``cpu``, ``cuda`` or ``auto``.
        largest_component: Keep the largest component per side only.

    Returns:
        A ``nibabel.Nifti1Image`` with the input's shape and affine.
    """
    import nibabel as nib

    from sidepair.data.dicom import load_dicom_series
    from sidepair.data.volume import load_nifti, volume_from_image

    predictor = model if isinstance(model, Predictor) else Predictor.load(model, device)
    if isinstance(image, nib.spatialimages.SpatialImage):
        volume = volume_from_image(image, Path("<in-memory image>"))
    elif Path(image).is_dir():
        volume = load_dicom_series(image)
    else:
        volume = load_nifti(image)
    mask, _ = predictor.predict_volume(volume, labels, largest_component)
    affine = np.asarray(volume.original_affine if volume.original_affine is not None else volume.affine)
    out = nib.Nifti1Image(mask, affine)
    out.set_qform(affine, code=1)
    out.set_sform(affine, code=1)
    return out
