import numpy as np
import pytest

from sidepair.data.labels import SIDE_CODES
from sidepair.data.pairs import sample_pairs
from sidepair.data.sections import SectionSampler, read_crop
from sidepair.data.store import Store
from sidepair.errors import StoreError


@pytest.fixture(scope="module")
def store(small_store):
    return Store(small_store)


def test_read_crop_pads_outside():
    a = np.arange(27, dtype=np.float32).reshape(3, 3, 3)
    out = read_crop(a, (-1, 1, 2), (2, 2, 2), pad=-5.0)
    assert out.shape == (2, 2, 2)
    assert np.all(out[0] == -5.0)
    np.testing.assert_array_equal(out[1, :, 0], a[0, 1:3, 2])
    assert np.all(out[1, :, 1] == -5.0)


@pytest.mark.parametrize("dims,size", [(2, (24, 24)), (3, (16, 24, 24))])
def test_masked_sections_are_zero_outside_their_kidney(store, dims, size):
    sampler = SectionSampler(store, store.split("train"), "masked", dims, size)
    rng = np.random.default_rng(0)
    for unit in range(len(sampler.units)):
        section = sampler.draw(unit, rng)
        data = sampler.read(section)[0]
        label = read_crop(store.array(section.case_id, "label"), section.start, section.size, 0)
        side = read_crop(store.array(section.case_id, "side"), section.start, section.size, 0)
        image = read_crop(store.array(section.case_id), section.start, section.size, 0)
        mask = ((label > 0) & (side == SIDE_CODES[section.side])).reshape(data.shape)
        assert mask.any()
        assert np.all(data[~mask] == 0)
        np.testing.assert_array_equal(data[mask], image.reshape(data.shape)[mask])  # never mirrored


def test_bbox_section_is_centred_on_the_kidney(store):
    sampler = SectionSampler(store, store.split("train"), "bbox", 3, (16, 24, 24))
    for unit, (case_id, side) in enumerate(sampler.units):
        section = sampler.draw(unit)
        box = store.cases[case_id].side_box(side)
        for (lo, hi), start, size in zip(box, section.start, section.size, strict=True):
            assert abs((start + size / 2) - (lo + hi) / 2) <= 1


def test_half_sections_lie_on_their_side_of_the_midline(store):
    sampler = SectionSampler(store, store.split("train"), "half", 2, (24, 24))
    for unit, (case_id, side) in enumerate(sampler.units):
        section = sampler.draw(unit)
        mid = store.cases[case_id].midline.x_index
        x0, x1 = section.start[2], section.start[2] + section.size[2]
        if side == "right":  # RAS: the patient's right is toward higher x
            assert abs(x0 - mid) <= 1 and x1 > mid
        else:
            assert abs(x1 - mid) <= 1 and x0 < mid
    assert len(sampler.units) == 2 * len(store.split("train"))


def test_pairs_balanced_deterministic_never_self(store):
    sampler = SectionSampler(store, store.split("train"), "masked", 2, (24, 24), jitter=0.1)
    a = sample_pairs(sampler, 101, seed=3, epoch=2)
    b = sample_pairs(sampler, 101, seed=3, epoch=2)
    c = sample_pairs(sampler, 101, seed=3, epoch=3)
    assert a == b and a != c
    assert sum(p.same for p in a) == 50
    for p in a:
        assert p.a != p.b
        assert (p.a.side == p.b.side) == bool(p.same)
        if p.same:
            assert p.a.case_id != p.b.case_id  # several cases per side: the partner is another patient
    firsts = [p.a.side for p in a]
    assert abs(firsts.count("right") - firsts.count("left")) <= 1


def test_unknown_mode_and_no_sections(store):
    with pytest.raises(StoreError, match="unknown section mode"):
        SectionSampler(store, store.split("train"), "mirror", 2, (8, 8))
    with pytest.raises(StoreError, match="no masked sections in 0 cases"):
        SectionSampler(store, [], "masked", 2, (8, 8))
