"""Statistics of the comparison: paired tests per test case, bootstrap intervals, convergence."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy import stats


def bootstrap_mean_ci(
    values: np.ndarray, n_boot: int = 10_000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (NaN for fewer than 2 values)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n_boot, len(values)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def wilcoxon_p(differences: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences.

    All-zero differences give 1.0 (no evidence of a difference); fewer than 2 pairs give NaN.
    """
    d = np.asarray(differences, dtype=float)
    d = d[np.isfinite(d)]
    if len(d) < 2:
        return math.nan
    if np.all(d == 0):
        return 1.0
    with warnings.catch_warnings():  # scipy warns that small samples use the exact distribution
        warnings.simplefilter("ignore")
        return float(stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


def paired_comparison(
    treated: dict[Any, float],
    control: dict[Any, float],
    n_boot: int = 10_000,
    seed: int = 0,
    higher_is_better: bool = True,
) -> dict[str, float]:
    """Treated minus control over the keys both hold (e.g. test cases).

    Returns:
        ``n`` pairs, ``mean_diff``, bootstrap ``ci_low``/``ci_high`` (95 %), Wilcoxon ``p``, and how
        many pairs the treated side ``wins`` (is better in, by ``higher_is_better``).
    """
    keys = sorted(
        k for k in treated if k in control and math.isfinite(treated[k]) and math.isfinite(control[k])
    )
    d = np.array([treated[k] - control[k] for k in keys], dtype=float)
    low, high = bootstrap_mean_ci(d, n_boot, seed)
    return {
        "n": len(keys),
        "mean_diff": float(d.mean()) if len(d) else math.nan,
        "ci_low": low,
        "ci_high": high,
        "p": wilcoxon_p(d),
        "wins": int((d > 0).sum() if higher_is_better else (d < 0).sum()),
    }


def epochs_to_reach(curve: list[float], target: float) -> int | None:
    """The first epoch (1-based) at which ``curve`` reaches ``target``; None if it never does."""
    for i, value in enumerate(curve):
        if value >= target:
            return i + 1
    return None
