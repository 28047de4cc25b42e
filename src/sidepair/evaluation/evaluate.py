"""``sidepair evaluate``: metrics in each scan's own geometry, of exactly what ``predict`` writes.

For a run, every labelled case of a split is read from its source file and run through the same
:class:`~sidepair.inference.predictor.Predictor` that ``sidepair predict`` uses; its output is written as
NIfTI with the source's shape and affine (what ``predict`` would have written) and scored against the
source's own label file, which must be the one the store recorded. ``evaluate_predictions`` scores a
folder of ready-made predictions the same way.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from sidepair.atomic import write_json, write_text
from sidepair.choices import DEFAULT_RESAMPLE, Resample
from sidepair.data.formats import DatasetFormat, LoadedCase, open_dataset, source_of
from sidepair.data.sides import body_midline_x
from sidepair.data.store import run_store
from sidepair.data.volume import check_same_grid, load_nifti
from sidepair.errors import DataError, StoreError
from sidepair.evaluation.figures import render_overlay
from sidepair.evaluation.metrics import case_metrics, summarise
from sidepair.inference.predictor import Prediction, Predictor, write_prediction
from sidepair.models.checkpoint import SegmentationCheckpoint, read_checkpoint


def _score(
    loaded: LoadedCase, kidney: np.ndarray, tumour: np.ndarray | None, pred_side: np.ndarray | None
) -> dict[str, Any]:
    assert loaded.labels is not None
    midline = body_midline_x(loaded.image.array, loaded.image.affine)
    return case_metrics(
        kidney.astype(np.uint8),
        loaded.labels.label,
        loaded.image.affine,
        midline,
        gt_side=loaded.labels.declared_side,
        tumour_pred=tumour,
        pred_side=pred_side,
    )


def score_prediction(loaded: LoadedCase, prediction: Prediction, model_labels: str) -> dict[str, Any]:
    """All metrics of one predicted case.

    Kidney, each side (the model's own sides for a ``sides`` model, with the swap rate), and tumour for a
    tumour model.
    """
    tumour = prediction.classes == 2 if model_labels == "kidney+tumour" else None
    own_sides = prediction.side if model_labels == "sides" else None
    return _score(loaded, prediction.classes > 0, tumour, own_sides)


def _write_outputs(
    out: Path,
    rows: list[dict[str, Any]],
    figures: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, tuple[float, ...]]],
    title: str,
    extra: dict[str, Any],
) -> dict[str, Any]:
    summary = {"data": title, "cases": len(rows), **extra, "metrics": summarise(rows)}
    keys = ["case_id"] + sorted({k for r in rows for k in r if k != "case_id"})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in keys})
    write_text(out / "per_case.csv", buffer.getvalue())
    if figures:
        _plot_cases(rows, figures, out / "cases.png", title)
    # Last: metrics.json marks the evaluation finished (the experiment skips it then), so a kill before
    # it leaves no finished-looking folder beside an older checkpoint's per-case rows.
    write_json(out / "metrics.json", summary)
    return summary


def _plot_cases(rows, figures, path: Path, title: str) -> None:
    order = sorted(range(len(rows)), key=lambda i: rows[i]["kidney_dice"])
    picks = {"worst": order[0], "median": order[len(order) // 2], "best": order[-1]}
    panels = []
    for name, i in picks.items():
        case_id, image, gt, pred, spacing = figures[i]
        panels.append((f"{name}: {case_id} Dice {rows[i]['kidney_dice']:.3f}", image, gt, pred, spacing))
    render_overlay(panels, path, title)


def evaluate_run(
    run: str | Path,
    split: str = "test",
    which: str = "best",
    device: str = "auto",
    progress: bool = True,
    resample: Resample = DEFAULT_RESAMPLE,
) -> dict[str, Any]:
    """Predict and score every labelled case of ``split`` for a trained run.

    Writes ``RUN/eval_<split>/`` with ``predictions/<case>.nii.gz`` (what ``sidepair predict --labels sides``
    writes: source shape and affine, 1 right and 2 left kidney), ``metrics.json`` (mean, sd, median),
    ``per_case.csv`` and ``cases.png`` (best, median and worst case).

    Raises:
        StoreError: No labelled case in the split, or a label file that is not the one the store recorded.

    Returns:
        The summary written to ``metrics.json``.
    """
    t0 = time.perf_counter()
    run = Path(run)
    ckpt = read_checkpoint(run / f"checkpoint_{which}.pt", SegmentationCheckpoint)
    predictor = Predictor.load(run, device, which, resample=resample)
    store = run_store(str(ckpt.config["store"]), run, ckpt.store_fingerprint)
    case_ids = store.labelled(split)
    if not case_ids:
        raise StoreError(f"{store.path}: no labelled cases in split {split!r}")
    out = run / f"eval_{split}"
    rows, figures = [], []
    for case_id in tqdm(case_ids, desc=f"evaluate {split}", unit="case", disable=None if progress else True):
        dataset, source = source_of(store, case_id)
        store.check_sources(case_id, source)
        loaded = dataset.load(source)
        prediction = predictor.predict_volume(loaded.image, "sides")
        write_prediction(
            prediction,
            out / "predictions" / f"{case_id}.nii.gz",
            {"input": str(source.image), "case_id": case_id, "model": str(run)},
        )
        rows.append({"case_id": case_id, **score_prediction(loaded, prediction, ckpt.labels)})
        assert loaded.labels is not None
        figures.append(
            (case_id, loaded.image.array, loaded.labels.label, prediction.classes, loaded.image.spacing)
        )
    return _write_outputs(
        out,
        rows,
        figures,
        f"{store.describe()}, split {split}",
        {
            "run": str(run),
            "split": split,
            "checkpoint": which,
            "checkpoint_epoch": int(ckpt.epoch),
            "transfer": ckpt.transferred,
            "sides_from": "model" if ckpt.labels == "sides" else "world position",
            "resample": resample,
            "wall_s": time.perf_counter() - t0,
        },
    )


def evaluate_predictions(
    predictions: str | Path, data: str | Path, fmt: str = "auto", out: str | Path | None = None
) -> dict[str, Any]:
    """Score a folder of predictions (``<case_id>.nii.gz``, anything > 0 is kidney) against a dataset.

    Each prediction must have its case's image shape and affine. Returns and writes (to ``out``,
    default the predictions folder) the same ``metrics.json`` and ``per_case.csv`` as a run's evaluation.

    Raises:
        DataError: A missing prediction or one on another grid, naming the file.
    """
    predictions = Path(predictions)
    dataset: DatasetFormat = open_dataset(data, fmt)
    rows = []
    for source in dataset.cases():
        if not source.labelled:
            continue
        path = predictions / f"{source.case_id}.nii.gz"
        if not path.exists():
            raise DataError(path, f"no prediction for case {source.case_id}")
        loaded = dataset.load(source)
        pred = load_nifti(path, role="label")
        check_same_grid(loaded.image, pred)
        rows.append({"case_id": source.case_id, **_score(loaded, pred.array > 0, None, None)})
    if not rows:
        raise DataError(Path(data), "no labelled cases to score")
    kind = "phantom" if (Path(data) / "phantom.json").exists() else "real"
    return _write_outputs(Path(out) if out else predictions, rows, [], f"{kind} {Path(data).name}", {})
