"""``sidepair evaluate``: metrics in each scan's own geometry.

For a run, every case of a split is predicted on the store grid, resampled back to the source file's
grid, written as NIfTI with the source's shape and affine, and scored against the source's own label
file. ``evaluate_predictions`` scores a folder of ready-made predictions the same way.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from sidepair.atomic import write_json, write_text
from sidepair.data.formats import DatasetFormat, LoadedCase, open_dataset
from sidepair.data.sides import body_midline_x
from sidepair.data.store import Store
from sidepair.data.volume import check_same_grid, load_nifti, ras_to_original, save_nifti
from sidepair.errors import DataError, StoreError
from sidepair.evaluation.metrics import case_metrics, summarise
from sidepair.inference import predict_array, to_original_ras
from sidepair.pretrain import describe_store
from sidepair.segmentation import load_segmentation_model
from sidepair.training.loop import resolve_device


def _score(loaded: LoadedCase, pred_ras: np.ndarray, tumour: bool) -> dict[str, Any]:
    assert loaded.labels is not None
    midline = body_midline_x(loaded.image.array, loaded.image.affine)
    return case_metrics(
        pred_ras,
        loaded.labels.label,
        loaded.image.affine,
        midline,
        gt_side=loaded.labels.declared_side,
        tumour=tumour,
    )


def _write_outputs(
    out: Path,
    rows: list[dict[str, Any]],
    figures: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, tuple[float, ...]]],
    title: str,
    extra: dict[str, Any],
) -> dict[str, Any]:
    summary = {"data": title, "cases": len(rows), **extra, "metrics": summarise(rows)}
    write_json(out / "metrics.json", summary)
    keys = ["case_id"] + sorted({k for r in rows for k in r if k != "case_id"})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in keys})
    write_text(out / "per_case.csv", buffer.getvalue())
    if figures:
        _plot_cases(rows, figures, out / "cases.png", title)
    return summary


def _plot_cases(rows, figures, path: Path, title: str) -> None:
    from sidepair.viz import render_overlay

    order = sorted(range(len(rows)), key=lambda i: rows[i]["kidney_dice"])
    picks = {"worst": order[0], "median": order[len(order) // 2], "best": order[-1]}
    panels = []
    for name, i in picks.items():
        case_id, image, gt, pred, spacing = figures[i]
        panels.append((f"{name}: {case_id} Dice {rows[i]['kidney_dice']:.3f}", image, gt, pred, spacing))
    render_overlay(panels, path, title)


def evaluate_run(
    run: str | Path, split: str = "test", which: str = "best", device: str = "auto", progress: bool = True
) -> dict[str, Any]:
    """Predict and score every labelled case of ``split`` for a trained run.

    Writes ``RUN/eval_<split>/`` with ``predictions/<case>.nii.gz`` (source shape and affine; 1 = kidney,
    or 1/2 for right/left or kidney/tumour as the model was trained), ``metrics.json`` (mean, sd,
    median), ``per_case.csv`` and ``cases.png`` (best, median and worst case).

    Returns:
        The summary written to ``metrics.json``.
    """
    import time

    from tqdm import tqdm

    t0 = time.perf_counter()
    run = Path(run)
    model, ckpt = load_segmentation_model(run, which)
    config = ckpt["config"]
    store = Store(config["store"])
    dev = resolve_device(device)
    model.to(dev)
    case_ids = [c for c in store.split(split) if store.cases[c]["labelled"]]
    if not case_ids:
        raise StoreError(f"{store.path}: no labelled cases in split {split!r}")
    out = run / f"eval_{split}"
    rows, figures = [], []
    for case_id in tqdm(case_ids, desc=f"evaluate {split}", unit="case", disable=None if progress else True):
        entry = store.cases[case_id]
        pred = predict_array(
            model,
            store.array(case_id),
            config["dims"],
            tuple(config["patch_size"]),
            dev,
            batch_size=config["batch_size"],
        )
        pred_ras, _ = to_original_ras(pred, entry)
        dataset, source = store.source_of(case_id)
        loaded = dataset.load(source)
        if pred_ras.shape != loaded.image.array.shape:
            raise StoreError(
                f"{source.image}: source changed since prepare (shape {loaded.image.array.shape})"
            )
        original = np.asarray(entry["original"]["affine"])
        save_nifti(ras_to_original(pred_ras, original), original, out / "predictions" / f"{case_id}.nii.gz")
        rows.append(
            {"case_id": case_id, **_score(loaded, pred_ras, tumour=config["labels"] == "kidney+tumour")}
        )
        figures.append((case_id, loaded.image.array, loaded.labels.label, pred_ras, loaded.image.spacing))
    return _write_outputs(
        out,
        rows,
        figures,
        f"{describe_store(store)}, split {split}",
        {
            "run": str(run),
            "checkpoint": which,
            "checkpoint_epoch": int(ckpt["epoch"]),
            "transfer": ckpt.get("transferred"),
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
        rows.append({"case_id": source.case_id, **_score(loaded, pred.array, tumour=False)})
    if not rows:
        raise DataError(Path(data), "no labelled cases to score")
    kind = "phantom" if (Path(data) / "phantom.json").exists() else "real"
    return _write_outputs(Path(out) if out else predictions, rows, [], f"{kind} {Path(data).name}", {})
