"""check-sides on real CT read as scans it was not built for: single slices, clipped and windowed values.

Every real scan here, made into the inputs that make a side model confidently wrong elsewhere:

- ``slices``: every third axial slice of ircadb 01 and 07 (held out from the shipped model), each read
  alone, its values as they are (HU), clipped to [-125, 275] and to [0, 255] HU, and exported through
  display windows (level 40 width 400; level 50 width 350) to 0-255 and read as if they were HU. The
  right verdict is ``ok`` for every one (a flip gives the complement: the check is blind to handedness).
  Pooled per patient too (``qc.groups``).
- ``kits19``: the 24 KiTS19 PNG slices as they are and mirrored, one by one and grouped by case.
- ``volumes``: ircadb 01, 07 and ts_example (in the shipped model's training) as they are, header flipped,
  array mirrored, and as they are clipped to [-125, 275] and windowed (level 40 width 400) read as HU.

Each row counts right, confidently wrong and ``unsure`` verdicts under two rules: ``before`` (0.75 for every
scan, no reasons: the rule until this version) and ``now`` (reasons from ``qc.inputs`` withhold a verdict,
a single slice needs ``--slice-threshold``), and the reasons given. The thresholds of ``now`` (0.95 for a
slice, 0.15 for the fat under the skin) were chosen on the ircadb slices: the KiTS19 rows are the check
on other patients. Real-data results. Writes ``results/laterality_ood.json`` and a table.

Usage: python benchmarks/studies/laterality_ood.py [--model NAME=FILE[,FILE...]] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from _common import model_specs, report
from sidepair.choices import DEFAULT_SIDE_THRESHOLD, DEFAULT_SLICE_THRESHOLD
from sidepair.data.axes import reorient_to_ras
from sidepair.data.volume import Volume, load_nifti
from sidepair.qc.groups import group_key, pool
from sidepair.qc.scans import plan_scans
from sidepair.qc.side_model import SideModel
from sidepair.qc.verdict import SideCheck, verdict_of

REPO = Path(__file__).resolve().parents[2]
PATIENTS = ("ircadb/patient_01", "ircadb/patient_07")
VOLUMES = ("ircadb/patient_01", "ircadb/patient_07", "ts_example")


def window_read_as_hu(level: float, width: float) -> Callable[[np.ndarray], np.ndarray]:
    """An 8-bit export through a display window, its pixel values then read as if they were HU."""
    lo = level - width / 2
    return lambda a: np.round((np.clip(a, lo, lo + width) - lo) / width * 255)


VALUES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "HU": lambda a: a,
    "clipped [-125, 275]": lambda a: np.clip(a, -125, 275),
    "clipped [0, 255]": lambda a: np.clip(a, 0, 255),
    "window 40/400 read as HU": window_read_as_hu(40, 400),
    "window 50/350 read as HU": window_read_as_hu(50, 350),
}


def axial_slices(volume: Volume, step: int) -> Iterator[Volume]:
    """Every ``step``-th axial slice of a RAS volume, each a volume of one slice with its own affine."""
    for k in range(0, volume.array.shape[2], step):
        affine = volume.affine.copy()
        affine[:3, 3] = volume.affine[:3, :3] @ np.array([0.0, 0.0, k]) + volume.affine[:3, 3]
        yield Volume(volume.array[:, :, k : k + 1].astype(np.float32), affine, Path(f"{volume.source}#z{k}"))


def mirrored(volume: Volume) -> Volume:
    """The array mirrored left-right under the same header: the right verdict becomes ``flipped``."""
    return Volume(np.flip(volume.array, axis=0).copy(), volume.affine, volume.source)


def header_flipped(volume: Volume) -> Volume:
    """The header's left-right negated (the array as it is): the right verdict becomes ``flipped``.

    Read as ``load_nifti`` reads a file, reoriented to RAS.
    """
    affine = volume.affine.copy()
    affine[:, 0] *= -1
    return Volume(*reorient_to_ras(volume.array, affine), volume.source)


def counts(checks: list[SideCheck], right: str) -> dict:
    """Right, confidently wrong and unsure verdicts under the rule before this version and now."""
    out: dict = {"n": len(checks)}
    for rule in ("before", "now"):
        verdicts = [
            c.verdict if rule == "now" else verdict_of(c.probability, DEFAULT_SIDE_THRESHOLD) for c in checks
        ]
        n_right = sum(v == right for v in verdicts)
        unsure = sum(v == "unsure" for v in verdicts)
        out[f"{rule}: right"] = n_right
        out[f"{rule}: wrong"] = len(checks) - n_right - unsure
        out[f"{rule}: unsure"] = unsure
    reasons = Counter(c.reason.split(":")[0] for c in checks if c.abstained)
    out["withheld for"] = ", ".join(f"{r} ({n})" for r, n in reasons.most_common())
    return out


def _row(model: str, name: str, state: str, check: SideCheck, right: str) -> dict:
    """One scan's row: its CSV fields, its patient, its mean log-odds and the verdict that is right."""
    patient = check.group or Path(check.input.split("#")[0]).parent.name
    evidence = float(np.mean(check.level_evidence))
    row = check.row()
    row["model file"] = row.pop("model")
    return {**row, "model": model, "set": name, "state": state, "patient": patient, "evidence": evidence,
            "right": right}  # fmt: skip


def ece(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: |accuracy - confidence| over equal-width confidence bins, weighted."""
    confidence = np.maximum(p, 1 - p)
    correct = (p >= 0.5) == (y == 1)
    edges = np.linspace(0.5, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges) - 1, 0, bins - 1)
    return float(sum(
        abs(correct[which == b].mean() - confidence[which == b].mean()) * (which == b).mean()
        for b in range(bins) if (which == b).any()
    ))  # fmt: skip


def fit_temperature(evidence: np.ndarray, y: np.ndarray) -> float:
    """The temperature T minimising the log-loss of sigmoid(evidence / T) (a grid over 0.25 to 8)."""
    grid = np.exp(np.linspace(np.log(0.25), np.log(8), 200))
    losses = [np.mean(np.logaddexp(0, -(2 * y - 1) * evidence / t)) for t in grid]
    return float(grid[int(np.argmin(losses))])


def calibration(rows: list[dict], model: str, values: str) -> dict:
    """ECE of single-slice probabilities before and after a temperature fitted leaving one patient out.

    The single slices of the ircadb CTs (those values) and the KiTS19 slices as they are and mirrored:
    for each patient, T is fitted on the other patients' slices and applied to its own.
    """
    these = [r for r in rows if r["model"] == model and (
        (r["set"] == "ircadb slices" and r["state"] == values) or r["set"] == "kits19 slices")]  # fmt: skip
    evidence = np.array([r["evidence"] for r in these])
    y = np.array([1.0 if r["right"] == "ok" else 0.0 for r in these])
    patients = np.array([r["patient"] for r in these])
    after = np.zeros_like(evidence)
    temperatures = []
    for patient in sorted(set(patients)):
        mine = patients == patient
        t = fit_temperature(evidence[~mine], y[~mine])
        temperatures.append(t)
        after[mine] = evidence[mine] / t
    before_p, after_p = 1 / (1 + np.exp(-evidence)), 1 / (1 + np.exp(-after))
    return {
        "set": "calibration, single slices (LOPO)",
        "state": f"ircadb {values} + kits19",
        "n": len(these),
        "ECE before": round(ece(before_p, y), 3),
        "ECE after": round(ece(after_p, y), 3),
        "temperatures": f"{min(temperatures):.2f}-{max(temperatures):.2f}",
        "patients": len(temperatures),
    }


def _checker(model: SideModel) -> Callable[..., SideCheck]:
    def check(volume: Volume, group: str = "") -> SideCheck:
        result = model.check(volume, DEFAULT_SIDE_THRESHOLD, DEFAULT_SLICE_THRESHOLD)
        result.group = group
        return result

    return check


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument(
        "--model", action="append", default=[], help="NAME=FILE[,FILE...] (default: the shipped model)."
    )
    parser.add_argument("--step", type=int, default=3, help="Every STEP-th axial slice of the ircadb CTs.")
    args = parser.parse_args()
    models = model_specs(parser, args.model) if args.model else {"shipped": None}
    warnings.simplefilter("ignore")
    rows, table = [], []
    volumes = {p: load_nifti(args.data / p / "ct.nii.gz") for p in VOLUMES}
    pngs = plan_scans([args.data / "kits19_slices"])
    for name, files in models.items():
        model = SideModel.load(files)
        check = _checker(model)
        for values, transform in VALUES.items():
            slices = [
                check(Volume(transform(s.array), s.affine, s.source), patient)
                for patient in PATIENTS
                for s in axial_slices(volumes[patient], args.step)
            ]
            table.append({"model": name, "set": "ircadb slices", "state": values, **counts(slices, "ok")})
            per_patient = counts(pool(slices), "ok")
            table.append({"model": name, "set": "ircadb, per patient", "state": values, **per_patient})
            rows += [_row(name, "ircadb slices", values, c, "ok") for c in slices]
        for state, change, right in (("as is", lambda v: v, "ok"), ("mirrored", mirrored, "flipped")):
            kits = [check(change(loader(path)), group_key(path, loader)) for path, loader in pngs]
            table.append({"model": name, "set": "kits19 slices", "state": state, **counts(kits, right)})
            per_case = counts(pool(kits), right)
            table.append({"model": name, "set": "kits19, per case", "state": state, **per_case})
            rows += [_row(name, "kits19 slices", state, c, right) for c in kits]
        volume_states = {
            "as is": (lambda v: v, "ok"),
            "header flipped": (header_flipped, "flipped"),
            "array mirrored": (mirrored, "flipped"),
            "clipped [-125, 275]": (lambda v: Volume(np.clip(v.array, -125, 275), v.affine, v.source), "ok"),
            "window 40/400 read as HU": (
                lambda v: Volume(window_read_as_hu(40, 400)(v.array), v.affine, v.source),
                "ok",
            ),
        }
        for state, (change, right) in volume_states.items():
            done = [check(change(volumes[p])) for p in VOLUMES]
            table.append({"model": name, "set": "volumes", "state": state, **counts(done, right)})
            rows += [_row(name, "volumes", state, c, right) for c in done]
        for values in ("HU", "clipped [0, 255]"):
            table.append({"model": name, **calibration(rows, name, values)})
    report("laterality_ood", table, {"scans": rows, "data": "real: ircadb 01, 07, ts_example, kits19_slices"})


if __name__ == "__main__":
    main()
