"""A network over a whole normalised volume: batched whole slices in 2D, sliding windows in 3D.

2D models run on batches of axial slices (each padded to a multiple of the encoder's total stride), 3D
models on the volume through MONAI's ``sliding_window_inference`` with Gaussian weighting. The output is
either the class index per voxel or the class probabilities (softmax), on the store grid ``(z, y, x)``.
Training's validation and :class:`~sidepair.inference.predictor.Predictor` both call this.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from monai.inferers import sliding_window_inference

Output = Literal["labels", "probabilities"]


def _stride_of(model: torch.nn.Module, stride: tuple[int, ...] | None) -> tuple[int, ...]:
    if stride is not None:
        return stride
    encoder = getattr(model, "encoder", None)
    return encoder.total_stride() if encoder is not None else (1, 1)


@torch.no_grad()
def predict_array(
    model: torch.nn.Module,
    image_zyx: np.ndarray,
    dims: int,
    patch: tuple[int, ...],
    device: torch.device,
    batch_size: int = 8,
    overlap: float = 0.25,
    stride: tuple[int, ...] | None = None,
    output: Output = "labels",
) -> np.ndarray:
    """Class index (or class probabilities) per voxel of a normalised store-grid image ``(z, y, x)``.

    Args:
        model: Segmentation network returning logits.
        image_zyx: Normalised image.
        dims: 2 (slice by slice, batched) or 3.
        patch: Sliding-window size (3D: (z, y, x)).
        device: Where to run.
        batch_size: Slices per forward pass (2D) or windows per pass (3D).
        overlap: Window overlap.
        stride: The network's total stride (2D slices are padded to a multiple of it); by default
            read from ``model.encoder``.
        output: ``labels`` (argmax, uint8, the image's shape) or ``probabilities`` (softmax, float32,
            ``(classes, z, y, x)``).

    Returns:
        The labels or probabilities.
    """
    model.eval()
    image = np.asarray(image_zyx, dtype=np.float32)
    labels = output == "labels"
    out: np.ndarray | None = np.zeros(image.shape, dtype=np.uint8) if labels else None
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    with autocast:
        if dims == 2:
            # Whole slices in one pass each (the network is fully convolutional): padded up to a
            # multiple of the encoder's total stride, then cropped back.
            factor = _stride_of(model, stride)
            h, w = image.shape[1:]
            ph, pw = (-h) % factor[0], (-w) % factor[1]
            for start in range(0, image.shape[0], batch_size):
                x = torch.from_numpy(image[start : start + batch_size, None]).to(device)
                x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate")
                logits = model(x)[:, :, :h, :w]
                if labels:
                    out[start : start + batch_size] = logits.argmax(1).to(torch.uint8).cpu().numpy()
                else:
                    probs = torch.softmax(logits.float(), dim=1).cpu().numpy()
                    if out is None:
                        out = np.zeros((probs.shape[1], *image.shape), dtype=np.float32)
                    out[:, start : start + batch_size] = np.moveaxis(probs, 1, 0)
        else:
            x = torch.from_numpy(image[None, None]).to(device)
            logits = sliding_window_inference(x, patch, batch_size, model, overlap=overlap, mode="gaussian")
            if labels:
                out[:] = logits.argmax(1)[0].to(torch.uint8).cpu().numpy()
            else:
                out = torch.softmax(logits.float(), dim=1)[0].cpu().numpy()
    assert out is not None
    return out
