import math

import numpy as np
import pytest
from scipy import stats

from sidepair.evaluation.statistics import bootstrap_mean_ci, epochs_to_reach, paired_comparison, wilcoxon_p
from sidepair.experiment.results import curve_area


def test_bootstrap_interval_holds_the_mean_and_narrows_with_n():
    rng = np.random.default_rng(0)
    small, large = rng.normal(0.1, 0.05, 10), rng.normal(0.1, 0.05, 1000)
    lo_s, hi_s = bootstrap_mean_ci(small)
    lo_l, hi_l = bootstrap_mean_ci(large)
    assert lo_s < small.mean() < hi_s and lo_l < large.mean() < hi_l
    assert (hi_l - lo_l) < (hi_s - lo_s) / 5
    # about 1.96 standard errors each side
    assert (hi_l - lo_l) / 2 == pytest.approx(1.96 * large.std() / math.sqrt(1000), rel=0.1)
    assert bootstrap_mean_ci(small) == bootstrap_mean_ci(small)  # seeded
    assert all(math.isnan(v) for v in bootstrap_mean_ci(np.array([0.3])))


def test_wilcoxon_matches_scipy_and_handles_ties_and_tiny_samples():
    d = np.array([0.05, 0.02, -0.01, 0.04, 0.03, 0.06, 0.01])
    assert wilcoxon_p(d) == pytest.approx(stats.wilcoxon(d).pvalue)
    assert wilcoxon_p(np.zeros(5)) == 1.0
    assert math.isnan(wilcoxon_p(np.array([0.1])))
    # all 5 positive: the exact two-sided p is 2/32
    assert wilcoxon_p(np.array([0.1, 0.2, 0.3, 0.4, 0.5])) == pytest.approx(0.0625)


def test_paired_comparison_pairs_by_key_only():
    treated = {"a": 0.9, "b": 0.8, "c": 0.7, "only_treated": 0.1}
    control = {"a": 0.8, "b": 0.8, "c": 0.5, "d": 0.2}
    result = paired_comparison(treated, control)
    assert result["n"] == 3 and result["wins"] == 2
    assert result["mean_diff"] == pytest.approx((0.1 + 0.0 + 0.2) / 3)
    assert result["ci_low"] <= result["mean_diff"] <= result["ci_high"]
    assert paired_comparison(treated, control, higher_is_better=False)["wins"] == 0
    nan_pair = paired_comparison({"a": math.nan, "b": 0.5}, {"a": 0.5, "b": 0.4})
    assert nan_pair["n"] == 1


def test_convergence_helpers():
    assert epochs_to_reach([0.1, 0.5, 0.8, 0.9], 0.8) == 3
    assert epochs_to_reach([0.1, 0.2], 0.8) is None
    assert curve_area([0.0, 1.0]) == 0.5
    assert curve_area([1.0, 1.0, 1.0]) == 1.0
    assert curve_area([0.4]) == 0.4
