"""A procedural abdominal CT phantom, written as KiTS-layout NIfTI cases.

The phantom is a test bed, not evidence: results on it are labelled as phantom results. It draws, in
RAS world millimetres (+x patient right, +y anterior, +z superior): body outline with subcutaneous fat
and abdominal wall, spine with vertebral bodies, discs and posterior elements, psoas and paraspinal
muscles, aorta (left of midline), IVC (right), liver (right), spleen and stomach (left), gas- and
fluid-filled bowel, and two bean-shaped kidneys with cortex, medulla (pyramids), renal sinus fat,
a medially facing hilum and a renal vein; the right kidney lies lower. Per case it varies body size,
kidney position, size and rotation, contrast, optional tumours, noise, slice spacing and the orientation
codes the file is written in. With ``masks_from`` the kidneys and tumours are real label maps (e.g.
KiTS19 segmentations) on their own grid, and the body is drawn around them. Each case also writes
``organs.nii.gz``, the map of its liver, spleen, stomach, aorta and IVC (:data:`ORGANS`), for occlusion
probes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import nibabel as nib
import numpy as np
from nibabel import orientations as nio
from PIL import Image
from scipy import ndimage
from tqdm import tqdm

from sidepair.atomic import atomic_dir, atomic_path, write_json
from sidepair.choices import AnatomyChoice
from sidepair.data.labels import KIDNEY, TUMOUR
from sidepair.data.phantom_anatomy import Anatomy, Mass, OrganPose, anatomy_for
from sidepair.data.phantom_trunk import TRUNK_Z_MM, draw_trunk, iliac_crest, lung_base
from sidepair.data.sides import assign_sides
from sidepair.data.volume import load_nifti
from sidepair.errors import DataError

ORIENTATIONS = ("RAS", "LPS", "IPL", "LAS", "RPI", "PIL", "ASR", "SLP")
# Codes of the organ map each case also writes (``organs.nii.gz``): the organs that differ between the sides,
# which an occlusion probe blanks. Kidneys are in the segmentation, not here.
ORGANS = {"liver": 1, "spleen": 2, "stomach": 3, "aorta": 4, "ivc": 5}
DEFAULT_SHAPE = (256, 256, 100)
AIR, FAT, MUSCLE, GAS = -1000.0, -100.0, 50.0, -1000.0


@dataclass
class CaseSpec:
    """What was drawn in one phantom case (written to ``phantom.json`` as ground truth).

    Attributes:
        case_id: Folder name.
        axcodes: Orientation codes of the written arrays.
        spacing: Voxel size (x, y, z) mm of the RAS grid.
        shape: Shape (x, y, z) of the RAS grid.
        kidneys: Side -> world centre (mm) of each kidney drawn.
        tumour: Side with a tumour (``both`` where a varied anatomy's mass is on the other side), or None.
        contrast: Contrast-phase factor (1 = strong corticomedullary enhancement, 0 = unenhanced).
        anatomy: ``fixed`` (the organ template), ``varied`` (drawn per case) or ``trunk``.
        noise_hu: Noise standard deviation.
        masks_from: Label map the kidneys were taken from, if any.
        levels: ``trunk`` only: world z (mm) of the lung base (chest above) and the iliac crest (pelvis
            below).
    """

    case_id: str
    axcodes: str
    spacing: tuple[float, float, float]
    shape: tuple[int, int, int]
    kidneys: dict[str, list[float]] = field(default_factory=dict)
    tumour: str | None = None
    contrast: float = 1.0
    noise_hu: float = 10.0
    masks_from: str | None = None
    anatomy: str = "fixed"
    levels: dict[str, float] | None = None


class DrawnCase(NamedTuple):
    """One drawn case, each image in the case's orientation.

    Attributes:
        image: CT (int16 HU).
        label: Segmentation (uint8: 1 kidney, 2 tumour).
        organs: Organ map (uint8, codes :data:`ORGANS`).
        sides: Side of each kidney voxel (uint8: 1 right, 2 left), from world position.
        spec: What was drawn.
    """

    image: nib.Nifti1Image
    label: nib.Nifti1Image
    organs: nib.Nifti1Image
    sides: nib.Nifti1Image
    spec: CaseSpec


class _Canvas:
    """HU and label arrays on an axis-aligned RAS grid, painted one organ at a time."""

    def __init__(self, shape: tuple[int, int, int], affine: np.ndarray) -> None:
        self.shape = shape
        self.affine = affine
        self.hu = np.full(shape, AIR, dtype=np.float32)
        self.label = np.zeros(shape, dtype=np.uint8)
        self.organs = np.zeros(shape, dtype=np.uint8)
        # Axis-aligned grid: world coordinate of each index along each axis.
        self.axes = [affine[a, a] * np.arange(shape[a]) + affine[a, 3] for a in range(3)]
        self.spacing = np.abs(np.diag(affine)[:3])

    def box(self, centre: Sequence[float], radius: float) -> tuple[slice, ...] | None:
        """Index box covering a sphere of ``radius`` mm around ``centre``; None if outside."""
        out = []
        for a in range(3):
            lo, hi = sorted(
                (
                    (centre[a] - radius - self.affine[a, 3]) / self.affine[a, a],
                    (centre[a] + radius - self.affine[a, 3]) / self.affine[a, a],
                )
            )
            start, stop = max(int(np.floor(lo)), 0), min(int(np.ceil(hi)) + 1, self.shape[a])
            if start >= stop:
                return None
            out.append(slice(start, stop))
        return tuple(out)

    def local(self, sl: tuple[slice, ...], centre: Sequence[float], rot: np.ndarray | None = None):
        """Broadcastable local coordinates (mm) of a box, rotated into an organ's frame."""
        x = (self.axes[0][sl[0]] - centre[0])[:, None, None]
        y = (self.axes[1][sl[1]] - centre[1])[None, :, None]
        z = (self.axes[2][sl[2]] - centre[2])[None, None, :]
        if rot is None:
            return x, y, z
        return (
            rot[0, 0] * x + rot[0, 1] * y + rot[0, 2] * z,
            rot[1, 0] * x + rot[1, 1] * y + rot[1, 2] * z,
            rot[2, 0] * x + rot[2, 1] * y + rot[2, 2] * z,
        )

    def ellipsoid(self, centre: Sequence[float], semi: Sequence[float], rot: np.ndarray | None = None):
        """Box and normalised radius (1 on the surface) of an ellipsoid; None if off the grid."""
        sl = self.box(centre, float(max(semi)))
        if sl is None:
            return None, None
        x, y, z = self.local(sl, centre, rot)
        r = np.sqrt((x / semi[0]) ** 2 + (y / semi[1]) ** 2 + (z / semi[2]) ** 2)
        return sl, r

    def paint(
        self,
        sl,
        mask: np.ndarray,
        hu: float | np.ndarray,
        inside: np.ndarray | None = None,
        organ: int | None = None,
    ) -> None:
        """Set HU where ``mask`` (and, if given, ``inside``, a full-grid mask) holds.

        ``organ`` marks those voxels in the organ map; painting anything else there clears them.
        """
        if inside is not None:
            mask = mask & inside[sl]
        target = self.hu[sl]
        target[mask] = hu if np.isscalar(hu) else np.broadcast_to(hu, mask.shape)[mask]
        self.organs[sl][mask] = organ or 0


def _rotation(rx: float, ry: float, rz: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    rot_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    rot_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rot_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rot_x @ rot_y @ rot_z


def _draw_body(c: _Canvas, rng: np.random.Generator, centre: tuple[float, float], semi: tuple[float, float]):
    """Body outline, subcutaneous fat, abdominal wall; returns the abdominal cavity mask (x, y)."""
    x = (c.axes[0] - centre[0])[:, None]
    y = (c.axes[1] - centre[1])[None, :]
    r = np.sqrt((x / semi[0]) ** 2 + (y / semi[1]) ** 2)
    fat_mm, wall_mm = rng.uniform(10, 28), rng.uniform(7, 12)
    scale = float(min(semi))
    body = r <= 1.0
    wall = r <= 1.0 - fat_mm / scale
    cavity = r <= 1.0 - (fat_mm + wall_mm) / scale
    # A patient table under the back.
    table = (np.abs(y + semi[1] + 25) < 4) & (np.abs(x) < semi[0] * 1.1)
    c.hu[table] = 150.0
    c.hu[body] = FAT + rng.normal(0, 8)
    c.hu[wall] = MUSCLE
    c.hu[cavity] = FAT + 10 + rng.normal(0, 5)
    return body, cavity


def _draw_spine(c: _Canvas, rng: np.random.Generator, spine: tuple[float, float], zlen: float):
    x = (c.axes[0] - spine[0])[:, None]
    y = (c.axes[1] - spine[1])[None, :]
    r_body = rng.uniform(18, 23)
    d = np.sqrt(x**2 + y**2)
    canal = np.sqrt(x**2 + (y + r_body + 8) ** 2) < 7
    posterior = (np.abs(x) < 9) & (y < -r_body - 2) & (y > -r_body - 38) & ~canal
    processes = (np.abs(y + r_body + 12) < 5) & (np.abs(x) < 38)
    # Paraspinal and psoas muscles: paired, symmetric.
    para = np.zeros_like(d, dtype=bool)
    psoas = np.zeros_like(d, dtype=bool)
    for side in (-1, 1):
        para |= ((x - side * 38) / 24) ** 2 + ((y + r_body + 25) / 20) ** 2 <= 1
        psoas |= ((x - side * (r_body + 14)) / 15) ** 2 + ((y - 2) / 14) ** 2 <= 1
    c.hu[para] = MUSCLE + 5
    c.hu[psoas] = MUSCLE
    z = c.axes[2]
    period = rng.uniform(28, 34)
    disc = (np.mod(z - rng.uniform(0, period), period) < 6)[None, None, :]
    vert = (d < r_body)[:, :, None]
    cortex = (d >= r_body - 3)[:, :, None] & vert
    c.hu[vert & ~disc[..., :]] = rng.uniform(400, 480)
    c.hu[cortex & ~disc] = rng.uniform(800, 950)
    c.hu[vert & disc] = 85.0
    c.hu[np.broadcast_to((posterior | processes)[:, :, None], c.shape)] = rng.uniform(650, 900)
    c.hu[np.broadcast_to(canal[:, :, None], c.shape)] = 15.0
    return r_body


def _tube(
    c: _Canvas,
    start: np.ndarray,
    end: np.ndarray,
    radius: float,
    hu: float,
    inside=None,
    organ: int | None = None,
) -> None:
    """A cylinder between two world points."""
    mid = (start + end) / 2
    half = float(np.linalg.norm(end - start)) / 2
    sl = c.box(mid, half + radius)
    if sl is None:
        return
    x, y, z = c.local(sl, mid)
    axis = (end - start) / max(2 * half, 1e-6)
    t = x * axis[0] + y * axis[1] + z * axis[2]
    dist2 = x**2 + y**2 + z**2 - t**2
    c.paint(sl, (dist2 <= radius**2) & (np.abs(t) <= half), hu, inside, organ)


def _draw_kidney(
    c: _Canvas, rng: np.random.Generator, side: int, centre: np.ndarray, contrast: float, anat: Anatomy
):
    """A bean-shaped kidney; ``side`` +1 right, -1 left. Returns its rotation and semi-axes."""
    semi = np.array([rng.uniform(24, 30), rng.uniform(20, 25), rng.uniform(48, 60)])
    # Upper pole tilted medially, hilum turned anteromedially.
    rot = _rotation(rng.uniform(-0.15, 0.15), side * rng.uniform(0.12, 0.3), -side * rng.uniform(0.3, 0.6))
    sl, r = c.ellipsoid(centre, semi, rot)
    if sl is None:
        return rot, semi
    x, y, z = c.local(sl, centre, rot)
    # Medial is toward the midline: -x for the right kidney (+side), in the kidney's own frame.
    medial = -side * x
    hilum = (
        np.sqrt(
            ((medial - semi[0]) / (0.55 * semi[0])) ** 2
            + (y / (0.5 * semi[1])) ** 2
            + (z / (0.4 * semi[2])) ** 2
        )
        <= 1
    )
    kidney = (r <= 1) & ~hilum
    sinus = (
        np.sqrt(
            ((medial - 0.35 * semi[0]) / (0.5 * semi[0])) ** 2
            + (y / (0.5 * semi[1])) ** 2
            + (z / (0.62 * semi[2])) ** 2
        )
        <= 1
    )
    theta = np.arctan2(z / semi[2], y / semi[1])
    pyramids = (r > 0.45) & (r < 0.82) & (np.cos(7 * theta) > -0.2)
    cortex_hu = anat.hu("cortex", 120 + 100 * contrast + rng.normal(0, 8))
    medulla_hu = anat.hu("medulla", 70 + 40 * contrast + rng.normal(0, 5))
    values = np.where(pyramids, medulla_hu, cortex_hu).astype(np.float32)
    values = np.where(sinus, -90.0, values)
    c.paint(sl, kidney, values)
    c.label[sl][kidney] = KIDNEY
    # Renal vein from the hilum toward the IVC/aorta region (medially).
    hilum_world = centre + rot.T @ np.array([-side * semi[0] * 0.9, 0.0, 0.0])
    vein_end = hilum_world + np.array([-side * 45.0, 8.0, 0.0])
    _tube(c, hilum_world, vein_end, 5.0, anat.hu("blood", 110 + 40 * contrast))
    return rot, semi


def _draw_tumour(
    c: _Canvas,
    rng: np.random.Generator,
    side: int,
    centre: np.ndarray,
    rot: np.ndarray,
    semi: np.ndarray,
    body: np.ndarray,
) -> None:
    # A point on the lateral, anterior or polar surface (never the medial hilum side).
    angle = rng.uniform(-1.2, 1.2)
    elev = rng.uniform(-1.0, 1.0)
    local = np.array([side * np.cos(angle) * semi[0], np.sin(angle) * semi[1], elev * semi[2] * 0.8])
    tc = centre + rot.T @ local
    radius = rng.uniform(10, 28)
    sl, r = c.ellipsoid(tc, (radius, radius * rng.uniform(0.8, 1.1), radius * rng.uniform(0.8, 1.2)))
    if sl is None:
        return
    inside = (r <= 1) & body[sl[0], sl[1]][:, :, None]
    texture = rng.normal(0, 12, size=r.shape).astype(np.float32)
    c.paint(sl, inside, 60 + texture - 30 * (r < 0.4))  # necrotic core darker
    c.label[sl][inside] = TUMOUR


def _draw_mass(
    c: _Canvas,
    mass: Mass,
    centre: np.ndarray,
    rot: np.ndarray,
    semi: np.ndarray,
    liver_hu: float,
    cavity3d: np.ndarray,
) -> None:
    """A large renal mass growing out of a kidney's lateral or anterior surface, inside the cavity."""
    rng = np.random.default_rng(mass.texture_seed)
    direction = np.array([mass.side * np.cos(mass.angle), np.sin(mass.angle), 0.0])
    surface = centre + rot.T @ (direction * semi + np.array([0.0, 0.0, mass.elev * semi[2] * 0.8]))
    mc = surface + rot.T @ direction * 0.4 * mass.radius
    r0 = mass.radius
    sl, r = c.ellipsoid(mc, (r0, r0 * rng.uniform(0.8, 1.1), r0 * rng.uniform(0.8, 1.2)))
    if sl is None:
        return
    inside = (r <= 1) & cavity3d[sl]
    # Heterogeneous like a real renal cell carcinoma: smooth blotches, a darker necrotic centre.
    blotches = ndimage.gaussian_filter(rng.normal(0, 1, size=r.shape), sigma=2.0)
    blotches *= 15.0 / max(float(blotches.std()), 1e-6)
    values = liver_hu - mass.below_liver + blotches - 30.0 * (r < rng.uniform(0.2, 0.45))
    c.paint(sl, inside, values.astype(np.float32))
    c.label[sl][inside] = TUMOUR


def _placed(
    centre: tuple[float, float, float], semi: tuple[float, float, float], turn: float, pose: OrganPose
) -> tuple[tuple[float, ...], tuple[float, ...], np.ndarray]:
    """An organ's template centre, semi-axes and turn about z, moved by its pose."""
    placed = tuple(c + s for c, s in zip(centre, pose.shift, strict=True))
    return (
        placed,
        tuple(a * k for a, k in zip(semi, pose.scale, strict=True)),
        _rotation(0, 0, turn + pose.turn),
    )


def _enhanced_liver_hu(contrast: float) -> float:
    """The liver's CT number at a case's contrast factor (enhanced phases; see ``Anatomy.hu``)."""
    return 100 + 40 * contrast


def _draw_organs(
    c: _Canvas, rng: np.random.Generator, geo: dict[str, Any], contrast: float, cavity3d, anat: Anatomy
) -> None:
    bx, by = geo["body_centre"]
    a, b = geo["body_semi"]
    spine_y, zk = geo["spine_y"], geo["z_ref"]
    vessel_y = spine_y + geo["r_body"] + 12
    zmin, zmax = float(c.axes[2].min()), float(c.axes[2].max())
    # Liver (right, upper), spleen and stomach (left, upper).
    sl, r = c.ellipsoid(
        *_placed((bx + 0.45 * a, by + 0.05 * b, zk + 85), (0.55 * a, 0.75 * b, 95), 0.2, anat.liver)
    )
    if sl is not None:
        liver_hu = anat.hu("liver", _enhanced_liver_hu(contrast) + rng.normal(0, 4))
        c.paint(sl, r <= 1, liver_hu, cavity3d, ORGANS["liver"])
    sl, r = c.ellipsoid(
        *_placed((bx - 0.6 * a, by - 0.25 * b, zk + 70), (0.22 * a, 0.4 * b, 55), -0.5, anat.spleen)
    )
    if sl is not None:
        c.paint(sl, r <= 1, anat.hu("spleen", 100 + 25 * contrast), cavity3d, ORGANS["spleen"])
    st_c, st_semi, _ = _placed(
        (bx - 0.35 * a, by + 0.45 * b, zk + 75), (0.3 * a, 0.3 * b, 50), 0.0, anat.stomach
    )
    sl, r = c.ellipsoid(st_c, st_semi)
    if sl is not None:
        y_local = c.local(sl, st_c)[1]
        gas_from = (0.05 + 1.2 * (0.5 - anat.stomach_gas)) * b  # the template: gas above 0.05 b
        c.paint(sl, r <= 1, 45.0, cavity3d, ORGANS["stomach"])
        c.paint(sl, (r <= 0.85) & (y_local > gas_from), GAS, cavity3d, ORGANS["stomach"])
        c.paint(sl, (r <= 0.85) & (y_local <= gas_from), 15.0, cavity3d, ORGANS["stomach"])
    # Bowel loops: gas or fluid filled, walls of soft tissue, anterior and lower abdomen.
    for _ in range(int(rng.integers(6, 12))):
        centre = (bx + rng.uniform(-0.6, 0.6) * a, by + rng.uniform(0.0, 0.6) * b, zk + rng.uniform(-90, 40))
        semi = (rng.uniform(12, 25), rng.uniform(10, 18), rng.uniform(15, 40))
        sl, r = c.ellipsoid(centre, semi, _rotation(0, rng.uniform(-0.5, 0.5), rng.uniform(0, 3)))
        if sl is None:
            continue
        c.paint(sl, r <= 1, 40.0, cavity3d)
        c.paint(sl, r <= 0.75, GAS if rng.random() < 0.6 else 20.0, cavity3d)
    # Great vessels: aorta left of midline, IVC right; full length of the scan.
    for dx, semi, hu, organ in (
        (anat.aorta_dx, (11.0, 11.0), anat.hu("blood", 150 + 100 * contrast), ORGANS["aorta"]),
        (anat.ivc_dx, (14.0, 10.0), anat.hu("blood", 100 + 40 * contrast), ORGANS["ivc"]),
    ):
        start = np.array([bx + dx, vessel_y, zmin - 5])
        end = np.array([bx + dx, vessel_y, zmax + 5])
        _tube(c, start, end, semi[0], hu, organ=organ)


def _geometry(
    rng: np.random.Generator, shape: tuple[int, int, int], z_cover: float = 200.0
) -> tuple[np.ndarray, dict[str, Any]]:
    fov = rng.uniform(360, 420)
    inplane = fov / shape[0]
    # At least 200 mm of z coverage, so both kidneys fit whatever the slice count.
    slice_mm = max(float(rng.choice([2.0, 2.5, 3.0, 4.0, 5.0])), z_cover / shape[2]) * rng.uniform(1.0, 1.15)
    spacing = np.array([inplane, fov / shape[1], slice_mm])
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -(np.asarray(shape) - 1) / 2 * spacing + np.array([rng.uniform(-10, 10), 0, 0])
    a, b = rng.uniform(135, 170), rng.uniform(95, 125)
    geo = {
        "body_centre": (rng.uniform(-8, 8), rng.uniform(-15, 5)),
        "body_semi": (a, b),
        "z_ref": rng.uniform(-15, 15),
    }
    geo["spine_y"] = geo["body_centre"][1] - b + rng.uniform(48, 58)
    return affine, geo


def _kidney_centres(rng: np.random.Generator, geo: dict[str, Any]) -> dict[str, np.ndarray]:
    bx, _ = geo["body_centre"]
    ky = geo["spine_y"] + rng.uniform(0, 12)
    drop = rng.uniform(10, 30)  # the right kidney sits lower
    right = np.array([bx + rng.uniform(55, 80), ky, geo["z_ref"] - drop / 2])
    left = np.array([bx - rng.uniform(55, 80), ky + rng.uniform(-4, 4), geo["z_ref"] + drop / 2])
    return {"right": right, "left": left}


def _from_masks(
    mask_file: Path, rng: np.random.Generator
) -> tuple[_Canvas, dict[str, Any], dict[str, np.ndarray]]:
    vol = load_nifti(mask_file, role="label")
    affine = vol.affine.copy()
    if not np.allclose(affine[:3, :3], np.diag(np.diag(affine[:3, :3])), atol=1e-3 * np.abs(affine).max()):
        raise DataError(mask_file, "rotated affines are not supported by --masks-from (axis-aligned only)")
    c = _Canvas(vol.array.shape, affine)
    kidney = vol.array > 0
    if not kidney.any():
        raise DataError(mask_file, "no kidney in this label map")
    side_map, _ = assign_sides(kidney, affine)
    centres = {}
    for name, code in (("right", 1), ("left", 2)):
        idx = np.argwhere(side_map == code)
        if len(idx):
            centres[name] = affine[:3, :3] @ idx.mean(axis=0) + affine[:3, 3]
    mean_c = np.mean(list(centres.values()), axis=0)
    bx = float(mean_c[0]) if len(centres) == 2 else float(np.mean(c.axes[0]))
    extent_x = max(abs(v[0] - bx) for v in centres.values()) + 70
    a = max(rng.uniform(135, 170), extent_x)
    b = rng.uniform(95, 125)
    spine_y = float(mean_c[1]) - rng.uniform(0, 10)
    geo = {
        "body_centre": (bx, spine_y + b - rng.uniform(48, 58)),
        "body_semi": (a, b),
        "z_ref": float(mean_c[2]),
        "spine_y": spine_y,
        "kidney_mask": vol.array,
    }
    return c, geo, centres


def _kidney_from_mask(
    c: _Canvas, rng: np.random.Generator, mask: np.ndarray, contrast: float, anat: Anatomy
) -> None:
    box = ndimage.find_objects((mask > 0).astype(np.uint8))[0]
    pad = tuple(slice(max(s.start - 2, 0), min(s.stop + 2, n)) for s, n in zip(box, mask.shape, strict=True))
    sub = mask[pad]
    depth = ndimage.distance_transform_edt(sub > 0, sampling=c.spacing)
    cortex_hu = anat.hu("cortex", 120 + 100 * contrast + rng.normal(0, 8))
    medulla_hu = anat.hu("medulla", 70 + 40 * contrast)
    values = np.where(depth < rng.uniform(4, 7), cortex_hu, medulla_hu).astype(np.float32)
    values[depth > np.percentile(depth[sub > 0], 97)] = -90.0  # central sinus fat
    tumour = sub == 2
    values[tumour] = 60 + rng.normal(0, 12, size=int(tumour.sum()))
    target = c.hu[pad]
    target[sub > 0] = values[sub > 0]
    c.label[pad][sub > 0] = np.where(tumour, TUMOUR, KIDNEY)[sub > 0]
    c.organs[pad][sub > 0] = 0


def generate_case(
    case_id: str,
    seed: int,
    index: int,
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    mask_file: Path | None = None,
    axcodes: str | None = None,
    anatomy: AnatomyChoice = "fixed",
) -> DrawnCase:
    """Draw one phantom case.

    Args:
        case_id: Case name.
        seed: Dataset seed; with ``index`` it fixes everything drawn.
        index: Case number within the dataset.
        shape: RAS grid shape (x, y, z) when not taken from ``mask_file``.
        mask_file: A real label map (0 background, 1 kidney, 2 tumour) giving kidney geometry.
        axcodes: Orientation codes to write; drawn from :data:`ORIENTATIONS` when None.
        anatomy: ``fixed`` organs (the template), ``varied`` per case (sizes, positions, contrast phase
            unenhanced included; see :mod:`sidepair.data.phantom_anatomy`), or ``trunk``: ``varied`` over
            520 mm of z, with the chest's and the pelvis's levels (:mod:`sidepair.data.phantom_trunk`).

    Returns:
        The images in the chosen orientation, and the case's spec.
    """
    rng = np.random.default_rng([seed, index])
    contrast = float(rng.uniform(0.5, 1.0))
    anat = anatomy_for(anatomy, seed, index)
    if mask_file is None:
        affine, geo = _geometry(rng, shape, TRUNK_Z_MM if anatomy == "trunk" else 200.0)
        c = _Canvas(shape, affine)
        centres = _kidney_centres(rng, geo)
    else:
        c, geo, centres = _from_masks(mask_file, rng)
    body, cavity = _draw_body(c, rng, geo["body_centre"], geo["body_semi"])
    geo["r_body"] = _draw_spine(c, rng, (geo["body_centre"][0], geo["spine_y"]), 0)
    cavity3d = np.broadcast_to(cavity[:, :, None], c.shape)
    _draw_organs(c, rng, geo, contrast, cavity3d, anat)
    if anatomy == "trunk":
        vessels = np.isin(c.organs, (ORGANS["aorta"], ORGANS["ivc"]))
        draw_trunk(c, np.random.default_rng([seed, index, 2]), geo, contrast, cavity3d, vessels)
    tumour_side = None
    if mask_file is None:
        tumour_side = str(rng.choice(["right", "left"])) if rng.random() < 0.5 else None
        for name, sign in (("right", 1), ("left", -1)):
            rot, semi = _draw_kidney(c, rng, sign, centres[name], contrast, anat)
            if tumour_side == name:
                _draw_tumour(c, rng, sign, centres[name], rot, semi, body)
            if anat.mass is not None and anat.mass.side == sign:
                liver_hu = anat.hu("liver", _enhanced_liver_hu(contrast))
                _draw_mass(c, anat.mass, np.asarray(centres[name]), rot, semi, liver_hu, cavity3d)
                tumour_side = name if tumour_side in (None, name) else "both"
    else:
        _kidney_from_mask(c, rng, geo["kidney_mask"], contrast, anat)
        if (geo["kidney_mask"] == TUMOUR).any():
            tumour_side = "from-mask"
    noise = float(rng.uniform(5, 20))
    hu = ndimage.gaussian_filter(c.hu, sigma=0.6) if c.hu.size <= 4e7 else c.hu
    hu = hu + rng.normal(0, noise, size=c.shape).astype(np.float32)
    hu = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    codes = axcodes or str(rng.choice(ORIENTATIONS))
    transform = nio.ornt_transform(nio.axcodes2ornt(("R", "A", "S")), nio.axcodes2ornt(tuple(codes)))
    image = nib.Nifti1Image(hu, c.affine).as_reoriented(transform)
    label = nib.Nifti1Image(c.label, c.affine).as_reoriented(transform)
    organs = nib.Nifti1Image(c.organs, c.affine).as_reoriented(transform)
    side_map, _ = assign_sides(c.label > 0, c.affine, float(geo["body_centre"][0]))
    sides = nib.Nifti1Image(side_map, c.affine).as_reoriented(transform)
    for img in (image, label, organs, sides):
        img.set_qform(img.affine, code=1)
        img.set_sform(img.affine, code=1)
    spec = CaseSpec(
        case_id=case_id,
        axcodes=codes,
        spacing=tuple(float(s) for s in c.spacing),  # type: ignore[arg-type]
        shape=tuple(int(s) for s in c.shape),  # type: ignore[arg-type]
        kidneys={k: [round(float(x), 2) for x in v] for k, v in centres.items()},
        tumour=tumour_side,
        contrast=0.0 if anat.unenhanced else round(contrast, 3),
        noise_hu=round(noise, 2),
        masks_from=str(mask_file) if mask_file else None,
        anatomy=anatomy,
        levels=(
            {"lung_base_z": round(lung_base(geo), 2), "iliac_crest_z": round(iliac_crest(geo), 2)}
            if anatomy == "trunk"
            else None
        ),
    )
    return DrawnCase(image, label, organs, sides, spec)


def _spec_rows(specs: list[CaseSpec]) -> list[dict[str, Any]]:
    """``phantom.json``'s rows: ``levels`` only where drawn, so other anatomies' files stay as they were."""
    return [{k: v for k, v in asdict(s).items() if k != "levels" or v} for s in specs]


def _mask_files(masks_from: Path) -> list[Path]:
    files = sorted(masks_from.glob("case_*/segmentation.nii.gz")) or sorted(masks_from.glob("*.nii.gz"))
    if not files:
        raise DataError(masks_from, "no label maps found (expected case_*/segmentation.nii.gz or *.nii.gz)")
    return files


def generate_phantom(
    out: str | Path,
    cases: int = 20,
    seed: int = 0,
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    masks_from: str | Path | None = None,
    progress: bool = False,
    anatomy: AnatomyChoice = "fixed",
) -> list[CaseSpec]:
    """Write ``cases`` phantom cases in KiTS layout plus ``phantom.json`` (what was drawn).

    Each case folder holds ``imaging.nii.gz``, ``segmentation.nii.gz`` and ``organs.nii.gz`` (the organ
    map, codes :data:`ORGANS`; KiTS readers ignore it).

    Args:
        out: Output folder; existing complete cases with the same parameters are kept.
        cases: Number of cases.
        seed: Dataset seed (the same seed gives the same files).
        shape: RAS grid shape (x, y, z).
        masks_from: Folder of real label maps for kidney geometry (cycled through, in sorted order).
        progress: Show a progress bar.
        anatomy: ``fixed`` organs or ``varied`` per case (see :func:`generate_case`).

    Returns:
        The spec of every case.
    """
    if cases < 1:
        raise DataError(out, f"--cases must be at least 1, got {cases}")
    if len(shape) != 3 or min(shape) < 16:
        raise DataError(out, f"--shape must be three sizes of at least 16, got {tuple(shape)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    masks = _mask_files(Path(masks_from)) if masks_from else None
    specs = []
    for i in tqdm(range(cases), desc="phantom", unit="case", disable=None if progress else True):
        case_id = f"case_{i:05d}"
        mask_file = masks[i % len(masks)] if masks else None
        drawn = generate_case(case_id, seed, i, tuple(shape), mask_file, anatomy=anatomy)  # type: ignore[arg-type]
        with atomic_dir(out / case_id) as tmp:
            nib.save(drawn.image, str(tmp / "imaging.nii.gz"))
            nib.save(drawn.label, str(tmp / "segmentation.nii.gz"))
            nib.save(drawn.organs, str(tmp / "organs.nii.gz"))
        specs.append(drawn.spec)
    write_json(
        out / "phantom.json",
        {
            "generator": "sidepair phantom",
            "seed": seed,
            "shape": list(shape),
            "masks_from": str(masks_from) if masks_from else None,
            "anatomy": anatomy,
            "organs": {"file": "organs.nii.gz", "codes": ORGANS},
            "note": "synthetic phantom, not patient data",
            "cases": _spec_rows(specs),
        },
    )
    return specs


SLICE_AXCODES = "SPL"  # axis 0 the slices; rows toward posterior, columns toward the patient's left


def _png(path: Path, array: np.ndarray) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def write_slices(
    out: str | Path,
    cases: int = 20,
    seed: int = 0,
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    slices_per_case: int = 4,
    progress: bool = False,
    anatomy: AnatomyChoice = "fixed",
) -> list[CaseSpec]:
    """Write phantom cases as a slice folder: ``images/*.png``, colour ``masks/*.png``, ``slices.json``.

    The layout of real 2D kidney sets such as ``kits19_slices``: an 8-bit grey PNG holding HU clipped to
    [0, 255], an RGB mask (blue kidney, red tumour), and per file its source case (the patient: the unit of
    splitting), slice index, spacing and axis codes, in the radiological convention. Slices are spread over
    each case's kidneys. ``anatomy`` is :func:`generate_case`'s.

    Returns:
        The spec of every case drawn.
    """
    if slices_per_case < 1:
        raise DataError(out, f"slices per case must be at least 1, got {slices_per_case}")
    out = Path(out)
    specs, meta = [], {}
    transform = nio.ornt_transform(nio.axcodes2ornt(("R", "A", "S")), nio.axcodes2ornt(tuple(SLICE_AXCODES)))
    for i in tqdm(range(cases), desc="phantom slices", unit="case", disable=None if progress else True):
        case_id = f"case_{i:05d}"
        drawn = generate_case(case_id, seed, i, tuple(shape), axcodes="RAS", anatomy=anatomy)  # type: ignore[arg-type]
        spec = drawn.spec
        hu = nio.apply_orientation(np.asarray(drawn.image.dataobj), transform)
        lab = nio.apply_orientation(np.asarray(drawn.label.dataobj), transform)
        spacing = [float(v) for v in np.asarray(spec.spacing)[[2, 1, 0]]]
        with_kidney = np.flatnonzero((lab > 0).any(axis=(1, 2)))
        picks = np.unique(
            np.linspace(with_kidney[0], with_kidney[-1], slices_per_case + 2).round().astype(int)[1:-1]
        )
        for k in picks:
            name = f"{case_id}_{k:03d}.png"
            _png(out / "images" / name, np.clip(hu[k], 0, 255).astype(np.uint8))
            rgb = np.zeros((*lab[k].shape, 3), np.uint8)
            rgb[lab[k] == KIDNEY] = (0, 0, 255)
            rgb[lab[k] == TUMOUR] = (255, 0, 0)
            _png(out / "masks" / name, rgb)
            meta[name] = {
                "axcodes": SLICE_AXCODES,
                "kits19_case": case_id,
                "slice_index_axis0": int(k),
                "voxel_spacing_mm_axis0_1_2": spacing,
            }
        specs.append(spec)
    write_json(out / "slices.json", meta)
    write_json(
        out / "phantom.json",
        {
            "generator": "sidepair phantom --layout slices",
            "seed": seed,
            "shape": list(shape),
            "note": "synthetic phantom, not patient data",
            "cases": _spec_rows(specs),
        },
    )
    return specs


def load_phantom_specs(folder: str | Path) -> dict[str, dict[str, Any]]:
    """Read ``phantom.json``: case id -> spec."""
    data = json.loads((Path(folder) / "phantom.json").read_text(encoding="utf-8"))
    return {c["case_id"]: c for c in data["cases"]}
