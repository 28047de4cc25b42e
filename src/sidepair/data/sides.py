"""Left and right kidney from world coordinates.

When a label says only "kidney", the kidney region is split into connected components and each is
assigned to the side of the body midline its centre lies on, in RAS world millimetres (+x is the
patient's right). Array indices are never used for side. Handled explicitly: one kidney only, a
component that crosses the midline (fused or touching kidneys: split at the midline plane), components
made only of tumour (assigned like any other), and tiny spurious components (given a side by position
but kept out of the kidney count and the bounding boxes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, Delaunay, QhullError

from sidepair.config import LABEL_MAPS
from sidepair.data.labels import LEFT, RIGHT, SIDE_NAMES, map_label_values
from sidepair.data.volume import load_nifti
from sidepair.errors import DataError

_CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)


@dataclass
class SideReport:
    """What side assignment found in one case.

    Attributes:
        midline_x: World x (mm) of the body midline used.
        midline_from: ``"body"`` (from the image), ``"fov"`` (centre of the field of view) or
            ``"declared"`` (sides came from the label itself).
        volumes_ml: Kidney volume (kept components) per side, mL.
        components: Number of kept components per side.
        tiny: Number of components too small to count as kidney.
        split_at_midline: Whether a component crossing the midline was split.
        warnings: Anything a user should look at.
    """

    midline_x: float
    midline_from: str
    volumes_ml: dict[str, float] = field(default_factory=dict)
    components: dict[str, int] = field(default_factory=dict)
    tiny: int = 0
    split_at_midline: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def sides_present(self) -> list[str]:
        """Sides with at least one kept kidney component."""
        return [s for s in ("right", "left") if self.components.get(s, 0) > 0]

    def add_component(self, side: str, volume_ml: float) -> None:
        """Count one kept component of ``volume_ml`` on ``side``."""
        self.components[side] = self.components.get(side, 0) + 1
        self.volumes_ml[side] = self.volumes_ml.get(side, 0.0) + volume_ml


# What is tiny: in 3D under 0.5 mL (a sphere of about 10 mm); on a single slice, where a section of a
# kidney holds little volume, under 30 mm^2 of area (a disc of about 6 mm), whatever the pixel size.
# Either way also under 2 % of the largest component.
MIN_ML = 0.5
MIN_AREA_MM2 = 30.0


def tiny_threshold_ml(
    shape: tuple[int, ...],
    affine: np.ndarray,
    largest_voxels: float,
    min_ml: float = MIN_ML,
    min_fraction: float = 0.02,
) -> float:
    """Size (mL) under which a component is tiny: a volume in 3D, an area on a single slice."""
    vox_ml = voxel_volume_ml(affine)
    if shape[2] == 1:
        thickness = float(np.linalg.norm(affine[:3, 2]))
        floor = MIN_AREA_MM2 * thickness / 1000.0
    else:
        floor = min_ml
    return max(floor, min_fraction * largest_voxels * vox_ml)


def voxel_volume_ml(affine: np.ndarray) -> float:
    """Volume of one voxel in mL."""
    return float(abs(np.linalg.det(affine[:3, :3]))) / 1000.0


def world_x(indices: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """World x (mm) of voxel indices given as an (N, 3) array."""
    return indices @ affine[0, :3] + affine[0, 3]


def fov_midline_x(shape: tuple[int, ...], affine: np.ndarray) -> float:
    """World x of the centre of the field of view."""
    centre = (np.asarray(shape[:3], dtype=float) - 1) / 2
    return float(world_x(centre[None], affine)[0])


def body_centre(image: np.ndarray, affine: np.ndarray, threshold_hu: float = -500.0) -> np.ndarray:
    """World centre (x, y, z mm) of the body: the centroid of the largest region above ``threshold_hu``.

    Images stored with clipped HU (8-bit exports holding [0, 255], so that fat and air share the minimum)
    are handled by :func:`clipped_body_centre`.

    Args:
        image: CT in HU, RAS array.
        affine: Its affine.
        threshold_hu: Voxels above this are body (air and gas are below).

    Returns:
        The centroid; the field-of-view centre if no body is found.
    """
    if float(image.min()) + 1.0 > threshold_hu:
        return clipped_body_centre(image, affine)
    # A coarse grid is plenty to find a centroid and keeps this cheap on 512 x 512 x 600 volumes.
    step = tuple(max(1, s // 128) for s in image.shape[:2]) + (max(1, image.shape[2] // 64),)
    small = image[:: step[0], :: step[1], :: step[2]] > threshold_hu
    labels, n = ndimage.label(small)
    if n == 0:
        centre = (np.asarray(image.shape[:3], dtype=float) - 1) / 2
    else:
        sizes = np.bincount(labels.ravel())[1:]
        body = labels == (int(np.argmax(sizes)) + 1)
        centre = np.argwhere(body).astype(float).mean(axis=0) * np.asarray(step, dtype=float)
    return affine[:3, :3] @ centre + affine[:3, 3]


# Gaps this wide (mm) in the skin line of a clipped image are closed before the body is filled.
SKIN_GAP_MM = 4.0


def clipped_body_centre(image: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """World centre of the body in an image whose HU were clipped at the bottom (e.g. PNG: [0, 255]).

    Clipping at 0 HU makes fat look like air, so the tissue above the minimum is the body's lean
    parts alone: their centroid follows the liver, a large tumour or whichever organ is in the slice,
    tens of millimetres from the body's (measured on real CT clipped to [0, 255], a median of 7–13 mm and
    up to 105 mm per slice). The body is recovered per axial slice instead: the tissue above the minimum,
    its skin line closed over small gaps, holes filled, the largest region kept (not the table), then
    its convex hull (fat at the edge of the field of view, where the skin line is open). The centre is
    the area-weighted mean of the hulls' centroids, as unclipped bodies weigh their voxels.

    Args:
        image: CT in HU (clipped), RAS array.
        affine: Its affine.

    Returns:
        The centroid; the field-of-view centre if no body is found.
    """
    spacing = float(np.linalg.norm(affine[:3, :2], axis=0).min())
    floor = float(image.min()) + 1.0
    weighted, total = np.zeros(3), 0.0
    for z in range(0, image.shape[2], max(1, image.shape[2] // 64)):  # a slice at a time: no volume mask
        body = body_region(image[:, :, z], spacing, floor)
        if body is None:
            continue
        hull = _hull_area_centroid(body)
        if hull is not None:
            area, (cx, cy) = hull
            weighted += area * np.array([cx, cy, float(z)])
            total += area
    fov = (np.asarray(image.shape[:3], dtype=float) - 1) / 2
    centre = weighted / total if total else fov
    return affine[:3, :3] @ centre + affine[:3, 3]


def body_region(image: np.ndarray, spacing: float, floor: float) -> np.ndarray | None:
    """One axial slice's body: the tissue above ``floor``, its skin line closed over gaps, holes filled.

    Args:
        image: One axial slice (HU, possibly clipped).
        spacing: Its pixel spacing (mm).
        floor: Values at or below this are air (or, clipped, fat and air alike).

    Returns:
        The largest such region (not the table), or None when the slice holds no tissue.
    """
    gap = max(1, int(round(SKIN_GAP_MM / max(spacing, 1e-3))))
    tissue = np.pad(image > floor, gap)
    closed = ndimage.binary_closing(tissue, iterations=gap)[gap:-gap, gap:-gap]
    labels, n = ndimage.label(ndimage.binary_fill_holes(closed))
    if n == 0:
        return None
    return labels == (int(np.argmax(np.bincount(labels.ravel())[1:])) + 1)


def hull_mask(region: np.ndarray) -> np.ndarray:
    """The convex hull of a 2D region, as a mask (the region itself when it has no area)."""
    edge = np.argwhere(region & ~ndimage.binary_erosion(region)).astype(float)
    if len(edge) < 3:
        return region.copy()
    try:
        triangles = Delaunay(edge[ConvexHull(edge).vertices])
    except QhullError:  # collinear: a line has no area
        return region.copy()
    lo, hi = edge.min(axis=0).astype(int), edge.max(axis=0).astype(int) + 1
    grid = np.stack(np.meshgrid(*(np.arange(a, b) for a, b in zip(lo, hi, strict=True)), indexing="ij"), -1)
    inside = triangles.find_simplex(grid.reshape(-1, 2).astype(float)) >= 0
    mask = np.zeros_like(region)
    mask[lo[0] : hi[0], lo[1] : hi[1]] = inside.reshape(grid.shape[:2])
    return mask | region


def _hull_area_centroid(region: np.ndarray) -> tuple[float, tuple[float, float]] | None:
    """Area and centroid (index units) of a 2D region's convex hull; None when it has no area."""
    edge = np.argwhere(region & ~ndimage.binary_erosion(region)).astype(float)
    if len(edge) < 3:
        return None
    try:
        hull = ConvexHull(edge)
    except QhullError:  # collinear: a line has no area
        return None
    x, y = edge[hull.vertices, 0], edge[hull.vertices, 1]
    cross = x * np.roll(y, -1) - np.roll(x, -1) * y
    area = cross.sum() / 2
    if abs(area) < 1e-9:
        return None
    cx = ((x + np.roll(x, -1)) * cross).sum() / (6 * area)
    cy = ((y + np.roll(y, -1)) * cross).sum() / (6 * area)
    return abs(float(area)), (float(cx), float(cy))


def body_midline_x(image: np.ndarray, affine: np.ndarray, threshold_hu: float = -500.0) -> float:
    """World x of the body's midline (the x of :func:`body_centre`)."""
    return float(body_centre(image, affine, threshold_hu)[0])


class _SlabX:
    """World x of a component box's voxels, one axial slab at a time.

    World x is linear in the index, so it is computed one slab of the component's box at a time: memory
    of one slab, where a list of voxel coordinates took 48 bytes a voxel (several GB for a 512 x 512 x
    1000 scan with large false-positive components).
    """

    def __init__(self, affine: np.ndarray, starts: np.ndarray, shape: tuple[int, ...]) -> None:
        self.affine, self.starts = affine, starts
        j = np.arange(shape[1], dtype=float) + starts[1]
        k = np.arange(shape[2], dtype=float) + starts[2]
        self.plane = (affine[0, 1] * j)[:, None] + (affine[0, 2] * k)[None, :] + affine[0, 3]

    def __call__(self, i: int) -> np.ndarray:
        """World x of slab ``i`` of the box."""
        return self.plane + self.affine[0, 0] * (i + self.starts[0])

    def count_right(self, local: np.ndarray, midline_x: float) -> tuple[int, float]:
        """Voxels of ``local`` right of the midline, and the sum of their world x (all voxels)."""
        n_right, sum_x = 0, 0.0
        for i in range(local.shape[0]):
            xs = self(i)
            inside = local[i]
            n_right += int(np.count_nonzero(inside & (xs > midline_x)))
            sum_x += float(xs[inside].sum())
        return n_right, sum_x


def assign_sides(
    kidney: np.ndarray,
    affine: np.ndarray,
    midline_x: float | None = None,
    min_ml: float = 0.5,
    min_fraction: float = 0.02,
    cross_fraction: float = 0.25,
) -> tuple[np.ndarray, SideReport]:
    """Assign every kidney voxel to the right or left side by world position.

    Args:
        kidney: Boolean kidney (kidney + tumour) mask, RAS array.
        affine: Its affine.
        midline_x: World x of the body midline; the field-of-view centre when None.
        min_ml: Components smaller than this (mL) are tiny (3D only; a single slice uses
            ``MIN_AREA_MM2`` of area instead, since a section of a kidney has little volume).
        min_fraction: Components smaller than this fraction of the largest are tiny.
        cross_fraction: A component with at least this fraction of its voxels on each side of the
            midline crosses it and is split at the midline plane.

    Returns:
        A uint8 side map (0 none, 1 right, 2 left) and a :class:`SideReport`.
    """
    midline_from = "fov" if midline_x is None else "body"
    if midline_x is None:
        midline_x = fov_midline_x(kidney.shape, affine)
    report = SideReport(midline_x=float(midline_x), midline_from=midline_from)
    side_map = np.zeros(kidney.shape, dtype=np.uint8)
    if not kidney.any():
        report.warnings.append("no kidney voxels")
        return side_map, report

    # Work on the kidney's bounding box only: components live there, and the volume can be huge.
    box = ndimage.find_objects(kidney.astype(np.uint8))[0]
    offset = np.array([s.start for s in box], dtype=float)
    labels, n = ndimage.label(kidney[box], structure=_CONNECTIVITY)
    objects = ndimage.find_objects(labels)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    vox_ml = voxel_volume_ml(affine)
    threshold = tiny_threshold_ml(kidney.shape, affine, float(sizes.max()), min_ml, min_fraction)
    sub = side_map[box]
    for comp in range(1, n + 1):
        sl = objects[comp - 1]
        local = labels[sl] == comp
        starts = offset + np.array([s.start for s in sl], dtype=float)
        slab_x = _SlabX(affine, starts, local.shape)
        count = int(sizes[comp - 1])
        n_right, sum_x = slab_x.count_right(local, midline_x)
        frac_right = n_right / count
        volume = count * vox_ml
        tiny = volume < threshold
        target = sub[sl]
        if not tiny and min(frac_right, 1 - frac_right) >= cross_fraction:
            for ii in range(local.shape[0]):
                right = slab_x(ii) > midline_x
                target[ii][local[ii] & right] = RIGHT
                target[ii][local[ii] & ~right] = LEFT
            report.split_at_midline = True
            report.warnings.append(
                f"a {volume:.0f} mL component crosses the midline; split at x={midline_x:.1f}"
            )
            for code, voxels in ((RIGHT, n_right), (LEFT, count - n_right)):
                report.add_component(SIDE_NAMES[code], voxels * vox_ml)
            continue
        code = RIGHT if sum_x / count > midline_x else LEFT
        target[local] = code
        if tiny:
            report.tiny += 1
        else:
            report.add_component(SIDE_NAMES[code], volume)
    for name in ("right", "left"):
        if report.components.get(name, 0) > 1:
            report.warnings.append(f"{report.components[name]} kidney components on the {name}")
    return side_map, report


def kept_mask(
    side_map: np.ndarray, affine: np.ndarray, side: int, min_ml: float = 0.5, min_fraction: float = 0.02
) -> np.ndarray:
    """The voxels of one side that belong to non-tiny components."""
    mask = side_map == side
    if not mask.any():
        return mask
    box = ndimage.find_objects(mask.astype(np.uint8))[0]  # label only where the side has voxels
    labels, n = ndimage.label(mask[box], structure=_CONNECTIVITY)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    vox_ml = voxel_volume_ml(affine)
    threshold = tiny_threshold_ml(mask.shape, affine, float(sizes.max()), min_ml, min_fraction)
    keep = sizes * vox_ml >= threshold
    keep[0] = False
    out = np.zeros_like(mask)
    out[box] = keep[labels]
    return out


def bounding_box(mask: np.ndarray) -> list[list[int]] | None:
    """Inclusive-exclusive ``[[start, stop], ...]`` per axis of a mask's true voxels, or None."""
    if not mask.any():
        return None
    box = ndimage.find_objects(mask.astype(np.uint8))[0]
    return [[int(s.start), int(s.stop)] for s in box]


def side_boxes(side_map: np.ndarray, affine: np.ndarray) -> dict[str, list[list[int]] | None]:
    """Bounding box of each side's kidney (tiny components excluded), in voxel indices."""
    return {SIDE_NAMES[code]: bounding_box(kept_mask(side_map, affine, code)) for code in (RIGHT, LEFT)}


def survey_label_file(path: str, label_map_name: str = "kits19") -> dict[str, object]:
    """Side assignment of one label file, summarised for a survey over a dataset.

    The midline is the field-of-view centre (label maps carry no image). Errors are reported, not
    raised, so one bad file does not stop a survey.

    Args:
        path: Label NIfTI file.
        label_map_name: Name of the label map to apply.

    Returns:
        Case name, axis codes, shape, sides present, volume and world centre per side, tiny
        components, midline splits and warnings; or ``error``.
    """
    try:
        vol = load_nifti(path, role="label")
        labels = map_label_values(vol.array, LABEL_MAPS[label_map_name], path)
    except DataError as exc:
        return {"path": str(path), "error": str(exc)}
    side_map, report = assign_sides(labels.label > 0, vol.affine)
    centres = {}
    for code, name in SIDE_NAMES.items():
        # Kidney tissue only: a large tumour would pull the centre away from the kidney.
        kept = kept_mask(side_map, vol.affine, code) & (labels.label == 1)
        if kept.any():
            centre = np.argwhere(kept).mean(axis=0)
            centres[name] = [round(float(v), 1) for v in vol.affine[:3, :3] @ centre + vol.affine[:3, 3]]
    return {
        "path": str(path),
        "axcodes": vol.original_axcodes,
        "shape": list(vol.original_shape),
        "sides": report.sides_present,
        "volumes_ml": {k: round(v, 1) for k, v in report.volumes_ml.items()},
        "centres_mm": centres,
        "tiny": report.tiny,
        "split_at_midline": report.split_at_midline,
        "warnings": report.warnings,
    }
