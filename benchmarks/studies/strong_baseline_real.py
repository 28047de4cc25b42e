"""The scratch baseline's recipe on real CT: trained on one or two real patients, tested on the others.

Real data in ../shared/data, nothing else:
- ``one``: trained on ircadb patient 01 (manual masks), tested on ircadb patient 07 (manual masks) and on
  ts_example (a non-contrast CT; its masks are TotalSegmentator predictions, silver standard);
- ``two``: trained on both ircadb patients, tested on ts_example.

No validation patient is left to choose a checkpoint, so none is chosen: every run is scored at its last
checkpoint (the poly schedule ends at learning rate 0), and its validation curve is that of its own
training patients' patches, logged but not used for selection. Test labels are read only by ``evaluate``.
Each run is the real commands (`prepare`, `train`, `evaluate --checkpoint last`) with the preset's recipe;
``--set NAME=VALUE`` overrides a training setting (e.g. ``--set optimizer=adamw --set lr=0.001``).
Writes results/<name>.json (default strong_baseline_real) and a table: per test case kidney Dice, HD95,
and wall times.

Usage: python benchmarks/studies/strong_baseline_real.py [--data ../shared/data] [--work DIR]
       [--preset fast-2d] [--scenarios one two] [--set NAME=VALUE ...] [--seed 0]
       [--name strong_baseline_real]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

from _common import measure, report

IRCADB_01, IRCADB_07, TS = "ircadb__patient_01", "ircadb__patient_07", "ts_example__ts_example"
SCENARIOS = {
    "one": {"train": [IRCADB_01], "test": [IRCADB_07, TS]},
    "two": {"train": [IRCADB_01, IRCADB_07], "test": [TS]},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[3] / "shared" / "data")
    parser.add_argument("--work", type=Path, default=None, help="Keep runs here (default: a temporary dir).")
    parser.add_argument("--preset", default="fast-2d")
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="strong_baseline_real", help="The results file's name.")
    args = parser.parse_args()
    if not (args.data / "ircadb").is_dir():
        sys.exit(f"{args.data / 'ircadb'}: not found (this benchmark needs ../shared/data)")
    tmp = tempfile.TemporaryDirectory()
    work = args.work or Path(tmp.name)
    sidepair = [sys.executable, "-m", "sidepair"]
    overrides = [_option(*s.split("=", 1)) for s in args.set]
    rows = []
    for name in args.scenarios:
        split = SCENARIOS[name]
        store = work / f"store_{name}"
        if not (store / "store.json").exists():
            sources = ["--data", str(args.data / "ircadb"), "--data", str(args.data / "ts_example")]
            measure([*sidepair, "prepare", *sources, "--out", str(store), "--preset", args.preset])
        path = store / "splits.json"
        splits = json.loads(path.read_text(encoding="utf-8"))
        # The training patients' own patches give the (unused for selection) validation curve.
        splits.update(train=split["train"], val=split["train"], test=split["test"])
        path.write_text(json.dumps(splits, indent=2), encoding="utf-8")
        run = work / f"run_{name}_s{args.seed}"
        where = ["--store", str(store), "--out", str(run), "--preset", args.preset, "--device", "cpu"]
        trained = measure([*sidepair, "train", *where, "--seed", str(args.seed), *overrides])
        evaluated = measure(
            [*sidepair, "evaluate", "--run", str(run), "--checkpoint", "last", "--device", "cpu"]
        )
        info = json.loads((run / "run.json").read_text(encoding="utf-8"))
        with open(run / "eval_test" / "per_case.csv", newline="", encoding="utf-8") as f:
            for case in csv.DictReader(f):
                rows.append(
                    {
                        "scenario": name,
                        "train": "+".join(split["train"]),
                        "test": case["case_id"],
                        "kidney_dice": round(float(case["kidney_dice"]), 4),
                        "right_dice": round(float(case["right_dice"]), 4),
                        "left_dice": round(float(case["left_dice"]), 4),
                        "kidney_hd95_mm": round(float(case["kidney_hd95"]), 1),
                        "epochs": info.get("epochs_run"),
                        "converged": info.get("converged"),
                        "train_wall_s": round(trained["wall_s"], 1),
                        "eval_wall_s": round(evaluated["wall_s"], 1),
                    }
                )
    report(
        args.name,
        rows,
        {
            "data": "real CT: ircadb 01 and 07 (manual masks), ts_example (non-contrast, "
            "TotalSegmentator masks)",
            "preset": args.preset,
            "overrides": args.set,
            "seed": args.seed,
            "selection": "last checkpoint (no validation patient)",
        },
    )


def _option(name: str, value: str) -> str:
    """``--name=value``; a switch as ``--name`` or ``--no-name`` (the command line's flags take no value)."""
    flag = name.replace("_", "-")
    if value.lower() in ("true", "false"):
        return f"--{flag}" if value.lower() == "true" else f"--no-{flag}"
    return f"--{flag}={value}"


if __name__ == "__main__":
    main()
