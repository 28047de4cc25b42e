"""Start-up of the command line against ``import torch``, measured side by side in one run.

Each command runs ``--repeats`` times in a fresh interpreter, the commands interleaved so that the
machine's load falls on all of them alike; the table gives each one's median wall time and its ratio to
``python -c "import torch"``. Issue #32's bar: ``sidepair --help`` at most half of ``import torch``.
Writes results/cli_startup.json.

Usage: python benchmarks/speed/cli_startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from _common import report

COMMANDS = {
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    "python -c 'pass'": [sys.executable, "-c", "pass"],
    "sidepair --help": [sys.executable, "-m", "sidepair", "--help"],
    "sidepair train --help": [sys.executable, "-m", "sidepair", "train", "--help"],
    "sidepair check-sides --help": [sys.executable, "-m", "sidepair", "check-sides", "--help"],
    "sidepair train, a bad option value (exit 2)": [
        sys.executable, "-m", "sidepair", "train", "--store", "s", "--out", "o", "--preset", "demo",
        "--label-fraction", "1.5",
    ],
    "python -c 'import sidepair'": [sys.executable, "-c", "import sidepair"],
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    walls: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for cmd in COMMANDS.values():  # warm the file cache once
        subprocess.run(cmd, capture_output=True, check=False)
    for _ in range(args.repeats):
        for name, cmd in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=False)
            walls[name].append(time.perf_counter() - start)
    torch_s = statistics.median(walls["python -c 'import torch'"])
    rows = [
        {
            "command": name,
            "median_s": round(statistics.median(w), 3),
            "min_s": round(min(w), 3),
            "ratio_to_import_torch": round(statistics.median(w) / torch_s, 2),
        }
        for name, w in walls.items()
    ]
    extra = {"data": "none: start-up of the command line", "repeats": args.repeats}
    report("cli_startup", rows, {**extra, "bar": "sidepair --help <= 0.5 x import torch"})


if __name__ == "__main__":
    main()
