"""Degenerate but legal cases: each goes through prepare, an epoch of pretraining and one of segmentation.

A slice folder (the phantom's slice layout) where one training patient's slices are made degenerate: a
negative slice, a kidney that vanishes on the store grid, one side only, one pixel of kidney, a kidney
touching the image border. Nothing may fail with anything but the project's own one-line errors, and
these must not fail at all.
"""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from sidepair.config import get_preset
from sidepair.data.formats import open_dataset
from sidepair.data.phantom import write_slices
from sidepair.data.prepare import prepare
from sidepair.data.splits import make_splits
from sidepair.data.store import Store
from sidepair.errors import DataWarning
from sidepair.training.pretrain import run_pretrain
from sidepair.training.segment import run_train
from tests.conftest import tiny_pretrain_config, tiny_train_config

BLUE = (0, 0, 255)


@pytest.fixture(scope="module")
def slices(tmp_path_factory):
    root = tmp_path_factory.mktemp("slices") / "base"
    write_slices(root, cases=6, seed=3, shape=(128, 128, 32), slices_per_case=2)
    return root


def _kidney(mask: np.ndarray) -> np.ndarray:
    return np.all(mask == BLUE, axis=-1)


def _edit(path, how):
    mask = np.asarray(Image.open(path).convert("RGB")).copy()
    kidney = _kidney(mask)
    if how == "negative":
        mask[:] = 0
    elif how in ("vanishing", "one pixel"):
        keep = 2 if how == "vanishing" else 1
        ys, xs = np.nonzero(kidney)
        mask[:] = 0
        for y, x in list(zip(ys, xs, strict=True))[:keep]:
            mask[y, x] = BLUE
    elif how == "one side":
        columns = np.nonzero(kidney.any(axis=0))[0]
        mask[:, : (columns.min() + columns.max()) // 2] = 0  # the image's left half: the patient's right
    elif how == "at the border":
        rows = np.nonzero(kidney.any(axis=1))[0]
        mask[rows.min() : rows.max(), :6] = BLUE  # a kidney band reaching the first column
    Image.fromarray(mask).save(path)


@pytest.mark.parametrize("how", ["negative", "vanishing", "one side", "one pixel", "at the border"])
def test_a_degenerate_training_patient_goes_through(slices, tmp_path, how):
    root = tmp_path / "data"
    shutil.copytree(slices, root)
    dataset = open_dataset(root)
    groups = [(c.case_id, c.group, True) for c in dataset.cases()]
    train = make_splits(groups)["train"]  # the split depends on the patients only
    patient = next(c.group for c in dataset.cases() if c.case_id == train[0])
    edited = [c for c in dataset.cases() if c.group == patient]
    for case in edited:
        _edit(case.label, how)
    with pytest.warns(DataWarning) if how in ("vanishing", "one pixel") else _no_warning():
        store_dir = prepare(open_dataset(root), tmp_path / "store", get_preset("demo").preprocess)
    store = Store(store_dir)
    entries = [store.cases[c.case_id] for c in edited]
    assert all(e.labelled for e in entries)
    if how == "negative":
        assert all(e.negative and not e.vanished and not e.kidney_sides for e in entries)
    elif how in ("vanishing", "one pixel"):
        assert all(e.negative and e.vanished for e in entries)
    elif how == "one side":
        assert all(e.kidney_sides == ["left"] for e in entries)
    else:
        assert all(not e.negative for e in entries)
    pretrain = tiny_pretrain_config(store_dir, epochs=1, pairs_per_epoch=16, val_pairs=8)
    run_pretrain(pretrain, tmp_path / "pre", progress=False)
    history = run_train(
        tiny_train_config(store_dir, epochs=1, samples_per_epoch=16), tmp_path / "seg", progress=False
    )
    assert len(history) == 1 and np.isfinite(history[0]["train_loss"])
    info = json.loads((tmp_path / "seg" / "run.json").read_text(encoding="utf-8"))
    assert set(info["train_cases"]) >= {c.case_id for c in edited}  # the degenerate cases trained


class _no_warning:
    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("error", DataWarning)

    def __exit__(self, *exc):
        return self._catch.__exit__(*exc)
