"""The mirror score and organ-occlusion probe of side-pair models on the phantom: organs or handedness?

Generates a 24-case phantom (seed 0, 192 x 192 x 48), prepares it with the `demo` preset, and pretrains
side-pair with `masked` sections, `half` sections, `half` sections mirrored at random during training
(`--mirror`, each keeping its anatomical side), and the same with a side head (`--side-head`, BCE: what
`check-sides` reads). For each, on held-out validation patients (`sidepair.evaluation.side_probe.probe`,
256 pairs): pair accuracy and AUC on plain pairs; on the same pairs with every second section mirrored
(the mirror score); with the liver and spleen blanked in both sections (occluded accuracy, over the
pairs whose two sections both hold one, beside those pairs' plain accuracy); and with every organ the
phantom draws differently on the two sides blanked (liver, spleen, stomach, aorta, IVC). A run already
finished in ``--work`` is probed again, not retrained (its ``wall_s`` is then null). A model that reads organs
keeps its accuracy mirrored and falls toward chance occluded; one that reads handedness falls near 0
mirrored. Writes results/mirror_score_e{epochs}_s{seed}.json and a table. Phantom results, not real-data
results.

Usage: python benchmarks/studies/mirror_score.py [--work DIR] [--epochs 8] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from _common import measure, report
from sidepair.data.phantom import ORGANS
from sidepair.evaluation.side_probe import probe

VARIANTS = {
    "masked": ["--sections", "masked"],
    "half": ["--sections", "half"],
    "half-mirrored": ["--sections", "half", "--mirror"],
    "half-mirrored-side-head": ["--sections", "half", "--mirror", "--side-head", "--loss", "bce"],
}


def history_of(run: Path) -> list[dict]:
    """A run's per-epoch records."""
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="Keep runs here (default: a temporary dir).")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0, help="Pretraining seed.")
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    work = args.work or Path(tmp.name)
    sidepair = [sys.executable, "-m", "sidepair"]
    if not (work / "phantom" / "phantom.json").exists():
        measure([*sidepair, "phantom", "--out", str(work / "phantom"), "--cases", "24", "--seed", "0",
                 "--shape", "192", "192", "48", "--no-montage"])  # fmt: skip
    if not (work / "store" / "index.json").exists():
        measure([*sidepair, "prepare", "--data", str(work / "phantom"), "--out", str(work / "store"),
                 "--preset", "demo"])  # fmt: skip
    rows = []
    for name, options in VARIANTS.items():
        run = work / f"{name}_e{args.epochs}_s{args.seed}"
        wall = None
        if not (run / "metrics.jsonl").exists() or len(history_of(run)) < args.epochs:
            wall = measure([*sidepair, "pretrain", "--store", str(work / "store"), "--out", str(run),
                            "--preset", "demo", "--epochs", str(args.epochs), "--seed", str(args.seed),
                            "--device", "cpu", "--resume", *options])["wall_s"]  # fmt: skip
        found = probe(run, work / "store", n_pairs=256, seed=args.seed)
        every = probe(run, work / "store", n_pairs=256, seed=args.seed, organs=tuple(ORGANS))
        rows.append(
            {
                "variant": name,
                "seed": args.seed,
                "epochs": history_of(run)[-1]["epoch"],
                **{k: found[k] for k in ("acc", "auc", "mirror_acc", "mirror_auc", "organ_pairs",
                                         "organ_plain_acc", "occluded_acc")},
                "all_organ_pairs": every["organ_pairs"],
                "all_organ_plain_acc": every["organ_plain_acc"],
                "all_occluded_acc": every["occluded_acc"],
                **{k: found.get(k) for k in ("side_acc", "side_mirror_acc", "side_occluded_acc")},
                "side_all_occluded_acc": every.get("side_occluded_acc"),
                "wall_s": wall,
            }
        )  # fmt: skip
    report(
        f"mirror_score_e{args.epochs}_s{args.seed}",
        rows,
        {
            "data": "phantom, 24 cases (seed 0), 192 x 192 x 48, demo store; held-out validation patients, "
            "256 pairs (best checkpoint); occluded = liver and spleen blanked, all = liver, spleen, "
            "stomach, aorta, IVC"
        },
    )


if __name__ == "__main__":
    main()
