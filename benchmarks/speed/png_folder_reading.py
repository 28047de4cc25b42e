"""Reading a large slice folder for check-sides: its ``slices.json`` once per folder, or once per slice.

check-sides reads each PNG of a slice folder with that folder's ``slices.json`` entry. A reader made per
slice parses the whole ``slices.json`` for every slice, so a folder's reading time grows with the square
of its size; the folder reader check-sides uses parses it once. Both are timed side by side, in one run
and alternately, on a phantom slice folder copied ``--slices`` times (links to one PNG, one
``slices.json`` entry each). No model is run: this is the reading alone.

Phantom data. Writes ``results/png_folder_reading.json`` and a table.

Usage: python benchmarks/speed/png_folder_reading.py [--slices 500 2000] [--repeats 2] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from _common import report, timed
from sidepair.data.phantom import write_slices
from sidepair.qc.scans import PngReading, _png_loader, plan_scans

REPO = Path(__file__).resolve().parents[2]


def large_folder(work: Path, n: int) -> Path:
    """A slice folder of ``n`` slices: one phantom PNG linked ``n`` times, an entry each in slices.json."""
    source = work / "source"
    if not (source / "slices.json").exists():
        write_slices(source, cases=1, seed=0, shape=(96, 96, 48), slices_per_case=1)
    png = next((source / "images").glob("*.png"))
    entry = json.loads((source / "slices.json").read_text(encoding="utf-8"))[png.name]
    folder = work / f"slices_{n}"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "images").mkdir(parents=True)
    entries = {}
    for i in range(n):
        name = f"case_{i:05d}_{png.stem.rsplit('_', 1)[-1]}.png"
        (folder / "images" / name).symlink_to(png.resolve())
        entries[name] = entry
    (folder / "slices.json").write_text(json.dumps(entries), encoding="utf-8")
    return folder


def read_all(folder: Path, per_slice: bool) -> int:
    """Read every slice of ``folder`` as check-sides does, or with a reader made per slice."""
    scans = plan_scans([folder])
    for path, loader in scans:
        if per_slice:
            _png_loader(path, PngReading())
        else:
            loader(path)
    return len(scans)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "png_folder_reading")
    args = parser.parse_args()
    rows = []
    for n in args.slices:
        folder = large_folder(args.work, n)
        size_kb = (folder / "slices.json").stat().st_size / 1000
        times: dict[str, list[float]] = {"per folder": [], "per slice": []}
        for _ in range(args.repeats):
            for way in times:
                count, seconds = timed(read_all, folder, way == "per slice")
                assert count == n
                times[way].append(seconds)
        folder_s, slice_s = min(times["per folder"]), min(times["per slice"])
        rows.append(
            {
                "slices": n,
                "slices.json kB": round(size_kb),
                "slices.json once per folder, s": folder_s,
                "once per slice, s": slice_s,
                "ratio": slice_s / folder_s,
            }
        )
    report("png_folder_reading", rows, {"data": "phantom", "repeats": args.repeats})


if __name__ == "__main__":
    main()
