"""Laterality QC: does a scan's header put the patient's right where its anatomy says it is.

A same/different pair model cannot answer this: the two halves of a flipped scan are still "different".
The check reads an *absolute* side instead: the side head of a side-pair run trained with ``side_head``
on ``half`` sections mirrored at random (``mirror``), so that the head had to tell sides by what they
hold (liver against spleen and stomach, IVC against aorta), not by handedness, which a flip leaves
unchanged. At each axial level the half-slab the header calls right and the one it calls left are both
scored; the level's evidence that the header is right is ``logit(right half) - logit(left half)``, and the
scan's probability is the sigmoid of its levels' mean evidence (3D volumes: many levels over z; a 2D slice:
one). Evidence is averaged as logits, the way the crops of one level are: a mean of probabilities counts a
level the head reads at 0.99 no more than one at 0.9, so the many levels of a scan that hold no organ that
differs between the sides (pelvis, lung bases: about 0.5 each) pull it toward 0.5 (docs/measurements.md).

Each section is scored as itself and mirrored, and the two logits averaged: the score is then blind to
handedness by construction, so a flipped scan gets exactly ``1 - p`` of the scan as it was, and only
what the halves hold can move it.

A single slice is also read at several grid phases (:func:`grid_phases`) and their logits averaged: brought
to the model's 3 mm grid from its first pixel, one reading's evidence moved with where that pixel fell (a
median sd of 0.35-0.45 logit over nine phases; up to 3 logit on a real slice cropped by one pixel), enough
to turn a verdict (``benchmarks/studies/slice_phase.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from scipy.special import expit

from sidepair.choices import DEFAULT_SIDE_THRESHOLD, DEFAULT_SLICE_THRESHOLD
from sidepair.config import PreprocessSettings
from sidepair.data.preprocess import normalize, resample_case, target_pixdim
from sidepair.data.sections import read_crop
from sidepair.data.sides import body_centre
from sidepair.data.volume import Volume
from sidepair.errors import DataError, SidepairError
from sidepair.models.checkpoint import BEST, PretrainCheckpoint, read_checkpoint
from sidepair.models.siamese import Siamese
from sidepair.qc.inputs import Reading, read_scan
from sidepair.qc.levels import LevelReading, read_level
from sidepair.qc.verdict import SideCheck, decide

BODY_HU = -500.0
MAX_LEVELS = 48
SHIFTS = 5  # crops per side and level: centred, and moved by an eighth of the section up, down, in, out
SLICE_PHASES = 3  # grid phases per in-plane axis at which a single slice is read


def default_model_path() -> Path:
    """The side model shipped with the package (``scripts/train_side_model.py`` trains it)."""
    return Path(str(resources.files("sidepair") / "resources" / "side_model.pt"))


def _load_side_network(path: Path) -> tuple[Siamese, PreprocessSettings, tuple[int, ...], str]:
    """One side model's network, preprocessing, section size and file (see :meth:`SideModel.load`)."""
    if path.is_dir():
        path = path / BEST
    if not path.exists():
        raise SidepairError(f"{path}: side model not found")
    ckpt = read_checkpoint(path, PretrainCheckpoint)
    config = ckpt.config
    task = config.get("task", "side-pair")
    if task != "side-pair":
        raise SidepairError(f"{path}: a {task} pretraining run, not a side model (side-pair)")
    if config.get("sections") != "half":
        raise SidepairError(
            f"{path}: pretrained on {config.get('sections')} sections; the check cuts half sections "
            "(kidney sections would need a kidney mask the scan does not have)"
        )
    preprocess = PreprocessSettings.model_validate(ckpt.preprocess)
    if ckpt.encoder_config.get("architecture", "monai") != "monai" or preprocess.nnunet is not None:
        raise SidepairError(
            f"{path}: a side model of nnU-Net's architecture on nnU-Net's preprocessing; check-sides "
            "cuts sections with sidepair's own preprocessing: pretrain the side model without "
            "--architecture nnunet"
        )
    if not config.get("side_head") or "side_classifier.weight" not in ckpt.network_weights:
        raise SidepairError(
            f"{path}: a side-pair model without a side head (a pair model cannot say which side a "
            "section shows); pretrain with --side-head --mirror"
        )
    network = Siamese.from_checkpoint(ckpt)
    return network, preprocess, tuple(int(v) for v in config["section_size"]), str(path)


def grid_phases(volume: Volume, pixdim_xy: tuple[float, float], phases: int) -> list[Volume]:
    """The slice with its first pixels dropped, so that the model's grid starts at ``phases`` offsets an axis.

    The offsets are ``0, 1/phases, ...`` of the model's spacing, each rounded to whole pixels of the scan;
    the world position of every pixel kept is unchanged. A scan whose pixels are as large as the model's
    has one phase.

    Args:
        volume: A single slice (RAS).
        pixdim_xy: The model's spacing in x and y (mm).
        phases: Phases per axis.

    Returns:
        The slice at each phase, x's outer.
    """
    steps = []
    for axis, target in enumerate(pixdim_xy):
        size = float(volume.spacing[axis])
        ks = {int(round(f / phases * target / size)) for f in range(phases)}
        steps.append(sorted(k for k in ks if k * size < target))  # a whole step of the grid is no new phase
    out = []
    for kx in steps[0]:
        for ky in steps[1]:
            affine = volume.affine.copy()
            affine[:3, 3] = (volume.affine @ np.array([kx, ky, 0.0, 1.0]))[:3]
            out.append(Volume(volume.array[kx:, ky:], affine, volume.source))
    return out


class SideModel:
    """A side-pair encoder with an absolute side head, and the preprocessing it was trained on.

    Args:
        networks: The siamese network (its ``side_classifier`` set), or several trained alike and read
            together.
        preprocess: The store settings their sections were cut with.
        section_size: (y, x) in 2D, (z, y, x) in 3D.
        source: Their files, for messages and reports.
    """

    def __init__(
        self,
        networks: Siamese | list[Siamese],
        preprocess: PreprocessSettings,
        section_size: tuple[int, ...],
        source: str,
    ) -> None:
        self.networks = [n.eval() for n in (networks if isinstance(networks, list) else [networks])]
        self.preprocess = preprocess
        self.dims = self.networks[0].encoder.spatial_dims
        self.size = (1, *section_size) if self.dims == 2 else tuple(section_size)
        self.source = source
        self.slice_phases = SLICE_PHASES

    @classmethod
    def load(cls, path: str | Path | Sequence[str | Path] | None = None) -> SideModel:
        """Load a side-pair run folder or checkpoint, or several read together; None: the shipped one.

        Several are read together as nnU-Net reads its folds: their outputs (here the side head's logits)
        averaged.

        Raises:
            SidepairError: Missing, not a side-pair run, not cut on half sections, or without a side head;
                several that were not cut alike.
        """
        if path is None:
            paths = [default_model_path()]
        elif isinstance(path, (str, Path)):
            paths = [Path(path)]
        else:
            paths = [Path(p) for p in path]
        if not paths:
            raise SidepairError("no side model given")
        members = [_load_side_network(p) for p in paths]
        _, preprocess, size, first = members[0]
        for _, other_preprocess, other_size, other in members[1:]:
            if (other_preprocess, other_size) != (preprocess, size):
                raise SidepairError(
                    f"{other}: cut its sections otherwise than {first} (preprocessing or section size); "
                    "side models read together must be cut alike"
                )
        return cls([m[0] for m in members], preprocess, size, " + ".join(m[3] for m in members))

    @torch.no_grad()
    def right_logits(self, crops: np.ndarray, batch: int = 32) -> np.ndarray:
        """The side head's logit of "right" per section ``(n, 1, *size)``.

        Averaged with its mirror's, and over the networks read together.
        """
        out = []
        for i in range(0, len(crops), batch):
            x = torch.from_numpy(crops[i : i + batch])
            n = len(x)
            x = torch.cat([x, torch.flip(x, dims=(-1,))])
            both = torch.stack([net.side_logit(net.embed(x)) for net in self.networks]).mean(dim=0)
            out.append(((both[:n] + both[n:]) / 2).numpy())
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)

    def level_evidence(self, volume: Volume) -> np.ndarray:
        """Per axial level, the log-odds that the header's right is the patient's right.

        Raises:
            DataError: No body in the scan (all air), or a single slice for a 3D model.
        """
        return self.read_levels(volume, where=False)[0]

    def section_logits(self, volume: Volume) -> tuple[list[int], np.ndarray, np.ndarray]:
        """The side head's logits of every section read, at the scan's own pixel size.

        A single slice is read at ``slice_phases`` grid phases per axis (:func:`grid_phases`; 1 reads it
        once, as check-sides did before), its crops at every phase kept side by side.

        Returns:
            The levels read (slices of the resampled grid), their logits ``(levels, 2, crops)`` (the
            header's right half, then its left, each at the shifted crops: ``SHIFTS``, times the phases
            for a single slice), and the resampled grid's affine (at the first phase).

        Raises:
            DataError: No body in the scan (all air), or a single slice for a 3D model.
        """
        read = [self._section_logits(v) for v in self._phases(volume)]
        return read[0][0], np.concatenate([logits for _, logits, _ in read], axis=2), read[0][2]

    def _phases(self, volume: Volume) -> list[Volume]:
        """The volume at each grid phase it is read at: a single slice at several, anything else at one."""
        if volume.array.shape[2] != 1 or self.slice_phases <= 1:
            return [volume]
        return grid_phases(volume, target_pixdim(self.preprocess, volume.spacing)[:2], self.slice_phases)

    def _section_logits(self, volume: Volume) -> tuple[list[int], np.ndarray, np.ndarray]:
        source = volume.source
        body = volume.array > max(BODY_HU, float(volume.array.min()) + 1.0)
        if body.mean() < 0.005:
            raise DataError(source, "no body in the scan (nothing above air); nothing to check")
        res = resample_case(volume.array, volume.affine, self.preprocess)
        centre_world = body_centre(res.image, res.affine, BODY_HU)
        centre = np.linalg.solve(res.affine[:3, :3], centre_world - res.affine[:3, 3])  # (x, y, z) index
        norm, stats = normalize(res.image, self.preprocess)
        image = np.transpose(norm, (2, 1, 0))  # (z, y, x), x toward the patient's right, as in the store
        pad = (self.preprocess.window[0] - stats["mean"]) / stats["std"]
        hu_zyx = np.transpose(res.image, (2, 1, 0))
        levels = self._levels(hu_zyx > max(BODY_HU, float(res.image.min()) + 1.0))
        if not levels:
            raise DataError(source, f"a {self.dims}D side model needs at least {self.size[0]} slices")
        sz, sy, sx = self.size
        shifts = [(0, 0)] + [(dy * sy // 8, dx * sx // 8) for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1))]
        assert len(shifts) == SHIFTS
        crops = []
        for z in levels:
            for side_sign in (1, -1):  # the header's right, then its left
                for dy, dx in shifts:
                    start = (
                        z if self.dims == 2 else int(round(z - sz / 2)),
                        int(round(centre[1] - sy / 2)) + dy,
                        int(round(centre[0] + side_sign * sx / 2 - sx / 2)) + side_sign * dx,
                    )
                    crops.append(read_crop(image, start, self.size, pad))
        stack = np.stack(crops).astype(np.float32)
        stack = stack if self.dims == 3 else stack[:, 0]
        logits = self.right_logits(stack[:, None]).reshape(len(levels), 2, len(shifts))
        return levels, logits, res.affine

    def read_levels(self, volume: Volume, where: bool = True) -> tuple[np.ndarray, list[LevelReading | None]]:
        """Each level's evidence and, when ``where``, what the level holds (``qc.levels``)."""
        levels, logits, affine = self.section_logits(volume)
        # Each side's logit is the mean over its crops: one crop's score can turn on a few pixels.
        sides = logits.mean(axis=2)
        readings: list[LevelReading | None] = []
        if where:
            floor, ceiling = float(volume.array.min()), float(volume.array.max())
            readings = [_where(volume, affine, z, floor, ceiling) for z in levels]
        return sides[:, 0] - sides[:, 1], readings

    def _levels(self, body_zyx: np.ndarray) -> list[int]:
        """Axial levels holding body: slices (2D) or slab centres half a slab apart (3D), evenly spread."""
        area = body_zyx.reshape(body_zyx.shape[0], -1).sum(axis=1)
        if not area.any():
            return []
        with_body = np.nonzero(area >= 0.25 * area.max())[0]
        if self.dims == 2:
            candidates = with_body
        else:
            sz = self.size[0]
            lo, hi = int(with_body.min()), int(with_body.max())
            if body_zyx.shape[0] < sz:
                return []
            first = max(lo, sz // 2)
            last = min(hi, body_zyx.shape[0] - sz + sz // 2)
            candidates = np.arange(first, max(last, first) + 1, max(sz // 2, 1))
        if len(candidates) > MAX_LEVELS:
            candidates = candidates[np.linspace(0, len(candidates) - 1, MAX_LEVELS).round().astype(int)]
        return [int(z) for z in candidates]

    def check(
        self,
        volume: Volume,
        threshold: float = DEFAULT_SIDE_THRESHOLD,
        slice_threshold: float = DEFAULT_SLICE_THRESHOLD,
        reading: Reading | None = None,
    ) -> SideCheck:
        """The verdict on one volume (a 2D slice is a volume of one slice).

        ``unsure`` with the reason when the scan's values or outline are unlike what the model was trained
        on (``qc.inputs``; ``reading``, when the caller has read this very volume already), or when its
        evidence does not pass the threshold that applies: ``threshold``, or ``slice_threshold`` for a scan
        of one level.
        """
        reading = reading if reading is not None else read_scan(volume)
        evidence, where = self.read_levels(volume, where=True)
        reasons = reading.reasons()
        notes = reading.notes()
        aside = [r for r in where if r is not None and r.kind != "abdomen"]
        kept = np.array([r is None or r.kind == "abdomen" for r in where], dtype=bool)
        if not kept.any():
            only = aside[0].reason() if len(where) == 1 else None
            reasons.append(only or f"no level between the lungs and the pelvis: {_counts(aside)}")
        elif aside:
            notes.append(f"levels set aside: {_counts(aside)}")
            evidence = evidence[kept]
        probability = float(expit(float(evidence.mean())))
        verdict, reason, applied = decide(probability, len(evidence), reasons, threshold, slice_threshold)
        return SideCheck(
            input=str(volume.source),
            probability=probability,
            verdict=verdict,
            levels=len(evidence),
            sections=2 * len(evidence) * SHIFTS * len(self._phases(volume)),
            threshold=applied,
            level_probabilities=[round(float(v), 4) for v in expit(evidence.astype(np.float64))],
            model=self.source,
            reason=reason,
            notes="; ".join(notes),
            abstained=bool(reasons),
            level_evidence=[round(float(v), 4) for v in evidence],
        )


def _where(
    volume: Volume, resampled: np.ndarray, z: int, floor: float, ceiling: float
) -> LevelReading | None:
    """What the level at resampled slice ``z`` holds, read on the scan's own nearest axial slice.

    Read at the scan's resolution and values: the model's grid is coarser, and a bone plate 1 cm thick
    blurs below the bone threshold on it.
    """
    world = resampled[:3, :3] @ np.array([0.0, 0.0, float(z)]) + resampled[:3, 3]
    k = np.linalg.solve(volume.affine[:3, :3], world - volume.affine[:3, 3])[2]
    k = int(np.clip(np.rint(k), 0, volume.array.shape[2] - 1))
    image = np.asarray(volume.array[:, :, k], dtype=np.float32)
    return read_level(image, float(min(volume.spacing[:2])), floor, ceiling)


def _counts(aside: list[LevelReading]) -> str:
    """How many levels lie in the chest and in the pelvis: ``3 in the chest, 2 in the pelvis``."""
    return ", ".join(
        f"{n} in the {kind}" for kind in ("chest", "pelvis") if (n := sum(r.kind == kind for r in aside))
    )
