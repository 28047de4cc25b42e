"""The organ-occlusion probe of the shipped side model and the phantom-only fixture on unseen phantom cases.

Eight ``--anatomy varied`` phantom cases (seed 99), prepared with the ``laterality`` preset; 256 pairs drawn
from all of them; liver and spleen blanked, then all five side organs (liver, spleen, stomach, aorta, IVC).
Phantom results. Writes ``results/side_probe_phantom.json`` and a table.

``--model NAME=FILE`` adds a model (e.g. an earlier shipped one, ``git show REV:src/sidepair/resources/
side_model.pt > OLD.pt``), probed on the same pairs, so that models are compared side by side.

Usage: python benchmarks/studies/side_probe_phantom.py [--work DIR] [--model NAME=FILE ...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from _common import model_specs, report
from sidepair.data.store import Store
from sidepair.evaluation.side_probe import probe
from sidepair.qc.side_model import default_model_path

REPO = Path(__file__).resolve().parents[2]
MODELS = {
    "shipped": default_model_path(),
    "phantom-only fixture": REPO / "tests" / "fixtures" / "side_model_phantom_only.pt",
}
ORGAN_SETS = (("liver", "spleen"), ("liver", "spleen", "stomach", "aorta", "ivc"))
KEYS = ("acc", "mirror_acc", "organ_pairs", "organ_plain_acc", "occluded_acc", "side_acc", "side_mirror_acc",
        "organ_sections", "side_organ_plain_acc", "side_occluded_acc")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "side_probe_phantom")
    parser.add_argument("--model", action="append", default=[], help="NAME=FILE: another side model.")
    args = parser.parse_args()
    extra = model_specs(parser, args.model)
    if any(len(paths) > 1 for paths in extra.values()):
        parser.error("--model: the probe reads one network per NAME (NAME=FILE)")
    models = dict(MODELS) | {name: paths[0] for name, paths in extra.items()}
    sidepair = [sys.executable, "-m", "sidepair"]
    phantom, store_dir = args.work / "phantom", args.work / "store"
    if not (phantom / "phantom.json").exists():
        subprocess.run([*sidepair, "phantom", "--out", str(phantom), "--cases", "8", "--seed", "99",
                        "--anatomy", "varied", "--no-montage"], check=True)  # fmt: skip
    if not (store_dir / "store.json").exists():
        subprocess.run([*sidepair, "prepare", "--data", str(phantom), "--out", str(store_dir), "--preset",
                        "laterality", "--side-check", "off"], check=True)  # fmt: skip
    store = Store(store_dir)
    rows = []
    for name, model in models.items():
        for organs in ORGAN_SETS:
            found = probe(model, store, cases=sorted(store.cases), n_pairs=256, seed=0, organs=organs)
            rows.append({"model": name, "blanked": "+".join(organs), **{k: found[k] for k in KEYS}})
    report("side_probe_phantom", rows, {"data": "phantom, 8 varied cases (seed 99) no model saw"})


if __name__ == "__main__":
    main()
