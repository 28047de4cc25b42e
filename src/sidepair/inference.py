"""Volume in, mask out: sliding-window inference on store arrays and back to a scan's own geometry.

2D models run on batches of axial slices, 3D models on the volume, both through MONAI's
``sliding_window_inference``. ``to_original_geometry`` takes a prediction on the store grid back to
the source file's grid (shape, affine and axis order), by nearest-neighbour resampling.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from nibabel import orientations as nio
from scipy import ndimage

from sidepair.data.volume import ras_to_original


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
) -> np.ndarray:
    """Class index per voxel of a store image ``(z, y, x)``: batched whole slices in 2D, windows in 3D.

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

    Returns:
        uint8 labels, same shape as ``image_zyx``.
    """
    model.eval()
    image = np.asarray(image_zyx, dtype=np.float32)
    out = np.zeros(image.shape, dtype=np.uint8)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    with autocast:
        if dims == 2:
            # Whole slices in one pass each (the network is fully convolutional): padded up to a
            # multiple of the encoder's total stride, then cropped back.
            factor = stride or (model.encoder.total_stride() if hasattr(model, "encoder") else (1, 1))
            h, w = image.shape[1:]
            ph, pw = (-h) % factor[0], (-w) % factor[1]
            for start in range(0, image.shape[0], batch_size):
                x = torch.from_numpy(image[start : start + batch_size, None]).to(device)
                x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate")
                logits = model(x)[:, :, :h, :w]
                out[start : start + batch_size] = logits.argmax(1).to(torch.uint8).cpu().numpy()
        else:
            x = torch.from_numpy(image[None, None]).to(device)
            logits = sliding_window_inference(x, patch, batch_size, model, overlap=overlap, mode="gaussian")
            out[:] = logits.argmax(1)[0].to(torch.uint8).cpu().numpy()
    return out


def ras_grid_of(
    original_affine: np.ndarray, original_shape: tuple[int, ...]
) -> tuple[np.ndarray, tuple[int, ...]]:
    """Affine and shape of a file's grid once brought to RAS (what ``load_nifti`` returns)."""
    transform = nio.ornt_transform(nio.io_orientation(original_affine), nio.axcodes2ornt(("R", "A", "S")))
    affine = original_affine @ nio.inv_ornt_aff(transform, original_shape)
    shape = [0, 0, 0]
    for axis, (target, _) in enumerate(transform):
        shape[int(target)] = int(original_shape[axis])
    return affine, tuple(shape)


def resample_labels(
    labels_xyz: np.ndarray, src_affine: np.ndarray, dst_affine: np.ndarray, dst_shape: tuple[int, ...]
) -> np.ndarray:
    """Nearest-neighbour resampling of a label array between two grids (any affines), as uint8."""
    mapping = np.linalg.inv(src_affine) @ dst_affine  # destination index -> source index
    # uint8 in and out: an int64 output of a 512 x 512 x 1000 scan alone would take 2 GB.
    return ndimage.affine_transform(
        labels_xyz.astype(np.uint8, copy=False),
        mapping[:3, :3],
        offset=mapping[:3, 3],
        output_shape=dst_shape,
        output=np.uint8,
        order=0,
        mode="constant",
        cval=0,
    )


def to_original_ras(labels_zyx: np.ndarray, entry: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Bring a store-grid prediction to the source's own resolution, in RAS axis order.

    Args:
        labels_zyx: Labels on the store grid ``(z, y, x)``.
        entry: The case's store index entry.

    Returns:
        Labels on the source grid as ``load_nifti`` returns it (RAS), and that grid's affine.
    """
    store_affine_xyz = np.asarray(entry["affine"])[:, [2, 1, 0, 3]]
    ras_affine, ras_shape = ras_grid_of(
        np.asarray(entry["original"]["affine"]), tuple(entry["original"]["shape"])
    )
    return resample_labels(
        np.transpose(labels_zyx, (2, 1, 0)), store_affine_xyz, ras_affine, ras_shape
    ), ras_affine


def to_original_geometry(labels_zyx: np.ndarray, entry: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Bring a store-grid prediction back to the source file's grid: its shape, axis order and affine."""
    on_ras, _ = to_original_ras(labels_zyx, entry)
    original_affine = np.asarray(entry["original"]["affine"])
    return ras_to_original(on_ras, original_affine), original_affine
