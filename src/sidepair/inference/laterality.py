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
"""

from __future__ import annotations

import csv
import functools
import io
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import nibabel as nib
import numpy as np
import torch
from scipy.special import expit
from tqdm import tqdm

from sidepair.atomic import write_json, write_text
from sidepair.choices import DEFAULT_SIDE_THRESHOLD, SideCheckMode
from sidepair.config import PreprocessSettings
from sidepair.data.dicom import is_dicom_folder, load_dicom_series
from sidepair.data.formats.base import CaseSource
from sidepair.data.formats.slices import SPACING_KEY, SlicesFormat, warn_assumed_spacing
from sidepair.data.preprocess import normalize, resample_case
from sidepair.data.sections import read_crop
from sidepair.data.sides import body_centre
from sidepair.data.volume import Volume, load_nifti, volume_from_image
from sidepair.errors import DataError, DataWarning, SidepairError
from sidepair.inference.predictor import is_nifti
from sidepair.models.checkpoint import BEST, PretrainCheckpoint, read_checkpoint
from sidepair.models.siamese import Siamese
from sidepair.nnunet_plans import is_nnunet
from sidepair.version import __version__

Verdict = Literal["ok", "flipped", "unsure"]
BODY_HU = -500.0
MAX_LEVELS = 48
SHIFTS = 5  # crops per side and level: centred, and moved by an eighth of the section up, down, in, out
IMAGE_SUFFIXES = (".png",)


def default_model_path() -> Path:
    """The side model shipped with the package (``scripts/train_side_model.py`` trains it)."""
    return Path(str(resources.files("sidepair") / "resources" / "side_model.pt"))


@dataclass
class SideCheck:
    """The verdict on one scan.

    Attributes:
        input: The file or series folder checked.
        probability: Probability that the left-right its header implies is right.
        verdict: ``ok`` (probability >= threshold), ``flipped`` (<= 1 - threshold) or ``unsure``.
        levels: Axial levels the verdict rests on (a right and a left section each).
        sections: Sections read (per level: a right and a left, each at 5 positions, each also mirrored
            and the two scores averaged).
        threshold: The threshold used.
        level_probabilities: Each level's probability (the sigmoid of its evidence), from feet to head.
        model: The side model's file.
    """

    input: str
    probability: float
    verdict: Verdict
    levels: int
    sections: int
    threshold: float
    level_probabilities: list[float] = field(default_factory=list)
    model: str = ""

    def row(self) -> dict[str, Any]:
        """The CSV row (without the per-level probabilities)."""
        out = asdict(self)
        out.pop("level_probabilities")
        out["probability"] = round(self.probability, 4)
        return out


def verdict_of(probability: float, threshold: float) -> Verdict:
    """``ok``, ``flipped`` or ``unsure`` for a probability that the header's left-right is right."""
    if probability >= threshold:
        return "ok"
    if probability <= 1 - threshold:
        return "flipped"
    return "unsure"


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
    if is_nnunet(ckpt.encoder_config) or preprocess.nnunet is not None:
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
        # Each side's logit is the mean over its shifted crops: one crop's score can turn on a few pixels.
        logits = self.right_logits(stack[:, None]).reshape(len(levels), 2, len(shifts)).mean(axis=2)
        return logits[:, 0] - logits[:, 1]

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

    def check(self, volume: Volume, threshold: float = DEFAULT_SIDE_THRESHOLD) -> SideCheck:
        """The verdict on one volume (a 2D slice is a volume of one slice)."""
        evidence = self.level_evidence(volume)
        probability = float(expit(float(evidence.mean())))
        return SideCheck(
            input=str(volume.source),
            probability=probability,
            verdict=verdict_of(probability, threshold),
            levels=len(evidence),
            sections=2 * len(evidence) * SHIFTS,
            threshold=threshold,
            level_probabilities=[round(float(v), 4) for v in expit(evidence.astype(np.float64))],
            model=self.source,
        )


def _nifti_loader(path: Path) -> Volume:
    """A NIfTI scan; a 2D one (a single slice stored without its third axis) as a volume of one slice."""
    try:
        img = nib.load(str(path))
    except Exception:  # load_nifti names the file and the problem
        return load_nifti(path)
    if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        return load_nifti(path)
    if len(img.shape) == 2:
        img = type(img)(np.asanyarray(img.dataobj)[..., None], img.affine, img.header)
    return volume_from_image(img, path)


def _png_root(png: Path) -> Path:
    return png.parent.parent if png.parent.name == "images" else png.parent


@dataclass(frozen=True)
class PngReading:
    """How to read PNG slices where their ``slices.json`` says nothing (as ``prepare`` reads slice folders).

    Attributes:
        spacing: Pixel spacing (mm); None: 1 mm, with a warning.
        convention: ``radiological`` (the patient's left on the image's right) or ``neurological``.
        intensity: ``(slope, intercept)`` turning pixel values into HU (an export windowed at level L and
            width W to 0-255: ``(W / 255, L - W / 2)``).
    """

    spacing: float | None = None
    convention: Literal["radiological", "neurological"] = "radiological"
    intensity: tuple[float, float] = (1.0, 0.0)


class _PngFolders:
    """Reads PNG slices, each folder's ``slices.json`` once (a slice folder can hold thousands of slices).

    Args:
        reading: How to read them where their ``slices.json`` says nothing.
    """

    def __init__(self, reading: PngReading) -> None:
        self.reading = reading
        self._folders: dict[Path, tuple[SlicesFormat, dict[str, dict[str, Any]]]] = {}

    def folder(self, root: Path) -> tuple[SlicesFormat, dict[str, dict[str, Any]]]:
        """The reader of the slice folder ``root`` and its ``slices.json`` entries (read on first use)."""
        if root not in self._folders:
            dataset = SlicesFormat(
                root,
                convention=self.reading.convention,
                spacing=self.reading.spacing,
                intensity=self.reading.intensity,
            )
            self._folders[root] = (dataset, dataset._meta())
        return self._folders[root]

    def __call__(self, png: Path) -> Volume:
        """A PNG slice, in a slice folder (``images/``) with its ``slices.json`` or alone."""
        dataset, meta = self.folder(_png_root(png))
        return dataset.load_image(CaseSource(png.stem, png, None, extra=dict(meta.get(png.name, {}))))


def _png_loader(png: Path, reading: PngReading = PngReading()) -> Volume:  # noqa: B008 (frozen, shared)
    """A PNG slice, in a slice folder (``images/``) with its ``slices.json`` or alone."""
    return _PngFolders(reading)(png)


def warn_unknown_spacing(scans: list[tuple[Path, Any]], spacing: float | None) -> None:
    """One warning per folder whose PNG slices have no pixel spacing (none in ``slices.json``, none given).

    The halves a single slice is read in cover a share of the body that the spacing sets.
    """
    if spacing is not None:
        return
    by_root: dict[Path, tuple[_PngFolders, list[Path]]] = {}
    for path, loader in scans:
        if isinstance(loader, _PngFolders):
            by_root.setdefault(_png_root(path), (loader, []))[1].append(path)
    for root in sorted(by_root):
        folders, pngs = by_root[root]
        _, meta = folders.folder(root)
        bare = [p for p in pngs if not meta.get(p.name, {}).get(SPACING_KEY)]
        if bare:
            warn_assumed_spacing(root, len(bare), len(pngs), "a wrong one changes verdicts")


def plan_scans(inputs: list[str | Path], png: PngReading = PngReading()) -> list[tuple[Path, Any]]:  # noqa: B008
    """Every scan to check: ``(path, loader)``, loaders called one at a time.

    Each input is a NIfTI file, a folder of NIfTI files, a DICOM series folder, a slice folder
    (``images/*.png``) or a folder of PNG slices, or a PNG slice; ``png`` says how to read PNGs where their
    ``slices.json`` says nothing.

    Raises:
        DataError: A missing input, or one that holds nothing to check.
    """
    png_loader = _PngFolders(png)
    scans: list[tuple[Path, Any]] = []
    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            raise DataError(path, "input not found")
        if path.is_file():
            if is_nifti(path):
                scans.append((path, _nifti_loader))
            elif path.suffix.lower() in IMAGE_SUFFIXES:
                scans.append((path, png_loader))
            else:
                raise DataError(path, "not a NIfTI file (.nii.gz, .nii), a PNG slice or a folder")
            continue
        if is_dicom_folder(path):
            scans.append((path, load_dicom_series))
            continue
        images = path / "images" if (path / "images").is_dir() else path
        pngs = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        niftis = sorted(p for p in path.iterdir() if p.is_file() and is_nifti(p))
        if not pngs and not niftis:
            raise DataError(path, "no NIfTI files, PNG slices or DICOM series in the folder")
        scans += [(p, _nifti_loader) for p in niftis] + [(p, png_loader) for p in pngs]
    return scans


def check_sides(
    image: str | Path | Volume,
    model: str | Path | Sequence[str | Path] | SideModel | None = None,
    threshold: float = DEFAULT_SIDE_THRESHOLD,
    pixel_spacing: float | None = None,
    convention: Literal["radiological", "neurological"] = "radiological",
    intensity: tuple[float, float] = (1.0, 0.0),
) -> SideCheck:
    """Check one scan's left-right: ``sidepair.check_sides("ct.nii.gz").verdict``.

    Args:
        image: A NIfTI file, a DICOM series folder, a PNG slice, or a loaded :class:`Volume`.
        model: A side-pair run or checkpoint with a side head, several read together, or a loaded model;
            the shipped one when None.
        threshold: Probability at or above which the verdict is ``ok`` (``flipped`` at or below 1 - it).
        pixel_spacing: Pixel spacing (mm) of a PNG slice that no ``slices.json`` gives one for (else
            1 mm, with a warning).
        convention: A PNG's left-right convention where ``slices.json`` gives no axis codes.
        intensity: A PNG's ``(slope, intercept)`` from pixel values to HU (see :class:`PngReading`).
    """
    if not 0.5 < threshold < 1:
        raise SidepairError(f"threshold must lie between 0.5 and 1, got {threshold}")
    side_model = model if isinstance(model, SideModel) else SideModel.load(model)
    if isinstance(image, Volume):
        return side_model.check(image, threshold)
    scans = plan_scans([image], PngReading(pixel_spacing, convention, tuple(intensity)))
    if len(scans) != 1:
        raise DataError(Path(image), f"holds {len(scans)} scans; check them with check_paths")
    warn_unknown_spacing(scans, pixel_spacing)
    path, loader = scans[0]
    return side_model.check(loader(path), threshold)


def check_paths(
    inputs: list[str | Path],
    model: SideModel,
    threshold: float = DEFAULT_SIDE_THRESHOLD,
    progress: bool = True,
    pixel_spacing: float | None = None,
    convention: Literal["radiological", "neurological"] = "radiological",
    intensity: tuple[float, float] = (1.0, 0.0),
) -> list[SideCheck]:
    """Check every scan of ``inputs`` (see :func:`plan_scans`; PNG options as :func:`check_sides`).

    Raises:
        DataError: The first scan that cannot be checked, naming its file and why.
    """
    scans = plan_scans(inputs, PngReading(pixel_spacing, convention, tuple(intensity)))
    warn_unknown_spacing(scans, pixel_spacing)
    bar = tqdm(scans, desc="check-sides", unit="scan", disable=None if progress and len(scans) > 1 else True)
    return [model.check(loader(path), threshold) for path, loader in bar]


CSV_COLUMNS = ("input", "probability", "verdict", "levels", "sections", "threshold", "model")


def write_report(checks: list[SideCheck], out: str | Path) -> tuple[Path, Path]:
    """Write the CSV (one row per scan) and a JSON beside it with every level's probability.

    Returns:
        The CSV and JSON paths.
    """
    out = Path(out)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(c.row() for c in checks)
    write_text(out, buffer.getvalue())
    json_path = out.with_suffix(".json")
    write_json(json_path, {"sidepair_version": __version__, "scans": [asdict(c) for c in checks]})
    return out, json_path


@functools.lru_cache(maxsize=1)
def _shipped_model() -> SideModel:
    return SideModel.load()


def scan_alarm(mode: SideCheckMode = "warn") -> Callable[[Volume], None] | None:
    """What ``prepare`` and ``predict`` call on each scan: warn or raise when the shipped model says flipped.

    Only a ``flipped`` verdict of a 3D scan alarms. ``unsure`` stays quiet (many scans give the model little
    to read), and so do single slices: one level is too little to rest an alarm on (on 24 real KiTS19
    slices as they are, the shipped model called 5 flipped; docs/measurements.md).

    Args:
        mode: ``warn`` (a one-line :class:`DataWarning` naming the file), ``error`` (a :class:`DataError`)
            or ``off`` (None: no check).
    """
    if mode == "off":
        return None

    def alarm(volume: Volume) -> None:
        if min(volume.array.shape) < 2:
            return
        check = _shipped_model().check(volume)
        if check.verdict != "flipped":
            return
        what = (
            f"looks flipped left-right: the shipped side model gives {check.probability:.2f} that its "
            f"header's right is the patient's right ({check.levels} levels); check its header"
        )
        if mode == "error":
            raise DataError(volume.source, f"{what}, or pass --side-check warn or off")
        warnings.warn(DataWarning(f"{volume.source}: {what} (--side-check off silences this)"), stacklevel=2)

    return alarm


def summary_line(checks: list[SideCheck]) -> str:
    """``N scans: a ok, b flipped, c unsure``."""
    counts = {v: sum(c.verdict == v for c in checks) for v in ("ok", "flipped", "unsure")}
    return f"{len(checks)} scans: " + ", ".join(f"{n} {v}" for v, n in counts.items())
