"""Training-step speed on a GPU: pretrain and train steps at the kits19-paper (3D) and fast-2d presets.

Each step is the one the training loop runs (Adam, the preset's network, loss, batch and input size,
through :class:`~sidepair.training.performance.StepModule` and its autocast), on batches already on
the GPU, so the figures are the network's, not the data path's (``benchmarks/speed/data_path.py`` measures
that). For every preset and task it times six settings: fp32, fp32 + cuDNN benchmark, bf16 (the
default on CUDA), bf16 + channels-last, bf16 + torch.compile, and all of them; it prints iterations/s,
images/s (images through the network: 2 per pair in pretraining) and peak GPU memory, and writes JSON
after every row, so a run cut short keeps what it measured. A time budget skips what no longer fits.

Usage: python benchmarks/speed/gpu_steps.py [--json PATH] [--budget SECONDS] [--smoke]
(``--smoke``: tiny shapes on CPU, to check the script itself without a GPU.)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from sidepair.config import Performance
from sidepair.models import Encoder, Siamese, UNet
from sidepair.training.losses import ContrastiveLoss
from sidepair.training.performance import StepModule, apply_backend_flags, autocast
from sidepair.training.pretrain import resolve_config
from sidepair.training.segment_config import resolve_train_config

VARIANTS: list[tuple[str, Performance]] = [
    ("fp32", Performance(precision="fp32", cudnn_benchmark=False)),
    ("fp32+cudnn", Performance(precision="fp32")),
    ("bf16+cudnn (default)", Performance(precision="bf16")),
    ("bf16+cudnn+channels_last", Performance(precision="bf16", channels_last=True)),
    ("bf16+cudnn+compile", Performance(precision="bf16", compile=True)),
    ("bf16+cudnn+channels_last+compile", Performance(precision="bf16", channels_last=True, compile=True)),
]
CASES = [
    ("fast-2d", "train"),
    ("fast-2d", "pretrain"),
    ("kits19-paper", "train"),
    ("kits19-paper", "pretrain"),
]


def build(
    preset: str, task: str, device: torch.device, smoke: bool
) -> tuple[torch.nn.Module, Any, tuple, int]:
    """Network, loss function, batch (on ``device``) and images per step of one preset and task."""
    from monai.losses import DiceCELoss

    if task == "pretrain":
        c = resolve_config(preset, "unused")
        size, batch, channels = tuple(c.section_size), c.batch_size, list(c.channels)
    else:
        c = resolve_train_config(preset, "unused")
        size, batch, channels = tuple(c.patch_size), c.batch_size, list(c.channels)
    enc = c.encoder_config()
    if smoke:  # tiny shapes on CPU: the script's own check
        size, batch = tuple(64 if len(size) == 2 else 16 for _ in size), 2
        enc = {**enc, "channels": [4 * (i + 1) for i in range(len(channels))]}
    gen = torch.Generator().manual_seed(0)
    if task == "pretrain":
        model = Siamese(Encoder(**enc), c.embedding_dim, head="contrastive")
        crit = ContrastiveLoss(c.margin)
        x1, x2 = (torch.randn(batch, 1, *size, generator=gen) for _ in range(2))
        same = (torch.arange(batch) % 2).float()
        data = tuple(t.to(device) for t in (x1, x2, same))

        def loss_fn(m: torch.nn.Module, b: tuple) -> torch.Tensor:
            e1, e2 = m(b[0], b[1])
            return crit(e1, e2, b[2])

        return model, loss_fn, data, 2 * batch
    model = UNet(enc, 2)
    crit = DiceCELoss(to_onehot_y=True, softmax=True, batch=True, include_background=False)
    image = torch.randn(batch, 1, *size, generator=gen)
    target = (torch.rand(batch, 1, *size, generator=gen) > 0.8).long()
    data = (image.to(device), target.to(device))

    def seg_loss(m: torch.nn.Module, b: tuple) -> torch.Tensor:
        return crit(m(b[0]), b[1])

    return model, seg_loss, data, batch


def measure(
    preset: str, task: str, perf: Performance, device: torch.device, smoke: bool, seconds: float
) -> dict[str, Any]:
    """Warm-up (and compile), then timed steps for about ``seconds``."""
    torch.manual_seed(0)
    model, loss_fn, data, images = build(preset, task, device, smoke)
    model.to(device)
    apply_backend_flags(perf, device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    step_model = StepModule(model, perf, device, distributed=False).get()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        with autocast(perf, device):
            loss = loss_fn(step_model, data)
        loss.backward()
        opt.step()
        return loss

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    t0 = time.perf_counter()
    for _ in range(3):
        loss = step()
    sync()
    warmup_s = time.perf_counter() - t0
    n, t0 = 0, time.perf_counter()
    while n < 5 or (time.perf_counter() - t0 < seconds and n < 200):
        loss = step()
        n += 1
        if n % 5 == 0:
            sync()
    sync()
    elapsed = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return {
        "steps": n,
        "it_per_s": n / elapsed,
        "images_per_s": n * images / elapsed,
        "warmup_s": warmup_s,
        "peak_gib": peak,
        "loss": float(loss),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--json", type=Path, default=Path(__file__).resolve().parents[1] / "results" / "gpu_steps.json"
    )
    parser.add_argument("--budget", type=float, default=420.0, help="Seconds for all rows.")
    parser.add_argument("--seconds", type=float, default=6.0, help="Timed seconds per row.")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    device = torch.device("cpu" if args.smoke else "cuda")
    start = time.perf_counter()
    info = {
        "gpu": torch.cuda.get_device_name() if device.type == "cuda" else "none (smoke run on CPU)",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
    }
    rows: list[dict[str, Any]] = []
    # Eager settings first for every case, then the compiled ones, so the budget cuts compilation.
    order = [(c, v) for v in VARIANTS if not v[1].compile for c in CASES]
    order += [(c, v) for v in VARIANTS if v[1].compile for c in CASES]
    for (preset, task), (name, perf) in order:
        row: dict[str, Any] = {"preset": preset, "task": task, "setting": name}
        left = args.budget - (time.perf_counter() - start)
        if left < (60 if perf.compile else 15):
            row["skipped"] = f"time budget ({left:.0f} s left)"
        else:
            try:
                row.update(measure(preset, task, perf, device, args.smoke, args.seconds))
            except torch.cuda.OutOfMemoryError:
                row["skipped"] = "out of GPU memory"
            except Exception as exc:  # a compile failure must not lose the other rows
                row["skipped"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            if perf.compile:
                torch._dynamo.reset()
        rows.append(row)
        print(json.dumps(row), flush=True)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"benchmark": "gpu_steps", "machine": info, "rows": rows}, indent=2))
    print(f"\n{info['gpu']}, torch {info['torch']}, CUDA {info['cuda']}")
    print(
        f"{'preset':13} {'task':9} {'setting':34} {'it/s':>8} {'images/s':>9} {'peak GiB':>9} {'vs fp32':>8}"
    )
    base = {(r["preset"], r["task"]): r.get("it_per_s") for r in rows if r["setting"] == "fp32"}
    for r in sorted(rows, key=lambda r: (r["preset"], r["task"])):
        if "skipped" in r:
            print(f"{r['preset']:13} {r['task']:9} {r['setting']:34} skipped: {r['skipped']}")
            continue
        ratio = (
            r["it_per_s"] / base[(r["preset"], r["task"])]
            if base.get((r["preset"], r["task"]))
            else float("nan")
        )
        print(
            f"{r['preset']:13} {r['task']:9} {r['setting']:34} {r['it_per_s']:8.2f} {r['images_per_s']:9.1f} "
            f"{r['peak_gib']:9.2f} {ratio:7.2f}x"
        )


if __name__ == "__main__":
    main()
