"""A store-grid prediction back to the scan's own grid: probabilities then argmax, or nearest labels.

Two ways, both available (``--resample``):

- ``probabilities`` (the default, nnU-Net's way): resample each class's probability linearly, then take
  the argmax on the scan's own grid; boundaries follow the probabilities between coarse voxels;
- ``labels``: take the class index on the coarse grid and resample it with nearest neighbour, which
  leaves the coarse grid's voxel steps in the mask.

Both map each destination voxel centre to the source grid with the two affines, so any orientation,
spacing and field of view works. ``benchmarks/studies/resample_back.py`` measured the choice
(docs/measurements.md): on the
real scans here a perfect coarse prediction loses 0.036 Dice on the way back as labels and 0.012 as
probabilities; trained models gain about 0.006 Dice. Probabilities cost more time, so they are resampled
in slabs of the destination grid, which bounds the memory whatever the scan's size.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# Voxels of the destination grid resampled at once (float32 layers of this size are held per class).
SLAB_VOXELS = 1 << 22


def _mapping(src_affine: np.ndarray, dst_affine: np.ndarray) -> np.ndarray:
    return np.linalg.inv(src_affine) @ dst_affine  # destination index -> source index


def resample_labels(
    labels_xyz: np.ndarray, src_affine: np.ndarray, dst_affine: np.ndarray, dst_shape: tuple[int, ...]
) -> np.ndarray:
    """Nearest-neighbour resampling of a label array between two grids (any affines), as uint8."""
    mapping = _mapping(src_affine, dst_affine)
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


def resample_probabilities(
    probs_cxyz: np.ndarray, src_affine: np.ndarray, dst_affine: np.ndarray, dst_shape: tuple[int, ...]
) -> np.ndarray:
    """Class probabilities ``(classes, x, y, z)`` resampled linearly to another grid, then argmax (uint8).

    Linear interpolation keeps the probabilities summing to one, so the background's probability is one
    minus the others' and is never resampled itself: a two-class model needs one pass. The destination
    is done in slabs along its last axis. Outside the source grid the edge values continue.
    """
    mapping = _mapping(src_affine, dst_affine)
    labels = np.zeros(dst_shape, dtype=np.uint8)
    n_classes = probs_cxyz.shape[0]
    foreground = [np.asarray(probs_cxyz[c], dtype=np.float32) for c in range(1, n_classes)]
    depth = max(1, SLAB_VOXELS // max(1, dst_shape[0] * dst_shape[1]))
    for z0 in range(0, dst_shape[2], depth):
        shape = (dst_shape[0], dst_shape[1], min(depth, dst_shape[2] - z0))
        # The slab's index (i, j, k) is the grid's (i, j, k + z0).
        offset = mapping[:3, 3] + mapping[:3, 2] * z0
        best = np.zeros(shape, dtype=np.float32)
        total = np.zeros(shape, dtype=np.float32)
        slab = labels[:, :, z0 : z0 + shape[2]]
        layer = np.empty(shape, dtype=np.float32)
        for c, prob in enumerate(foreground, start=1):
            ndimage.affine_transform(  # linear, into the preallocated layer
                prob,
                mapping[:3, :3],
                offset=offset,
                output_shape=shape,
                output=layer,
                order=1,
                mode="nearest",
            )
            higher = layer > best  # ties go to the lower class, as argmax does
            slab[higher] = c
            np.maximum(best, layer, out=best)
            total += layer
        slab[best <= 1.0 - total] = 0  # the background wins where its share is at least the best class's
    return labels
