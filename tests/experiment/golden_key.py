"""Which CPU a golden record of the tiny experiment belongs to, and how to record one for this CPU.

A training run's floats depend on the CPU it ran on (MKL and oneDNN pick kernels by vendor, model and
instruction set; reductions split by thread count), so per-case metrics equal to the last bit hold only
on the CPU they were recorded on. Measured: the code of commit 1852e12 gives different metrics on an
AMD EPYC than the golden recorded on the machine of commit c0728af, and exactly the metrics of today's
code on that EPYC.

Record this CPU's golden with the code before the one-prediction-path redesign (needs git history):
``python -m tests.experiment.golden_key``.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

GOLDEN = Path(__file__).parent / "golden"
BEFORE_REDESIGN = "1852e12"


def cpu_key() -> str:
    """Vendor, family, model, torch's CPU capability and threads, e.g. ``AuthenticAMD-25-17-AVX512-2t``."""
    import torch

    fields: dict[str, str] = {}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(encoding="utf-8").splitlines():
            name, _, value = line.partition(":")
            fields.setdefault(name.strip(), value.strip())
    parts = [fields.get(k, "?") for k in ("cpu family", "model")]
    parts.insert(0, fields.get("vendor_id", platform.machine()))
    parts += [torch.backends.cpu.get_cpu_capability(), f"{torch.get_num_threads()}t"]
    return "-".join(p.replace(" ", "_") for p in parts)


def golden_path() -> Path:
    """Where this CPU's golden per-case metrics live."""
    return GOLDEN / f"tiny_per_case.{cpu_key()}.csv"


def record(config: dict) -> Path:
    """Run ``config`` (the tiny experiment as commit 1852e12 reads it) with that commit's code; keep its
    per_case.csv as this CPU's golden."""
    repo = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        git = ["git", "-C", str(repo), "worktree"]
        subprocess.run([*git, "add", "--detach", str(old), BEFORE_REDESIGN], check=True)
        try:
            (Path(tmp) / "tiny.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
            code = (
                "from pathlib import Path\n"
                "from sidepair.experiment import load_experiment_config, run_experiment\n"
                "run_experiment(load_experiment_config(Path('tiny.yaml')), Path('out'), progress=False)\n"
            )
            env = os.environ | {"PYTHONPATH": str(old / "src")}
            subprocess.run([sys.executable, "-c", code], cwd=tmp, env=env, check=True)
            target = golden_path()
            target.parent.mkdir(exist_ok=True)
            target.write_bytes((Path(tmp) / "out" / "per_case.csv").read_bytes())
        finally:
            subprocess.run([*git, "remove", "--force", str(old)], check=True)
    return target


if __name__ == "__main__":
    from tests.experiment.conftest import TINY

    # 1852e12 knows no ``resample`` (its way back was the labels one); bootstrap leaves per-case rows alone.
    # Nor the recipe settings of issue #28, which TINY pins to what that code did without them.
    later = (
        "foreground_fraction",
        "min_epochs",
        "mirror",
        "optimizer",
        "schedule",
        "smoothing",
        "validation",
    )
    segmentation = {k: v for k, v in TINY["segmentation"].items() if k not in (*later, "weight_decay")}
    before = TINY | {"evaluation": {"bootstrap": 500}, "segmentation": segmentation}
    print(record(before))
