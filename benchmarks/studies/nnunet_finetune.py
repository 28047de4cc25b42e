"""``scripts/nnunet_finetune.py`` as a result file: side-pair weights into ``nnUNetv2_train`` on CPU.

Runs the script (phantom in nnU-Net's raw layout, nnU-Net's fingerprint, plans and preprocessing,
``sidepair prepare --plans``, ``pretrain --architecture nnunet``, ``export --format nnunet``, then nnU-Net's
own training entry point for one epoch from the exported weights) and writes what its ``summary.json``
holds, with nnU-Net's loss, pseudo-Dice and validation lines read into numbers, to
results/nnunet_finetune.json. Phantom data, not patient data. Needs the ``nnunet`` extra.

Usage: python benchmarks/studies/nnunet_finetune.py [--work DIR] [--cases 6] [--pretrain-epochs 3]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import report

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "nnunet_finetune.py"
NUMBER = r"-?\d+(?:\.\d+)?(?:e-?\d+)?"


def parse(summary: dict) -> dict:
    """nnU-Net's printed figures as numbers: the last ``train_loss`` / ``val_loss``, the per-class pseudo
    Dice and the mean validation Dice (None where nnU-Net did not print one)."""
    lines = summary["loss_lines"]

    def last(key: str) -> float | None:
        found = [re.search(rf"{key}\s+({NUMBER})", x) for x in lines]
        return next((float(m.group(1)) for m in reversed(found) if m), None)

    pseudo = next((x for x in reversed(lines) if "Pseudo dice" in x), "")
    # nnU-Net prints e.g. [np.float32(0.0), np.float32(0.63), ...] or [0.0, 0.63, ...]
    classes = pseudo.split("[")[-1] if "[" in pseudo else ""
    validation = re.search(rf"({NUMBER})\s*$", summary["validation"] or "")
    return {
        "train_loss": last("train_loss"),
        "val_loss": last("val_loss"),
        "pseudo_dice": [float(v) for v in re.findall(rf"(?:np\.float\d+\()?({NUMBER})\)?", classes)],
        "mean_validation_dice": float(validation.group(1)) if validation else None,
        "pretrained_weights_loaded": summary["loading_line"] is not None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="Keep the runs here (default: temporary).")
    parser.add_argument("--cases", type=int, default=6)
    parser.add_argument("--pretrain-epochs", type=int, default=3)
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    work = args.work or Path(tmp.name) / "nnunet_finetune"
    command = [sys.executable, str(SCRIPT), "--work", str(work), "--cases", str(args.cases),
               "--pretrain-epochs", str(args.pretrain_epochs)]  # fmt: skip
    if subprocess.run(command).returncode != 0:
        sys.exit(f"{SCRIPT.name} failed")
    summary = json.loads((work / "summary.json").read_text(encoding="utf-8"))
    row = {"configuration": summary["configuration"], **parse(summary), "export": summary["export"]}
    report(
        "nnunet_finetune",
        [row],
        {
            "data": summary["data"],
            "wall_s": summary["wall_s"],
            "nnunet_lines": summary["loss_lines"],
            "loading_line": summary["loading_line"],
            "validation_line": summary["validation"],
            "trainer": "nnUNetTrainer_1epoch_NoMirroring (250 iterations), CPU",
        },
    )


if __name__ == "__main__":
    main()
