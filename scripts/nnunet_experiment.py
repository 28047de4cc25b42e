"""The comparison on nnU-Net's own network: one experiment config with ``architecture: nnunet``.

On a small phantom whose labels carry sides, every step the command a user types:

1. ``sidepair phantom --layout nnunet`` (``nnUNet_raw/Dataset502_SidepairExperiment``);
2. ``nnUNetv2_extract_fingerprint`` and ``nnUNetv2_plan_experiment`` (nnU-Net's plans and its 2d
   configuration);
3. ``sidepair experiment CONFIG`` with ``architecture: nnunet``, ``plans`` and ``configuration: 2d``: the
   store is nnU-Net's preprocessing, every pretraining trains nnU-Net's encoder, every segmentation run
   nnU-Net's whole network (deep supervision off), scratch against side-pair transfer, evaluated per test
   patient in each scan's own geometry.

The pretext is the annotation-free one (half sections, mirrored, no label read), so both arms read the
same labels. Phantom data, not patient data; short-trained on CPU. Writes ``WORK/experiment/report.md``.

Usage: python scripts/nnunet_experiment.py [--work runs/nnunet_experiment] [--cases 16]
       [--shape 64 64 32] [--epochs 10]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nnunet_finetune import REPO, plan_phantom, workspace  # noqa: E402  (a sibling script, not a package)


def experiment_config(plans: Path, raw: Path, epochs: int, fractions: list[float], seeds: list[int]) -> dict:
    """The experiment YAML's content: the demo's comparison on nnU-Net's network."""
    return {
        "name": "nnunet-phantom",
        "description": (
            "Side-pair pretraining of nnU-Net's own 2d encoder (annotation-free half sections, mirrored) "
            "against the same nnU-Net network from scratch, on a small phantom in nnU-Net's raw layout. "
            "Short-trained on CPU: a demonstration that the comparison runs on nnU-Net's architecture."
        ),
        "preset": "demo",
        "architecture": "nnunet",
        "plans": str(plans),
        "configuration": "2d",
        "data": {"paths": [str(raw)], "format": "nnunet"},
        "prepare": {"split_seed": 0, "test_fraction": 0.3, "val_fraction": 0.15},
        "pretrain": [{"name": "half-mirror", "sections": "half", "mirror": True, "epochs": 5}],
        "segmentation": {
            "inits": ["scratch", "finetune"],
            "fractions": fractions,
            "seeds": seeds,
            "epochs": epochs,
            "samples_per_epoch": 256,
        },
        "evaluation": {"split": "test", "checkpoint": "best"},
        "jobs": 1,
        "device": "cpu",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "nnunet_experiment")
    parser.add_argument("--cases", type=int, default=16)
    parser.add_argument("--shape", type=int, nargs=3, default=[64, 64, 32], help="Phantom grid X Y Z.")
    parser.add_argument("--epochs", type=int, default=10, help="Segmentation epochs per run.")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.2, 1.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    work = args.work.resolve()
    env, raw, plans, logs = workspace(work, "Dataset502_SidepairExperiment")
    times: dict[str, float] = {}
    sidepair = [sys.executable, "-m", "sidepair"]
    if not plans.exists():
        plan_phantom(raw, args.cases, args.shape, env, logs, times)
    config = work / "nnunet-phantom.yaml"
    content = experiment_config(plans, raw, args.epochs, args.fractions, args.seeds)
    config.write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
    # The experiment's own progress goes to the terminal (it runs for a while).
    command = [*sidepair, "experiment", str(config), "--out", str(work / "experiment")]
    print("$", " ".join(command), flush=True)
    done = subprocess.run(command)
    if done.returncode != 0:
        sys.exit(f"experiment failed (exit {done.returncode})")
    print(f"report: {work / 'experiment' / 'report.md'}; setup wall times: {times}")


if __name__ == "__main__":
    main()
