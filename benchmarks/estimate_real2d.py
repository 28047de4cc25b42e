"""Wall time of `sidepair experiment real-2d` on a KiTS19-sized set (210 cases), from measured step speeds.

Measured here, on this machine's CPU: the `fast-2d` segmentation training step (16 patches of 96 x 96),
the pretraining steps (32 pairs of masked 64 x 64 and half 128 x 128 sections) and whole-slice inference
(validation and test), per slice of the store grid. The grid sizes are those of the 210 real KiTS19 label
maps in ../shared/data/kits19_masks brought to fast-2d's 3 x 2 x 2 mm. The GPU figures use the step
speeds measured on an H100 (benchmarks/results/gpu_steps_h100.json); GPU inference is not measured and is
taken as 3 forward passes per training step's worth of pixels (stated, not measured).

The plan is real-2d.yaml's: 3 inits (scratch, masked matched, half) x 4 fractions x 3 seeds, and the
pretrainings (masked once per labelled subset, half once). A run stops at its first plateau or after the
60-epoch budget: the table gives both bounds, with 30 epochs as the middle (an assumption).

Usage: python benchmarks/estimate_real2d.py [--data ../shared/data] [--steps 15]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.losses import DiceCELoss

from _common import RESULTS, report
from sidepair.config import get_preset
from sidepair.experiment.config import load_experiment_config
from sidepair.inference.sliding import predict_array
from sidepair.models import Siamese, UNet
from sidepair.models.encoder import Encoder
from sidepair.training.losses import ContrastiveLoss


def timed_steps(step, n: int) -> float:
    step()  # warm-up
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--steps", type=int, default=15)
    args = parser.parse_args()
    preset = get_preset("fast-2d")
    arch = preset.architecture.model_copy()
    enc = {
        "spatial_dims": 2,
        "in_channels": 1,
        "channels": list(arch.channels),
        "strides": list(arch.strides),
    }
    torch.manual_seed(0)

    unet = UNet(enc, 2)
    opt = torch.optim.Adam(unet.parameters(), 1e-3)
    x = torch.randn(16, 1, 96, 96)
    y = (torch.rand(16, 1, 96, 96) > 0.9).long()
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, batch=True, include_background=False)

    def seg_step() -> None:
        opt.zero_grad()
        loss_fn(unet(x), y).backward()
        opt.step()

    seg_s = timed_steps(seg_step, args.steps)
    pre_s = {}
    for name, size in (("masked", preset.section_size), ("half", preset.half_section_size)):
        net = Siamese(Encoder(**enc))
        popt = torch.optim.Adam(net.parameters(), 1e-3)
        a, b = torch.randn(32, 1, *size), torch.randn(32, 1, *size)
        same = (torch.rand(32) > 0.5).float()
        contrastive = ContrastiveLoss()

        def pre_step(net=net, popt=popt, a=a, b=b, same=same, contrastive=contrastive) -> None:
            popt.zero_grad()
            contrastive(*net(a, b), same).backward()
            popt.step()

        pre_s[name] = timed_steps(pre_step, args.steps)
    volume = np.random.default_rng(0).normal(size=(32, 208, 208)).astype(np.float32)
    infer_s = timed_steps(lambda: predict_array(unet, volume, 2, (96, 96), torch.device("cpu"), 16), 3) / 32

    # KiTS19 store grids at 3 x 2 x 2 mm, from the real label maps' headers.
    files = sorted((args.data / "kits19_masks").glob("case_*/segmentation.nii.gz"))
    slices, pixels = [], []
    for f in files:
        img = nib.load(str(f))
        zooms, shape = img.header.get_zooms(), img.shape  # KiTS19: axis 0 is the slice axis (IPL)
        slices.append(shape[0] * zooms[0] / 3.0)
        pixels.append((shape[1] * zooms[1] / 2.0) * (shape[2] * zooms[2] / 2.0))
    n = len(files)
    mean_slices = float(np.mean(slices))
    pixel_factor = float(np.mean(pixels)) / (208 * 208)  # inference time scales with the slice's pixels
    config = load_experiment_config("real-2d")
    n_test, n_val = round(0.2 * n), round(0.15 * n)
    n_train = n - n_test - n_val
    grid = config.segmentation
    runs = 3 * len(grid.fractions) * len(grid.seeds)
    matched_pretrainings = (len(grid.fractions) - 1) * len(grid.seeds) + 1  # fraction 1 shared by all seeds
    pre = preset.pretrain
    pre_steps = pre.epochs * math.ceil(pre.pairs_per_epoch / pre.batch_size)
    seg = preset.segment
    steps_per_epoch = math.ceil(seg.samples_per_epoch / seg.batch_size)
    val_slices = n_val * mean_slices
    test_slices = n_test * mean_slices

    gpu = json.loads((RESULTS / "gpu_steps_h100.json").read_text(encoding="utf-8"))

    def gpu_rate(preset_name: str, task: str, setting: str) -> float:
        for row in gpu["rows"]:
            if row["preset"] == preset_name and row["task"] == task and row["setting"] == setting:
                return float(row["it_per_s"])
        raise KeyError((preset_name, task, setting))

    gpu_seg_s = 1 / gpu_rate("fast-2d", "train", "fp32")
    gpu_pre_s = 1 / gpu_rate("fast-2d", "pretrain", "bf16+cudnn (default)")
    # Not measured: a forward pass of one whole slice on the GPU, as a third of a training step's pixels.
    gpu_infer_s = gpu_seg_s / 16 / 3 * (208 * 208) / (96 * 96)

    rows = []
    for label, step_s, pre_step_masked, pre_step_half, slice_s in (
        ("2 CPU cores (measured here)", seg_s, pre_s["masked"], pre_s["half"], infer_s * pixel_factor),
        (
            "one H100 (its step speeds; inference assumed)",
            gpu_seg_s,
            gpu_pre_s,
            gpu_pre_s,
            gpu_infer_s * pixel_factor,
        ),
    ):
        pretrain_h = (matched_pretrainings * pre_step_masked + pre_step_half) * pre_steps / 3600
        for epochs in (grid.epochs // 2, grid.epochs):
            per_run = epochs * (steps_per_epoch * step_s + val_slices * slice_s) + test_slices * slice_s
            rows.append(
                {
                    "machine": label,
                    "epochs_per_run": epochs,
                    "pretraining_h": round(pretrain_h, 2),
                    "segmentation_h": round(runs * per_run / 3600, 1),
                    "total_h": round(pretrain_h + runs * per_run / 3600, 1),
                    "per_run_min": round(per_run / 60, 1),
                }
            )
    extra = {
        "cases": n,
        "split": {"train": n_train, "val": n_val, "test": n_test},
        "mean_slices_on_3mm": round(mean_slices, 1),
        "mean_slice_pixels": round(float(np.mean(pixels))),
        "segmentation_runs": runs,
        "matched_pretrainings": matched_pretrainings,
        "cpu_seg_step_s": round(seg_s, 3),
        "cpu_pretrain_step_s": {k: round(v, 3) for k, v in pre_s.items()},
        "cpu_inference_s_per_208x208_slice": round(infer_s, 4),
        "gpu_seg_step_s": round(gpu_seg_s, 4),
        "gpu_pretrain_step_s": round(gpu_pre_s, 4),
    }
    print(extra)
    report("estimate_real2d", rows, extra)


if __name__ == "__main__":
    main()
