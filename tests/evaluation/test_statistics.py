"""Statistics that hold at small n: exact Wilcoxon and its floor, Holm, and a t-interval whose coverage
is checked here by simulating the null the report faces (patients, seeds)."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from sidepair.evaluation.statistics import (
    epochs_to_reach,
    exact_wilcoxon,
    holm,
    paired_comparison,
    percentile_bootstrap,
    plateaued,
    smoothed,
    t_interval,
    wilcoxon_floor,
)
from sidepair.experiment.results import curve_area


def brute_force_p(d):
    """Every sign assignment of the ranks, counted: the definition of the exact test."""
    d = np.asarray([v for v in d if v != 0], dtype=float)
    ranks = stats.rankdata(np.abs(d))
    observed = abs(ranks[d > 0].sum() - ranks.sum() / 2)
    sums = [
        sum(r for r, s in zip(ranks, signs, strict=True) if s)
        for signs in itertools.product([0, 1], repeat=len(d))
    ]
    return np.mean([abs(x - ranks.sum() / 2) >= observed - 1e-9 for x in sums])


def test_exact_wilcoxon_equals_scipy_without_ties_and_enumeration_with_them():
    rng = np.random.default_rng(1)
    for n in (5, 7, 11):
        d = rng.normal(0.02, 0.05, n)
        assert exact_wilcoxon(d)["p"] == pytest.approx(stats.wilcoxon(d, method="exact").pvalue, rel=1e-9)
    tied = [0.1, 0.1, -0.1, 0.2, 0.3, 0.3, -0.05, 0.0]  # ties and a zero
    result = exact_wilcoxon(tied)
    assert result["n"] == 7 and result["zeros"] == 1
    assert result["p"] == pytest.approx(brute_force_p(tied), rel=1e-12)
    assert exact_wilcoxon([0.0, 0.0])["p"] == 1.0


@pytest.mark.parametrize("n,floor", [(5, 0.0625), (10, 2 / 2**10), (20, 2 / 2**20)])
def test_the_smallest_attainable_p(n, floor):
    assert wilcoxon_floor(n) == pytest.approx(floor)
    all_better = exact_wilcoxon(np.arange(1, n + 1) / 100)
    assert all_better["p"] == pytest.approx(floor) and all_better["p_floor"] == pytest.approx(floor)
    assert exact_wilcoxon(np.arange(1, n + 1) / 100 - 0.015)["p"] > floor


def test_holm_steps_down_and_keeps_the_order():
    assert holm([0.01, 0.04, 0.03, math.nan]) == pytest.approx([0.03, 0.06, 0.06, math.nan], nan_ok=True)
    assert holm([0.5, 0.6]) == [1.0, 1.0]


def simulate(n, experiments=1000, seeds=3, patient_sd=0.03, seed_sd=0.01, rng_seed=0):
    """The null the report faces: per patient a difference u ~ N(0, patient_sd); per seed noise on it."""
    rng = np.random.default_rng(rng_seed)
    u = rng.normal(0, patient_sd, (experiments, n, 1))
    return u + rng.normal(0, seed_sd, (experiments, n, seeds))


@pytest.mark.parametrize("n", [5, 10, 20])
def test_the_t_interval_covers_95_percent_under_the_null(n):
    d = simulate(n)
    patient_means = d.mean(axis=2)
    covered = [(lo <= 0 <= hi) for lo, hi in (t_interval(x) for x in patient_means)]
    coverage = float(np.mean(covered))
    assert 0.93 <= coverage <= 0.97, coverage
    # The exact test on patients holds its level: at most 0.05, within 3 standard errors of 1000 draws.
    rejected = np.mean([exact_wilcoxon(x)["p"] < 0.05 for x in patient_means])
    assert rejected <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / len(patient_means))


def test_what_is_not_used_fails_at_small_n():
    """Why the report pairs per patient with a t-interval: the alternatives fail the same simulation."""
    d = simulate(5)
    patient_means = d.mean(axis=2)
    boot = np.mean(
        [
            lo <= 0 <= hi
            for lo, hi in (percentile_bootstrap(x, n_boot=1000, seed=i) for i, x in enumerate(patient_means))
        ]
    )
    assert boot < 0.9  # the percentile bootstrap covers about 84 % at n = 5
    pooled = np.mean([stats.wilcoxon(x.ravel()).pvalue < 0.05 for x in d])
    assert pooled > 0.15  # pooling case x seed as independent pairs: far more than 5 % false positives
    assert np.mean([exact_wilcoxon(x)["p"] < 0.05 for x in patient_means]) == 0.0  # the floor is 0.0625


def test_paired_comparison_pairs_by_key_only():
    treated = {"a": 0.9, "b": 0.8, "c": 0.7, "only_treated": 0.1}
    control = {"a": 0.8, "b": 0.8, "c": 0.5, "d": 0.2}
    result = paired_comparison(treated, control)
    assert result["n"] == 3 and result["wins"] == 2 and result["n_nonzero"] == 2
    assert result["mean_diff"] == pytest.approx((0.1 + 0.0 + 0.2) / 3)
    assert result["ci_low"] <= result["mean_diff"] <= result["ci_high"]
    assert result["p_floor"] == pytest.approx(0.5)  # two nonzero differences
    assert paired_comparison(treated, control, higher_is_better=False)["wins"] == 0
    assert paired_comparison({"a": math.nan, "b": 0.5}, {"a": 0.5, "b": 0.4})["n"] == 1


def test_convergence_helpers():
    assert epochs_to_reach([0.1, 0.5, 0.8, 0.9], 0.8) == 3
    assert epochs_to_reach([0.1, 0.2], 0.8) is None
    assert curve_area([0.0, 1.0, 1.0]) == pytest.approx(2 / 3)  # the mean height, as the report says
    assert curve_area([0.4]) == 0.4


def test_the_plateau_rule():
    rising = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    flat = [0.1, 0.5, 0.7, 0.702, 0.699, 0.703, 0.7, 0.701]
    assert not plateaued(rising, window=3, min_delta=0.005)
    assert plateaued(flat, window=3, min_delta=0.005)
    assert not plateaued(flat, window=3, min_delta=0.0005)  # 0.703 beats 0.702 by more than that
    assert not plateaued(flat[:3], window=3, min_delta=0.005)  # too short to tell


def test_the_smoothed_plateau_rule_on_a_noisy_curve_and_on_a_rising_one():
    # The validation curve of issue #28 (2 labelled patients, scratch): the raw rule called it flat at
    # epoch 11, although the run was still learning; its moving average was still rising.
    noisy = [0.00, 0.04, 0.10, 0.09, 0.22, 0.21, 0.00, 0.17, 0.20, 0.11, 0.07]
    assert plateaued(noisy, window=5, min_delta=0.005)
    assert not plateaued(noisy, window=5, min_delta=0.005, smoothing=0.8)
    assert smoothed([1.0, 0.0], 0.8) == pytest.approx([1.0, 0.8])
    assert smoothed([0.5, math.nan], 0.5) == pytest.approx([0.5, 0.25])  # nothing found counts as 0
    rising = [0.1 + 0.02 * i for i in range(40)]
    assert not plateaued(rising, window=5, min_delta=0.005, smoothing=0.8)
    # A curve that rose and then stayed put, noise and all, converges once the average settles.
    settled = [0.9 * (1 - 0.7**i) for i in range(15)] + [0.9 + (0.02 if i % 2 else -0.02) for i in range(30)]
    assert plateaued(settled, window=5, min_delta=0.005, smoothing=0.8)
    assert not plateaued(settled[:12], window=5, min_delta=0.005, smoothing=0.8, min_epochs=20)
    assert not plateaued(settled, window=5, min_delta=0.005, smoothing=0.8, min_epochs=50)
