"""The same seed gives the same split, pairs and metrics on CPU, bitwise; another seed changes them."""

import json

import pytest
import torch

from sidepair.config import PreprocessSettings
from sidepair.data.formats import open_dataset
from sidepair.data.pairs import sample_pairs
from sidepair.data.prepare import prepare
from sidepair.data.sections import SectionSampler
from sidepair.data.store import Store
from sidepair.training.pretrain import run_pretrain
from sidepair.training.segment import run_train
from tests.conftest import tiny_pretrain_config, tiny_train_config


def test_split_depends_only_on_its_seed(small_phantom, tmp_path):
    settings = PreprocessSettings(spacing_zyx=(6.0, 6.0, 6.0))
    splits = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 5)):
        store = prepare(open_dataset(small_phantom), tmp_path / name, settings, split_seed=seed)
        splits[name] = json.loads((store / "splits.json").read_text(encoding="utf-8"))
    parts = ("train", "val", "test")
    assert splits["a"] == splits["b"]
    assert [splits["a"][p] for p in parts] != [splits["c"][p] for p in parts]
    cases = {
        name: sorted(c for part in ("train", "val", "test") for c in splits[name][part]) for name in "ac"
    }
    assert cases["a"] == cases["c"]  # the same cases, dealt differently


def test_pairs_depend_only_on_seed_and_epoch(small_store):
    store = Store(small_store)
    sampler = SectionSampler(store, store.split("train"), "masked", 2, (24, 24))

    def key(pairs):
        return [(p.a, p.b, p.same) for p in pairs]  # frozen dataclasses: case, side, crop origin and size

    a, b = key(sample_pairs(sampler, 64, 7, 2)), key(sample_pairs(sampler, 64, 7, 2))
    assert a == b
    assert a != key(sample_pairs(sampler, 64, 8, 2))
    assert a != key(sample_pairs(sampler, 64, 7, 3))


def _weights(run):
    return torch.load(run / "checkpoint_last.pt", weights_only=True)["network_weights"]


@pytest.mark.parametrize("kind", ["pretrain", "train"])
def test_same_seed_same_metrics_and_weights_bitwise(small_store, tmp_path, kind):
    def go(seed, name):
        if kind == "pretrain":
            config = tiny_pretrain_config(small_store, epochs=2, pairs_per_epoch=32, val_pairs=16, seed=seed)
            return run_pretrain(config, tmp_path / name, progress=False)
        config = tiny_train_config(small_store, seed=seed)
        return run_train(config, tmp_path / name, progress=False)

    first, second, other = go(1, "a"), go(1, "b"), go(2, "c")
    strip = [{k: v for k, v in row.items() if k != "time_s"} for row in first]
    assert strip == [
        {k: v for k, v in row.items() if k != "time_s"} for row in second
    ]  # bitwise equal floats
    wa, wb, wc = _weights(tmp_path / "a"), _weights(tmp_path / "b"), _weights(tmp_path / "c")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert strip != [{k: v for k, v in row.items() if k != "time_s"} for row in other]
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)
