"""``sidepair experiment CONFIG --plan``: the grid, its optimiser steps, and what it will cost.

Nothing is trained or written. The grid comes from the config alone; matched pretrainings are counted as
one per label fraction below 1 and seed, plus one for fraction 1 (what ``plan_pretraining`` makes unless two
subsets happen to coincide). Each distinct training step (network, batch, input size) is timed on this
machine for a few steps on random inputs, the same network, loss and optimiser a run uses, after warm-up
steps; validation on fixed patches is timed as forward passes. The GPU estimate uses step speeds measured
on a GPU and recorded in ``resources/gpu_step_speeds.json`` (a step with no record gets none), a
validation forward pass there taken as a third of a training step. A step too large to time here (a 3D
patch: one step of the paper's preset needs 16 GB and two minutes on a CPU) is timed on fewer samples and a
smaller patch of the same network, and scaled by the voxels it left out. Whole-volume
scoring (the chosen checkpoint's validation, and evaluation of the test cases) depends on the data's size
and is not in the estimate.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any

import torch

from sidepair.config import OptimiserSettings, PretrainSettings, SegmentSettings, set_fields
from sidepair.experiment.config import ExperimentConfig
from sidepair.experiment.plan import REFERENCE, init_label
from sidepair.models.backends import segmentation_network, total_stride
from sidepair.training.optim import build_optimizer
from sidepair.training.pretrain_config import PretrainConfig, resolve_config
from sidepair.training.run_defaults import PLAN_STORE
from sidepair.training.segment_config import N_CLASSES, TrainConfig, resolve_train_config
from sidepair.training.segment_task import segmentation_loss

# The most voxels (samples x patch) a calibration step feeds the network: a few GB for a 3D U-Net of 32
# channels at full resolution, and above every 2D preset's step, which is timed as it is.
CALIBRATION_VOXELS = 3 * 2**19


@dataclass(frozen=True)
class Step:
    """One kind of training step: what the calibration times."""

    kind: str  # segmentation or pretrain
    encoder: str  # the encoder config, as JSON
    size: tuple[int, ...]
    batch: int
    deep_supervision: bool = False  # a segmentation step with nnU-Net's lower-stage heads and losses

    @property
    def samples(self) -> int:
        """Inputs the step feeds the network at once (a pair is two sections through the shared encoder)."""
        return self.batch if self.kind == "segmentation" else 2 * self.batch

    @property
    def key(self) -> str:
        """The step's name in the recorded GPU speeds."""
        enc = json.loads(self.encoder)
        size = "x".join(map(str, self.size))
        channels = "-".join(map(str, enc.get("channels", [])))
        deep = " deep-supervision" if self.deep_supervision else ""
        return f"{self.kind} {enc['spatial_dims']}d {self.batch}x{size} ch{channels}{deep}"


@dataclass(frozen=True)
class Line:
    """One group of runs of the plan."""

    what: str
    runs: int
    steps: int  # optimiser steps per run
    val_batches: int  # validation forward passes per run
    step: Step


def _segmentation_line(what: str, runs: int, config: ExperimentConfig, architecture: dict[str, Any]) -> Line:
    """The line of ``runs`` segmentation runs of the grid's settings on ``architecture``'s network."""
    grid = config.segmentation
    hyper = {k: v for k, v in set_fields(grid).items() if k in SegmentSettings.model_fields}
    seg: TrainConfig = resolve_train_config(
        config.preset, PLAN_STORE, **hyper, **architecture, init="scratch"
    )
    val = math.ceil(seg.val_patches / seg.batch_size) if seg.validation == "patches" else 0
    encoder = json.dumps(seg.encoder_config())
    step = Step("segmentation", encoder, tuple(seg.patch_size), seg.batch_size, seg.deep_supervision)
    return Line(what, runs, seg.epochs * seg.steps_per_epoch, seg.epochs * val, step)


def _segmentation_lines(config: ExperimentConfig) -> list[Line]:
    grid = config.segmentation
    runs = len(grid.fractions) * len(grid.seeds)
    own = _segmentation_line("scratch", runs, config, config.architecture_fields())
    lines = []
    for mode in grid.inits:
        variants = [None] if mode == "scratch" else config.transfer_variants()
        lines += [dataclasses.replace(own, what=init_label(mode, v)) for v in variants]
    if config.reference is not None:
        lines.append(_segmentation_line(REFERENCE, runs, config, config.reference_fields()))
    return lines


def _pretrain_lines(config: ExperimentConfig) -> list[Line]:
    lines = []
    transfer = set(config.transfer_variants())
    grid = config.segmentation
    for v in config.pretrain:
        hyper = {k: val for k, val in set_fields(v).items() if k in PretrainSettings.model_fields}
        pre: PretrainConfig = resolve_config(
            config.preset, PLAN_STORE, **hyper, **config.architecture_fields()
        )
        matched = v.mask_cases == "matched" and pre.sections != "half" and v.name in transfer
        runs = (
            (sum(f < 1 for f in grid.fractions) * len(grid.seeds) + (1.0 in grid.fractions)) if matched else 1
        )
        steps = pre.epochs * math.ceil(pre.pairs_per_epoch / pre.batch_size)
        val = pre.epochs * math.ceil(pre.val_pairs / pre.batch_size)
        step = Step("pretrain", json.dumps(pre.encoder_config()), tuple(pre.section_size), pre.batch_size)
        lines.append(Line(f"pretrain {v.name}", max(runs, 1), steps, val, step))
    return lines


def plan_lines(config: ExperimentConfig) -> list[Line]:
    """Every group of runs the experiment makes, with its steps, pretraining first."""
    return _pretrain_lines(config) + _segmentation_lines(config)


def calibration_shape(
    samples: int, size: tuple[int, ...], multiple: list[int], limit: int | float = CALIBRATION_VOXELS
) -> tuple[int, tuple[int, ...]]:
    """The samples and patch a step is timed at: fewer samples, then a smaller patch, until within ``limit``.

    Args:
        samples: Inputs the step feeds the network at once.
        size: Its patch size.
        multiple: Each axis's size stays a multiple of this (the network's total stride).
        limit: The most voxels, samples times patch.

    Returns:
        The samples and patch size to time; the original ones when they are within ``limit``.
    """
    n, dims = samples, list(size)
    while n > 1 and n * math.prod(dims) > limit:
        n -= 1
    while n * math.prod(dims) > limit:
        axis = max(
            (a for a in range(len(dims)) if dims[a] > multiple[a]), key=lambda a: dims[a], default=None
        )
        if axis is None:
            break
        dims[axis] = max(multiple[axis], (dims[axis] - 1) // multiple[axis] * multiple[axis])
    return n, tuple(dims)


def time_step(
    step: Step, repeats: int = 4, warmup: int = 1, limit: int | float = CALIBRATION_VOXELS
) -> tuple[float, float]:
    """Seconds of one training step and of one validation forward pass of ``step`` on this CPU.

    A step of more than ``limit`` voxels is timed at :func:`calibration_shape` and scaled by its voxels (a
    convolutional network's work grows about linearly with them).
    """
    torch.manual_seed(0)
    encoder_config = json.loads(step.encoder)
    model = segmentation_network(encoder_config, N_CLASSES["kidney"], step.deep_supervision)
    if step.kind == "segmentation":
        loss_fn = segmentation_loss(deep_supervision=step.deep_supervision)
    else:
        model = model.encoder
    n, size = calibration_shape(step.samples, step.size, total_stride(encoder_config), limit)
    scale = step.samples * math.prod(step.size) / (n * math.prod(size))
    x = torch.randn(n, 1, *size)
    target = (torch.rand(n, 1, *size) > 0.9).long()
    optimizer = build_optimizer(model.parameters(), OptimiserSettings())

    def train_once() -> None:
        optimizer.zero_grad(set_to_none=True)
        out = model(x)
        # The siamese head is tiny beside the encoder: the encoder's output stands for the pair loss.
        loss = loss_fn(out, target) if step.kind == "segmentation" else _deepest(out).float().square().mean()
        loss.backward()
        optimizer.step()

    def forward_once() -> None:
        with torch.no_grad():
            model(x)

    times = []
    for fn in (train_once, forward_once):
        t0 = time.perf_counter()
        for _ in range(warmup):
            fn()
        first = (time.perf_counter() - t0) / warmup
        # A slow step (a 3D network on a CPU) is timed once more: a few seconds of it tell enough.
        reps = 1 if first > 5.0 else repeats
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        times.append((time.perf_counter() - t0) / reps * scale)
    return times[0], times[1]


def timed_as(step: Step) -> str | None:
    """The samples x patch ``step`` is timed at, where smaller than its own (None where it is its own)."""
    n, size = calibration_shape(step.samples, step.size, total_stride(json.loads(step.encoder)))
    if (n, size) == (step.samples, step.size):
        return None
    return "x".join(map(str, (n, *size)))


def _deepest(out: Any) -> torch.Tensor:
    """The last tensor of an encoder's output (sidepair's: skips and bottleneck; nnU-Net's: a list)."""
    while isinstance(out, list | tuple):
        out = out[-1]
    return out


def gpu_speeds() -> dict[str, Any]:
    """Recorded GPU step speeds: ``{"gpu": name, "steps": {step key: steps per second}, ...}``."""
    text = (resources.files("sidepair") / "resources" / "gpu_step_speeds.json").read_text(encoding="utf-8")
    return json.loads(text)


def recorded_speed(speeds: dict[str, float], key: str) -> float | None:
    """The recorded speed of ``key``, or of the same step on the smallest larger input (a lower bound)."""
    if key in speeds:
        return speeds[key]
    kind, dims, shape, channels = key.split(" ")
    batch, *size = (int(v) for v in shape.split("x"))
    larger = []
    for other, speed in speeds.items():
        k, d, s, c = other.split(" ")
        b, *o = (int(v) for v in s.split("x"))
        if (
            (k, d, c, b) == (kind, dims, channels, batch)
            and len(o) == len(size)
            and all(a >= x for a, x in zip(o, size, strict=True))
        ):
            larger.append((math.prod(o), speed))
    return min(larger)[1] if larger else None


def estimate(config: ExperimentConfig, jobs: int | None = None) -> dict[str, Any]:
    """The plan of ``config`` with times: per line, on this CPU and on the recorded GPU."""
    lines = plan_lines(config)
    timed: dict[Step, tuple[float, float]] = {}
    for line in lines:
        if line.step not in timed:
            timed[line.step] = time_step(line.step)
    recorded = gpu_speeds()
    rows, stages = [], {}
    for line in lines:
        train_s, val_s = timed[line.step]
        cpu = line.runs * (line.steps * train_s + line.val_batches * val_s)
        speed = recorded_speed(recorded["steps"], line.step.key)
        # A validation forward pass is taken as a third of a training step (no backward, no optimiser).
        gpu = line.runs * (line.steps + line.val_batches / 3) / speed if speed else None
        if gpu is not None:
            stages.setdefault(line.step.kind, []).extend([gpu / line.runs] * line.runs)
        rows.append(
            {
                "what": line.what,
                "runs": line.runs,
                "steps_per_run": line.steps,
                "step": line.step.key,
                "cpu_step_s": train_s,
                "cpu_timed_at": timed_as(line.step),
                "cpu_hours": cpu / 3600,
                "gpu_hours": None if gpu is None else gpu / 3600,
            }
        )
    jobs = jobs or config.jobs
    cpu_total = sum(r["cpu_hours"] for r in rows)
    gpu_known = all(r["gpu_hours"] is not None for r in rows)
    return {
        "name": config.name,
        "rows": rows,
        # With stop_on_plateau a segmentation run stops at its first plateau: its steps are a cap.
        "steps_are_caps": bool(config.segmentation.stop_on_plateau),
        "segmentation_runs": sum(line.runs for line in lines if line.step.kind == "segmentation"),
        "pretraining_runs": sum(line.runs for line in lines if line.step.kind == "pretrain"),
        "optimiser_steps": sum(line.runs * line.steps for line in lines),
        "cpu_hours": cpu_total,
        "cpu_threads": torch.get_num_threads(),
        # Runs in parallel share the cores: measured 1.4x the throughput of one run with 2 jobs on 2 cores.
        "gpu": recorded["gpu"],
        "gpu_hours": sum(r["gpu_hours"] for r in rows) if gpu_known else None,
        "devices": len(config.devices) if config.devices else 1,
        "gpu_wall_hours": (
            sum(makespan(runs, len(config.devices or [0])) for runs in stages.values()) / 3600
            if gpu_known
            else None
        ),
        "gpu_note": recorded.get("note", ""),
    }


def makespan(durations: list[float], devices: int) -> float:
    """The wall time of independent runs on ``devices`` devices, the longest run placed first each time."""
    loads = [0.0] * max(1, devices)
    for duration in sorted(durations, reverse=True):
        loads[loads.index(min(loads))] += duration
    return max(loads)


def format_plan(plan: dict[str, Any]) -> str:
    """The plan as the lines ``--plan`` prints."""

    def hours(h: float | None) -> str:
        return "not recorded" if h is None else f"{h:.2f} h"

    out = [
        f"plan of experiment {plan['name']}: {plan['pretraining_runs']} pretrainings, "
        f"{plan['segmentation_runs']} segmentation runs, {plan['optimiser_steps']} optimiser steps",
        f"{'runs':>5}  {'what':<28} {'steps/run':>9}  {'s/step here':>11}  {'CPU':>10}  {'GPU':>12}  step",
    ]
    for r in plan["rows"]:
        out.append(
            f"{r['runs']:>5}  {r['what']:<28} {r['steps_per_run']:>9}  {r['cpu_step_s']:>11.3f}  "
            f"{hours(r['cpu_hours']):>10}  {hours(r['gpu_hours']):>12}  {r['step']}"
        )
    if plan.get("steps_are_caps"):
        out.append(
            "segmentation runs stop at the plateau of their validation Dice (stop_on_plateau): their steps "
            "and times are caps"
        )
    scaled = sorted({f"{r['step']} at {r['cpu_timed_at']}" for r in plan["rows"] if r.get("cpu_timed_at")})
    if scaled:
        out.append(
            "timed on fewer samples or a smaller patch, scaled by voxels (too large to time here): "
            + "; ".join(scaled)
        )
    out.append(
        f"estimated wall time on this machine ({plan['cpu_threads']} threads, one run at a time): "
        f"{hours(plan['cpu_hours'])}"
    )
    out.append(f"estimated on one {plan['gpu']}: {hours(plan['gpu_hours'])}, from recorded step speeds")
    if plan["devices"] > 1:
        out.append(
            f"estimated wall time on {plan['devices']} of them (--devices; pretrainings, then fine-tunes, "
            f"each run on one device): {hours(plan['gpu_wall_hours'])}"
        )
    out.append(
        "not included: whole-volume scoring (the chosen checkpoint's validation volumes, the test cases), "
        "which grows with the data; nothing was trained or written"
    )
    return "\n".join(out)
