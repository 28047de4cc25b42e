"""Per-case preprocessing: resample to the preset's spacing, window HU, normalise.

Resampling uses MONAI's ``Spacing`` (trilinear for the image, nearest for labels and side maps) on
the RAS grid, so orientation is kept and only voxel size changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Spacing
from scipy import ndimage

from sidepair.config import PreprocessSettings


@dataclass
class Resampled:
    """A case on the store's grid (RAS, axes x, y, z).

    Attributes:
        image: HU, float32.
        label: Canonical labels (uint8) or None.
        side: Declared side map (uint8) or None.
        affine: RAS affine of the new grid.
    """

    image: np.ndarray
    label: np.ndarray | None
    side: np.ndarray | None
    affine: np.ndarray


def target_pixdim(settings: PreprocessSettings, current_xyz: tuple[float, float, float]) -> tuple[float, ...]:
    """Target spacing in array order (x, y, z); an axis set to None keeps its current spacing."""
    z, y, x = settings.spacing_zyx
    return tuple(float(t) if t is not None else float(c) for t, c in zip((x, y, z), current_xyz, strict=True))


def _resample(
    array: np.ndarray, affine: np.ndarray, pixdim: tuple[float, ...], mode: str, dtype: torch.dtype
) -> tuple[np.ndarray, np.ndarray]:
    tensor = MetaTensor(
        torch.from_numpy(np.ascontiguousarray(array)).to(dtype)[None], affine=torch.as_tensor(affine)
    )
    out = Spacing(
        pixdim=pixdim, mode=mode, padding_mode="border" if mode != "nearest" else "zeros", dtype=torch.float32
    )(tensor)
    return out[0].numpy(), np.asarray(out.affine, dtype=float)


def smooth_for(image: np.ndarray, current: tuple[float, ...], pixdim: tuple[float, ...]) -> np.ndarray:
    """The image low-passed for downsampling from ``current`` to ``pixdim`` spacing (per array axis).

    Sigma ``(factor - 1) / 2`` input pixels on each axis downsampled by ``factor``, none on the others (the
    rule of MONAI's ``Resize(anti_aliasing=True)`` and scikit-image's ``rescale``). Without it, bilinear
    resampling from 0.7 mm to 3 mm reads 4 of about 18 input pixels per output pixel: the output keeps the
    input's noise and moves with where the grid starts.
    """
    sigma = [max((t / c - 1.0) / 2.0, 0.0) for t, c in zip(pixdim, current, strict=True)]
    if not any(sigma):
        return image
    return ndimage.gaussian_filter(np.asarray(image, dtype=np.float32), sigma=sigma, mode="nearest")


def resample_case(
    image: np.ndarray,
    affine: np.ndarray,
    settings: PreprocessSettings,
    label: np.ndarray | None = None,
    side: np.ndarray | None = None,
) -> Resampled:
    """Bring a RAS image (and its label and side maps) to the settings' spacing.

    Args:
        image: HU array (x, y, z).
        affine: Its RAS affine.
        settings: Preprocessing settings.
        label: Canonical labels on the same grid, optional.
        side: Declared side map on the same grid, optional.

    Returns:
        The resampled arrays. Nothing is resampled when the spacing already matches.
    """
    current = tuple(float(s) for s in np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))
    pixdim = target_pixdim(settings, current)  # type: ignore[arg-type]
    if np.allclose(pixdim, current, rtol=1e-4):
        return Resampled(image.astype(np.float32, copy=False), label, side, affine.copy())
    # A single slice stays a single slice: resampling across it has nothing to interpolate.
    if image.shape[2] == 1:
        pixdim = (*pixdim[:2], current[2])
    if settings.antialias:
        image = smooth_for(image, current, pixdim)
    img, new_affine = _resample(image, affine, pixdim, "bilinear", torch.float32)
    lab = (
        _resample(label, affine, pixdim, "nearest", torch.uint8)[0].astype(np.uint8)
        if label is not None
        else None
    )
    sid = (
        _resample(side, affine, pixdim, "nearest", torch.uint8)[0].astype(np.uint8)
        if side is not None
        else None
    )
    return Resampled(img, lab, sid, new_affine)


def normalize(image: np.ndarray, settings: PreprocessSettings) -> tuple[np.ndarray, dict[str, float]]:
    """Clip to the HU window, then z-score per volume (or scale the window to [0, 1]).

    Returns:
        The normalised array in the store dtype, and the statistics used (for inference to repeat).
    """
    low, high = settings.window
    clipped = np.clip(image, low, high, out=np.empty_like(image, dtype=np.float32))
    if settings.normalize == "zscore":
        mean, std = float(clipped.mean(dtype=np.float64)), float(clipped.std(dtype=np.float64))
        std = std if std > 1e-6 else 1.0
        out = (clipped - mean) / std
        stats = {"mean": mean, "std": std}
    else:
        out = (clipped - low) / (high - low)
        stats = {"mean": float(low), "std": float(high - low)}
    return out.astype(settings.dtype, copy=False), stats


def nearest_onto(
    array: np.ndarray, source_affine: np.ndarray, target_affine: np.ndarray, shape: tuple[int, ...]
) -> np.ndarray:
    """A label-like array brought onto another grid through world coordinates, nearest neighbour.

    Args:
        array: Values on the source grid (any orientation its affine says).
        source_affine: Source index -> world.
        target_affine: Target index -> world.
        shape: Target grid shape.

    Returns:
        The values on the target grid (0 outside the source), in ``array``'s dtype.
    """
    to_source = np.linalg.inv(np.asarray(source_affine, dtype=float)) @ np.asarray(target_affine, dtype=float)
    return ndimage.affine_transform(
        array, to_source[:3, :3], offset=to_source[:3, 3], output_shape=shape, order=0, cval=0
    )  # mode "constant" (the default): 0 outside the source
