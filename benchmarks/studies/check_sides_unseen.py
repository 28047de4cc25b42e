"""check-sides on inputs the other studies leave out: unseen phantom cases, and bare PNGs grouped by name.

Two sets, each in its three or two states, read with every ``--model`` (default: the shipped one):

- **phantom**: 6 cases no side model saw (``sidepair phantom --cases 6 --seed 99``, the demo's fixed
  anatomy) as they are, with the header's x column negated, and with the array mirrored;
- **bare PNGs**: the 24 real KiTS19 slices without their ``slices.json`` (so a 400 mm field of view,
  0.78 mm a pixel, is assumed where 0.68-0.84 mm is true, and radiological convention; 1 mm a pixel before
  4b7a58c), as they are and mirrored, grouped per patient by
  ``--group-by '^([^_]+)_'`` on the file name.

Per model and state: right, confidently wrong and ``unsure`` verdicts per scan, and per group. Phantom and
real results, each row naming its data. Writes results/check_sides_unseen.json and a table.

Usage: python benchmarks/studies/check_sides_unseen.py [--model NAME=FILE ...] [--data ../shared/data]
       [--work runs/check_sides_unseen]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from laterality_lopo import states
from PIL import Image
from side_model_spread import RIGHT

from _common import model_specs, report
from sidepair.qc.check import check_paths
from sidepair.qc.side_model import SideModel
from sidepair.qc.verdict import SideCheck

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "src" / "sidepair" / "resources" / "side_model.pt"
GROUP_BY = r"^([^_]+)_"


def tally(model: str, data: str, state: str, kind: str, checks: list[SideCheck]) -> dict:
    """Right, confidently wrong and ``unsure`` verdicts among ``checks`` of one state."""
    right = RIGHT[state]
    return {
        "model": model,
        "data": data,
        "state": state,
        "kind": kind,
        "n": len(checks),
        "right": sum(c.verdict == right for c in checks),
        "confidently_wrong": sum(c.verdict not in (right, "unsure") for c in checks),
        "unsure": sum(c.verdict == "unsure" for c in checks),
        "probabilities": [round(c.probability, 4) for c in checks],
    }


def phantom_states(work: Path) -> dict[str, list[Path]]:
    """Six unseen phantom cases in the three states of ``laterality_lopo.states``."""
    phantom = work / "phantom"
    if not (phantom / "phantom.json").exists():
        subprocess.run([sys.executable, "-m", "sidepair", "phantom", "--out", str(phantom), "--cases", "6",
                        "--seed", "99", "--no-montage"], check=True)  # fmt: skip
    out: dict[str, list[Path]] = {}
    for case in sorted(p for p in phantom.iterdir() if (p / "imaging.nii.gz").exists()):
        for state, path in states(case / "imaging.nii.gz", work / "states" / case.name).items():
            out.setdefault(state, []).append(path)
    return out


def bare_pngs(slices: Path, work: Path) -> dict[str, Path]:
    """The slice folder's PNGs without ``slices.json``, as they are and mirrored."""
    bare, mirrored = work / "bare" / "as_is", work / "bare" / "mirrored"
    if not bare.exists():
        shutil.copytree(slices / "images", bare)
    mirrored.mkdir(parents=True, exist_ok=True)
    for png in sorted(bare.glob("*.png")):
        Image.fromarray(np.ascontiguousarray(np.asarray(Image.open(png))[:, ::-1])).save(mirrored / png.name)
    return {"as is": bare, "mirrored": mirrored}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "check_sides_unseen")
    parser.add_argument("--model", action="append", default=[], help="NAME=FILE (default: the shipped one).")
    args = parser.parse_args()
    models = model_specs(parser, args.model) or {"shipped": [SHIPPED]}
    phantom = phantom_states(args.work)
    pngs = bare_pngs(args.data / "kits19_slices", args.work)
    rows = []
    for name, paths in models.items():
        model = SideModel.load(paths)
        for state, scans in phantom.items():
            checks = check_paths(scans, model, progress=False)
            rows.append(tally(name, "phantom: 6 unseen cases (seed 99)", state, "scan", checks))
        for state, folder in pngs.items():
            checks = check_paths([folder], model, progress=False, group_by=GROUP_BY)
            data = "real: 24 KiTS19 slices as bare PNGs (400 mm field of view assumed)"
            rows.append(tally(name, data, state, "scan", [c for c in checks if c.kind == "scan"]))
            rows.append(tally(name, data, state, "group", [c for c in checks if c.kind == "group"]))
    table = [{k: v for k, v in r.items() if k != "probabilities"} for r in rows]
    report("check_sides_unseen", table, {"data": "phantom (seed 99) and real KiTS19 slices", "full": rows})


if __name__ == "__main__":
    main()
