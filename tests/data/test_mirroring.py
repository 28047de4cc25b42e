"""Mirroring is a variable of its own: off, no task's section is ever flipped on the lateral axis."""

import numpy as np
import pytest

from sidepair.data.augment import Augmenter
from sidepair.data.corruptions import Corruptor, RestorationDataset
from sidepair.data.pairs import Pair, PairDataset
from sidepair.data.sections import Section
from sidepair.data.views import ViewDataset, ViewMaker

DRAWS = 64


class Marked:
    """A sampler stand-in whose every section holds a bright block right of the midline (high x)."""

    lateral_dim = -1  # the last axis runs left-right, as in sidepair's RAS stores

    def __init__(self, size):
        self.dims = len(size)
        self.image = np.zeros((1, *size), dtype=np.float32)
        x = size[-1]
        self.image[..., int(0.65 * x) : int(0.9 * x)] = 100.0

    def read(self, section):
        return self.image.copy()


def right_of_midline(crop: np.ndarray) -> bool:
    """Whether the block is still right of the midline: the outer third on its side is brighter."""
    x = crop.shape[-1]
    return float(crop[..., 2 * x // 3 :].mean()) > float(crop[..., : x // 3].mean())


def crops(size, task: str, mirror: bool) -> list[np.ndarray]:
    """The sections a task feeds its network over many seeded draws."""
    sampler = Marked(size)
    sections = [Section("c", "right", (0, 0, 0), (1, *size))] * DRAWS
    if task == "side-pair":
        pairs = [Pair(s, s, 1) for s in sections]
        data = PairDataset(sampler, pairs, Augmenter(len(size), with_label=False), (3, 1), mirror=mirror)
        return [t.numpy() for item in data for t in item[:2]]
    if task == "restoration":
        data = RestorationDataset(
            sampler,
            sections,
            Corruptor(size, ("shuffle", "intensity", "inpaint", "outpaint"), mirror),
            (3, 1),
        )
        return [item[1].numpy() for item in data]  # the target, which the input's corruption keeps
    data = ViewDataset(sampler, sections, ViewMaker(size, mirror), (3, 1))
    return [t.numpy() for item in data for t in item]


@pytest.mark.parametrize("size", [(48, 48), (8, 32, 32)], ids=["2d", "3d"])
@pytest.mark.parametrize("task", ["side-pair", "restoration", "contrastive-views"])
def test_without_mirroring_the_marker_stays_right(task, size):
    assert all(right_of_midline(c) for c in crops(size, task, mirror=False))


@pytest.mark.parametrize("task", ["side-pair", "restoration", "contrastive-views"])
def test_with_mirroring_about_half_are_flipped(task):
    flipped = [not right_of_midline(c) for c in crops((48, 48), task, mirror=True)]
    assert 0.3 < np.mean(flipped) < 0.7
