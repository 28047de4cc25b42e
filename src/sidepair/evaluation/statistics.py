"""Statistics of the comparison that hold with few test patients.

The unit is the test patient: a patient's cases (slices of a slice folder, several scans) and its seeds are
averaged first, so each patient gives one paired difference. On those differences:

- an **exact** two-sided Wilcoxon signed-rank test, from the exact null distribution of the signed-rank
  sum (zero differences dropped, ties given mid-ranks), with the smallest p-value the remaining n can
  reach beside it: 0.0625 at n = 5, so no test with 5 patients can reach p < 0.05;
- a **t-interval** of the mean difference. A test simulates the null (patient sd 0.03, seed sd 0.01, 3
  seeds) and checks that it covers 93-97 % at n = 5, 10 and 20; the percentile bootstrap does not (84 %
  at n = 5), nor does a bootstrap over patients then seeds;
- **Holm's** correction over a report's family of comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats


def _nonzero(differences: Sequence[float]) -> np.ndarray:
    d = np.asarray(differences, dtype=float)
    d = d[np.isfinite(d)]
    return d[d != 0]


def signed_rank_null(ranks2: np.ndarray) -> np.ndarray:
    """Exact null distribution of the sum of twice the positive ranks.

    Args:
        ranks2: Twice the (mid-)ranks of the absolute differences, integers.

    Returns:
        ``counts[s]``: how many of the ``2**n`` sign assignments give the sum ``s``.
    """
    counts = np.zeros(int(ranks2.sum()) + 1, dtype=float)
    counts[0] = 1.0
    for r in ranks2.astype(int):
        shifted = np.zeros_like(counts)
        shifted[r:] = counts[: len(counts) - r]
        counts = counts + shifted
    return counts


def exact_wilcoxon(differences: Sequence[float]) -> dict[str, float]:
    """Exact two-sided Wilcoxon signed-rank test of paired differences.

    Zero differences are dropped (Wilcoxon's rule); ties among the rest get mid-ranks and the exact
    distribution of the statistic given those ranks. The p-value is the null probability of a signed-rank
    sum at least as far from its mean as the observed one.

    Returns:
        ``p``; ``p_floor``, the smallest p-value this n (and these ties) can give; ``n``, the differences
        left after dropping zeros; ``zeros``, how many were dropped. With n = 0, p is 1 and the floor 1.
    """
    d_all = np.asarray(differences, dtype=float)
    d_all = d_all[np.isfinite(d_all)]
    d = _nonzero(d_all)
    n = len(d)
    zeros = len(d_all) - n
    if n == 0:
        return {"p": 1.0, "p_floor": 1.0, "n": 0, "zeros": zeros}
    ranks2 = np.rint(2 * stats.rankdata(np.abs(d))).astype(int)
    counts = signed_rank_null(ranks2)
    total = counts.sum()
    sums = np.arange(len(counts))
    centre = ranks2.sum() / 2
    observed = abs(int(ranks2[d > 0].sum()) - centre)
    # A small tolerance: deviations are multiples of 0.5 on this doubled scale.
    p = counts[np.abs(sums - centre) >= observed - 1e-9].sum() / total
    extreme = np.abs(sums - centre).max()
    floor = counts[np.abs(sums - centre) >= extreme - 1e-9].sum() / total
    return {"p": float(min(1.0, p)), "p_floor": float(floor), "n": n, "zeros": zeros}


def wilcoxon_floor(n: int) -> float:
    """The smallest two-sided p-value of the exact signed-rank test with n untied, nonzero differences."""
    return 1.0 if n == 0 else min(1.0, 2.0 / 2**n)


def t_interval(differences: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Student's t interval of the mean of ``differences`` (NaN with fewer than 2)."""
    d = np.asarray(differences, dtype=float)
    d = d[np.isfinite(d)]
    if len(d) < 2:
        return math.nan, math.nan
    half = stats.t.ppf(0.5 + level / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return float(d.mean() - half), float(d.mean() + half)


def percentile_bootstrap(
    values: Sequence[float], n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (kept to show, in the tests, why it is not used)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (NaN stays NaN and does not count in the family)."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(len(p), math.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = len(finite)
    order = finite[np.argsort(p[finite], kind="stable")]
    running = 0.0
    for i, idx in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[idx]))
        out[idx] = running
    return out.tolist()


def paired_comparison(
    treated: dict[Any, float], control: dict[Any, float], higher_is_better: bool = True
) -> dict[str, float]:
    """Treated minus control over the units both hold (test patients, seeds averaged first).

    Returns:
        ``n`` pairs, ``mean_diff``, the 95 % t-interval ``ci_low``/``ci_high``, the exact Wilcoxon ``p``
        and its floor ``p_floor`` for the nonzero differences (``n_nonzero``), and how many units the treated
        side ``wins`` (is better in, by ``higher_is_better``).
    """
    keys = sorted(
        k for k in treated if k in control and math.isfinite(treated[k]) and math.isfinite(control[k])
    )
    d = np.array([treated[k] - control[k] for k in keys], dtype=float)
    low, high = t_interval(d)
    test = exact_wilcoxon(d)
    return {
        "n": len(keys),
        "mean_diff": float(d.mean()) if len(d) else math.nan,
        "ci_low": low,
        "ci_high": high,
        "p": test["p"] if len(d) else math.nan,
        "p_floor": test["p_floor"] if len(d) else math.nan,
        "n_nonzero": test["n"],
        "wins": int((d > 0).sum() if higher_is_better else (d < 0).sum()),
    }


def epochs_to_reach(curve: list[float], target: float) -> int | None:
    """The first epoch (1-based) at which ``curve`` reaches ``target``; None if it never does."""
    for i, value in enumerate(curve):
        if value >= target:
            return i + 1
    return None


def smoothed(curve: Sequence[float], smoothing: float) -> list[float]:
    """An exponential moving average of ``curve`` (nnU-Net smooths its pseudo-Dice with 0.9).

    ``s[0] = v[0]`` and ``s[t] = smoothing * s[t-1] + (1 - smoothing) * v[t]``; a value that is not a
    number counts as 0 (a validation that found nothing), so one bad epoch pulls the average down
    instead of poisoning it. ``smoothing`` 0 returns the curve itself.
    """
    out: list[float] = []
    for v in curve:
        v = float(v) if math.isfinite(v) else 0.0
        out.append(v if not out else smoothing * out[-1] + (1 - smoothing) * v)
    return out


def plateaued(
    curve: Sequence[float], window: int, min_delta: float, smoothing: float = 0.0, min_epochs: int = 0
) -> bool:
    """The convergence rule: a plateau of the last ``window`` epochs of the (smoothed) curve.

    They did not raise the best value by more than ``min_delta`` over the best before them, so at least
    ``window + 1`` epochs are needed, and at least ``min_epochs``. With ``smoothing`` > 0 the rule reads
    the exponential moving average (:func:`smoothed`): a noisy curve whose single epochs jump by 0.1 is
    not called flat because one early spike was never beaten.
    """
    if smoothing > 0:
        values = smoothed(curve, smoothing)
    else:
        values = [v if math.isfinite(v) else -math.inf for v in curve]
    if window < 1 or len(values) <= window or len(values) < min_epochs:
        return False
    return max(values[-window:]) <= max(values[:-window]) + min_delta
