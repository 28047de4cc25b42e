import numpy as np
import pytest

from sidepair.evaluation.proxy import best_threshold_accuracy, pair_metrics, roc_auc


def test_accuracy_at_fixed_and_best_threshold():
    same = np.array([1, 1, 0, 0])
    distance = np.array([0.1, 0.8, 0.9, 1.5])
    m = pair_metrics(same, distance=distance, threshold=0.75)
    assert m["acc"] == pytest.approx(0.75)  # 0.8 is a same pair called different
    assert m["acc_best"] == pytest.approx(1.0)
    assert 0.8 <= m["best_threshold"] < 0.9
    assert m["auc"] == pytest.approx(1.0)


def test_auc_values():
    # positives 0.9, 0.2; negatives 0.1, 0.8: 3 of the 4 positive-negative pairs are ordered right
    assert roc_auc(np.array([0.9, 0.1, 0.8, 0.2]), np.array([1, 0, 0, 1])) == pytest.approx(0.75)
    assert np.isnan(roc_auc(np.array([0.1, 0.2]), np.array([1, 1])))


def test_bce_metrics_and_all_wrong():
    m = pair_metrics(np.array([1, 0]), prob_same=np.array([0.2, 0.9]))
    assert m["acc"] == 0.0 and m["auc"] == 0.0
    acc, _ = best_threshold_accuracy(np.array([1.0, 0.1]), np.array([1, 0]))
    assert acc == pytest.approx(0.5)
