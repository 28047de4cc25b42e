"""What check-sides calls each slice's level (abdomen, chest, pelvis), against where the slice lies.

``qc.levels`` sets aside levels in the chest (lungs) and at the pelvis (iliac wings) before a verdict,
and withholds a single slice that lies there. This study reads every slice as ``check-sides`` does (the
shipped model's resampling) and counts what the detector calls it, by where the slice truly lies:

- ``ircadb`` 01 and 07, every third axial slice, the level from the organ masks: a kidney in it; the liver
  or spleen but no kidney; neither, above the liver (the chest: heart and lungs) or below the kidneys (the
  iliac wings). Values as HU, clipped to [-125, 275], [-160, 240] and [0, 255].
- ``ts_example``, every second slice, by its kidney masks (kidney, or none: above or below them).
- the phantom with ``--anatomy trunk`` (6 cases, every sixth slice), its levels from the spec: above the
  lung base by 20 mm or more, between the iliac crest and the lung base, below the crest by 10 mm or more.

For each group: slices, how many are called each kind, and the range of the two measures (each side's
largest compact air region, the smaller of the two; each side's largest bone plate away from the midline,
the smaller of the two). Real and phantom rows are labelled. The first phantom case's slices are
also checked one by one (``phantom_verdicts``: probability, verdict, reason). Writes
results/level_detector.json and a table.

Usage: python benchmarks/studies/level_detector.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import warnings
from collections import defaultdict
from pathlib import Path

import nibabel as nib
import numpy as np
from laterality_levels import levels
from laterality_ood import axial_slices

from _common import report
from sidepair.data.phantom import generate_case
from sidepair.data.volume import Volume, load_nifti, volume_from_image
from sidepair.qc.levels import LevelReading
from sidepair.qc.side_model import SideModel

REPO = Path(__file__).resolve().parents[2]
STATES = {
    "HU": None,
    "clipped [-125, 275]": (-125, 275),
    "clipped [-160, 240]": (-160, 240),
    "clipped [0, 255]": (0, 255),
}


def ircadb_levels(patient_dir: Path) -> list[str]:
    """Each slice's level, the organ-free ones split into chest (upper half) and pelvis (lower half)."""
    found = levels(patient_dir)
    return [
        ("none: chest" if z > len(found) / 2 else "none: pelvis") if lv.startswith("none") else lv
        for z, lv in enumerate(found)
    ]


def ts_levels(folder: Path) -> list[str]:
    """Each slice of ts_example: ``kidney``, or above or below the kidneys."""
    kidney = sum(
        np.asanyarray(nib.load(str(folder / "segmentations" / f"kidney_{s}.nii.gz")).dataobj) > 0
        for s in ("left", "right")
    )
    present = kidney.reshape(-1, kidney.shape[2]).any(axis=0)
    top = np.nonzero(present)[0].max()
    return [
        "kidney" if present[z] else ("none: above the kidneys" if z > top else "none: below the kidneys")
        for z in range(len(present))
    ]


def phantom_slices(cases: int) -> list[tuple[str, Volume]]:
    """(level, slice) of ``--anatomy trunk`` phantom cases: every sixth slice, away from the borders."""
    out = []
    for i in range(cases):
        drawn = generate_case(f"trunk_{i}", 0, i, shape=(160, 160, 104), axcodes="RAS", anatomy="trunk")
        volume = volume_from_image(drawn.image, Path(f"phantom/trunk_{i}.nii.gz"))
        lungs, crest = drawn.spec.levels["lung_base_z"], drawn.spec.levels["iliac_crest_z"]
        for s in axial_slices(volume, 6):
            z = float(s.affine[2, 3])
            if z >= lungs + 20:
                out.append(("chest", s))
            elif z <= crest - 10:
                out.append(("pelvis", s))
            elif crest < z < lungs:
                out.append(("abdomen", s))
    return out


def clipped(volume: Volume, bounds: tuple[float, float] | None) -> Volume:
    """The volume with its values clipped (as an archive or an 8-bit export holds them)."""
    if bounds is None:
        return volume
    return Volume(np.clip(volume.array, *bounds), volume.affine, volume.source)


def summary(data: str, state: str, level: str, readings: list[LevelReading | None]) -> dict:
    """One table row: what the detector called the slices of one group, and its measures' ranges."""
    read = [r for r in readings if r is not None]
    air = [min(r.air_cm2) for r in read]
    bone = [min(r.bone_cm2) for r in read]
    return {
        "data": data,
        "state": state,
        "level": level,
        "slices": len(readings),
        "abdomen": sum(r.kind == "abdomen" for r in read) + len(readings) - len(read),
        "chest": sum(r.kind == "chest" for r in read),
        "pelvis": sum(r.kind == "pelvis" for r in read),
        "air cm2 (smaller side)": f"{min(air):.0f}-{max(air):.0f}" if air else "",
        "bone cm2 (smaller side)": f"{min(bone):.1f}-{max(bone):.1f}" if bone else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--phantom-cases", type=int, default=6)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    model = SideModel.load()
    groups: dict[tuple[str, str, str], list] = defaultdict(list)
    sets = {}
    for p in ("patient_01", "patient_07"):
        folder = args.data / "ircadb" / p
        sets[f"real: ircadb {p[-2:]}"] = (load_nifti(folder / "ct.nii.gz"), ircadb_levels(folder), 3)
    ts = args.data / "ts_example"
    sets["real: ts_example"] = (load_nifti(ts / "ct.nii.gz"), ts_levels(ts), 2)
    for data, (volume, level_of, step) in sets.items():
        for state, bounds in STATES.items():
            for s in axial_slices(clipped(volume, bounds), step):
                z = int(str(s.source).split("#z")[1])
                groups[(data, state, level_of[z])].append(model.read_levels(s)[1][0])
    examples = []
    for level, s in phantom_slices(args.phantom_cases):
        groups[("phantom, --anatomy trunk", "HU", level)].append(model.read_levels(s)[1][0])
        if str(s.source).startswith("phantom/trunk_0.nii.gz") and len(examples) < 12:
            check = model.check(s)  # the verdict and reason check-sides gives this slice alone
            examples.append({"slice": str(s.source), "level": level, **check.row()})
    table = [summary(*key, readings) for key, readings in groups.items()]
    extra = {"data": "real: ircadb 01, 07, ts_example; phantom --anatomy trunk", "phantom_verdicts": examples}
    report("level_detector", table, extra)


if __name__ == "__main__":
    main()
