"""Every label a run reads is counted; a test label is never read; the random-target control."""

import json

import numpy as np
import pytest

from sidepair.data.splits import select_fraction
from sidepair.data.store import Store
from sidepair.errors import ConfigError, StoreError
from sidepair.training.pretrain import SidePairTask, run_pretrain
from tests.conftest import tiny_pretrain_config


def test_matched_pretraining_reads_only_its_subsets_masks(small_store, tmp_path, monkeypatch):
    store = Store(small_store)
    subset = tuple(select_fraction(store.labelled("train"), 0.4, seed=1))
    assert 0 < len(subset) < len(store.labelled("train"))
    read: list[tuple[str, str]] = []
    original = Store.array

    def spy(self, case_id, name="image", mmap=True):
        read.append((case_id, name))
        return original(self, case_id, name, mmap)

    monkeypatch.setattr(Store, "array", spy)
    config = tiny_pretrain_config(small_store, label_cases=subset, epochs=2, pairs_per_epoch=32)
    run_pretrain(config, tmp_path / "run", progress=False)
    masks = {case for case, name in read if name in ("label", "side")}
    val = set(store.labelled("val"))
    assert masks - val == set(subset)  # training masks: exactly the subset's
    assert masks & set(store.split("test")) == set()
    info = json.loads((tmp_path / "run" / "run.json").read_text(encoding="utf-8"))
    assert info["labels_read"] == {"train": sorted(subset), "selection": sorted(val)}


def test_a_run_that_would_read_a_test_label_is_refused(small_store, tmp_path):
    store = Store(small_store)
    test_case = store.split("test")[0]
    config = tiny_pretrain_config(small_store, label_cases=(store.labelled("train")[0], test_case))
    with pytest.raises(StoreError, match=f"would read the label of test case {test_case}"):
        run_pretrain(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match="is not a labelled training case"):
        SidePairTask(tiny_pretrain_config(small_store, label_cases=(store.labelled("val")[0],)), store)
    # Behind every run: the store itself refuses, once a training run has protected it.
    guarded = Store(small_store)
    guarded.protect_test_labels()
    with pytest.raises(StoreError, match=f"test case {test_case}"):
        guarded.array(test_case, "label")
    assert guarded.array(test_case, "image").shape  # its image is not a label


def test_half_sections_read_no_label_and_count_none(small_store, tmp_path):
    config = tiny_pretrain_config(small_store, sections="half", section_size=(32, 32))
    run_pretrain(config, tmp_path / "run", progress=False)
    info = json.loads((tmp_path / "run" / "run.json").read_text(encoding="utf-8"))
    assert info["labels_read"] == {"train": [], "selection": []}


def test_random_targets_keep_the_pairs_and_forget_the_sides(small_store, tmp_path):
    base = {"pairs_per_epoch": 200, "val_pairs": 64, "epochs": 2}
    real = SidePairTask(tiny_pretrain_config(small_store, **base), Store(small_store))
    control = SidePairTask(
        tiny_pretrain_config(small_store, side_labels="random", **base), Store(small_store)
    )
    for epoch in (0, 1):
        a, b = real.train_pairs(epoch), control.train_pairs(epoch)
        assert [(p.a, p.b) for p in a] == [(p.a, p.b) for p in b]  # the same sections, the same pairs
        targets = np.array([p.same for p in b])
        assert targets.sum() == len(b) // 2  # balanced
        agree = np.mean([p.same == q.same for p, q in zip(a, b, strict=True)])
        assert 0.35 < agree < 0.65, agree  # about half agree with the true targets
        assert [p.same for p in control.train_pairs(epoch)] == list(targets)  # seeded
    assert control.val_pairs == real.val_pairs  # held-out pairs keep their true targets
    history = run_pretrain(tiny_pretrain_config(small_store, side_labels="random", **base), tmp_path / "r")
    assert abs(history[-1]["val_auc"] - 0.5) < 0.2, history[-1]
