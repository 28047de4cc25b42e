"""The phantom's levels above and below the abdomen: lung bases and heart, iliac wings and bladder.

``--anatomy trunk`` draws a varied case over 520 mm of z instead of about 200 to 300, so that a scan or a
slice can lie where the side model was not trained: the chest (two lungs of air with vessels in them, the
heart left of the midline) above the liver dome, and the pelvis (an iliac wing on each side, the bladder)
below the kidneys. ``check-sides`` must recognise such levels and not read them (``qc.levels``).
The added organs come from their own random stream, so the abdomen's organs are drawn as the ``varied``
case's are (on a grid whose slices are thicker, to cover 520 mm).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sidepair.data.phantom import _Canvas

TRUNK_Z_MM = 520.0
LUNG_HU = -850.0
VESSEL_HU = 40.0
BLADDER_HU = 10.0
CHEST_FAT_MM = 8.0
CHEST_WALL_MM = 18.0
MUSCLE_HU = 50.0


def lung_base(geo: dict[str, Any]) -> float:
    """World z (mm) above which the lungs lie (the liver dome's height, less a posterior recess)."""
    return float(geo["z_ref"]) + float(geo["lung_base"])


def iliac_crest(geo: dict[str, Any]) -> float:
    """World z (mm) below which the iliac wings lie."""
    return float(geo["z_ref"]) - float(geo["iliac_crest"])


def draw_trunk(
    c: _Canvas, rng: np.random.Generator, geo: dict[str, Any], contrast: float, cavity, vessels
) -> None:
    """Paint lungs and heart above the liver dome, iliac wings and bladder below the kidneys.

    Args:
        c: The case's canvas, its abdomen already drawn.
        rng: The trunk's own random stream.
        geo: The case's geometry (``body_centre``, ``body_semi``, ``spine_y``, ``z_ref``); the lung base's
            and the iliac crest's heights above and below ``z_ref`` are added to it.
        contrast: The case's contrast factor (blood's CT number).
        cavity: Full-grid mask of the body cavity (inside the abdominal wall).
        vessels: Full-grid mask of the great vessels, which run on through the chest.
    """
    bx, by = geo["body_centre"]
    a, b = geo["body_semi"]
    geo["lung_base"] = float(rng.uniform(150.0, 175.0))
    geo["iliac_crest"] = float(rng.uniform(115.0, 135.0))
    z = c.axes[2]
    # The chest wall is thinner than the abdomen's: 8 mm of fat, then 10 mm of muscle and ribs' worth of
    # tissue, and the lungs inside it (an obese abdomen's fat would leave them no room).
    above = (z >= lung_base(geo))[None, None, :]
    dome = (z < lung_base(geo) + 30.0)[None, None, :]
    x, y = (c.axes[0] - bx)[:, None], (c.axes[1] - by)[None, :]
    depth = (1.0 - np.hypot(x / a, y / b)) * min(a, b)  # mm under the skin, near enough for an ellipse
    wall = ((depth >= CHEST_FAT_MM) & (depth < CHEST_WALL_MM))[:, :, None] & above
    c.hu[wall] = MUSCLE_HU
    chest = (depth >= CHEST_WALL_MM)[:, :, None]
    # Lungs: air behind and beside the heart, with vessels. In the lowest 30 mm they fill only what the
    # abdomen's organs leave (the liver dome and the spleen reach up between them); above, everything but
    # bone and the great vessels.
    free = chest & ~vessels & (c.hu < 150.0) & ((c.organs == 0) | ~dome)
    for side in (1, -1):
        sl, r = c.ellipsoid(
            (bx + side * 0.5 * a, by - 0.1 * b, lung_base(geo) + 110.0), (0.48 * a, 0.9 * b, 125.0)
        )
        if sl is None:
            continue
        lung = (r <= 1) & above[:, :, sl[2]]
        c.paint(sl, lung, LUNG_HU, free)
        dots = lung & (rng.random(lung.shape) < 0.001)
        c.paint(sl, dots, VESSEL_HU, free)
    # The heart: left of the midline, in front.
    sl, r = c.ellipsoid((bx - 0.18 * a, by + 0.3 * b, lung_base(geo) + 75.0), (0.32 * a, 0.4 * b, 60.0))
    if sl is not None:
        c.paint(sl, (r <= 1) & above[:, :, sl[2]], 40.0 + 100.0 * contrast, cavity)
    # Iliac wings: a plate of bone on each side, from beside the sacrum out and forward.
    below = z <= iliac_crest(geo)
    y = (c.axes[1] - geo["spine_y"])[None, :]
    for side in (1, -1):
        start, end = np.array([side * 35.0, -5.0]), np.array([side * 0.72 * a, 45.0])
        along = end - start
        t = np.clip(((x - start[0]) * along[0] + (y - start[1]) * along[1]) / (along @ along), 0, 1)
        dist = np.hypot(x - start[0] - t * along[0], y - start[1] - t * along[1])
        thick = float(rng.uniform(6.0, 9.0))
        marrow, cortex = dist <= thick - 2.5, dist <= thick
        c.hu[cortex[:, :, None] & below] = float(rng.uniform(700, 900))
        c.hu[marrow[:, :, None] & below] = float(rng.uniform(250, 350))
    sl, r = c.ellipsoid((bx, by + 0.35 * b, iliac_crest(geo) - 150.0), (50.0, 40.0, 40.0))
    if sl is not None:
        c.paint(sl, r <= 1, BLADDER_HU, cavity)
