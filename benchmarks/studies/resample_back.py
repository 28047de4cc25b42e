"""Back to the scan's grid: nearest labels against probabilities-then-argmax. Dice, time, memory.

Two measurements, in one run:

1. **Oracle** (no network): each case's reference kidney is brought to a preset's store grid as a model
   that is perfect there would give it: the nearest-neighbour label (what ``labels`` starts from) and the
   linearly interpolated kidney fraction (a calibrated probability, what ``probabilities`` starts from).
   Each is brought back to the scan's own grid by the two methods and scored there against the reference.
   This isolates what the way back costs. Data: the real 3D scans in ``../shared/data`` (ts_example,
   ircadb patients 1 and 7) and 6 phantom cases, at the three presets' spacings.
2. **Trained models** (``--demo DIR``, a finished ``sidepair demo`` folder): the demo's fraction-1 runs
   predict their test cases through ``Predictor`` with each method; Dice in source geometry and the
   wall time of the whole prediction.

Time and peak memory are those of the step back alone (peak from ``tracemalloc``, which sees numpy's
arrays), measured side by side in one process.

Usage: python benchmarks/studies/resample_back.py [--data ../shared/data] [--demo runs/demo] [--work DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from _common import report
from sidepair.config import PRESETS
from sidepair.data.axes import spacing_of
from sidepair.data.formats import open_dataset, source_of
from sidepair.data.phantom import generate_phantom
from sidepair.data.preprocess import resample_case
from sidepair.data.store import run_store
from sidepair.evaluation.metrics import binary_metrics
from sidepair.inference.predictor import Predictor
from sidepair.inference.resample import resample_labels, resample_probabilities
from sidepair.models.checkpoint import read_checkpoint


def measured(fn, *args):
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn(*args)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, seconds, peak / 2**20


def oracle_rows(name: str, kind: str, dataset_root: Path) -> list[dict]:
    dataset = open_dataset(dataset_root)
    rows = []
    for source in dataset.cases():
        loaded = dataset.load(source)
        image, labels = loaded.image, loaded.labels
        assert labels is not None
        kidney = (labels.label > 0).astype(np.float32)
        current = spacing_of(image.affine)
        for preset in ("demo", "fast-2d", "kits19-paper"):
            settings = PRESETS[preset].preprocess
            # The kidney mask as the "image" is interpolated linearly (a kidney fraction), as the label by
            # nearest neighbour: the two things a model perfect on the store grid would give.
            res = resample_case(kidney, image.affine, settings, kidney.astype(np.uint8))
            hard, soft, grid = res.label, res.image, res.affine
            probs = np.stack([1.0 - soft, soft])
            back_l, t_l, m_l = measured(
                resample_labels, (hard > 0).astype(np.uint8), grid, image.affine, kidney.shape
            )
            back_p, t_p, m_p = measured(resample_probabilities, probs, grid, image.affine, kidney.shape)
            sp = image.spacing
            ml = binary_metrics(back_l > 0, kidney > 0, sp)
            mp = binary_metrics(back_p > 0, kidney > 0, sp)
            rows.append(
                {
                    "data": f"{kind} {name}/{source.case_id}",
                    "grid": f"{preset} {'x'.join(f'{s:g}' for s in settings.spacing_zyx)} mm",
                    "source_mm": "x".join(f"{s:.2f}" for s in current[::-1]),
                    "dice_labels": ml["dice"],
                    "dice_probs": mp["dice"],
                    "hd95_labels": ml["hd95"],
                    "hd95_probs": mp["hd95"],
                    "s_labels": t_l,
                    "s_probs": t_p,
                    "MiB_labels": m_l,
                    "MiB_probs": m_p,
                }
            )
            print(rows[-1])
    return rows


def model_rows(demo: Path) -> list[dict]:
    rows = []
    for run in sorted((demo / "runs").glob("*_f1_s0")):
        ckpt = read_checkpoint(run / "checkpoint_best.pt")
        store = run_store(str(ckpt.config["store"]), run, ckpt.store_fingerprint)
        for case_id in store.labelled("test"):
            dataset, source = source_of(store, case_id)
            loaded = dataset.load(source)
            assert loaded.labels is not None
            row = {"data": f"phantom demo test {case_id}", "grid": f"model {run.name}", "source_mm": ""}
            for method in ("labels", "probabilities"):
                predictor = Predictor.load(run, resample=method)  # type: ignore[arg-type]
                pred, seconds, mib = measured(predictor.predict_volume, loaded.image)
                m = binary_metrics(pred.classes > 0, loaded.labels.label > 0, loaded.image.spacing)
                short = "labels" if method == "labels" else "probs"
                row.update({f"dice_{short}": m["dice"], f"hd95_{short}": m["hd95"]})
                row.update({f"s_{short}": seconds, f"MiB_{short}": mib})
            rows.append(row)
            print(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "data")
    parser.add_argument("--demo", type=Path, default=None, help="A finished `sidepair demo` folder.")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="sidepair-resample-"))
    rows = []
    for name in ("ts_example", "ircadb"):
        if (args.data / name).is_dir():
            rows += oracle_rows(name, "real", args.data / name)
        else:
            print(f"skipped {name}: not found under {args.data}")
    phantom = work / "phantom"
    if not (phantom / "phantom.json").exists():
        generate_phantom(phantom, cases=6, seed=11, shape=(192, 192, 48))
    rows += oracle_rows("phantom", "phantom", phantom)
    if args.demo is not None:
        rows += model_rows(args.demo)
    summary = {}
    for label, sel in (
        ("real oracle", [r for r in rows if r["data"].startswith("real")]),
        (
            "phantom oracle",
            [r for r in rows if r["data"].startswith("phantom ") and "model" not in r["grid"]],
        ),
        ("phantom trained models", [r for r in rows if "model" in r["grid"]]),
    ):
        if sel:
            summary[label] = {
                k: float(np.mean([r[k] for r in sel]))
                for k in ("dice_labels", "dice_probs", "s_labels", "s_probs", "MiB_labels", "MiB_probs")
            }
            summary[label]["n"] = len(sel)
            summary[label]["probs_better"] = int(sum(r["dice_probs"] > r["dice_labels"] for r in sel))
    print(summary)
    data = "real: ts_example, ircadb 01 and 07 (oracle); phantom, 6 cases"
    data += f"; phantom demo runs of {args.demo}" if args.demo else ""
    report("resample_back", rows, {"data": data, "summary": summary})


if __name__ == "__main__":
    main()
