"""Where check-sides' single-slice verdicts go wrong: by what the slice's level holds, and for an ensemble.

Reads the per-slice rows that ``laterality_ood.py`` wrote (``results/laterality_ood.json``: every third
axial slice of ircadb 01 and 07 in each value state, read by each of its models) and the ircadb organ
masks, and sorts each slice by its level: a kidney in it; the liver or spleen but no kidney; none of the
four (below the kidneys or above the liver dome). Per level and model: right, confidently wrong and
``unsure``. Then the models read together (``check-sides --model A --model B ...``): a scan's evidence is
the mean of the models' log-odds (every step from crop logits to a scan's evidence is a mean), so the
ensemble's verdict follows from the rows exactly, without a rerun. Withheld inputs stay ``unsure``.
Real data. Writes results/laterality_levels.json (``--name``) and a table.

Usage: python benchmarks/studies/laterality_levels.py [--data ../shared/data] [--source laterality_ood]
       [--name laterality_levels]
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter, defaultdict
from pathlib import Path

import nibabel as nib
import numpy as np

from _common import RESULTS, report
from sidepair.choices import DEFAULT_SIDE_THRESHOLD, DEFAULT_SLICE_THRESHOLD
from sidepair.qc.verdict import threshold_for, verdict_of

REPO = Path(__file__).resolve().parents[2]
ORGANS = ("kidney_right", "kidney_left", "liver", "spleen")


def levels(patient_dir: Path) -> list[str]:
    """Each axial slice's level: ``kidney``, ``liver or spleen, no kidney`` or ``none of the four``."""
    present = {}
    for organ in ORGANS:
        mask = np.asanyarray(nib.load(str(patient_dir / "segmentations" / f"{organ}.nii.gz")).dataobj)
        present[organ] = mask.reshape(-1, mask.shape[2]).any(axis=0)
    out = []
    for z in range(len(present["liver"])):
        if present["kidney_right"][z] or present["kidney_left"][z]:
            out.append("kidney")
        elif present["liver"][z] or present["spleen"][z]:
            out.append("liver or spleen, no kidney")
        else:
            out.append("none of the four")
    return out


def outcome(verdict: str, right: str) -> str:
    """``right``, ``unsure`` or ``wrong`` (confidently)."""
    return "right" if verdict == right else "unsure" if verdict == "unsure" else "wrong"


def ensemble_verdict(rows: list[dict]) -> str:
    """The verdict of the models read together, from their rows of one slice."""
    first = rows[0]
    if first["reason"] and not first["reason"].startswith("weak evidence"):
        return "unsure"  # withheld for what the input is, whatever the models say
    p = 1 / (1 + math.exp(-float(np.mean([r["evidence"] for r in rows]))))
    return verdict_of(p, threshold_for(first["levels"], DEFAULT_SIDE_THRESHOLD, DEFAULT_SLICE_THRESHOLD))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--source", default="laterality_ood", help="The laterality_ood.py result file read.")
    parser.add_argument("--name", default="laterality_levels", help="The results file's name.")
    args = parser.parse_args()
    source_path = RESULTS / f"{args.source}.json"
    if not source_path.is_file():
        parser.error(f"--source {args.source}: {source_path} not found (run laterality_ood.py first)")
    source = json.loads(source_path.read_text(encoding="utf-8"))
    rows = [r for r in source["scans"] if r["set"] == "ircadb slices"]
    level_of = {p: levels(args.data / "ircadb" / p) for p in ("patient_01", "patient_07")}
    models = sorted({r["model"] for r in rows})
    counts: dict[tuple, Counter] = defaultdict(Counter)
    by_slice: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        patient, z = Path(r["input"].split("#")[0]).parent.name, int(r["input"].split("#z")[1])
        level = level_of[patient][z]
        counts[(r["model"], r["state"], level)][outcome(r["verdict"], r["right"])] += 1
        by_slice[(r["state"], level, r["input"])].append(r)
    for (state, level, _), found in by_slice.items():
        if len(found) == len(models):
            counts[("ensemble of " + str(len(models)), state, level)][
                outcome(ensemble_verdict(found), found[0]["right"])
            ] += 1
    table = [
        {
            "model": m,
            "state": s,
            "level": lv,
            "slices": sum(c.values()),
            "right": c["right"],
            "confidently_wrong": c["wrong"],
            "unsure": c["unsure"],
        }  # fmt: skip
        for (m, s, lv), c in sorted(counts.items())
    ]
    report(
        args.name,
        table,
        {"data": "real: ircadb 01 and 07, every third axial slice", "source_commit": source["commit"]},
    )


if __name__ == "__main__":
    main()
