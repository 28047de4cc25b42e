"""How far check-sides' figures move between side models trained by one recipe with different seeds.

Each ``--model NAME=FILE`` (e.g. ``scripts/train_side_model.py --train-seed 1 --out FILE``) is run on every
real 3D scan in ``../shared/data`` in three states (as it is, header flipped, array mirrored; the states of
``laterality_lopo.py``) and on every real KiTS19 slice as it is and mirrored. Per model: each scan's
probability and verdict, how many verdicts are right, and how many are confidently wrong (``ok`` where
``flipped`` is right or the reverse). Then, per group of models (the part of NAME before ``@``, e.g.
``shipped@seed1``), the range of each figure over its seeds. A scan in a model's training data is marked
(``in_training``): its verdict is not a hold-out.

Real-data results. Writes ``results/<name>.json``, ``<name>_scans.json`` and ``<name>_groups.json`` (default
name ``side_model_spread``) and tables.

Usage: python benchmarks/studies/side_model_spread.py --model shipped@seed0=A.pt
       --model shipped@seed1=B.pt ...
       [--data ../shared/data] [--work runs/side_model_spread] [--name side_model_spread]
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from laterality_lopo import PATIENTS, slice_verdicts, states

from _common import model_specs, report
from sidepair.models.checkpoint import PretrainCheckpoint, read_checkpoint
from sidepair.qc.check import check_sides
from sidepair.qc.side_model import SideModel

REPO = Path(__file__).resolve().parents[2]
RIGHT = {"as is": "ok", "header flipped": "flipped", "array mirrored": "flipped", "mirrored": "flipped"}


def confidently_wrong(row: dict) -> bool:
    """``ok`` where ``flipped`` is right, or the reverse (``unsure`` is not confident)."""
    return row["verdict"] not in (RIGHT[row["state"]], "unsure")


def trained_on(paths: list[Path]) -> set[str]:
    """The real CTs side models' checkpoints say they were trained on (``train_side_model.py`` records it)."""
    configs = [read_checkpoint(path, PretrainCheckpoint).config for path in paths]
    return {str(Path(p).parent) for c in configs for p in c.get("training_data", {}).get("real", [])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "side_model_spread")
    parser.add_argument(
        "--model", action="append", required=True, help="GROUP@SEED=FILE; NAME=A,B reads several together."
    )
    parser.add_argument("--name", default="side_model_spread", help="The results files' name.")
    args = parser.parse_args()
    models = model_specs(parser, args.model)
    scans = {p: states(args.data / p / "ct.nii.gz", args.work / p) for p in PATIENTS}
    rows, summary = [], []
    for name, path in models.items():
        model, seen = SideModel.load(path), trained_on(path)
        mine = []
        for patient, paths in scans.items():
            for state, scan in paths.items():
                found = check_sides(scan, model=model)
                mine.append({"model": name, "scan": patient, "state": state, "in_training": patient in seen,
                             "probability": round(found.probability, 3), "verdict": found.verdict,
                             "right": found.verdict == RIGHT[state]})  # fmt: skip
        rows += mine
        held_out = [r for r in mine if not r["in_training"]]
        slices = slice_verdicts(args.data / "kits19_slices", {name: path}, args.work)
        summary.append({
            "model": name,
            "scans_right": f"{sum(r['right'] for r in mine)}/{len(mine)}",
            "held_out_scans_right": f"{sum(r['right'] for r in held_out)}/{len(held_out)}",
            "scans_confidently_wrong": sum(confidently_wrong(r) for r in mine),
            "min_margin_held_out": min((abs(r["probability"] - 0.5) for r in held_out), default=None),
            "slices_right_as_is": sum(r["right"] for r in slices if r["state"] == "as is"),
            "slices_right_mirrored": sum(r["right"] for r in slices if r["state"] == "mirrored"),
            "slices_confidently_wrong": sum(confidently_wrong(r) for r in slices),
            "slices": len(slices) // 2,
        })  # fmt: skip
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in summary:
        groups[row["model"].partition("@")[0]].append(row)
    spread = []
    for group, members in groups.items():
        out = {"group": group, "seeds": len(members)}
        for key in ("slices_right_as_is", "slices_right_mirrored", "slices_confidently_wrong",
                    "scans_confidently_wrong"):  # fmt: skip
            values = [m[key] for m in members]
            out[key] = f"{min(values)}–{max(values)}"
        spread.append(out)
    meta = {"data": "real: ts_example, ircadb 01 and 07 (3 states each), 24 KiTS19 slices (2 states)"}
    report(f"{args.name}_scans", rows, meta)
    report(args.name, summary, meta)
    report(f"{args.name}_groups", spread, meta)


if __name__ == "__main__":
    main()
