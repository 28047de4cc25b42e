"""Leave-one-patient-out over the real CT volumes here: what side models read, and check-sides' verdicts.

For each real volume in ``../shared/data`` (``ts_example``, ``ircadb/patient_01``, ``ircadb/patient_07``) it
trains side models on the phantom (64 cases, seed 11, ``--anatomy`` varied by default) plus the other real
volumes (each repeated ``--real-repeats`` times as cases, TotalSegmentator layout), with the ``laterality``
preset (2D, 3 mm, fixed HU window), for each variant:

- ``new``: ``half`` sections mirrored at random keeping their side, with a side head (what ships);
- ``half``: ``half`` sections, never mirrored, no side head (today's annotation-free sections);
- ``masked``: the paper's kidney-only sections (reads the kidney masks).

Then, on the held-out patient alone (its own store, same preset): the probe of
``sidepair.evaluation.side_probe`` (plain, mirrored and liver/spleen-occluded accuracy; ``ts_example`` has
no organ maps) and, for ``new``, ``check-sides`` on three states of its scan: as it is, header flipped (the
affine column of the left-right array axis negated) and array mirrored under the original header. The
shipped model's verdicts are listed too (``ts_example`` is in its training data: not a hold-out), and those
of the phantom-only fixture (``tests/fixtures/side_model_phantom_only.pt``, no real scan seen). Last, every
real KiTS19 slice, as it is and mirrored, with those two and each fold's ``new`` model (no model saw those
patients).

Each model is probed and checked at its final epoch (``--checkpoint best``: the epoch its phantom validation
scored best), as ``scripts/train_side_model.py`` ships. Models trained with ircadb (CC BY-NC-ND) stay in
``--work``; they must never ship. A model already trained in ``--work`` for at least ``--epochs`` is probed
again, not retrained (its ``wall_s`` is then null; each probe row gives the epochs its model trained).
Real-data results (plus the phantom in training). Writes
``results/laterality_lopo_{probe,verdicts,slices}_varied.json`` and tables.

Usage: python benchmarks/studies/laterality_lopo.py [--data ../shared/data] [--work runs/lopo] [--epochs 10]
       [--variants new half masked] [--patients ts_example ircadb/patient_01 ircadb/patient_07]
       [--checkpoint last|best]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

from _common import report
from sidepair.evaluation.side_probe import probe
from sidepair.models.checkpoint import BEST, LAST
from sidepair.qc.check import check_paths, check_sides
from sidepair.qc.side_model import SideModel

REPO = Path(__file__).resolve().parents[2]
PHANTOM_ONLY = (
    REPO / "tests" / "fixtures" / "side_model_phantom_only.pt"
)  # saw no real scan: a hold-out for all
PATIENTS = ("ts_example", "ircadb/patient_01", "ircadb/patient_07")
DATA = "real CT (ts_example, ircadb 01/07) held out one at a time; trained on the phantom plus the others"
VARIANTS = {
    "new": [],
    "half": ["--no-mirror", "--no-side-head"],
    "masked": ["--sections", "masked", "--no-mirror", "--no-side-head"],
}


def run(cmd: list[str]) -> float:
    """Run a command, failing loudly; its wall seconds."""
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - start


def real_cases(data: Path, patients: list[str], out: Path, repeats: int) -> Path:
    """TotalSegmentator-layout case folders, each patient ``repeats`` times (links to the real files)."""
    out.mkdir(parents=True, exist_ok=True)
    for patient in patients:
        for r in range(repeats):
            case = out / f"{patient.replace('/', '_')}_r{r:02d}"
            case.mkdir(exist_ok=True)
            for name in ("ct.nii.gz", "segmentations"):
                if not (case / name).exists():
                    (case / name).symlink_to((data / patient / name).resolve())
    return out


def states(ct: Path, out: Path) -> dict[str, Path]:
    """The scan as it is, with its header flipped, and with its array mirrored under the original header."""
    out.mkdir(parents=True, exist_ok=True)
    img = nib.load(str(ct))
    array = np.asanyarray(img.dataobj)
    axis = int(np.argmax(np.abs(img.affine[0, :3])))  # the array axis that runs left-right
    flipped = img.affine.copy()
    flipped[:, axis] *= -1
    paths = {
        "as is": ct,
        "header flipped": out / "header_flipped.nii.gz",
        "array mirrored": out / "mirrored.nii.gz",
    }
    if not paths["header flipped"].exists():
        nib.save(nib.Nifti1Image(array, flipped, img.header), str(paths["header flipped"]))
    if not paths["array mirrored"].exists():
        nib.save(
            nib.Nifti1Image(np.flip(array, axis=axis).copy(), img.affine, img.header),
            str(paths["array mirrored"]),
        )
    return paths


def transformed_slices(slices: Path, out: Path, transform: Callable[[np.ndarray], np.ndarray]) -> Path:
    """A copy of a slice folder (slices.json and images), ``transform`` applied to each PNG's pixels."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "slices.json").write_bytes((slices / "slices.json").read_bytes())
    for png in sorted((slices / "images").glob("*.png")):
        pixels = transform(np.asarray(Image.open(png)))
        Image.fromarray(np.ascontiguousarray(pixels)).save(out / "images" / png.name)
    return out


def mirrored_slices(slices: Path, out: Path) -> Path:
    """A copy of a slice folder's images with every PNG mirrored left-right (a PNG has no header to flip)."""
    return transformed_slices(slices, out, lambda pixels: pixels[:, ::-1])


def slice_verdicts(slices: Path, models: dict[str, Path | None], work: Path) -> list[dict]:
    """Every real slice as it is and mirrored, with each model (none of them saw these patients)."""
    states = {"as is": slices, "mirrored": mirrored_slices(slices, work / "kits19_slices_mirrored")}
    rows = []
    for name, path in models.items():
        model = SideModel.load(path)
        for state, folder in states.items():
            for check in (c for c in check_paths([folder], model, progress=False) if c.kind == "scan"):
                right = "ok" if state == "as is" else "flipped"
                rows.append({"scan": Path(check.input).name, "state": state, "model": name,
                             "probability": round(check.probability, 3), "verdict": check.verdict,
                             "right": check.verdict == right})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "lopo")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--real-repeats", type=int, default=12)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--patients", nargs="+", default=list(PATIENTS))
    parser.add_argument(
        "--checkpoint",
        choices=("last", "best"),
        default="last",
        help="The epoch probed and checked: the final one, as scripts/train_side_model.py ships.",
    )
    parser.add_argument(
        "--anatomy",
        choices=("fixed", "varied"),
        default="varied",
        help="The phantom's organs (sidepair phantom).",
    )
    args = parser.parse_args()
    checkpoint = LAST if args.checkpoint == "last" else BEST
    sidepair = [sys.executable, "-m", "sidepair"]
    tag = "" if args.anatomy == "fixed" else f"_{args.anatomy}"
    phantom = args.work / f"phantom{tag}"
    if not (phantom / "phantom.json").exists():
        run([*sidepair, "phantom", "--out", str(phantom), "--cases", "64", "--seed", "11", "--no-montage",
             "--anatomy", args.anatomy])  # fmt: skip
    probes, verdicts = [], []
    for held in args.patients:
        fold = args.work / (held.replace("/", "_") + tag)
        others = [p for p in PATIENTS if p != held and (args.data / p / "ct.nii.gz").exists()]
        real = real_cases(args.data, others, fold / "real", args.real_repeats)
        store, held_store = fold / "store", fold / "held_store"
        if not (store / "store.json").exists():
            run([*sidepair, "prepare", "--data", str(phantom), "--data", str(real), "--out", str(store),
                 "--preset", "laterality", "--side-check", "off"])  # fmt: skip
        if not (held_store / "store.json").exists():
            run([*sidepair, "prepare", "--data", str(args.data / held), "--out", str(held_store),
                 "--preset", "laterality", "--side-check", "off"])  # fmt: skip
        for variant in args.variants:
            model = fold / f"model_{variant}"
            done = model / "metrics.jsonl"
            finished = done.exists() and len(done.read_text(encoding="utf-8").splitlines()) >= args.epochs
            command = [*sidepair, "pretrain", "--store", str(store), "--out", str(model), "--preset",
                       "laterality", "--epochs", str(args.epochs), "--device", "cpu", "--resume",
                       *VARIANTS[variant]]  # fmt: skip
            wall = None if finished else run(command)
            chosen = model / checkpoint
            found = probe(chosen, held_store, n_pairs=256, seed=0)
            found.pop("organs")
            trained = len(done.read_text(encoding="utf-8").splitlines())  # a model kept from a longer run
            row = {"held_out": held, "trained_on": [f"phantom ({args.anatomy})", *others], "variant": variant,
                   "epochs": trained, "checkpoint": args.checkpoint}  # fmt: skip
            probes.append({**row, **found, "wall_s": round(wall, 1) if wall else None})
            if variant == "new":
                for state, path in states(args.data / held / "ct.nii.gz", fold / "states").items():
                    for name, source in (("LOPO", chosen), ("shipped", None), ("phantom-only", PHANTOM_ONLY)):
                        check = check_sides(path, model=source)
                        verdicts.append({"scan": held, "state": state, "model": name, "anatomy": args.anatomy,
                                         "hold_out": name != "shipped" or held != "ts_example",
                                         "probability": round(check.probability, 3), "verdict": check.verdict,
                                         "levels": check.levels})  # fmt: skip
        # Written after every fold, so a fold that fails later loses nothing measured before it.
        report(f"laterality_lopo_probe{tag}", probes, {"data": DATA, "epochs_asked": args.epochs})
        report(f"laterality_lopo_verdicts{tag}", verdicts, {"data": DATA, "threshold": 0.75})
    slices = args.data / "kits19_slices"
    if (slices / "slices.json").exists():
        models: dict[str, Path | None] = {"shipped": None, "phantom-only": PHANTOM_ONLY}
        models |= {
            f"LOPO without {p}": args.work / (p.replace("/", "_") + tag) / "model_new" / checkpoint
            for p in args.patients
        }
        rows = slice_verdicts(slices, models, args.work)
        summary = []
        for name in models:
            for state in ("as is", "mirrored"):
                group = [r for r in rows if r["model"] == name and r["state"] == state]
                counts = {v: sum(r["verdict"] == v for r in group) for v in ("ok", "flipped", "unsure")}
                summary.append(
                    {"model": name, "state": state, **counts, "right": sum(r["right"] for r in group)}
                )
        report(
            f"laterality_lopo_slices{tag}",
            summary,
            {"data": "real KiTS19 slices (cases 135-140)", "rows_all": rows},
        )
    print(json.dumps({"probes": len(probes), "verdicts": len(verdicts)}))


if __name__ == "__main__":
    main()
