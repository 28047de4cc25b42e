"""Kidney sections for the side-pair task, cut from the store.

Left and right come from the store's index (world-coordinate sides), never from array halves of
unoriented data: store arrays are RAS, indexed (z, y, x) with x toward the patient's right, and each
case records its body midline. Three modes:

- ``masked`` (the paper): the side's kidney voxels only (zero elsewhere), a crop of fixed size
  centred on the kidney's bounding box.
- ``bbox``: the same crop, unmasked.
- ``half``: the half-slab on the side's side of the body midline, anchored at the midline. It reads
  the image and the index's geometry only, never a label.

3D sections are (z, y, x) crops; 2D sections are axial slices (y, x). Kidney sections (``masked``,
``bbox``) are never mirrored: a mirrored right kidney has a left kidney's shape, so it would keep a side
it no longer shows. ``half`` context sections may be (the ``mirror`` setting): a mirrored half still
holds its own side's organs, and mirroring half of them takes handedness away as a cue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from sidepair.data.index import SIDES, CaseEntry
from sidepair.data.labels import SIDE_CODES
from sidepair.data.store import Store
from sidepair.errors import StoreError

Mode = Literal["masked", "bbox", "half"]


@dataclass(frozen=True)
class Section:
    """One concrete section: a case, a side, and the crop to read.

    Attributes:
        case_id: Store case.
        side: ``"right"`` or ``"left"``.
        start: Crop origin (z, y, x) in store indices; may lie outside the array (padded).
        size: Crop size (z, y, x); z is 1 for 2D sections.
    """

    case_id: str
    side: str
    start: tuple[int, int, int]
    size: tuple[int, int, int]


def read_crop(array: np.ndarray, start: tuple[int, ...], size: tuple[int, ...], pad: float) -> np.ndarray:
    """Read ``array[start : start + size]`` (a memory map is read only there), padding outside it."""
    out = np.full(size, pad, dtype=np.float32)
    src, dst = [], []
    for s, n, dim in zip(start, size, array.shape, strict=True):
        lo, hi = max(s, 0), min(s + n, dim)
        if lo >= hi:
            return out
        src.append(slice(lo, hi))
        dst.append(slice(lo - s, hi - s))
    out[tuple(dst)] = array[tuple(src)]
    return out


class SectionSampler:
    """Enumerates and reads the sections of a set of store cases.

    Args:
        store: An open store.
        case_ids: Cases to draw from.
        mode: ``masked``, ``bbox`` or ``half``.
        dims: 2 or 3.
        size: Section size: (z, y, x) in 3D, (y, x) in 2D.
        jitter: For random draws, the crop centre moves by up to this fraction of the size.
    """

    def __init__(
        self,
        store: Store,
        case_ids: list[str],
        mode: Mode,
        dims: int,
        size: tuple[int, ...],
        jitter: float = 0.0,
    ) -> None:
        if mode not in ("masked", "bbox", "half"):
            raise StoreError(f"unknown section mode {mode!r}; choose masked, bbox or half")
        if len(size) != dims:
            raise StoreError(f"section size {tuple(size)} does not have {dims} dimensions")
        self.store = store
        self.mode = mode
        self.dims = dims
        self.size = (1, *size) if dims == 2 else tuple(size)
        self.jitter = jitter
        self.units: list[tuple[str, str]] = []  # (case, side) pairs that have a section
        for case_id in case_ids:
            entry = store.cases[case_id]
            for side in SIDES:
                if mode == "half" or entry.side_box(side):
                    self.units.append((case_id, side))
        if not self.units:
            raise StoreError(
                f"{store.path}: no {mode} sections in {len(case_ids)} cases "
                f"({'no labelled kidneys' if mode != 'half' else 'no cases'})"
            )
        views = {tuple(store.cases[c].network.order) for c, _ in self.units if store.cases[c].network}
        order = list(views.pop()) if views else [0, 1, 2]
        if dims == 2 and order[0] != 0:
            raise StoreError(
                f"{store.path}: nnU-Net's 2d configuration slices these scans along an axis that is not "
                "axial; side-pair 2D sections are axial (use a 3d configuration)"
            )
        # The tensor dimension that runs left-right in a section as read (channel first): the last one,
        # unless nnU-Net's axis order moved it.
        self.lateral_dim = order.index(2) - 3

    def sides(self) -> dict[str, list[int]]:
        """Indices into :attr:`units` per side."""
        return {s: [i for i, u in enumerate(self.units) if u[1] == s] for s in SIDES}

    def _centre(
        self, entry: CaseEntry, side: str, rng: np.random.Generator | None, jitter: float
    ) -> list[float]:
        sz, sy, sx = self.size
        shape = entry.shape
        if self.mode == "half":
            mid = entry.midline.x_index
            body = entry.body_centre.index
            # Anchored at the midline and extending laterally: x grows toward the patient's right.
            cx = mid + sx / 2 if side == "right" else mid - sx / 2
            centre = [body[0], body[1], cx]
            if rng is not None:  # any slice / slab along z
                centre[0] = (
                    rng.uniform(0, shape[0] - 1)
                    if self.dims == 2
                    else rng.uniform(min(sz / 2, shape[0] / 2), max(shape[0] - sz / 2, shape[0] / 2))
                )
            elif self.dims == 2:
                centre[0] = shape[0] / 2
        else:
            box = entry.side_box(side)
            assert box is not None  # units hold only sides with a kidney
            centre = [(lo + hi) / 2 for lo, hi in box]
            if self.dims == 2:
                lo, hi = box[0]
                inner = max((hi - lo) * 0.1, 0)  # keep to the central 80 % of the kidney's slices
                centre[0] = rng.uniform(lo + inner, hi - inner) if rng is not None else (lo + hi) / 2
        if rng is not None and jitter > 0:
            for axis in (1, 2) if self.dims == 2 else (0, 1, 2):
                centre[axis] += rng.uniform(-jitter, jitter) * self.size[axis]
        return centre

    def draw(self, unit: int, rng: np.random.Generator | None = None, jitter: float | None = None) -> Section:
        """A concrete section of ``units[unit]``: random position with ``rng``, the central one without.

        Args:
            unit: Index into :attr:`units`.
            rng: Random source for the position; None gives the central section.
            jitter: Overrides the sampler's jitter for this draw.
        """
        case_id, side = self.units[unit]
        centre = self._centre(self.store.cases[case_id], side, rng, self.jitter if jitter is None else jitter)
        if self.dims == 2:
            start = (int(np.clip(round(centre[0]), 0, self.store.cases[case_id].shape[0] - 1)),)
            start += tuple(int(round(c - s / 2)) for c, s in zip(centre[1:], self.size[1:], strict=True))
        else:
            start = tuple(int(round(c - s / 2)) for c, s in zip(centre, self.size, strict=True))
        return Section(case_id, side, start, self.size)  # type: ignore[arg-type]

    def read(self, section: Section) -> np.ndarray:
        """The section's voxels, float32, shape ``(1, *size)`` (a channel axis first).

        In a store of nnU-Net's preprocessing the section comes in nnU-Net's axis order (its
        :attr:`lateral_dim` tells which dimension runs left-right).
        """
        image = self.store.array(section.case_id, "image")
        crop = read_crop(image, section.start, section.size, self.store.background_value(section.case_id))
        if self.mode == "masked":
            label = self.store.array(section.case_id, "label")
            side = self.store.array(section.case_id, "side")
            mask = (read_crop(label, section.start, section.size, 0) > 0) & (
                read_crop(side, section.start, section.size, 0) == SIDE_CODES[section.side]
            )
            crop = np.where(mask, crop, 0.0).astype(np.float32)
        view = self.store.cases[section.case_id].network
        if view is not None:  # nnU-Net's axis order, which its network is fed in
            crop = view.to_network(crop)
        return crop[0:1] if self.dims == 2 else crop[None]


# Validation draws its sections and pairs at a fixed "epoch" of its own, never one that training reaches.
VAL_EPOCH = 1_000_000


def sample_sections(
    sampler: SectionSampler, n: int, seed: int, epoch: int, random_crops: bool = True
) -> list[Section]:
    """Draw ``n`` sections for the tasks that read single sections (restoration, contrastive views).

    The sides alternate evenly, as the first sections of side-pair pairs do, so every task sees the
    same mix of sides; the result depends only on ``(seed, epoch)`` and the sampler's cases.

    Args:
        sampler: Sections to draw from.
        n: Number of sections.
        seed: Run seed.
        epoch: Epoch (validation uses a fixed one).
        random_crops: Random crop positions (training); the central section otherwise.
    """
    rng = np.random.default_rng([seed, epoch, 6271])
    by_side = sampler.sides()
    usable = [s for s in SIDES if by_side[s]]
    first = int(rng.integers(len(usable)))
    return [
        sampler.draw(
            int(rng.choice(by_side[usable[(first + i) % len(usable)]])), rng if random_crops else None
        )
        for i in range(n)
    ]
