"""How check-sides should read a single slice: decision rules and ensembles, over several trainings.

A single slice is one level of evidence, and the side model's confident errors on real slices sit there
(docs/check-sides.md). This study reads every single slice of ``laterality_ood.py`` (every third axial
slice of ircadb 01 and 07 as HU, clipped to [-125, 275] and to [0, 255]; the 24 KiTS19 PNG slices as they
are; mirrored states are the exact complements, the check being blind to handedness) with each model given,
keeping every crop's logit at the slice's own pixel size and at 0.85 and 1.15 times it, and scores rules:

- ``one scale``: the evidence of the slice at its own pixel size (check-sides' rule);
- ``three scales``: the mean evidence over the three pixel sizes (marginalising an unstated pixel size);
- ``shifts agree``: one scale, and ``unsure`` unless the five shifted crops' evidence agree in sign;
- ``scales agree``: ``unsure`` unless each pixel size's evidence passes the threshold the same way;
- ``windows mean``: the mean evidence of the slice as it is and through four export windows, [-160, 240],
  [-125, 275], [0, 255] and [20, 255] HU (each clipped within what the slice holds; the model trained on
  sections clipped so, ``export_clip``): a verdict should rest on anatomy, not on where a window cuts.
  The first three are #30's; [20, 255] was added after reading the ircadb 07 slices the models err on;
- ``windows agree``: one scale, and ``unsure`` unless the evidence through each window has its sign;

for each model alone and for the ensembles given (``--ensemble NAME=A+B+C``: the members' evidence
averaged, which is what ``check-sides --model A --model B --model C`` computes). Slices withheld for what
they are (``qc.inputs``, ``qc.levels``) stay ``unsure`` under every rule. The threshold is check-sides'
``--slice-threshold``; ``threshold_sweep`` gives today's rule at 0.8-0.975, the single models pooled.

It also records a detector that was tried and not adopted: a level's left-right asymmetry (the share of
soft tissue, 20 HU or more, smoothed over 20 mm inside the abdominal wall, against its mirror about the
body's midline), on the phantom's ``--anatomy trunk`` levels by what they hold and on the ircadb slices by
their organ masks, beside each model's confident errors. Real and phantom rows are labelled. Writes
``results/slice_rules.json`` (``--name``) and a table.

Usage: python benchmarks/studies/slice_rules.py --model NAME=FILE [--model ...] [--ensemble NAME=A+B+C]
       [--data ../shared/data] [--name slice_rules]
"""

from __future__ import annotations

import argparse
import warnings
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
from laterality_levels import levels as ircadb_levels
from laterality_ood import PATIENTS, VALUES, axial_slices
from scipy import ndimage

from _common import model_specs, report
from sidepair.choices import DEFAULT_SLICE_THRESHOLD
from sidepair.data.phantom import ORGANS, generate_case
from sidepair.data.volume import Volume, load_nifti
from sidepair.qc.inputs import depth_under_skin
from sidepair.qc.levels import outline
from sidepair.qc.scans import plan_scans
from sidepair.qc.side_model import SideModel

REPO = Path(__file__).resolve().parents[2]
STATES = ("HU", "clipped [-125, 275]", "clipped [0, 255]")
T = float(np.log(DEFAULT_SLICE_THRESHOLD / (1 - DEFAULT_SLICE_THRESHOLD)))
SLICE_SCALES = (0.85, 1.0, 1.15)  # a slice read as if its pixels were 15 % smaller and larger too
SWEEP = (0.8, 0.85, 0.9, 0.95, 0.975)
EXPORT_WINDOWS = ((-160.0, 240.0), (-125.0, 275.0), (0.0, 255.0), (20.0, 255.0))
WINDOW_KEYS = tuple(f"window {lo:g},{hi:g}" for lo, hi in EXPORT_WINDOWS)
READ_KEYS = (*map(str, SLICE_SCALES), *WINDOW_KEYS)  # each slice's readings: its scales, then its windows
TISSUE_HU, SMOOTH_MM, WALL_MM = 20.0, 20.0, 15.0


def at_scale(volume: Volume, factor: float) -> Volume:
    """The slice as if its pixel size were ``factor`` times what its header says (the array as it is)."""
    affine = volume.affine.copy()
    affine[:3, :2] *= factor
    return Volume(volume.array, affine, volume.source)


def clipped_within(volume: Volume, low: float, high: float) -> Volume:
    """The slice clipped to [low, high] HU, within what it holds (an input clipped already stays so)."""
    a = volume.array
    return Volume(
        np.clip(a, max(low, float(a.min())), min(high, float(a.max()))), volume.affine, volume.source
    )


def asymmetry(image: np.ndarray, spacing: float, floor: float) -> float | None:
    """Mean |soft-tissue share - its mirror's| inside the abdominal wall (0: sides alike); None: no body."""
    read = outline(image, spacing, max(floor + 1.0, -500.0))
    if read is None:
        return None
    image, spacing, hull = read.image, read.spacing, read.hull
    columns = np.nonzero(hull.any(axis=1))[0]
    centre = (columns.min() + columns.max()) / 2
    inside = hull & (depth_under_skin(hull, spacing) > WALL_MM)
    sigma = SMOOTH_MM / spacing
    share = ndimage.gaussian_filter(((image >= TISSUE_HU) & inside).astype(np.float32), sigma)
    norm = ndimage.gaussian_filter(inside.astype(np.float32), sigma)
    share = np.where(norm > 1e-3, share / np.maximum(norm, 1e-3), 0.0)
    x = np.arange(image.shape[0])
    mirror = np.rint(2 * centre - x).astype(int)
    ok = (mirror >= 0) & (mirror < image.shape[0])
    both = inside[x[ok]] & inside[mirror[ok]]
    diff = np.abs(share[x[ok]] - share[mirror[ok]])[both]
    return float(diff.mean()) if diff.size else None


def single_slices(data: Path) -> list[dict]:
    """Every single slice read: set, state, input, its level (ircadb) and asymmetry, and the volume."""
    out = []
    for patient in PATIENTS:
        volume = load_nifti(data / patient / "ct.nii.gz")
        level_of = ircadb_levels(data / patient)
        for state in STATES:
            values = Volume(VALUES[state](np.asarray(volume.array, np.float32)), volume.affine, volume.source)
            for s in axial_slices(values, 3):
                z = int(str(s.source).split("#z")[1])
                floor = float(values.array.min())
                a = asymmetry(s.array[:, :, 0], float(min(s.spacing[:2])), floor) if state == "HU" else None
                out.append({"set": "ircadb", "state": state, "input": f"{patient}#z{z}", "level": level_of[z],
                            "asymmetry": a, "volume": s})  # fmt: skip
    for path, loader in plan_scans([data / "kits19_slices"]):
        out.append({"set": "kits19", "state": "as is", "input": path.name, "level": "", "asymmetry": None,
                    "volume": loader(path)})  # fmt: skip
    return out


def evidence(logits: np.ndarray) -> tuple[float, np.ndarray]:
    """A slice's evidence, and each shifted crop's, from its logits ``(1, 2, SHIFTS)``."""
    per_shift = logits[0, 0] - logits[0, 1]
    return float(per_shift.mean()), per_shift


RULES: dict[str, Callable[[dict], float]] = {
    "one scale": lambda r: r["1.0"],
    "three scales": lambda r: float(np.mean([r[str(f)] for f in SLICE_SCALES])),
    "shifts agree": lambda r: r["1.0"] if r["shifts agree"] else 0.0,
    "scales agree": lambda r: (
        r["1.0"]
        if len({np.sign(r[str(f)]) for f in SLICE_SCALES}) == 1
        and min(abs(r[str(f)]) for f in SLICE_SCALES) >= T
        else 0.0
    ),
    "windows mean": lambda r: float(np.mean([r["1.0"], *(r[k] for k in WINDOW_KEYS)])),
    "windows agree": lambda r: r["1.0"] if len({np.sign(r[k]) for k in ("1.0", *WINDOW_KEYS)}) == 1 else 0.0,
}


def threshold_sweep(slices: list[dict], read: dict[str, list[dict]], models: list[str]) -> list[dict]:
    """Today's rule (one scale) at other single-slice thresholds, the single models' readings pooled."""
    out = []
    for threshold in SWEEP:
        cut = float(np.log(threshold / (1 - threshold)))
        for dset in ("ircadb", "kits19"):
            e = np.array([0.0 if s["withheld"] else read[m][i]["1.0"] for m in models
                          for i, s in enumerate(slices) if s["set"] == dset])  # fmt: skip
            right, wrong = int((e >= cut).sum()), int((e <= -cut).sum())
            out.append({"threshold": threshold, "set": f"real: {dset} slices", "readings": len(e),
                        "right": right, "confidently_wrong": wrong,
                        "unsure_share": round(1 - (right + wrong) / len(e), 3),
                        "decided_right": round(right / max(right + wrong, 1), 4)})  # fmt: skip
    return out


def phantom_asymmetry(cases: int) -> list[dict]:
    """Asymmetry of ``--anatomy trunk`` phantom levels (every third slice), by what the level holds."""
    found: dict[str, list[float]] = defaultdict(list)
    for i in range(cases):
        drawn = generate_case(f"trunk_{i}", 0, i, shape=(160, 160, 104), axcodes="RAS", anatomy="trunk")
        image, organs = np.asarray(drawn.image.dataobj), np.asarray(drawn.organs.dataobj)
        label, affine = np.asarray(drawn.label.dataobj), drawn.image.affine
        lungs, crest = drawn.spec.levels["lung_base_z"], drawn.spec.levels["iliac_crest_z"]
        for k in range(0, image.shape[2], 3):
            a = asymmetry(image[:, :, k].astype(np.float32), float(affine[0, 0]), float(image.min()))
            if a is None:
                continue
            z = float(affine[2, 2] * k + affine[2, 3])
            where = "chest" if z >= lungs else "pelvis" if z <= crest else "abdomen"
            holds = [n for n in ("liver", "spleen", "stomach") if (organs[:, :, k] == ORGANS[n]).any()]
            holds += ["kidney"] if (label[:, :, k] > 0).any() else []
            found[f"{where}: {', '.join(holds) or 'none of liver, spleen, stomach, kidney'}"].append(a)
    return [_spread("phantom, --anatomy trunk", level, values) for level, values in sorted(found.items())]


def _spread(data: str, level: str, values: list[float]) -> dict:
    q = np.quantile(values, [0.0, 0.05, 0.5, 0.95, 1.0])
    named = dict(zip(("min", "q05", "median", "q95", "max"), np.round(q, 3).tolist(), strict=True))
    return {"data": data, "level": level, "n": len(values), **named}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--model", action="append", default=[], help="NAME=FILE (one side model each).")
    parser.add_argument("--ensemble", action="append", default=[], help="NAME=A+B+C, names of --model.")
    parser.add_argument("--phantom-cases", type=int, default=6)
    parser.add_argument("--name", default="slice_rules", help="The results file's name.")
    args = parser.parse_args()
    specs = model_specs(parser, args.model) if args.model else {"shipped": None}
    ensembles = {}
    for spec in args.ensemble:
        name, _, members = spec.partition("=")
        ensembles[name] = members.split("+")
        if not name or any(m not in specs for m in ensembles[name]):
            parser.error(f"--ensemble {spec}: NAME=A+B+C, each of A, B, C a --model name")
    warnings.simplefilter("ignore")
    slices = single_slices(args.data)
    gate = SideModel.load(next(iter(specs.values())))
    for s in slices:
        check = gate.check(s["volume"])
        s["withheld"] = check.reason if check.abstained else ""
    read: dict[str, list[dict]] = {}
    for name, files in specs.items():
        model = SideModel.load(files)
        read[name] = []
        for s in slices:
            r: dict = {}
            for f in SLICE_SCALES:
                mean, per_shift = evidence(model.section_logits(at_scale(s["volume"], f))[1])
                r[str(f)] = mean
                if f == 1.0:
                    r["shifts agree"] = bool((np.sign(per_shift) == np.sign(mean)).all())
            for key, (lo, hi) in zip(WINDOW_KEYS, EXPORT_WINDOWS, strict=True):
                r[key] = evidence(model.section_logits(clipped_within(s["volume"], lo, hi))[1])[0]
            read[name].append(r)
    for name, members in ensembles.items():  # the members' evidence averaged, per scale
        read[name] = [
            {k: float(np.mean([read[m][i][k] for m in members])) for k in READ_KEYS}
            for i in range(len(slices))
        ]
        for i, r in enumerate(read[name]):  # per-shift agreement is a single model's; the members' all
            r["shifts agree"] = all(read[m][i]["shifts agree"] for m in members)
    table = []
    for name, rows in read.items():
        for rule, fn in RULES.items():
            for dset in ("ircadb", "kits19"):
                picked = [(s, r) for s, r in zip(slices, rows, strict=True) if s["set"] == dset]
                e = np.array([0.0 if s["withheld"] else fn(r) for s, r in picked])
                wrong = [f"{s['input']} {s['state']}" for (s, _), v in zip(picked, e, strict=True) if v <= -T]
                unsure = int(((e > -T) & (e < T)).sum())
                counts = {"n": len(e), "right": int((e >= T).sum()), "confidently_wrong": len(wrong),
                          "unsure": unsure, "unsure_share": round(unsure / len(e), 3)}  # fmt: skip
                table.append({"model": name, "rule": rule, "set": f"real: {dset} slices", **counts,
                              "wrong": "; ".join(wrong)})  # fmt: skip
    spreads = phantom_asymmetry(args.phantom_cases)
    by_level: dict[str, list[float]] = defaultdict(list)
    for s in slices:
        if s["asymmetry"] is not None:
            by_level[s["level"]].append(s["asymmetry"])
    spreads += [_spread("real: ircadb 01, 07 (HU)", level, v) for level, v in sorted(by_level.items())]
    hu = {s["input"]: s["asymmetry"] for s in slices if s["set"] == "ircadb" and s["state"] == "HU"}
    errors = {  # each slice a single model reads confidently wrong in any state, and its asymmetry (HU)
        s["input"]: hu[s["input"]]
        for name in specs
        for s, r in zip(slices, read[name], strict=True)
        if s["set"] == "ircadb" and not s["withheld"] and RULES["one scale"](r) <= -T
    }
    per_slice = [
        {k: s[k] for k in ("set", "state", "input", "level", "asymmetry", "withheld")}
        | {name: {k: round(read[name][i][k], 3) for k in READ_KEYS} for name in read}
        for i, s in enumerate(slices)
    ]
    extra = {
        "data": "real: ircadb 01, 07, kits19_slices; phantom --anatomy trunk (asymmetry rows)",
        "models": {name: [str(f) for f in files] if files else "shipped" for name, files in specs.items()},
        "ensembles": ensembles,
        "slice_threshold": DEFAULT_SLICE_THRESHOLD,
        "threshold_sweep": threshold_sweep(slices, read, list(specs)),
        "asymmetry": spreads,
        "asymmetry_of_confident_errors": dict(sorted(errors.items())),
        "slices": per_slice,
    }
    report(args.name, table, extra)


if __name__ == "__main__":
    main()
