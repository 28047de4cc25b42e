"""Scans judged together: group keys, pooled evidence, disagreement, and the report's two levels."""

import csv
import json
import re

import numpy as np
import pytest
from PIL import Image

from sidepair.data.volume import load_nifti
from sidepair.qc.check import check_paths, final_verdicts
from sidepair.qc.groups import group_key, pool
from sidepair.qc.scans import PngFolders, PngReading, plan_scans
from sidepair.qc.side_model import SideModel
from sidepair.qc.verdict import SideCheck
from tests.conftest import run_cli as cli
from tests.conftest import write_dicom_series


def scan(name: str, evidence: list[float], group: str = "g", verdict: str = "ok", abstained=False):
    p = float(1 / (1 + np.exp(-np.mean(evidence))))
    return SideCheck(name, p, verdict, len(evidence), 10 * len(evidence), 0.95, group=group,
                     abstained=abstained, level_evidence=evidence)  # fmt: skip


def test_a_group_pools_its_scans_levels_as_mean_evidence():
    """Slices at 0.99, 0.99 and 0.4 (one level each): the group's p is sigmoid(mean log-odds) = 0.95, and
    with three levels the scan threshold 0.75 applies, not the single slice's 0.95."""
    strong, weak = float(np.log(99)), float(np.log(0.4 / 0.6))
    checks = [scan("a", [strong]), scan("b", [strong]), scan("c", [weak], verdict="unsure")]
    [group] = pool(checks)
    expected = 1 / (1 + np.exp(-(2 * strong + weak) / 3))
    assert group.kind == "group" and group.input == "g" and group.levels == 3
    assert group.probability == pytest.approx(expected) and group.verdict == "ok" and group.threshold == 0.75
    assert group.notes == "3 scans" and group.reason == ""


def test_withheld_scans_add_nothing_and_disagreement_is_unsure():
    strong = float(np.log(99))
    withheld = scan("w", [-5.0, -5.0], verdict="unsure", abstained=True)
    [group] = pool([scan("a", [strong]), scan("b", [strong]), withheld])
    assert group.verdict == "ok" and group.levels == 2 and group.notes == "3 scans, 1 withheld"
    [group] = pool([scan("a", [strong, strong]), scan("b", [-strong], verdict="flipped")])
    assert group.verdict == "unsure" and group.reason == "its scans disagree: 1 ok, 1 flipped"
    [group] = pool([withheld])
    assert group.verdict == "unsure" and group.abstained and group.reason == "all 1 scans withheld"


def test_scans_without_a_group_keep_their_own_verdict():
    alone = scan("x", [5.0], group="")
    grouped = [scan("a", [5.0]), scan("b", [5.0])]
    groups = pool([alone, *grouped])
    assert [g.input for g in groups] == ["g"]
    assert final_verdicts([alone, *grouped, *groups]) == [alone, groups[0]]


def test_group_keys_from_a_regex_slices_json_or_nothing(tmp_path):
    folder = tmp_path / "slices"
    (folder / "images").mkdir(parents=True)
    for name in ("p1_001.png", "p1_002.png", "p2_001.png", "other.png"):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "images" / name)
    meta = {"p1_001.png": {"case": "patient 1"}, "p1_002.png": {"kits19_case": "case_00001"}}
    (folder / "slices.json").write_text(json.dumps(meta), encoding="utf-8")
    scans = plan_scans([folder], PngReading(spacing=1.0))
    assert all(isinstance(loader, PngFolders) for _, loader in scans)
    keys = {path.name: group_key(path, loader) for path, loader in scans}
    assert keys == {"other.png": "", "p1_001.png": "patient 1", "p1_002.png": "case_00001", "p2_001.png": ""}
    prefix = re.compile(r"^([^_]+)_")
    keys = {path.name: group_key(path, loader, prefix) for path, loader in scans}
    assert keys == {"other.png": "", "p1_001.png": "p1", "p1_002.png": "p1", "p2_001.png": "p2"}
    whole = re.compile(r"p\d")
    assert group_key(folder / "images" / "p2_001.png", None, whole) == "p2"


@pytest.mark.integration
def test_cli_reports_both_levels_and_exits_on_the_groups(png_slices, tmp_path):
    """Two phantom slices of one case grouped by --group-by: one row per slice, one for the case; the
    exit status follows the group (and a bad regex is a usage error, exit 2)."""
    report = tmp_path / "sides.csv"
    result = cli("check-sides", png_slices, "--group-by", r"^(case\d+)_", "--out", report)
    rows = list(csv.DictReader(report.open(encoding="utf-8")))
    assert [r["kind"] for r in rows] == ["scan", "scan", "group"], result.stdout
    assert rows[2]["input"] == "case1" and rows[2]["levels"] == "2" and rows[2]["notes"] == "2 scans"
    assert {r["group"] for r in rows} == {"case1"}
    levels = json.loads(report.with_suffix(".json").read_text(encoding="utf-8"))
    assert len(levels["scans"]) == 2 and len(levels["groups"]) == 1
    assert levels["groups"][0]["probability"] == pytest.approx(
        1 / (1 + np.exp(-np.mean([e for s in levels["scans"] for e in s["level_evidence"]]))), abs=1e-6
    )
    assert result.returncode == (0 if rows[2]["verdict"] == "ok" else 3)
    assert "2 scans:" in result.stdout and "1 groups:" in result.stdout
    bad = cli("check-sides", png_slices, "--group-by", "([")
    assert bad.returncode == 2 and "--group-by" in bad.stderr and "not a regular expression" in bad.stderr


def test_folders_of_one_dicom_series_are_one_group(states, tmp_path):
    """A series split over two folders (its lower and upper half): each folder is a scan, the series UID
    makes them one group, whose levels are both folders' levels."""
    volume = load_nifti(states / "asis.nii.gz")
    lps_zyx = np.transpose(volume.array[::-1, ::-1, :], (2, 1, 0)).astype(np.int16)
    spacing = tuple(float(v) for v in volume.spacing)
    half = lps_zyx.shape[0] // 2
    uid = "1.2.826.0.1.3680043.2.1125.1.7"
    for name, part, z0 in (("lower", lps_zyx[:half], 0.0), ("upper", lps_zyx[half:], half * spacing[2])):
        write_dicom_series(tmp_path / name, part, spacing=spacing, origin=(0.0, 0.0, z0), series_uid=uid)
    checks = check_paths([tmp_path / "lower", tmp_path / "upper"], SideModel.load(), progress=False)
    assert [c.kind for c in checks] == ["scan", "scan", "group"]
    assert {c.group for c in checks} == {uid} and checks[2].input == uid
    assert checks[2].levels == checks[0].levels + checks[1].levels and checks[2].notes == "2 scans"
