"""`sidepair experiment CONFIG --plan`: the grid, its steps and times, and nothing trained or written."""

import dataclasses
import math
import re

import pytest
import yaml

from sidepair.experiment.config import load_experiment_config
from sidepair.experiment.estimate import (
    calibration_shape,
    format_plan,
    makespan,
    plan_lines,
    recorded_speed,
    time_step,
    timed_as,
)
from tests.conftest import run_cli

SMALL = {
    "name": "small-plan",
    "preset": "demo",
    "data": {"phantom": {"cases": 10, "seed": 3, "shape": [96, 96, 32]}},
    "pretrain": [
        {"name": "masked", "sections": "masked", "epochs": 2, "pairs_per_epoch": 64, "mask_cases": "matched"},
        {"name": "half", "sections": "half", "epochs": 3, "pairs_per_epoch": 64},
    ],
    "segmentation": {
        "inits": ["scratch", "finetune"],
        "fractions": [0.5, 1.0],
        "seeds": [0, 1],
        "steps": 40,
        "samples_per_epoch": 64,
    },
}


def test_plan_counts_the_grid_and_its_steps(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(SMALL), encoding="utf-8")
    lines = {line.what: line for line in plan_lines(load_experiment_config(path))}
    # masked is label-matched: one pretraining per seed at fraction 0.5, one shared at fraction 1.
    assert lines["pretrain masked"].runs == 3 and lines["pretrain half"].runs == 1
    assert lines["pretrain masked"].steps == 2 * 2  # 2 epochs of 64 pairs in batches of 32
    assert lines["pretrain half"].steps == 3 * 2
    # 40 steps of batch 16 from 64 patches an epoch: 4 steps an epoch, 10 epochs.
    for init in ("scratch", "ssl-masked", "ssl-half"):
        assert lines[init].runs == 4 and lines[init].steps == 40
        assert lines[init].val_batches == 10 * 4  # demo's 64 fixed validation patches in batches of 16


@pytest.mark.integration
def test_plan_prints_the_estimate_and_writes_nothing(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(SMALL), encoding="utf-8")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_cli("experiment", path, "--plan", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # 3 x 4 + 1 x 6 pretraining steps, 12 x 40 segmentation steps
    assert "plan of experiment small-plan: 4 pretrainings, 12 segmentation runs, 498 optimiser steps" in out
    assert re.search(r"^\s+4\s+scratch\s+40\s+\d+\.\d{3}\s+\d+\.\d\d h\s+not recorded", out, re.M), out
    assert re.search(
        r"estimated wall time on this machine \(\d+ threads, one run at a time\): \d+\.\d\d h", out
    )
    assert "estimated on one NVIDIA H100 80GB HBM3: not recorded" in out  # no GPU speed for demo's network
    assert "nothing was trained or written" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_the_bundled_paper_grid_has_a_gpu_estimate():
    lines = plan_lines(load_experiment_config("kits19-paper-3d"))
    keys = {line.step.key for line in lines}
    assert "segmentation 3d 2x160x224x160 ch32-64-128-256-320" in keys
    speeds = {"segmentation 2d 16x96x96 ch8-16": 10.0, "segmentation 2d 16x128x128 ch8-16": 5.0}
    assert recorded_speed(speeds, "segmentation 2d 16x96x96 ch8-16") == 10.0
    assert recorded_speed(speeds, "segmentation 2d 16x64x64 ch8-16") == 10.0  # the smallest larger input
    assert recorded_speed(speeds, "segmentation 2d 16x160x160 ch8-16") is None
    assert recorded_speed(speeds, "segmentation 2d 8x64x64 ch8-16") is None  # another batch


def test_plan_needs_no_out_but_a_run_does(tmp_path):
    result = run_cli("experiment", "demo")
    assert (
        result.returncode == 2
        and "experiment needs --out (the experiment folder), or --plan" in result.stderr
    )


def test_wall_time_on_several_devices_keeps_the_stages_in_order():
    # Longest first, each to the least loaded device (3+2+2 | 3+2): within 4/3 of the best (3+3 | 2+2+2).
    assert makespan([3.0, 3.0, 2.0, 2.0, 2.0], 2) == 7.0
    assert makespan([5.0], 4) == 5.0 and makespan([], 2) == 0.0
    plan = {
        "name": "x",
        "pretraining_runs": 1,
        "segmentation_runs": 4,
        "optimiser_steps": 10,
        "rows": [],
        "cpu_threads": 2,
        "cpu_hours": 1.0,
        "gpu": "NVIDIA H100 80GB HBM3",
        "gpu_hours": 4.0,
        "devices": 4,
        "gpu_wall_hours": 1.25,
    }
    text = format_plan(plan)
    assert "their steps and times are caps" not in text
    assert "their steps and times are caps" in format_plan({**plan, "steps_are_caps": True})
    assert "estimated on one NVIDIA H100 80GB HBM3: 4.00 h, from recorded step speeds" in text
    assert (
        "estimated wall time on 4 of them (--devices; pretrainings, then fine-tunes, each run on one " in text
    )
    assert text.endswith("nothing was trained or written") and "1.25 h" in text
    assert "of them" not in format_plan({**plan, "devices": 1})


def test_a_step_too_large_to_time_here_is_timed_smaller_keeping_the_network_strides():
    # The paper's 3D segmentation step (2 x 160 x 224 x 160, 31 GB on a CPU) is timed at one sample of a
    # smaller patch whose sides stay multiples of the network's total stride.
    n, size = calibration_shape(2, (160, 224, 160), [16, 16, 16], limit=3 * 2**19)
    assert n == 1 and all(s % 16 == 0 for s in size) and size <= (160, 224, 160)
    assert math.prod(size) <= 3 * 2**19 < math.prod((size[0] + 16, size[1] + 16, size[2] + 16))
    # Fewer samples come first: an input that fits as one sample keeps its patch.
    assert calibration_shape(8, (64, 112, 112), [16, 16, 16], limit=3 * 2**19) == (1, (64, 112, 112))
    # Every 2D preset's step is timed as it is.
    assert calibration_shape(64, (128, 128), [16, 16], limit=3 * 2**19) == (64, (128, 128))
    # A patch cannot shrink below one stride: the loop ends there.
    assert calibration_shape(4, (16, 16, 16), [16, 16, 16], limit=10) == (1, (16, 16, 16))


def test_the_paper_grid_times_its_3d_steps_at_a_smaller_shape_and_scales_by_voxels(monkeypatch):
    steps = {line.step for line in plan_lines(load_experiment_config("kits19-paper-3d"))}
    seg = next(s for s in steps if s.kind == "segmentation")
    assert timed_as(seg) is not None and timed_as(seg).startswith("1x")
    demo = {line.step for line in plan_lines(load_experiment_config("demo"))}
    assert all(timed_as(s) is None for s in demo)
    # The scale is the voxels left out: a tiny 3D step timed whole and as a quarter of itself.
    small = next(s for s in steps if s.kind == "pretrain")
    small = type(small)(
        small.kind, small.encoder.replace("32, 64, 128, 256, 320", "4, 4, 4, 4, 4"), (32, 32, 32), 2
    )
    clock = iter(range(1000))
    monkeypatch.setattr("sidepair.experiment.estimate.time.perf_counter", lambda: float(next(clock)))
    # With a clock that ticks once per call, every timed step reads 1 s; the scaled one reads 4 / 1.
    whole = time_step(small, repeats=1, limit=math.inf)
    quarter = time_step(small, repeats=1, limit=32 * 32 * 32)
    assert whole == (1.0, 1.0) and quarter == (4.0, 4.0)


def test_a_grid_with_deep_supervision_times_its_heads_and_losses():
    config = load_experiment_config("demo")
    grid = config.segmentation.model_copy(update={"deep_supervision": True})
    deep = config.model_copy(update={"segmentation": grid})
    plain_step = next(line.step for line in plan_lines(config) if line.step.kind == "segmentation")
    step = next(line.step for line in plan_lines(deep) if line.step.kind == "segmentation")
    assert step.deep_supervision and not plain_step.deep_supervision
    assert step.key == plain_step.key + " deep-supervision"  # a GPU speed is not borrowed from the other
    small = dataclasses.replace(step, batch=2)
    train_s, forward_s = time_step(small, repeats=1, warmup=1)
    assert train_s > 0 and forward_s > 0
