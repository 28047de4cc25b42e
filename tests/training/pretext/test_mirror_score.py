"""The mirror score tells a model that reads organs from one that reads handedness."""

import numpy as np
import pytest
import torch
from torch import nn

from sidepair.data.store import Store
from sidepair.training.pretext import SidePairTask
from tests.conftest import tiny_pretrain_config


class Feature(nn.Module):
    """A stand-in siamese network whose one-number embedding is a fixed function of the section."""

    def __init__(self, handedness: bool) -> None:
        super().__init__()
        self.handedness = handedness

    def forward(self, x1, x2):
        return self.embed(x1), self.embed(x2)

    def embed(self, x):
        width = x.shape[-1] // 4
        if self.handedness:  # which edge is brighter: reversed by a mirror (the spine's edge of a half)
            edge = x[..., :width].mean(dim=(1, 2, 3)) - x[..., -width:].mean(dim=(1, 2, 3))
            return torch.sign(edge)[:, None]
        return torch.sign(x.mean(dim=(1, 2, 3)) - 0.25)[:, None]  # what it holds: unchanged by a mirror


def drawn(section):
    """A section with both cues: a bright edge on its own side's edge, and its side's organ brightness."""
    crop = np.full((1, 32, 32), 0.5 if section.side == "right" else -0.5, dtype=np.float32)
    edge = slice(0, 4) if section.side == "right" else slice(28, 32)
    crop[..., edge] += 2.0
    return crop


@pytest.mark.parametrize("handedness", [True, False])
def test_the_mirror_score_separates_handedness_from_content(small_store, monkeypatch, handedness):
    config = tiny_pretrain_config(small_store, sections="half", section_size=(32, 32), val_pairs=64)
    task = SidePairTask(config, Store(small_store))
    monkeypatch.setattr(task.val_sampler, "read", drawn)
    task.model = Feature(handedness)
    metrics = task.validate(torch.device("cpu"))
    if handedness:
        # Sides told apart by handedness alone: right on plain pairs, wrong on mirrored ones.
        assert metrics["acc"] == 1.0 and metrics["mirror_acc"] == 0.0, metrics
    else:
        # By content: a mirror changes nothing.
        assert metrics["acc"] == metrics["mirror_acc"] == 1.0, metrics
