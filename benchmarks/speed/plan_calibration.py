"""How far ``experiment --plan``'s scaled CPU timing is from timing a 3D step at its own size.

A step of the paper's 3D preset is too large to time on a CPU as it is (two samples of 160 x 224 x 160 need
about 31 GB), so ``--plan`` times it on fewer samples and a smaller patch and scales by voxels
(``sidepair.experiment.estimate.calibration_shape``). This times each 3D step of ``kits19-paper-3d`` with
one sample (one pair for pretraining) at its full patch, the largest this machine holds, and as the plan
does, side by side in one run, and gives the ratio. Writes results/plan_calibration.json.

Usage: python benchmarks/speed/plan_calibration.py [--config kits19-paper-3d]
"""

from __future__ import annotations

import argparse
import dataclasses
import math

from _common import report
from sidepair.experiment.config import load_experiment_config
from sidepair.experiment.estimate import plan_lines, time_step, timed_as


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="kits19-paper-3d")
    args = parser.parse_args()
    steps = sorted({line.step for line in plan_lines(load_experiment_config(args.config))}, key=str)
    rows = []
    for step in steps:
        one = dataclasses.replace(step, batch=1)
        if timed_as(one) is None:
            continue  # timed as it is by --plan: nothing to compare
        full_train, full_forward = time_step(one, repeats=1, limit=math.inf)
        plan_train, plan_forward = time_step(one, repeats=1)
        rows.append(
            {
                "step": one.key,
                "timed_at": timed_as(one),
                "full_train_s": round(full_train, 2),
                "plan_train_s": round(plan_train, 2),
                "train_ratio": round(plan_train / full_train, 2),
                "full_forward_s": round(full_forward, 2),
                "plan_forward_s": round(plan_forward, 2),
                "forward_ratio": round(plan_forward / full_forward, 2),
            }
        )
    report("plan_calibration", rows, {"config": args.config, "data": "random tensors (timing only)"})


if __name__ == "__main__":
    main()
