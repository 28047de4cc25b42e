"""The absolute side head: trained beside the pairs, scored plain and mirrored; it picks the checkpoint."""

import json

import pytest
import torch

from sidepair.config import PretrainSettings
from sidepair.errors import ConfigError, StoreError
from sidepair.models.checkpoint import BEST, read_checkpoint
from sidepair.training.pretrain import run_pretrain
from tests.conftest import tiny_pretrain_config


def test_side_head_run_logs_side_accuracy_and_keeps_the_head(small_store, tmp_path):
    config = tiny_pretrain_config(
        small_store, sections="half", section_size=(32, 32), mirror=True, side_head=True, loss="bce", epochs=2
    )
    run_pretrain(config, tmp_path / "run", progress=False)
    rows = [
        json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert len(rows) == 2
    for row in rows:
        for key in ("val_side_acc", "val_side_mirror_acc"):
            assert 0.0 <= row[key] <= 1.0
        assert row["val_side_score"] == pytest.approx((row["val_side_acc"] + row["val_side_mirror_acc"]) / 2)
    ckpt = read_checkpoint(tmp_path / "run" / BEST)
    assert ckpt.monitor == "val_side_score"
    assert ckpt.network_weights["side_classifier.weight"].shape == torch.Size([1, config.embedding_dim])
    assert ckpt.labels_read == {"train": [], "selection": []}


@pytest.mark.parametrize(
    "settings",
    [{"side_labels": "random"}, {"task": "restoration", "sections": "half"}],
    ids=["random", "task"],
)
def test_a_side_head_needs_true_sides_of_side_pairs(settings):
    with pytest.raises(ValueError, match="side_head"):
        PretrainSettings(side_head=True, **settings)


def test_without_a_side_head_nothing_changes(small_store, tmp_path):
    config = tiny_pretrain_config(small_store, sections="half", section_size=(32, 32))
    run_pretrain(config, tmp_path / "run", progress=False)
    ckpt = read_checkpoint(tmp_path / "run" / BEST)
    assert ckpt.monitor == "val_acc" and not any(k.startswith("side_") for k in ckpt.network_weights)
    assert "val_side_acc" not in ckpt.history[0]


def test_config_error_is_one_line(small_store):
    with pytest.raises(ConfigError):
        tiny_pretrain_config(small_store, side_labels="random", side_head=True)


def test_export_clip_refuses_a_z_scored_store(small_store, tmp_path):
    """Clipping HU means something only where the store holds a fixed window of them."""
    config = tiny_pretrain_config(
        small_store, sections="half", section_size=(32, 32), mirror=True, side_head=True, export_clip=0.3
    )
    with pytest.raises(StoreError, match=r"export_clip clips HU, and this store is z-scored"):
        run_pretrain(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / BEST).exists()
