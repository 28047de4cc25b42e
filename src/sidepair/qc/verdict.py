"""A laterality verdict on one scan or one group of scans, and the reason when it is ``unsure``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from sidepair.choices import DEFAULT_SIDE_THRESHOLD, DEFAULT_SLICE_THRESHOLD

Verdict = Literal["ok", "flipped", "unsure"]
Kind = Literal["scan", "group"]


@dataclass
class SideCheck:
    """The verdict on one scan, or on a group of scans read together.

    Attributes:
        input: The file or series folder checked; for a group, its name.
        probability: Probability that the left-right its header implies is right.
        verdict: ``ok`` (probability >= the threshold that applies), ``flipped`` (<= 1 - it) or
            ``unsure``.
        levels: Axial levels the verdict rests on (a right and a left section each).
        sections: Sections read (per level: a right and a left, each at 5 positions, each also mirrored
            and the two scores averaged).
        threshold: The threshold that applied (``slice_threshold`` for a scan of one level).
        level_probabilities: Each level's probability (the sigmoid of its evidence), from feet to head.
        model: The side model's file.
        kind: ``scan``, or ``group`` for the verdict on a group's scans together.
        group: The group the scan belongs to (empty: none); a group's own name.
        reason: Why the verdict is ``unsure`` (empty when it is not).
        notes: What is unusual about the input without withholding the verdict.
        abstained: The verdict was withheld for what the input is (``reason`` says what), whatever the
            probability: such a scan adds nothing to its group.
        level_evidence: Each level's log-odds; a group pools its scans' levels.
    """

    input: str
    probability: float
    verdict: Verdict
    levels: int
    sections: int
    threshold: float
    level_probabilities: list[float] = field(default_factory=list)
    model: str = ""
    kind: Kind = "scan"
    group: str = ""
    reason: str = ""
    notes: str = ""
    abstained: bool = False
    level_evidence: list[float] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        """The CSV row (without the per-level figures)."""
        out = asdict(self)
        for key in ("level_probabilities", "level_evidence", "abstained"):
            out.pop(key)
        out["probability"] = round(self.probability, 4)
        return out


def verdict_of(probability: float, threshold: float) -> Verdict:
    """``ok``, ``flipped`` or ``unsure`` for a probability that the header's left-right is right."""
    if probability >= threshold:
        return "ok"
    if probability <= 1 - threshold:
        return "flipped"
    return "unsure"


def threshold_for(levels: int, threshold: float, slice_threshold: float) -> float:
    """The threshold a scan of ``levels`` levels must pass: the stricter one for a single level.

    One level is one reading of the anatomy; at levels where the sides differ little (below the liver,
    at the lung bases) the model can be wrong with confidence, and a scan of many levels outvotes such a
    level where a single slice cannot (docs/check-sides.md).
    """
    return max(threshold, slice_threshold) if levels <= 1 else threshold


def decide(
    probability: float,
    levels: int,
    reasons: list[str],
    threshold: float = DEFAULT_SIDE_THRESHOLD,
    slice_threshold: float = DEFAULT_SLICE_THRESHOLD,
) -> tuple[Verdict, str, float]:
    """The verdict, its reason when ``unsure``, and the threshold that applied.

    Args:
        probability: The probability that the header's left-right is right.
        levels: Levels it rests on.
        reasons: Reasons to withhold the verdict whatever the probability (see ``qc.inputs``).
        threshold: The threshold of a scan of several levels.
        slice_threshold: The threshold of a scan of one level.
    """
    applied = threshold_for(levels, threshold, slice_threshold)
    if reasons:
        return "unsure", "; ".join(reasons), applied
    verdict = verdict_of(probability, applied)
    if verdict != "unsure":
        return verdict, "", applied
    where = "one level" if levels <= 1 else f"{levels} levels"
    return verdict, f"weak evidence: p {probability:.2f} from {where}, needs {applied:g} either way", applied
