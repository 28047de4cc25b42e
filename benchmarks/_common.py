"""Helpers shared by the benchmark scripts: run a command and measure it, write JSON, print a table."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sidepair.atomic import write_text

RESULTS = Path(__file__).resolve().parent / "results"


def commit() -> str:
    """The commit measured, with ``-dirty`` when the working tree has uncommitted changes.

    Changes to ``benchmarks/results`` do not count: a result file written by an earlier benchmark of the
    same session changes nothing that is measured.
    """
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no",
                                "--", ".", ":(exclude)benchmarks/results"],
                               capture_output=True, text=True)  # fmt: skip
    except OSError:
        return "unknown"
    return (
        head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
        if head.returncode == 0
        else "unknown"
    )


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import torch

    return {
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def measure(cmd: list[str]) -> dict[str, float]:
    """Run ``cmd`` in a child process under GNU-time-like accounting: wall seconds and peak RSS (MiB)."""
    wrapper = (
        "import resource, subprocess, sys, time, json; t = time.perf_counter(); "
        "rc = subprocess.call(sys.argv[1:]); w = time.perf_counter() - t; "
        "r = resource.getrusage(resource.RUSAGE_CHILDREN); "
        "print(json.dumps({'rc': rc, 'wall_s': w, 'peak_rss_mib': r.ru_maxrss / 1024}))"
    )
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, check=False)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["rc"] != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr}")
    return result


def brief_model(work: Path, preset: str = "fast-2d") -> Path:
    """A segmentation run trained for one short epoch on a small phantom (``work/model``), made once.

    Timing and memory of prediction depend on the architecture, not on how well it is trained.
    """
    model = work / "model"
    if not (model / "checkpoint_best.pt").exists():
        sidepair = [sys.executable, "-m", "sidepair"]
        small, store = str(work / "small"), str(work / "store")
        measure(
            [
                *sidepair,
                "phantom",
                "--out",
                small,
                "--cases",
                "8",
                "--no-montage",
                "--shape",
                "160",
                "160",
                "64",
            ]
        )
        measure([*sidepair, "prepare", "--data", small, "--out", store, "--preset", preset])
        train = ["--store", store, "--out", str(model), "--preset", preset, "--epochs", "1"]
        measure([*sidepair, "train", *train, "--samples-per-epoch", "64"])
    return model


def timed(fn, *args, **kwargs) -> tuple[Any, float]:
    """Call ``fn`` and return its result and wall seconds."""
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start


def model_specs(parser: argparse.ArgumentParser, specs: list[str]) -> dict[str, list[Path]]:
    """``--model NAME=FILE[,FILE...]`` options as ``{NAME: [FILE, ...]}`` (several files: side models read
    together); a malformed one or a missing FILE is a usage error (exit 2)."""
    models = {}
    for spec in specs:
        name, eq, files = spec.partition("=")
        paths = [Path(f) for f in files.split(",")] if files else []
        if not (name and eq and paths and all(p.is_file() for p in paths)):
            parser.error(f"--model {spec}: expected NAME=FILE[,FILE...] with existing checkpoint FILEs")
        models[name] = paths
    return models


def report(name: str, rows: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> Path:
    """Write ``results/<name>.json`` and print the rows as a table.

    Raises:
        ValueError: Without ``extra["data"]``: every result says what data it measured.
    """
    if not (extra or {}).get("data"):
        raise ValueError(f"{name}: report() needs extra['data'], the data measured")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    # atomically: a run stopped while writing leaves the committed file as it was
    write_text(
        path,
        json.dumps(
            {"benchmark": name, "commit": commit(), "machine": machine(), "rows": rows, **(extra or {})},
            indent=2,
        ),
    )
    keys = list(dict.fromkeys(k for r in rows for k in r))  # rows may differ in their keys
    widths = [max(len(k), *(len(_fmt(r.get(k))) for r in rows)) for k in keys]
    print(" | ".join(k.ljust(w) for k, w in zip(keys, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(_fmt(r.get(k)).ljust(w) for k, w in zip(keys, widths, strict=True)))
    print(f"\nwritten {path}")
    return path


def _fmt(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)
