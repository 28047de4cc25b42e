"""Metrics of the side-pair proxy task: pair accuracy and ROC-AUC."""

from __future__ import annotations

import numpy as np
import torch
from monai.metrics import compute_roc_auc


def roc_auc(score_same: np.ndarray, same: np.ndarray) -> float:
    """ROC-AUC of a "same side" score (higher means more likely same); NaN with one class only."""
    if len(np.unique(same)) < 2:
        return float("nan")
    return float(compute_roc_auc(torch.as_tensor(score_same, dtype=torch.float64), torch.as_tensor(same)))


def best_threshold_accuracy(distance: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """Highest accuracy of the rule "same when distance < t" over all t, and that t.

    Chosen on the very pairs it is measured on, so it is an optimistic figure beside the fixed rule.
    """
    order = np.argsort(distance)
    d, y = distance[order], same[order].astype(float)
    # Threshold just above the k-th smallest distance: the first k pairs are called "same".
    same_below = np.concatenate([[0.0], np.cumsum(y)])
    diff_above = (1 - y).sum() - np.concatenate([[0.0], np.cumsum(1 - y)])
    acc = (same_below + diff_above) / len(y)
    k = int(np.argmax(acc))
    threshold = float(d[k - 1] + 1e-6) if k > 0 else float(d[0] - 1e-6)
    return float(acc[k]), threshold


def pair_metrics(
    same: np.ndarray,
    distance: np.ndarray | None = None,
    prob_same: np.ndarray | None = None,
    threshold: float = 0.75,
) -> dict[str, float]:
    """Pair accuracy and ROC-AUC for a contrastive (distances) or a BCE (probabilities) head.

    Args:
        same: 1 for same-side pairs, 0 otherwise.
        distance: Embedding distances (contrastive head).
        prob_same: Probabilities of "same" (BCE head).
        threshold: The contrastive rule's fixed threshold (the paper: same when d < 0.75).

    Returns:
        ``acc`` (the head's own rule), ``auc``, and for contrastive also ``acc_best`` and ``best_threshold``.
    """
    same = np.asarray(same).astype(int)
    if distance is not None:
        distance = np.asarray(distance, dtype=float)
        acc_best, t_best = best_threshold_accuracy(distance, same)
        return {
            "acc": float(((distance < threshold).astype(int) == same).mean()),
            "auc": roc_auc(-distance, same),
            "acc_best": acc_best,
            "best_threshold": t_best,
            "mean_d_same": float(distance[same == 1].mean()) if (same == 1).any() else float("nan"),
            "mean_d_diff": float(distance[same == 0].mean()) if (same == 0).any() else float("nan"),
        }
    if prob_same is None:
        raise ValueError("give distance or prob_same")
    prob_same = np.asarray(prob_same, dtype=float)
    return {"acc": float(((prob_same > 0.5).astype(int) == same).mean()), "auc": roc_auc(prob_same, same)}
