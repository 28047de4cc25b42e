"""Pair sampling for the side-pair task: balanced, deterministic, never a section with itself."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from sidepair.data.augment import Augmenter, item_state, lateral_flip
from sidepair.data.sections import Section, SectionSampler
from sidepair.errors import StoreError


@dataclass(frozen=True)
class Pair:
    """Two sections and whether they come from the same side (1) or different sides (0)."""

    a: Section
    b: Section
    same: int


def sample_pairs(
    sampler: SectionSampler, n_pairs: int, seed: int, epoch: int, random_crops: bool = True
) -> list[Pair]:
    """Draw ``n_pairs`` pairs, exactly half same-side (an odd count gives one more different pair).

    The first section's side alternates evenly; a same-side partner comes from another case when
    the side has several, else another crop of the same case; a section is never paired with
    itself. The result depends only on ``(seed, epoch)`` and the sampler's cases.

    Args:
        sampler: Sections to draw from.
        n_pairs: Number of pairs.
        seed: Run seed.
        epoch: Epoch (validation uses a fixed one).
        random_crops: Random crop positions (training); the central section otherwise.

    Returns:
        The pairs, shuffled.
    """
    rng = np.random.default_rng([seed, epoch, 7919])
    by_side = sampler.sides()
    usable = [s for s in ("right", "left") if by_side[s]]
    if len(usable) < 2:
        raise StoreError(
            f"{sampler.store.path}: sections of both sides are needed for pairs; only {usable or 'none'} "
            f"found in {len({u[0] for u in sampler.units})} cases"
        )
    labels = np.array([1] * (n_pairs // 2) + [0] * (n_pairs - n_pairs // 2))
    rng.shuffle(labels)
    pairs = []
    for i, same in enumerate(labels):
        side = usable[i % 2]
        other = usable[1 - i % 2]
        a_unit = int(rng.choice(by_side[side]))
        a = sampler.draw(a_unit, rng if random_crops else None)
        if same:
            pool = [u for u in by_side[side] if sampler.units[u][0] != sampler.units[a_unit][0]]
            b_unit = int(rng.choice(pool)) if pool else a_unit
            b = sampler.draw(b_unit, rng if random_crops or b_unit == a_unit else None)
            for _ in range(20):  # another crop of the same case must still be another section
                if b != a:
                    break
                b = sampler.draw(b_unit, rng, jitter=max(sampler.jitter, 0.1))
            if b == a:
                raise StoreError(f"only one {side} section ({a.case_id}) to pair; more cases are needed")
        else:
            b = sampler.draw(int(rng.choice(by_side[other])), rng if random_crops else None)
        pairs.append(Pair(a, b, int(same)))
    return pairs


class PairDataset(Dataset):
    """Reads the sections of a list of pairs: items are ``(x1, x2, same, right1, right2)`` tensors.

    ``right1``/``right2`` are 1 for a section of the patient's right side (kept under mirroring).

    Args:
        sampler: Where the sections are read.
        pairs: The pairs.
        augment: Augmentation of each section (never a flip), or ``None``.
        seed: Integers fixing the augmentation draws, e.g. ``(run seed, epoch)``.
        mirror: Mirror each section left-right with probability 0.5, keeping its side (context sections
            only: the pair's target stays the anatomical same/different).
        export_clip: Share of sections clipped as an 8-bit slice export would clip their HU.
        window: The store's HU window (its values are ``(HU - low) / (high - low)``); needed for
            ``export_clip``.
    """

    def __init__(
        self,
        sampler: SectionSampler,
        pairs: list[Pair],
        augment: Augmenter | None = None,
        seed: tuple[int, ...] = (0,),
        mirror: bool = False,
        export_clip: float = 0.0,
        window: tuple[float, float] | None = None,
    ) -> None:
        if export_clip and window is None:
            raise ValueError("export_clip needs the store's HU window")
        self.export_clip = export_clip
        self.window = window
        self.sampler = sampler
        self.pairs = pairs
        self.augment = augment
        self.seed = seed
        self.flip = lateral_flip(sampler.dims, lateral_dim=sampler.lateral_dim) if mirror else None

    def _section(self, section: Section, key: tuple[int, ...]) -> torch.Tensor:
        crop = self.sampler.read(section)
        if self.flip is not None:
            self.flip.set_random_state(seed=item_state((*self.seed, *key), 31))
            crop = np.asarray(self.flip(crop), dtype=np.float32)
        if self.export_clip:
            crop = self._clip_as_export(crop, key)
        if self.augment is not None:
            crop, _ = self.augment(crop, None, (*self.seed, *key))
        return torch.from_numpy(np.ascontiguousarray(crop))

    def _clip_as_export(self, crop: np.ndarray, key: tuple[int, ...]) -> np.ndarray:
        """Clip a section's HU as a slice saved to 8 bits without a window would be.

        KiTS19's PNGs, for one, hold HU clipped to [0, 255]: fat and air then look alike, which a model
        trained only on full-range HU has never seen.
        """
        rng = np.random.default_rng(item_state((*self.seed, *key), 57))
        if rng.random() >= self.export_clip:
            return crop
        low, high = self.window  # type: ignore[misc]
        lo = rng.uniform(-160.0, 40.0)
        hi = lo + rng.uniform(200.0, 400.0)
        return np.clip(crop, (lo - low) / (high - low), (hi - low) / (high - low)).astype(np.float32)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        pair = self.pairs[i]
        return (
            self._section(pair.a, (i, 0)),
            self._section(pair.b, (i, 1)),
            torch.tensor(float(pair.same)),
            torch.tensor(float(pair.a.side == "right")),
            torch.tensor(float(pair.b.side == "right")),
        )
