"""check-sides' report: a CSV row per scan, a JSON with every level's probability, a summary line."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from pathlib import Path

from sidepair.atomic import write_json, write_text
from sidepair.qc.side_model import SideCheck
from sidepair.version import __version__

CSV_COLUMNS = ("input", "probability", "verdict", "levels", "sections", "threshold", "model")


def write_report(checks: list[SideCheck], out: str | Path) -> tuple[Path, Path]:
    """Write the CSV (one row per scan) and a JSON beside it with every level's probability.

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
    write_json(json_path, {"sidepair_version": __version__, "scans": [asdict(c) for c in checks]})
    return out, json_path


def summary_line(checks: list[SideCheck]) -> str:
    """``N scans: a ok, b flipped, c unsure``."""
    counts = {v: sum(c.verdict == v for c in checks) for v in ("ok", "flipped", "unsure")}
    return f"{len(checks)} scans: " + ", ".join(f"{n} {v}" for v, n in counts.items())
