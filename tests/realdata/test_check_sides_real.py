"""Side models on real scans they never saw: ircadb and ts_example in three states, KiTS19 slices in two.

Neither ircadb nor KiTS19 went into the shipped model (the phantom and ts_example only); ts_example is
checked with ``tests/fixtures/side_model_phantom_only.pt``, the shipped recipe trained on the phantom
alone (``python scripts/train_side_model.py --without ts_example``), which has seen no real scan. What
is asserted is what was measured (README, "Measured"): every 3D state gets the right verdict; on single real
slices the model is right on most and never confidently wrong; it is unsure on four slices of KiTS19 case
135, which has a large left renal tumour (two where it fills the left side, two at the lower poles, where
little but bowel differs between the sides; all lean the right way, p 0.59-0.75 as they are), so a floor
on the right verdicts is asserted there.
"""

import json
import shutil
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from sidepair.data.volume import Volume, load_nifti
from sidepair.errors import DataWarning
from sidepair.qc.check import check_paths
from sidepair.qc.side_model import SLICE_PHASES, SideModel

pytestmark = pytest.mark.realdata
PHANTOM_ONLY = Path(__file__).parents[1] / "fixtures" / "side_model_phantom_only.pt"
MIN_RIGHT_SLICES = 16  # of 24 in each state at the slice threshold 0.95; measured 17 as they are, 17 mirrored


@pytest.fixture(scope="module")
def model():
    return SideModel.load()


def three_states(ct, out):
    img = nib.load(ct)
    data, affine = np.asanyarray(img.dataobj), img.affine
    lateral = int(np.argmax(np.abs(affine[0, :3])))  # the array axis that runs left-right (x for LPS)
    flipped = affine.copy()
    flipped[:, lateral] *= -1  # header flipped: its x column negated, array unchanged
    states = {
        "as is": ct,
        "header flipped": out / "header.nii.gz",
        "array mirrored": out / "array.nii.gz",
    }
    nib.save(nib.Nifti1Image(data, flipped, img.header), states["header flipped"])
    nib.save(
        nib.Nifti1Image(np.flip(data, axis=lateral).copy(), affine, img.header), states["array mirrored"]
    )
    return states


@pytest.mark.parametrize("patient", ["patient_01", "patient_07"])
def test_ircadb_in_three_states(shared_data, model, tmp_path, patient):
    states = three_states(shared_data / "ircadb" / patient / "ct.nii.gz", tmp_path)
    checks = dict(zip(states, check_paths(list(states.values()), model, progress=False), strict=True))
    assert checks["as is"].probability > 0.9 and checks["as is"].verdict == "ok"
    for state in ("header flipped", "array mirrored"):
        assert checks[state].probability < 0.1 and checks[state].verdict == "flipped"
        # The two flips are one mirror image up to a translation, and the score is blind to handedness.
        assert checks[state].probability == pytest.approx(1 - checks["as is"].probability, abs=0.02)
    # Of the 48 levels read, those in the chest (and pelvis) are set aside, the same ones in each state.
    aside = {c.notes.split("levels set aside: ")[-1] for c in checks.values()}
    assert len({c.levels for c in checks.values()}) == 1 and len(aside) == 1
    assert 30 <= checks["as is"].levels < 48 and " in the chest" in aside.pop()


def test_ts_example_in_three_states_with_a_model_that_saw_no_real_scan(shared_data, tmp_path):
    """Measured 0.877 / 0.126 / 0.126 (unenhanced CT; the phantom-only model is less sure than the shipped
    one, which trained on this scan and is therefore not asserted here)."""
    states = three_states(shared_data / "ts_example" / "ct.nii.gz", tmp_path)
    model = SideModel.load(PHANTOM_ONLY)
    checks = dict(zip(states, check_paths(list(states.values()), model, progress=False), strict=True))
    assert checks["as is"].probability > 0.75 and checks["as is"].verdict == "ok"
    for state in ("header flipped", "array mirrored"):
        assert checks[state].verdict == "flipped"
        assert checks[state].probability == pytest.approx(1 - checks["as is"].probability, abs=0.02)


def test_kits19_slices_as_they_are_and_mirrored(shared_data, model, tmp_path):
    """One by one, a slice needs 0.95 (measured: 17 right as they are, 17 mirrored, the rest unsure);
    grouped by case (slices.json), every case is right both ways."""
    mirrored = tmp_path / "mirrored"
    (mirrored / "images").mkdir(parents=True)
    (mirrored / "slices.json").write_bytes((shared_data / "kits19_slices" / "slices.json").read_bytes())
    for png in sorted((shared_data / "kits19_slices" / "images").glob("*.png")):
        pixels = np.asarray(Image.open(png))
        Image.fromarray(np.ascontiguousarray(pixels[:, ::-1])).save(mirrored / "images" / png.name)
    as_is = check_paths([shared_data / "kits19_slices"], model, progress=False)
    flipped = check_paths([mirrored], model, progress=False)
    both = (("as is", as_is), ("mirrored", flipped))
    scans = {name: [c for c in checks if c.kind == "scan"] for name, checks in both}
    assert all(len(c) == 24 and all(s.levels == 1 and s.threshold == 0.95 for s in c) for c in scans.values())
    count = {
        name: {v: sum(c.verdict == v for c in checks) for v in ("ok", "flipped", "unsure")}
        for name, checks in scans.items()
    }
    assert count["as is"]["ok"] >= MIN_RIGHT_SLICES and count["mirrored"]["flipped"] >= MIN_RIGHT_SLICES, (
        count
    )
    # Never confidently wrong: the rest are unsure, each with its reason.
    assert count["as is"]["flipped"] == 0 and count["mirrored"]["ok"] == 0, count
    assert all(c.reason.startswith("weak evidence") for c in scans["as is"] if c.verdict == "unsure")
    # HU clipped to [0, 255] is what the model was trained on beside whole HU: noted, never withheld.
    assert all(c.notes.startswith("values clipped to [0,") and not c.abstained for c in scans["as is"])
    for checks, right in ((as_is, "ok"), (flipped, "flipped")):
        groups = [c for c in checks if c.kind == "group"]
        assert [g.input for g in groups] == [f"case_{n:05d}" for n in (135, 136, 137, 139, 140)]
        assert all(g.verdict == right for g in groups), [(g.input, g.probability) for g in groups]
        assert sum(g.levels for g in groups) == 24


def test_windowed_and_clipped_volumes_are_withheld_or_read(shared_data, model):
    """ircadb 07 exported through a display window (level 40, width 400) and read as HU is withheld with
    its reason; clipped to [-125, 275] (the HU of one hospital's archive) it is read, and noted."""
    volume = load_nifti(shared_data / "ircadb" / "patient_07" / "ct.nii.gz")
    window = np.round((np.clip(volume.array, -160, 240) + 160) / 400 * 255).astype(np.float32)
    withheld = model.check(Volume(window, volume.affine, volume.source))
    assert withheld.verdict == "unsure" and withheld.abstained
    assert withheld.reason.startswith("values not HU") and "--intensity" in withheld.reason
    clipped = model.check(Volume(np.clip(volume.array, -125, 275), volume.affine, volume.source))
    assert clipped.verdict == "ok" and clipped.notes.startswith(
        "values clipped to [-125, 275]; levels set aside: "
    )
    assert " in the chest" in clipped.notes  # its top slices: heart and lungs


def test_single_slices_below_the_liver_are_not_confidently_wrong(shared_data, model):
    """ircadb 07's lowest slices (below the liver, at the kidneys' lower poles) read one by one: at 0.75
    three of the five measured were confidently wrong (p 0.06-0.14); at the slice threshold none are."""
    volume = load_nifti(shared_data / "ircadb" / "patient_07" / "ct.nii.gz")
    checks = []
    for k in (0, 6, 9):
        affine = volume.affine.copy()
        affine[:3, 3] = volume.affine[:3, :3] @ np.array([0.0, 0.0, k]) + volume.affine[:3, 3]
        axial = volume.array[:, :, k : k + 1].astype(np.float32)
        checks.append(model.check(Volume(axial, affine, volume.source)))
    # What 0.75 called flipped:
    assert all(c.probability < 0.25 for c in checks), [c.probability for c in checks]
    assert all(c.verdict == "unsure" and c.threshold == 0.95 for c in checks)


def test_bare_kits19_pngs_read_as_with_slices_json_once_told_their_spacing(shared_data, model, tmp_path):
    """Case 135's slices (0.84 mm) copied without slices.json: ``spacing`` at its pixel spacing gives the
    verdicts of the slice folder to the float. Not told, check-sides assumes a 400 mm field of view (0.78 mm
    at 512 pixels), which reads them nearer their true spacing than the 1 mm a pixel it assumed before."""
    meta = json.loads((shared_data / "kits19_slices" / "slices.json").read_text(encoding="utf-8"))
    names = sorted(n for n, e in meta.items() if e["kits19_case"] == "case_00135")
    (tmp_path / "bare").mkdir()
    for name in names:
        shutil.copy(shared_data / "kits19_slices" / "images" / name, tmp_path / "bare" / name)
    images = shared_data / "kits19_slices" / "images"
    with_json = check_paths([images / n for n in names], model, progress=False)
    assert [c.kind for c in with_json] == ["scan"] * 16 + ["group"]  # slices.json names their case
    truth = np.array([c.probability for c in with_json[:16]])
    told = check_paths([tmp_path / "bare"], model, progress=False, pixel_spacing=0.837890625)
    assert len(told) == 16  # no slices.json, no --group-by: no group
    assert [c.probability for c in told] == pytest.approx(truth.tolist(), abs=1e-6)
    with pytest.warns(DataWarning, match="16 of 16 PNG slices.*400 mm field of view"):
        assumed = check_paths([tmp_path / "bare"], model, progress=False)
    one_mm = check_paths([tmp_path / "bare"], model, progress=False, pixel_spacing=1.0)
    off_fov = np.abs([c.probability for c in assumed] - truth)
    off_1mm = np.abs([c.probability for c in one_mm] - truth)
    assert off_1mm.max() > 0.05  # the spacing matters
    assert off_fov.mean() < off_1mm.mean(), (off_fov.mean(), off_1mm.mean())


def test_a_dicom_series_without_a_series_uid_stays_alone(shared_data, model):
    """ts_example's DICOM slices carry an empty series instance UID (anonymised): no group is made of it."""
    [scan] = check_paths([shared_data / "ts_example" / "dicom"], model, progress=False)
    assert scan.kind == "scan" and scan.group == "" and scan.levels > 0


@pytest.mark.parametrize("bounds", [None, (-125, 275), (0, 255)])
def test_ircadb_01_lowest_slices_lie_at_the_pelvis_and_are_withheld(shared_data, model, bounds):
    """ircadb 01's three lowest slices hold both iliac wings (cancellous bone under 300 HU inside a thin
    cortex); every training of the shipped recipe read z0 or z3 confidently wrong before the wings counted
    with their marrow (benchmarks/studies/slice_rules.py). Its slices at the kidneys stay abdominal."""
    volume = load_nifti(shared_data / "ircadb" / "patient_01" / "ct.nii.gz")
    checks = {}
    for k in (0, 3, 6, 30, 60):
        affine = volume.affine.copy()
        affine[:3, 3] = volume.affine[:3, :3] @ np.array([0.0, 0.0, k]) + volume.affine[:3, 3]
        axial = volume.array[:, :, k : k + 1].astype(np.float32)
        axial = axial if bounds is None else np.clip(axial, *bounds)
        checks[k] = model.check(Volume(axial, affine, volume.source))
    for k in (0, 3, 6):
        assert checks[k].verdict == "unsure" and checks[k].abstained
        assert checks[k].reason.startswith("level at the pelvis: bone plates of "), (k, checks[k].reason)
    assert all(not checks[k].abstained for k in (30, 60)), [checks[k].reason for k in (30, 60)]


def test_a_slice_exported_through_an_unknown_window_is_read_with_find_window(shared_data, model, tmp_path):
    """ircadb 07's slice 63 (a kidney level, read `ok` as HU) exported through window 40/400 to 0-255 and
    saved as a NIfTI slice: withheld with --no-find-window (`values not HU`); by default read through the
    window found from its fat and soft tissue (benchmarks/studies/window_estimate.py: slope within 0.8-1.3
    of the true one on real slices, no confident error in 12 000 readings by ten trainings)."""
    from sidepair.cli import main
    from sidepair.qc.check import read_checked

    volume = load_nifti(shared_data / "ircadb" / "patient_07" / "ct.nii.gz")
    k = 63
    affine = volume.affine.copy()
    affine[:3, 3] = volume.affine[:3, :3] @ np.array([0.0, 0.0, k]) + volume.affine[:3, 3]
    hu = np.asarray(volume.array[:, :, k : k + 1], dtype=np.float32)
    pixels = np.round((np.clip(hu, -160, 240) + 160) / 400 * 255).astype(np.float32)
    exported = Volume(pixels, affine, Path("export.nii.gz"))
    withheld = read_checked(model, exported, find_windows=False)
    assert withheld.verdict == "unsure" and withheld.reason.startswith("values not HU")
    assert withheld.notes.startswith("no window sought (--no-find-window)")
    found = read_checked(model, exported)  # find_windows, the default
    assert found.verdict == "ok" and not found.abstained, (found.probability, found.reason)
    assert found.notes.startswith("window found from fat and soft tissue: HU = ")
    slope = float(found.notes.split("HU = ")[1].split(" x")[0])
    assert 400 / 255 * 0.7 < slope < 400 / 255 * 1.3
    path = tmp_path / "export.nii.gz"
    nib.save(nib.Nifti1Image(pixels, affine), path)

    def exit_code(*args: str) -> int:
        try:
            main(["check-sides", str(path), *args])
        except SystemExit as stop:
            return int(stop.code or 0)
        return 0

    assert exit_code("--no-find-window") == 3
    assert exit_code("--out", str(tmp_path / "sides.csv")) == 0
    assert "window found from fat and soft tissue" in (tmp_path / "sides.csv").read_text(encoding="utf-8")


def test_a_bare_slice_reads_alike_mirrored_or_cropped_by_a_pixel_at_grid_phases(shared_data, model, tmp_path):
    """A slice's 3 mm grid starts at its first pixel: mirrored (its first pixel is then its last) or
    cropped by one pixel, read at one grid phase its evidence moved by up to 3 logit; read at 3 x 3 phases,
    by half as much or less (benchmarks/studies/slice_phase.py). The 24 KiTS19 slices as bare PNGs."""
    folders = {k: tmp_path / k for k in ("as is", "mirrored", "cropped")}
    for folder in folders.values():
        folder.mkdir()
    for png in sorted((shared_data / "kits19_slices" / "images").glob("*.png")):
        pixels = np.asarray(Image.open(png))
        Image.fromarray(pixels).save(folders["as is"] / png.name)
        Image.fromarray(np.ascontiguousarray(pixels[:, ::-1])).save(folders["mirrored"] / png.name)
        Image.fromarray(np.ascontiguousarray(pixels[1:, 1:])).save(folders["cropped"] / png.name)
    gaps = {}
    try:
        for phases in (1, 3):
            model.slice_phases = phases
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DataWarning)  # no slices.json: the assumed field of view
                ev = {
                    k: np.array([c.level_evidence[0] for c in check_paths([f], model, progress=False)])
                    for k, f in folders.items()
                }
            gaps[phases] = (np.abs(ev["as is"] + ev["mirrored"]), np.abs(ev["as is"] - ev["cropped"]))
    finally:
        model.slice_phases = SLICE_PHASES
    for one, nine in zip(gaps[1], gaps[3], strict=True):
        assert len(one) == 24
        # measured: mean 0.39 -> 0.20 and 0.47 -> 0.19 logit; largest 2.2 -> 0.56 and 3.0 -> 0.66
        assert np.mean(nine) < 0.6 * np.mean(one), (np.mean(nine), np.mean(one))
        assert nine.max() < 0.5 * one.max(), (nine.max(), one.max())
