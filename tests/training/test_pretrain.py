"""Pretraining end to end on a small phantom store: checkpoints, labels never read in half mode, resume."""

import json
import shutil

import numpy as np
import pytest
import torch

from sidepair.data.store import Store
from sidepair.errors import ConfigError, SidepairError, StoreError
from sidepair.models import Encoder
from sidepair.models.checkpoint import checkpoint_from
from sidepair.training.pretrain import SidePairTask, resolve_config, run_pretrain

TINY = {
    "section_size": (24, 24),
    "channels": (4, 8, 16),
    "strides": (1, 2, 2),
    "pairs_per_epoch": 32,
    "batch_size": 8,
    "val_pairs": 16,
    "epochs": 2,
    "device": "cpu",
}


def test_run_writes_checkpoints_loadable_weights_only(small_store, tmp_path):
    config = resolve_config("fast-2d", small_store, sections="masked", **TINY)
    history = run_pretrain(config, tmp_path / "run", progress=False)
    assert [row["epoch"] for row in history] == [1, 2]
    for name in ("checkpoint_last.pt", "checkpoint_best.pt"):
        ckpt = torch.load(tmp_path / "run" / name, weights_only=True)
        assert ckpt["kind"] == "pretrain"
        weights = checkpoint_from(ckpt, name).encoder_weights()
        encoder = Encoder(**ckpt["encoder_config"])
        encoder.load_state_dict(weights, strict=True)
        assert len(weights) == len(encoder.state_dict())
    rows = [
        json.loads(line)
        for line in (tmp_path / "run" / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert {"train_loss", "val_acc", "val_auc", "val_acc_best", "lr"} <= set(rows[0])
    assert (tmp_path / "run" / "learning_curves.png").stat().st_size > 10_000
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    run = json.loads((tmp_path / "run" / "run.json").read_text(encoding="utf-8"))
    assert run["data"].startswith("phantom ") and run["seed"] == 0
    with pytest.raises(SidepairError, match="already holds a run; pass --resume"):
        run_pretrain(config, tmp_path / "run", progress=False)


def test_half_mode_never_opens_a_label(small_store, tmp_path, monkeypatch):
    copy = tmp_path / "store"
    shutil.copytree(small_store, copy)
    for path in list(copy.glob("cases/*/label.npy")) + list(copy.glob("cases/*/side.npy")):
        path.unlink()
    opened = []
    original = Store.array

    def spy(self, case_id, name="image", mmap=True):
        opened.append(name)
        return original(self, case_id, name, mmap)

    monkeypatch.setattr(Store, "array", spy)
    config = resolve_config("fast-2d", copy, sections="half", **{**TINY, "epochs": 1})
    history = run_pretrain(config, tmp_path / "run", progress=False)
    assert history[0]["epoch"] == 1
    assert set(opened) == {"image"}
    # The masked mode, by contrast, needs the labels that are gone.
    with pytest.raises(StoreError, match="label.npy: missing"):
        task = SidePairTask(resolve_config("fast-2d", copy, sections="masked", **TINY), Store(copy))
        next(iter(task.train_batches(0)))


def test_3d_paper_preset_runs(small_store, tmp_path):
    config = resolve_config(
        "kits19-paper",
        small_store,
        section_size=(16, 32, 32),
        channels=(4, 8, 16),
        strides=(1, (1, 2, 2), 2),
        pairs_per_epoch=8,
        batch_size=2,
        val_pairs=8,
        epochs=1,
        device="cpu",
    )
    assert (config.sections, config.loss, config.dims) == ("masked", "contrastive", 3)
    history = run_pretrain(config, tmp_path / "run3d", progress=False)
    assert np.isfinite(history[0]["train_loss"])


def test_bce_head(small_store, tmp_path):
    config = resolve_config("fast-2d", small_store, sections="bbox", loss="bce", **{**TINY, "epochs": 1})
    history = run_pretrain(config, tmp_path / "bce", progress=False)
    assert 0 <= history[0]["val_acc"] <= 1 and "val_acc_best" not in history[0]


def test_config_errors_name_the_field(small_store):
    with pytest.raises(ConfigError, match="pretrain.sections: Input should be 'masked', 'bbox' or 'half'"):
        resolve_config("fast-2d", small_store, sections="mirrored")
    with pytest.raises(ConfigError, match="section_size \\(24, 24, 24\\) must have 2 sizes"):
        resolve_config("fast-2d", small_store, section_size=(24, 24, 24))
    with pytest.raises(ConfigError, match="--dims 3 differs from preset fast-2d"):
        resolve_config("fast-2d", small_store, dims=3)
