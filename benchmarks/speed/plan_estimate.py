"""What ``sidepair experiment CONFIG --plan`` prints, and what it costs: the grid, CPU and GPU hours.

Runs the plan of each built-in config named (its short calibration of a few steps on this CPU, and the
GPU hours from the recorded step speeds, ``sidepair/resources/gpu_speeds.json``) and records its wall
time and this process's peak memory. Random tensors (timing only). Writes results/plan_estimate.json and a
table.

Usage: python benchmarks/speed/plan_estimate.py [--configs kits19-paper-3d demo]
"""

from __future__ import annotations

import argparse
import resource
import time

from _common import report
from sidepair.experiment.config import load_experiment_config
from sidepair.experiment.estimate import estimate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["kits19-paper-3d"])
    args = parser.parse_args()
    rows, plans = [], {}
    for name in args.configs:
        start = time.perf_counter()
        plan = estimate(load_experiment_config(name))
        wall = time.perf_counter() - start
        plans[name] = plan
        rows.append(
            {
                "config": name,
                "pretrainings": plan["pretraining_runs"],
                "segmentation_runs": plan["segmentation_runs"],
                "optimiser_steps": plan["optimiser_steps"],
                "cpu_hours": round(plan["cpu_hours"], 2),
                "gpu": plan["gpu"],
                "gpu_hours": None if plan["gpu_hours"] is None else round(plan["gpu_hours"], 2),
                "plan_wall_s": round(wall, 1),
                # ru_maxrss is in KiB on Linux; the peak of this process so far, so of the largest plan.
                "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            }
        )
    report("plan_estimate", rows, {"data": "random tensors (timing only)", "plans": plans})


if __name__ == "__main__":
    main()
