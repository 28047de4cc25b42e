"""``sidepair export``: a trained segmentation model as one ONNX or TorchScript file.

The file carries the model's :class:`~sidepair.inference.predictor.ModelInfo` (preprocessing, labels, dims,
window size) as ONNX metadata or a TorchScript extra file, so ``sidepair predict --model FILE`` needs
nothing else. Export checks the file against PyTorch on an input of another size than the one traced
and reports the largest absolute difference of the logits.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sidepair.atomic import atomic_path
from sidepair.choices import ExportFormat
from sidepair.errors import ConfigError, SidepairError
from sidepair.inference.predictor import PACKAGE_KEY, ModelInfo, Predictor

SUFFIX = {"onnx": ".onnx", "torchscript": ".ts"}


def _example(info: ModelInfo, batch: int, grow: int = 0) -> torch.Tensor:
    """A random input of the model's window size (plus ``grow`` strides per axis)."""
    size = [p + grow * s for p, s in zip(info.patch_size, info.stride, strict=True)]
    generator = torch.Generator().manual_seed(0)
    return torch.randn(batch, 1, *size, generator=generator)


def export_model(
    model: str | Path,
    fmt: ExportFormat,
    out: str | Path | None = None,
    checkpoint: str = "best",
    opset: int = 18,
) -> dict[str, Any]:
    """Export a segmentation run to ``fmt`` and check it against PyTorch.

    Args:
        model: Segmentation run folder or checkpoint.
        fmt: ``onnx`` or ``torchscript``.
        out: Output file (default: ``RUN/model.onnx`` or ``RUN/model.ts``).
        checkpoint: ``best`` or ``last``.
        opset: ONNX opset.

    Returns:
        The file, its size, and the largest absolute logit difference against PyTorch.

    Raises:
        SidepairError: Not a segmentation model, or the exported file disagrees with PyTorch.
    """
    if fmt not in SUFFIX:
        raise ConfigError(f"unknown export format {fmt!r}; use onnx or torchscript")
    predictor = Predictor.load(model, "cpu", checkpoint)
    if not isinstance(predictor.model, torch.nn.Module):
        raise SidepairError(f"{model}: export needs a run folder or checkpoint, not an exported file")
    net, info = predictor.model.eval(), predictor.info
    target = (
        Path(out)
        if out
        else (Path(model) if Path(model).is_dir() else Path(model).parent) / ("model" + SUFFIX[fmt])
    )
    traced_input = _example(info, 2)
    # Another batch size and window size than the traced one: the file must not be tied to them.
    check_input = _example(info, 3, grow=1)
    with torch.no_grad():
        expected = net(check_input).numpy()
    if fmt == "onnx":
        got = _export_onnx(net, info, traced_input, check_input, target, opset)
    else:
        got = _export_torchscript(net, info, traced_input, check_input, target)
    diff = float(np.max(np.abs(got - expected)))
    if not diff < 1e-3 * max(1.0, float(np.max(np.abs(expected)))):
        raise SidepairError(f"{target}: exported logits differ from PyTorch by {diff:.3g}")
    return {"file": str(target), "format": fmt, "bytes": target.stat().st_size, "max_abs_diff": diff}


def _export_onnx(net, info, traced_input, check_input, target: Path, opset: int) -> np.ndarray:
    try:
        import onnx  # optional dependencies (the `export` extra)
        import onnxruntime as ort  # optional dependency
    except ImportError:  # pragma: no cover - an optional dependency
        raise SidepairError(
            "ONNX export needs onnx and onnxruntime: pip install 'sidepair[export]'"
        ) from None
    axes = {0: "batch", **{2 + i: f"axis{i}" for i in range(info.dims)}}
    with atomic_path(target, suffix=".onnx") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (traced_input,),
            str(tmp),
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": axes, "logits": axes},
            opset_version=opset,
            dynamo=False,
        )
        proto = onnx.load(str(tmp))
        entry = proto.metadata_props.add()
        entry.key, entry.value = PACKAGE_KEY, info.model_dump_json()
        onnx.save(proto, str(tmp))
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": check_input.numpy()})[0]


def _export_torchscript(net, info, traced_input, check_input, target: Path) -> np.ndarray:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(net, traced_input, check_trace=False)
    with atomic_path(target, suffix=".ts") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 marks TorchScript deprecated
        torch.jit.save(traced, str(tmp), _extra_files={f"{PACKAGE_KEY}.json": info.model_dump_json()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        loaded = torch.jit.load(str(target))
    with torch.no_grad():
        return loaded(check_input).numpy()
