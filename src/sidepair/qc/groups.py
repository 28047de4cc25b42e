"""Scans judged together: the slices of one patient or series pooled into one verdict, each slice's kept.

A single slice is one level of evidence; a patient's slices together are many, as a volume's levels are,
and are pooled the same way: the group's probability is the sigmoid of the mean evidence of all its
scans' levels. Scans withheld for what they are (values not HU, an implausible body) add nothing. Where
the scans that were decided disagree (some ``ok``, some ``flipped``) the group is ``unsure``: a series
with one mirrored export is exactly what QC must not average away.

Groups come from, first to last: ``--group-by REGEX`` on the file name (its first capture group, or the
whole match); a slice folder's ``slices.json`` (``case``, or KiTS-style ``kits19_case``); a DICOM series
folder's series instance UID. A scan with none stays alone and keeps its own verdict.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit

from sidepair.choices import DEFAULT_SIDE_THRESHOLD, DEFAULT_SLICE_THRESHOLD
from sidepair.data.dicom import choose_series, load_dicom_series
from sidepair.errors import UsageError
from sidepair.qc.scans import PngFolders
from sidepair.qc.verdict import SideCheck, decide

CASE_KEYS = ("case", "kits19_case")


def group_pattern(group_by: str | None) -> re.Pattern[str] | None:
    """``--group-by`` compiled (None when not given).

    Raises:
        UsageError: Not a regular expression.
    """
    try:
        return re.compile(group_by) if group_by else None
    except re.error as exc:
        raise UsageError(f"--group-by {group_by!r} is not a regular expression ({exc})") from None


def group_key(path: Path, loader: Any, pattern: re.Pattern[str] | None = None) -> str:
    """The group of one planned scan (see the module's docstring); empty when it has none."""
    if pattern is not None:
        match = pattern.search(path.name)
        if match is None:
            return ""
        return next((g for g in match.groups() if g), match.group(0))
    if isinstance(loader, PngFolders):
        entry = loader.entry(path)
        return next((str(entry[k]) for k in CASE_KEYS if entry.get(k)), "")
    if loader is load_dicom_series:
        return choose_series(path)[0]
    return ""


def pool(
    checks: list[SideCheck],
    threshold: float = DEFAULT_SIDE_THRESHOLD,
    slice_threshold: float = DEFAULT_SLICE_THRESHOLD,
) -> list[SideCheck]:
    """One verdict per group of ``checks`` (their ``group``), in the order groups first appear."""
    members: dict[str, list[SideCheck]] = {}
    for check in checks:
        if check.group:
            members.setdefault(check.group, []).append(check)
    return [_pooled(name, scans, threshold, slice_threshold) for name, scans in members.items()]


def _pooled(name: str, scans: list[SideCheck], threshold: float, slice_threshold: float) -> SideCheck:
    used = [c for c in scans if not c.abstained]
    evidence = np.array([e for c in used for e in c.level_evidence], dtype=np.float64)
    probability = float(expit(evidence.mean())) if len(evidence) else 0.5
    reasons = [] if used else [f"all {len(scans)} scans withheld"]
    ok = sum(c.verdict == "ok" for c in used)
    flipped = sum(c.verdict == "flipped" for c in used)
    if ok and flipped:
        reasons.append(f"its scans disagree: {ok} ok, {flipped} flipped")
    verdict, reason, applied = decide(probability, len(evidence), reasons, threshold, slice_threshold)
    withheld = len(scans) - len(used)
    return SideCheck(
        input=name,
        probability=probability,
        verdict=verdict,
        levels=len(evidence),
        sections=sum(c.sections for c in used),
        threshold=applied,
        model=scans[0].model,
        kind="group",
        group=name,
        reason=reason,
        notes=f"{len(scans)} scans" + (f", {withheld} withheld" if withheld and used else ""),
        abstained=not used,
    )
