"""How check-sides' verdicts on single real slices depend on what it is told of a PNG: spacing, window.

A bare PNG carries no pixel spacing. Without a ``slices.json`` check-sides assumed 1 mm (and warned); the
real KiTS19 slices here are 0.68-0.84 mm, so read bare their bodies come out 19-46 % too large on the side
model's 3 mm grid and each half it reads holds less of the body. Per side model, the 24 slices as they
are and mirrored are checked (a) at the spacing their ``slices.json`` gives, (b) as bare PNGs at the
1 mm assumed, (c) exported again through a soft-tissue window (level 40, width 400 HU to 0-255, as
many PNG exports are; made from these PNGs, which already hold HU clipped to [0, 255]) and read as if
the pixels were HU, (d) the same told its window (``--intensity 1.569 -160``). ``--scales`` adds rows of
a test-time augmentation that check-sides does not use: each slice also read at the model's grid times
each factor (e.g. 0.8 1.25), the evidence averaged over the factors, to see whether reading at several
scales would make a verdict less dependent on the spacing.

Real-data results. Writes ``results/side_check_spacing.json`` and a table.

Usage: python benchmarks/studies/side_check_spacing.py [--data ../shared/data]
       [--work runs/side_check_spacing] [--model NAME=FILE ...] [--scales 0.8 1 1.25]
"""

from __future__ import annotations

import argparse
import copy
import shutil
import warnings
from pathlib import Path

import numpy as np
from laterality_lopo import PHANTOM_ONLY, mirrored_slices, transformed_slices
from scipy.special import expit

from _common import model_specs, report
from sidepair.choices import DEFAULT_SIDE_THRESHOLD
from sidepair.errors import DataWarning
from sidepair.qc.scans import PngReading, plan_scans
from sidepair.qc.side_model import SideModel
from sidepair.qc.verdict import verdict_of

REPO = Path(__file__).resolve().parents[2]


def at_scale(model: SideModel, factor: float) -> SideModel:
    """The same network reading at its in-plane grid times ``factor`` (z unchanged)."""
    scaled = copy.copy(model)
    z, y, x = model.preprocess.spacing_zyx
    scaled.preprocess = model.preprocess.model_copy(update={"spacing_zyx": (z, y * factor, x * factor)})
    return scaled


LEVEL, WIDTH = 40.0, 400.0
TOLD = PngReading(intensity=(WIDTH / 255, LEVEL - WIDTH / 2))


def probabilities(
    model: SideModel,
    folder: Path,
    scales: tuple[float, ...],
    png: PngReading = PngReading(),  # noqa: B008
) -> dict[str, float]:
    """Each slice's probability, its level evidence averaged over ``scales``."""
    readers = [at_scale(model, f) for f in scales]
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        for path, loader in plan_scans([folder], png):
            volume = loader(path)
            evidence = np.mean([r.level_evidence(volume) for r in readers], axis=0)
            out[path.name] = float(expit(evidence.mean()))
    return out


def bare_copy(folder: Path, out: Path) -> Path:
    """The slice folder's images without its slices.json."""
    out.mkdir(parents=True, exist_ok=True)
    for png in sorted((folder / "images").glob("*.png")):
        shutil.copy(png, out / png.name)
    return out


def windowed(pixels: np.ndarray) -> np.ndarray:
    """8-bit pixels holding HU, exported again through the window LEVEL, WIDTH."""
    hu = pixels.astype(float)
    return np.clip((hu - (LEVEL - WIDTH / 2)) * 255 / WIDTH, 0, 255).round().astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "side_check_spacing")
    parser.add_argument("--model", action="append", default=[], help="NAME=FILE: another side model.")
    parser.add_argument("--scales", type=float, nargs="*", default=[], help="Factors of a scale TTA row.")
    args = parser.parse_args()
    slices = args.data / "kits19_slices"
    if not (slices / "slices.json").exists():
        parser.error(f"{slices}: no KiTS19 slice folder with slices.json")
    models = {"shipped": None, "phantom-only": PHANTOM_ONLY} | model_specs(parser, args.model)
    mirrored = mirrored_slices(slices, args.work / "mirrored")
    folders = {
        ("slices.json", "as is"): slices,
        ("slices.json", "mirrored"): mirrored,
        ("1 mm assumed", "as is"): bare_copy(slices, args.work / "bare"),
        ("1 mm assumed", "mirrored"): bare_copy(mirrored, args.work / "bare_mirrored"),
        ("L40 W400 read as HU", "as is"): transformed_slices(slices, args.work / "windowed", windowed),
        ("L40 W400 read as HU", "mirrored"): transformed_slices(
            mirrored, args.work / "windowed_mirrored", windowed
        ),
    }
    folders |= {
        ("L40 W400 told", state): folders["L40 W400 read as HU", state] for state in ("as is", "mirrored")
    }
    # check-sides assumed 1 mm a pixel of a bare PNG when this study was made; it now assumes a 400 mm field
    # of view (png_field_of_view.py): the row keeps its meaning.
    readings = {"L40 W400 told": TOLD, "1 mm assumed": PngReading(field_of_view=None)}
    scale_sets = [(1.0,)] + ([tuple(args.scales)] if args.scales else [])
    rows, detail = [], []
    for name, path in models.items():
        model = SideModel.load(path)
        for scales in scale_sets:
            for reading in ("slices.json", "1 mm assumed", "L40 W400 read as HU", "L40 W400 told"):
                counts = {"right as is": 0, "right mirrored": 0, "confidently wrong": 0, "of": 0}
                for state in ("as is", "mirrored"):
                    right = "ok" if state == "as is" else "flipped"
                    found = probabilities(
                        model, folders[reading, state], scales, readings.get(reading, PngReading())
                    )
                    counts["of"] = len(found)
                    for scan, p in found.items():
                        verdict = verdict_of(p, DEFAULT_SIDE_THRESHOLD)
                        counts[f"right {state}"] += verdict == right
                        counts["confidently wrong"] += verdict not in (right, "unsure")
                        detail.append({"model": name, "scales": list(scales), "reading": reading,
                                       "state": state, "scan": scan, "probability": round(p, 3),
                                       "verdict": verdict})  # fmt: skip
                rows.append({"model": name, "scales": " ".join(f"{f:g}" for f in scales), "reading": reading,
                             **counts})  # fmt: skip
    data = "real, kits19_slices (24 slices, 5 patients)"
    report("side_check_spacing", rows, {"slices": detail, "data": data})


if __name__ == "__main__":
    main()
