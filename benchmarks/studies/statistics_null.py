"""The statistics of the report under the null: coverage of intervals, false positives of tests.

Simulates experiments with no true effect: per test patient a paired difference u ~ N(0, 0.03), and per
seed noise on it N(0, 0.01), 3 seeds; n = 5, 10 and 20 patients. For each method it prints how often the
95 % interval covers 0, or how often the test gives p < 0.05:

- t-interval on the seed-averaged patient differences (what the report uses);
- percentile bootstrap of those patient differences;
- hierarchical bootstrap (patients, then seeds within them);
- exact Wilcoxon on patients (what the report uses), and its smallest attainable p;
- Wilcoxon pooled over patient x seed pairs (pseudo-replication).

Usage: python benchmarks/studies/statistics_null.py [--experiments 5000]
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import stats

from _common import report
from sidepair.evaluation.statistics import exact_wilcoxon, percentile_bootstrap, t_interval, wilcoxon_floor


def hierarchical_bootstrap(
    d: np.ndarray, rng: np.random.Generator, n_boot: int = 1000
) -> tuple[float, float]:
    n, seeds = d.shape
    patients = rng.integers(0, n, size=(n_boot, n))
    picks = rng.integers(0, seeds, size=(n_boot, n, seeds))
    means = d[patients[:, :, None], picks].mean(axis=(1, 2))
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=5000)
    args = parser.parse_args()
    rows = []
    for n in (5, 10, 20):
        rng = np.random.default_rng(n)
        d = rng.normal(0, 0.03, (args.experiments, n, 1)) + rng.normal(0, 0.01, (args.experiments, n, 3))
        patient = d.mean(axis=2)
        cover_t = np.mean([lo <= 0 <= hi for lo, hi in (t_interval(x) for x in patient)])
        cover_boot = np.mean(
            [lo <= 0 <= hi for lo, hi in (percentile_bootstrap(x, 1000, i) for i, x in enumerate(patient))]
        )
        cover_hier = np.mean([lo <= 0 <= hi for lo, hi in (hierarchical_bootstrap(x, rng) for x in d)])
        exact = np.mean([exact_wilcoxon(x)["p"] < 0.05 for x in patient])
        pooled = np.mean([stats.wilcoxon(x.ravel()).pvalue < 0.05 for x in d])
        rows.append(
            {
                "patients": n,
                "experiments": args.experiments,
                "t_interval_coverage": float(cover_t),
                "percentile_bootstrap_coverage": float(cover_boot),
                "hierarchical_bootstrap_coverage": float(cover_hier),
                "exact_wilcoxon_p<0.05": float(exact),
                "pooled_wilcoxon_p<0.05": float(pooled),
                "smallest_p": wilcoxon_floor(n),
            }
        )
        print(rows[-1])
    report("statistics_null", rows, {"data": "simulated paired differences under the null, no images"})


if __name__ == "__main__":
    main()
