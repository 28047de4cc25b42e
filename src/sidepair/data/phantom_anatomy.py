"""How much the phantom's organs vary from case to case, and their CT numbers per contrast phase.

The ``fixed`` anatomy is the phantom's template: every case has the same liver, spleen, stomach and great
vessels relative to its body, enhanced at a contrast factor in [0.5, 1]. That is enough to segment kidneys
on, but a side model trained on it learns one template of organs, in one contrast phase. The ``varied``
anatomy draws, per case, each organ's size, position and turn around its template, the vessels' distance
from the midline, how full the stomach is, and the contrast phase, unenhanced included (real scans come
in every phase). It draws from its own random stream, so ``fixed`` cases stay exactly as they were.

It also draws the things that put a large organ-grey mass where an anatomy-reading side model would not
expect one: an enlarged spleen reaching down to the kidneys (splenomegaly) and a large renal mass, on
either side at random, as grey as the case's liver. Real scans have both; without them, "a big
homogeneous organ on this side" is a shortcut for "this is the liver's side" that a left renal mass or
a large spleen turns over.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from sidepair.choices import AnatomyChoice

# Unenhanced CT numbers (HU) of soft tissue, from the radiology literature's usual ranges: liver 50-65,
# spleen 40-50, blood 35-45, renal parenchyma 25-40.
UNENHANCED = {"liver": 57.0, "spleen": 46.0, "blood": 40.0, "cortex": 32.0, "medulla": 30.0}
UNENHANCED_SHARE = 0.3
SPLENOMEGALY_SHARE = 0.2
MASS_SHARE = 0.35


@dataclass(frozen=True)
class OrganPose:
    """An organ's change from its template: a shift (x, y, z mm), a scale per semi-axis, a turn (rad)."""

    shift: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    turn: float = 0.0


def _pose(
    rng: np.random.Generator, shift_mm: tuple[float, float, float], scale: tuple[float, float]
) -> OrganPose:
    return OrganPose(
        shift=tuple(float(rng.uniform(-s, s)) for s in shift_mm),  # type: ignore[arg-type]
        scale=tuple(float(rng.uniform(*scale)) for _ in range(3)),  # type: ignore[arg-type]
        turn=float(rng.uniform(-0.25, 0.25)),
    )


@dataclass(frozen=True)
class Mass:
    """A large renal mass, grey like the case's liver.

    Attributes:
        side: 1 on the patient's right kidney, -1 on the left.
        radius: Its radius (mm); KiTS masses reach 10 cm across and more.
        angle: Where on the kidney's lateral surface it grows from (rad, 0 = straight out).
        elev: Where along the kidney's long axis (-1 to 1).
        below_liver: How much darker than the liver it is (HU).
        texture_seed: Seed of its heterogeneous texture.
    """

    side: int
    radius: float
    angle: float
    elev: float
    below_liver: float
    texture_seed: int


@dataclass(frozen=True)
class Anatomy:
    """One case's organ poses, vessel offsets and contrast phase (defaults: the fixed template).

    Attributes:
        liver: Pose of the liver.
        spleen: Pose of the spleen.
        stomach: Pose of the stomach.
        stomach_gas: Share of the stomach's inner part holding gas (the rest fluid).
        aorta_dx: Aorta centre from the body's midline (mm, negative = patient's left).
        ivc_dx: IVC centre from the midline (mm, positive = patient's right).
        unenhanced: Whether the case is an unenhanced (non-contrast) scan.
        mass: A large renal mass, or None.
    """

    liver: OrganPose = field(default_factory=OrganPose)
    spleen: OrganPose = field(default_factory=OrganPose)
    stomach: OrganPose = field(default_factory=OrganPose)
    stomach_gas: float = 0.5
    aorta_dx: float = -14.0
    ivc_dx: float = 20.0
    unenhanced: bool = False
    mass: Mass | None = None

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Anatomy:
        """A varied anatomy.

        Sizes 0.75-1.25 (spleen and stomach 0.6-1.35) of the template, shifts of up to 25 mm across and
        30 mm along z, turns of up to 0.25 rad, vessels 8-24 mm off the midline, 30 % unenhanced scans;
        20 % with an enlarged spleen (1.35-1.9 times, 30-70 mm lower), 35 % with a large renal mass
        (radius 35-60 mm) on a side drawn at random.
        """
        anatomy = cls(
            liver=_pose(rng, (20.0, 15.0, 30.0), (0.75, 1.25)),
            spleen=_pose(rng, (15.0, 15.0, 30.0), (0.6, 1.35)),
            stomach=_pose(rng, (25.0, 15.0, 30.0), (0.6, 1.35)),
            stomach_gas=float(rng.uniform(0.0, 1.0)),
            aorta_dx=float(rng.uniform(-20.0, -8.0)),
            ivc_dx=float(rng.uniform(14.0, 26.0)),
            unenhanced=bool(rng.random() < UNENHANCED_SHARE),
        )
        # Drawn after the rest, so that the draws above stay as they were without these.
        if rng.random() < SPLENOMEGALY_SHARE:
            k = float(rng.uniform(1.35, 1.9))
            x, y, z = anatomy.spleen.shift
            grown = OrganPose((x, y, z - float(rng.uniform(30.0, 70.0))), (k, k, k), anatomy.spleen.turn)
            anatomy = replace(anatomy, spleen=grown)
        if rng.random() < MASS_SHARE:
            mass = Mass(
                side=int(rng.choice([1, -1])),
                radius=float(rng.uniform(35.0, 60.0)),
                angle=float(rng.uniform(-0.9, 0.9)),
                elev=float(rng.uniform(-0.8, 0.8)),
                below_liver=float(rng.uniform(0.0, 35.0)),
                texture_seed=int(rng.integers(2**31)),
            )
            anatomy = replace(anatomy, mass=mass)
        return anatomy

    def hu(self, tissue: str, enhanced: float) -> float:
        """``enhanced`` (the template's value at the case's contrast), or ``tissue``'s unenhanced value."""
        return UNENHANCED[tissue] if self.unenhanced else enhanced


def anatomy_for(choice: AnatomyChoice, seed: int, index: int) -> Anatomy:
    """The anatomy of case ``index`` of a dataset drawn with ``seed``."""
    if choice == "fixed":
        return Anatomy()
    # ``trunk`` is ``varied`` with more levels drawn around it (phantom_trunk).
    return Anatomy.draw(np.random.default_rng([seed, index, 1]))
