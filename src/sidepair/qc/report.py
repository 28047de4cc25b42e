"""check-sides' report: a CSV row per scan and per group, a JSON with every level, a summary line."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from pathlib import Path

from sidepair.atomic import write_json, write_text
from sidepair.qc.verdict import SideCheck
from sidepair.version import __version__

CSV_COLUMNS = (
    "kind",
    "input",
    "group",
    "probability",
    "verdict",
    "reason",
    "levels",
    "sections",
    "threshold",
    "notes",
    "model",
)


def write_report(checks: list[SideCheck], out: str | Path) -> tuple[Path, Path]:
    """Write the CSV (one row per scan, then one per group) and a JSON beside it with every level.

    Returns:
        The CSV and JSON paths.
    """
    out = Path(out)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(c.row() for c in checks)
    write_text(out, buffer.getvalue())
    json_path = out.with_suffix(".json")
    write_json(
        json_path,
        {
            "sidepair_version": __version__,
            "scans": [asdict(c) for c in checks if c.kind == "scan"],
            "groups": [asdict(c) for c in checks if c.kind == "group"],
        },
    )
    return out, json_path


def summary_line(checks: list[SideCheck]) -> str:
    """``N scans: a ok, b flipped, c unsure`` and, where there are groups, the same for them."""
    parts = []
    for kind in ("scan", "group"):
        these = [c for c in checks if c.kind == kind]
        if these or kind == "scan":
            counts = {v: sum(c.verdict == v for c in these) for v in ("ok", "flipped", "unsure")}
            parts.append(f"{len(these)} {kind}s: " + ", ".join(f"{n} {v}" for v, n in counts.items()))
    return "; ".join(parts)


def table(checks: list[SideCheck]) -> list[str]:
    """The lines check-sides prints: scans, then groups, each with its verdict and any reason."""
    width = max(len(c.input) for c in checks)
    lines = [f"{'scan':<{width}}  p(header right)  verdict  levels  reason"]
    for kind in ("scan", "group"):
        these = [c for c in checks if c.kind == kind]
        if kind == "group" and these:
            lines.append(f"{'group':<{width}}")
        lines += [
            f"{c.input:<{width}}  {c.probability:15.3f}  {c.verdict:<7}  {c.levels:6d}  {c.reason}".rstrip()
            for c in these
        ]
    return lines
