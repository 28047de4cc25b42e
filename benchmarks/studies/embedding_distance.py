"""Does a slice's distance from the side model's training sections, in its embedding, flag where it errs?

#30's first option for an out-of-distribution detector: feature-space distance to the training
embeddings. Measured here before anything is built on it. For each side model:

- **Reference**: the embeddings (the input of the side head) of every level the check reads on the
  model's own training volumes (the phantom its checkpoint names, regenerated with the same cases, seed
  and anatomy, and its real CTs), each half (the header's right, then left) averaged over the check's five
  shifted crops and their mirrors, exactly as the check scores them.
- **Queries**: single axial slices of ircadb 01 and 07 (every ``--step``-th, held out from every model
  here) as HU, clipped to [-125, 275] and [0, 255], and exported through a 40/400 window read as HU, and
  the 24 KiTS19 PNG slices (real data).
- **Two distances** per half, a level scoring the farther of its two halves: the k-th nearest reference
  (k = 10) by cosine after standardising each feature on the reference (Sun et al. 2022, deep nearest
  neighbours), and the Mahalanobis distance under the reference's covariance shrunk 10 % toward its mean
  variance.

The reference's own spread is measured leaving one training case out (its levels against the others'),
so a threshold at its 99th percentile is what a detector would use. Each row gives, per model, distance
and query set: the median distance, the share beyond that percentile (what the detector would withhold),
and how well the distance ranks the slices whose evidence has the wrong sign above the others (AUROC,
0.5 = chance; among all slices and among those the model reads with |evidence| >= logit(0.95)), and
where each confident error ranks. Real-data results. Writes ``results/embedding_distance.json``.

Usage:
    python benchmarks/studies/embedding_distance.py [--model NAME=FILE] [--data ../shared/data]
        [--work DIR] [--step 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from laterality_ood import PATIENTS, VALUES, axial_slices

from _common import model_specs, report
from sidepair.data.volume import Volume, load_nifti
from sidepair.models.checkpoint import PretrainCheckpoint, read_checkpoint
from sidepair.qc.scans import plan_scans
from sidepair.qc.side_model import SideModel, default_model_path

REPO = Path(__file__).resolve().parents[2]
K = 10
SHRINK = 0.1
STATES = ("HU", "clipped [-125, 275]", "clipped [0, 255]", "window 40/400 read as HU")
CONFIDENT = float(np.log(0.95 / 0.05))  # a single slice's threshold, as log-odds


def level_embeddings(model: SideModel, volume: Volume) -> tuple[np.ndarray, np.ndarray]:
    """Each level's two half embeddings ``(levels, 2, D)`` and its evidence, as the check reads them.

    The side head's input is caught on its way in; each crop's embedding is averaged with its mirror's
    (the check averages their logits) and over the shifted crops (it averages those too).
    """
    if len(model.networks) != 1:
        raise ValueError("one network at a time: an ensemble's members embed differently")
    caught: list[np.ndarray] = []
    hook = model.networks[0].side_classifier.register_forward_hook(
        lambda _m, inputs, _out: caught.append(inputs[0].detach().numpy())
    )
    try:
        levels, logits, _ = model.section_logits(volume)
    finally:
        hook.remove()
    halves = [(b[: len(b) // 2] + b[len(b) // 2 :]) / 2 for b in caught]  # each batch: crops, then mirrors
    embeddings = np.concatenate(halves).reshape(len(levels), 2, logits.shape[2], -1).mean(axis=2)
    sides = logits.mean(axis=2)
    return embeddings, sides[:, 0] - sides[:, 1]


def training_volumes(path: Path, data: Path, work: Path) -> list[tuple[str, Volume]]:
    """The volumes a side model was trained on, from its checkpoint's ``training_data``.

    The phantom is regenerated (``sidepair phantom``, same cases, seed and anatomy) under ``work`` once.
    """
    config = read_checkpoint(path, PretrainCheckpoint).config
    spec = config.get("training_data")
    if not spec:
        raise SystemExit(f"{path}: no training_data in its config (not made by scripts/train_side_model.py)")
    phantom = spec["phantom"]
    out = work / f"phantom_{phantom['anatomy']}_{phantom['cases']}_{phantom['seed']}"
    if not (out / "phantom.json").exists():
        subprocess.run([sys.executable, "-m", "sidepair", "phantom", "--out", str(out),
                        "--cases", str(phantom["cases"]), "--seed", str(phantom["seed"]),
                        "--no-montage", "--anatomy", phantom["anatomy"]], check=True)  # fmt: skip
    volumes = [(c.name, load_nifti(c / "imaging.nii.gz")) for c in sorted(out.glob("case_*"))]
    return volumes + [(real, load_nifti(data / real)) for real in spec["real"]]


def _standardise(reference: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    mean, std = reference.mean(axis=0), reference.std(axis=0) + 1e-6

    def unit(x: np.ndarray) -> np.ndarray:
        z = (x - mean) / std
        return z / np.linalg.norm(z, axis=-1, keepdims=True)

    return unit


def knn_distance(reference: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Cosine distance of each query to its K-th nearest reference, features standardised on the reference."""
    unit = _standardise(reference)
    similarity = unit(queries) @ unit(reference).T
    return 1.0 - np.sort(similarity, axis=1)[:, -K]


def mahalanobis(reference: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Mahalanobis distance under the reference's covariance, shrunk toward its mean variance."""
    mean = reference.mean(axis=0)
    cov = np.cov(reference.T)
    cov = (1 - SHRINK) * cov + SHRINK * np.trace(cov) / len(cov) * np.eye(len(cov))
    y = queries - mean
    return np.sqrt(np.einsum("ij,jk,ik->i", y, np.linalg.inv(cov), y))


DISTANCES = {"kNN cosine (k=10)": knn_distance, "Mahalanobis (shrunk)": mahalanobis}


def level_distance(distance: Callable, reference: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Each level's distance: the farther of its two halves ``levels`` ``(n, 2, D)``."""
    d = distance(reference, levels.reshape(-1, levels.shape[-1]))
    return d.reshape(-1, 2).max(axis=1)


def auroc(positive: np.ndarray, negative: np.ndarray) -> float | None:
    """The probability that a positive scores above a negative (ties half), or None without both."""
    if len(positive) == 0 or len(negative) == 0:
        return None
    greater = (positive[:, None] > negative[None, :]).mean()
    ties = (positive[:, None] == negative[None, :]).mean()
    return round(float(greater + ties / 2), 3)


def held_out_spread(distance: Callable, per_case: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """Each training level's distance to the other cases' levels (one case left out at a time)."""
    out = []
    for case, mine in per_case:
        others = np.concatenate([e for c, e in per_case if c != case])
        out.append(level_distance(distance, others.reshape(-1, others.shape[-1]), mine))
    return np.concatenate(out)


def measure(name: str, model_file: Path, queries: dict, data: Path, work: Path) -> tuple[list, list]:
    """One model's rows (per distance and query set) and its confident errors' distances."""
    model = SideModel.load(model_file)
    per_case = [(case, level_embeddings(model, v)[0]) for case, v in training_volumes(model_file, data, work)]
    reference = np.concatenate([e for _, e in per_case])
    reference = reference.reshape(-1, reference.shape[-1])
    read = {
        state: [(label, *level_embeddings(model, v)) for label, v in scans]
        for state, scans in queries.items()
    }
    rows, errors = [], []
    for detector, distance in DISTANCES.items():
        held = held_out_spread(distance, per_case)
        line = float(np.percentile(held, 99))
        for state, scans in read.items():
            evidence = np.concatenate([ev for _, _, ev in scans])
            d = level_distance(distance, reference, np.concatenate([e for _, e, _ in scans]))
            wrong, confident = evidence < 0, np.abs(evidence) >= CONFIDENT
            rows.append({
                "model": name, "distance": detector, "queries": state, "n": len(d),
                "reference p50 / p99 (leave case out)": f"{np.median(held):.3g} / {line:.3g}",
                "median": f"{np.median(d):.3g}",
                "beyond p99": round(float((d > line).mean()), 3),
                "wrong sign": int(wrong.sum()),
                "AUROC wrong sign": auroc(d[wrong], d[~wrong]),
                "AUROC wrong sign, confident": auroc(d[wrong & confident], d[~wrong & confident]),
            })  # fmt: skip
            errors += [{
                "model": name, "distance": detector, "queries": state, "slice": scans[i][0],
                "evidence": round(float(evidence[i]), 2), "distance value": round(float(d[i]), 4),
                "beyond p99": bool(d[i] > line), "rank in its set": round(float((d < d[i]).mean()), 2),
            } for i in np.nonzero(wrong & confident)[0]]  # fmt: skip
    return rows, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "embedding_distance")
    parser.add_argument("--model", action="append", default=[], help="NAME=FILE (default: the shipped one).")
    parser.add_argument("--step", type=int, default=3, help="Every STEP-th axial slice of the ircadb CTs.")
    args = parser.parse_args()
    models = model_specs(parser, args.model) if args.model else {"shipped": [default_model_path()]}
    warnings.simplefilter("ignore")
    torch.set_grad_enabled(False)
    ircadb = {p: load_nifti(args.data / p / "ct.nii.gz") for p in PATIENTS}
    queries: dict[str, list[tuple[str, Volume]]] = {
        state: [
            (str(s.source).split("data/")[-1], Volume(VALUES[state](s.array), s.affine, s.source))
            for p in PATIENTS
            for s in axial_slices(ircadb[p], args.step)
        ]
        for state in STATES
    }
    pngs = plan_scans([args.data / "kits19_slices"])
    queries["kits19 as is"] = [(path.name, loader(path)) for path, loader in pngs]
    rows, errors = [], []
    for name, files in models.items():
        mine, wrong = measure(name, files[0], queries, args.data, args.work)
        rows, errors = rows + mine, errors + wrong
    report(
        "embedding_distance",
        rows,
        {"confident_errors": errors, "data": "real: ircadb 01, 07 (single slices), kits19_slices; "
         "reference: each model's training volumes (phantom and ts_example)"},
    )  # fmt: skip


if __name__ == "__main__":
    main()
