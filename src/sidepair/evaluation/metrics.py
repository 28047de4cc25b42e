"""Per-case segmentation metrics with MONAI: Dice, HD95 and NSD, for the kidney, each side and tumour.

Distances are in millimetres on the grid given (the scan's own geometry in ``evaluate``). Both masks
are cropped to their joint bounding box plus a margin first, which changes no metric and keeps
KiTS-sized volumes cheap.

Failures count. Where exactly one of the two masks is empty (nothing predicted where the reference has a
kidney, or a kidney predicted where it has none), Dice and NSD are 0 and HD95 is the diagonal of the
image in millimetres, the largest distance two points of the image can have (the BraTS challenges' rule
for an empty segmentation: HD95 = 373.13 mm, the diagonal of their 240 x 240 x 155 mm volume). Such a case
is flagged (``<structure>_failed``) and counted in every summary. Where both are empty there is nothing
to score: the metrics are NaN and the case is left out of that structure's means, with the count of
scored cases beside every mean (nnU-Net's rule; KiTS would score it 1). The same rule applies in
``evaluate``, in validation and in the experiment's report.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance, compute_surface_dice

from sidepair.data.labels import LEFT, RIGHT
from sidepair.data.sides import assign_sides

NSD_TOLERANCE_MM = 2.0


def _crop(pred: np.ndarray, gt: np.ndarray, margin: int = 3) -> tuple[np.ndarray, np.ndarray]:
    both = pred | gt
    if not both.any():
        return pred, gt
    idx = np.argwhere(both)
    lo = np.maximum(idx.min(axis=0) - margin, 0)
    hi = np.minimum(idx.max(axis=0) + margin + 1, both.shape)
    sl = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    return pred[sl], gt[sl]


def _onehot(mask: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(mask.astype(np.float32))[None, None]
    return torch.cat([1 - t, t], dim=1)


def dice_score(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice of two binary masks (both empty: NaN, not scored), without the surface distances.

    Validation calls this every epoch, when early predictions are scattered and surface distances
    would cost more than the epoch's training.
    """
    pred, gt = pred.astype(bool), gt.astype(bool)
    total = int(pred.sum()) + int(gt.sum())
    if total == 0:
        return math.nan
    return 2.0 * int(np.logical_and(pred, gt).sum()) / total


def hd95_penalty(shape: tuple[int, ...], spacing: tuple[float, ...]) -> float:
    """The HD95 given to a failure: the image's diagonal in millimetres."""
    return float(np.linalg.norm(np.asarray(shape, dtype=float) * np.asarray(spacing, dtype=float)))


def binary_metrics(pred: np.ndarray, gt: np.ndarray, spacing: tuple[float, ...]) -> dict[str, float]:
    """Dice, HD95 (mm) and NSD at 2 mm of two binary masks, and whether it is a failure.

    Both empty: NaN (not scored). One empty: Dice and NSD 0, HD95 the image diagonal, ``failed`` 1.

    Args:
        pred: Predicted mask.
        gt: Reference mask.
        spacing: Voxel size (mm) along the arrays' axes.
    """
    pred, gt = pred.astype(bool), gt.astype(bool)
    if not pred.any() and not gt.any():
        return {"dice": math.nan, "hd95": math.nan, "nsd": math.nan, "failed": 0.0}
    if not pred.any() or not gt.any():
        return {"dice": 0.0, "hd95": hd95_penalty(pred.shape, spacing), "nsd": 0.0, "failed": 1.0}
    pred, gt = _crop(pred, gt)
    p, g = _onehot(pred), _onehot(gt)
    sp = [float(s) for s in spacing]
    dice = float(compute_dice(p, g, include_background=False)[0, 0])
    with warnings.catch_warnings():  # MONAI 1.6 warns about an argument its own code passes
        warnings.simplefilter("ignore", FutureWarning)
        hd95 = float(
            compute_hausdorff_distance(p, g, include_background=False, percentile=95, spacing=sp)[0, 0]
        )
        nsd = float(
            compute_surface_dice(p, g, [NSD_TOLERANCE_MM], include_background=False, spacing=sp)[0, 0]
        )
    return {"dice": dice, "hd95": hd95, "nsd": nsd, "failed": 0.0}


def case_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    affine: np.ndarray,
    midline_x: float,
    gt_side: np.ndarray | None = None,
    tumour_pred: np.ndarray | None = None,
    pred_side: np.ndarray | None = None,
) -> dict[str, float]:
    """All metrics of one case on one grid.

    Args:
        pred: Predicted labels (anything > 0 is kidney).
        gt: Reference canonical labels (0, 1 kidney, 2 tumour).
        affine: RAS affine of the grid (for spacing and sides).
        midline_x: World x of the body midline.
        gt_side: Declared reference sides, if the source has them.
        tumour_pred: Predicted tumour mask, to score tumour where the reference has it.
        pred_side: The model's own side map (1 right, 2 left) for a model trained to say sides; without
            it the prediction's sides are assigned by world position, as the reference's are.

    Returns:
        ``kidney_dice``, ``kidney_hd95``, ``kidney_nsd``, ``kidney_failed``; the same for
        ``right_``/``left_`` where the reference has that side; with ``pred_side`` also ``side_swap``
        (1 when the model's right and left overlap the opposite reference kidneys more than their own)
        and ``side_voxel_error`` (share of the voxels both call kidney that carry the wrong side);
        ``tumour_`` where scored.
    """
    spacing = tuple(float(s) for s in np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))
    out = {f"kidney_{k}": v for k, v in binary_metrics(pred > 0, gt > 0, spacing).items()}
    if gt_side is None:
        gt_side, _ = assign_sides(gt > 0, affine, midline_x)
    if pred_side is None:
        pred_side, _ = assign_sides(pred > 0, affine, midline_x)
    else:
        out.update(side_agreement(pred_side, gt_side))
    for name, code in (("right", RIGHT), ("left", LEFT)):
        if (gt_side == code).any():
            out.update(
                {
                    f"{name}_{k}": v
                    for k, v in binary_metrics(pred_side == code, gt_side == code, spacing).items()
                }
            )
    if tumour_pred is not None and (gt == 2).any():
        out.update({f"tumour_{k}": v for k, v in binary_metrics(tumour_pred, gt == 2, spacing).items()})
    return out


def side_agreement(pred_side: np.ndarray, gt_side: np.ndarray) -> dict[str, float]:
    """How a model's own right/left labels agree with the reference sides.

    Returns:
        ``side_swap``: 1.0 when the summed Dice with the sides exchanged beats the Dice as labelled
        (the model's right lies on the reference left), else 0.0; ``side_voxel_error``: the share of
        voxels that both call kidney where the sides differ (NaN when there are none).
    """
    as_labelled = dice_score(pred_side == RIGHT, gt_side == RIGHT) + dice_score(
        pred_side == LEFT, gt_side == LEFT
    )
    exchanged = dice_score(pred_side == RIGHT, gt_side == LEFT) + dice_score(
        pred_side == LEFT, gt_side == RIGHT
    )
    both = (pred_side > 0) & (gt_side > 0)
    n = int(both.sum())
    wrong = int((both & (pred_side != gt_side)).sum())
    return {
        "side_swap": 1.0 if exchanged > as_labelled else 0.0,
        "side_voxel_error": wrong / n if n else math.nan,
    }


def summarise(rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean, sd, median and count ``n`` of every metric over the cases that have it scored.

    NaN (not scored: both masks empty, or no such structure in the reference) is left out and ``n`` says
    how many values the mean holds; failures are in it (Dice 0, the HD95 penalty). ``of`` is the number of
    cases.
    """
    keys = sorted({k for r in rows for k, v in r.items() if isinstance(v, float | int) and k != "case_id"})
    out = {}
    for key in keys:
        values = np.array([r[key] for r in rows if key in r and isinstance(r[key], float | int)], dtype=float)
        values = values[np.isfinite(values)]
        out[key] = {
            "mean": float(values.mean()) if len(values) else math.nan,
            "sd": float(values.std(ddof=1)) if len(values) > 1 else math.nan,
            "median": float(np.median(values)) if len(values) else math.nan,
            "n": int(len(values)),
            "of": len(rows),
        }
    return out
