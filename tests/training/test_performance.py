"""Speed options: each one safe on CPU, none of them changing what a run computes beyond rounding."""

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from sidepair.config import Performance
from sidepair.models import Encoder, Siamese
from sidepair.models.checkpoint import load_checkpoint
from sidepair.training.performance import InputLayout, StepModule, autocast, autocast_dtype, memory_format
from sidepair.training.pretrain import run_pretrain
from sidepair.training.segment import run_train
from tests.conftest import tiny_pretrain_config, tiny_train_config


def test_autocast_dtype_follows_precision_and_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert autocast_dtype(Performance(), cpu) is None
    assert autocast_dtype(Performance(), cuda) is torch.bfloat16
    assert autocast_dtype(Performance(precision="bf16"), cpu) is torch.bfloat16
    assert autocast_dtype(Performance(precision="fp32"), cuda) is None
    with autocast(Performance(precision="bf16"), cpu):
        assert (torch.ones(2, 3) @ torch.ones(3, 2)).dtype is torch.bfloat16


def test_memory_format_of_2d_and_3d_networks():
    assert memory_format(nn.Conv2d(1, 2, 3)) == torch.channels_last
    assert memory_format(nn.Sequential(nn.Conv3d(1, 2, 3))) == torch.channels_last_3d
    assert memory_format(nn.Linear(2, 2)) == torch.contiguous_format


def test_channels_last_step_module_keeps_outputs_and_methods():
    torch.manual_seed(0)
    enc = Encoder(spatial_dims=2, in_channels=1, channels=[4, 8], strides=[1, 2])
    siamese = Siamese(enc, 8, head="bce")
    x1, x2 = torch.randn(2, 1, 16, 16), torch.randn(2, 1, 16, 16)
    e1, e2 = siamese(x1, x2)
    step = StepModule(siamese, Performance(channels_last=True), torch.device("cpu"), distributed=False).get()
    assert isinstance(step, InputLayout)
    assert siamese.encoder.stages[0].conv1.conv.weight.is_contiguous(memory_format=torch.channels_last)
    f1, f2 = step(x1, x2)
    torch.testing.assert_close(f1, e1, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(step.same_logit(f1, f2), siamese.same_logit(e1, e2), rtol=1e-5, atol=1e-5)


def test_step_module_is_rebuilt_only_when_trainable_parameters_change():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 3))
    steps = StepModule(model, Performance(), torch.device("cpu"), distributed=False)
    first = steps.get()
    assert steps.get() is first
    model[0].weight.requires_grad_(False)
    steps.get()
    assert steps._key == (False, True, True, True)


def first_loss(history):
    return history[0]["train_loss"]


@pytest.mark.integration
def test_channels_last_and_bf16_train_on_cpu_like_fp32(small_store, tmp_path):
    config = tiny_train_config(small_store, epochs=1)
    plain = run_train(config, tmp_path / "plain", progress=False)
    layout = run_train(config, tmp_path / "cl", progress=False, performance=Performance(channels_last=True))
    bf16 = run_train(config, tmp_path / "bf16", progress=False, performance=Performance(precision="bf16"))
    assert first_loss(layout) == pytest.approx(first_loss(plain), rel=1e-4)
    assert first_loss(bf16) == pytest.approx(first_loss(plain), rel=5e-2)
    assert first_loss(bf16) != first_loss(plain)  # bf16 really ran
    recorded = json.loads((tmp_path / "cl" / "run.json").read_text(encoding="utf-8"))["performance"]
    assert recorded == {"precision": "auto", "channels_last": True, "compile": False, "cudnn_benchmark": True}
    # Speed options are no part of the run's config: resuming with others is not refused.
    resumed = run_train(config, tmp_path / "cl", resume=True, progress=False)
    assert [r["epoch"] for r in resumed] == [1]
    weights = load_checkpoint(tmp_path / "cl" / "checkpoint_last.pt")["network_weights"]
    assert all(torch.isfinite(w.float()).all() for w in weights.values())


@pytest.mark.integration
def test_compiled_pretraining_on_cpu_matches_eager(small_store, tmp_path):
    config = tiny_pretrain_config(small_store)
    eager = run_pretrain(config, tmp_path / "eager", progress=False)
    # In a child process: the compiler's caches and threads stay out of the test process.
    code = (
        "import sys, json; from pathlib import Path;"
        "from sidepair.training.pretrain import PretrainConfig, run_pretrain;"
        "from sidepair.config import Performance;"
        "c = PretrainConfig.model_validate(json.loads(sys.argv[1]));"
        "h = run_pretrain(c, Path(sys.argv[2]), progress=False, performance=Performance(compile=True));"
        "print(json.dumps(h))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, config.model_dump_json(), str(tmp_path / "compiled")],
        capture_output=True,
        encoding="utf-8",
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    compiled = json.loads(proc.stdout.strip().splitlines()[-1])
    assert first_loss(compiled) == pytest.approx(first_loss(eager), rel=1e-4)
    assert compiled[0]["val_acc"] == pytest.approx(eager[0]["val_acc"], abs=1e-6)
