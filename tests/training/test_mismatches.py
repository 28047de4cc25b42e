"""Loud mismatches: an encoder from other preprocessing, a changed label file, a sides model's own sides."""

import json
import shutil

import numpy as np
import pytest

from sidepair.config import PreprocessSettings
from sidepair.data.formats import open_dataset
from sidepair.data.prepare import prepare
from sidepair.data.store import Store
from sidepair.errors import ConfigError, StoreError
from sidepair.evaluation.evaluate import evaluate_run
from sidepair.training.segment import run_train
from sidepair.training.segment_config import resolve_train_config
from sidepair.training.segment_task import SegmentationTask
from tests.conftest import tiny_train_config

SEG = {"patch_size": (32, 32), "epochs": 1, "batch_size": 8, "samples_per_epoch": 16, "device": "cpu"}


@pytest.fixture(scope="module")
def other_store(small_phantom, tmp_path_factory):
    """The small phantom at another spacing (5 mm): what the `pretrained` encoder never saw."""
    out = tmp_path_factory.mktemp("other") / "store"
    return prepare(open_dataset(small_phantom), out, PreprocessSettings(spacing_zyx=(5.0, 5.0, 5.0)))


def test_an_encoder_from_other_preprocessing_is_refused_naming_the_setting(other_store, pretrained, tmp_path):
    config = resolve_train_config("fast-2d", other_store, init=str(pretrained), **SEG)
    with pytest.raises(ConfigError) as info:
        SegmentationTask(config, Store(other_store))
    message = str(info.value)
    assert str(pretrained) in message and "--accept-store-mismatch" in message
    assert "spacing_zyx (4.0, 4.0, 4.0) in pretraining, (5.0, 5.0, 5.0) in this store" in message
    assert not (tmp_path / "run").exists()


def test_the_option_accepts_it_and_run_json_records_it(other_store, pretrained, tmp_path):
    config = resolve_train_config(
        "fast-2d", other_store, init=str(pretrained), accept_store_mismatch=True, **SEG
    )
    run_train(config, tmp_path / "run", progress=False)
    info = json.loads((tmp_path / "run" / "run.json").read_text(encoding="utf-8"))
    assert (
        info["store_mismatch_accepted"]
        == "spacing_zyx (4.0, 4.0, 4.0) in pretraining, (5.0, 5.0, 5.0) in this store"
    )
    assert (
        info["transfer"].startswith("10/10 encoder tensors")
        or "encoder tensors transferred" in info["transfer"]
    )


def test_the_same_preprocessing_transfers_without_a_note(small_store, pretrained, tmp_path):
    config = resolve_train_config("fast-2d", small_store, init=str(pretrained), **SEG)
    run_train(config, tmp_path / "run", progress=False)
    info = json.loads((tmp_path / "run" / "run.json").read_text(encoding="utf-8"))
    assert info["store_mismatch_accepted"] is None


def test_evaluate_refuses_a_label_file_changed_since_prepare(small_phantom, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(small_phantom, data)
    store = prepare(open_dataset(data), tmp_path / "store", PreprocessSettings(spacing_zyx=(4.0, 4.0, 4.0)))
    run = tmp_path / "run"
    run_train(tiny_train_config(store, epochs=1, samples_per_epoch=8), run, progress=False)
    case = Store(store).split("test")[0]
    label = data / case / "segmentation.nii.gz"
    other = data / Store(store).split("train")[0] / "segmentation.nii.gz"
    shutil.copyfile(other, label)  # another case's label in its place
    with pytest.raises(StoreError) as info:
        evaluate_run(run, "test", device="cpu", progress=False)
    assert str(label) in str(info.value) and "not the label the store recorded" in str(info.value)
    assert not (run / "eval_test" / "metrics.json").exists()


def test_a_sides_model_is_scored_by_its_own_sides(small_store, tmp_path):
    config = tiny_train_config(small_store, labels="sides", epochs=1, samples_per_epoch=8)
    run_train(config, tmp_path / "sides", progress=False)
    summary = evaluate_run(tmp_path / "sides", "test", device="cpu", progress=False)
    assert summary["sides_from"] == "model"
    assert {"side_swap", "right_dice", "left_dice"} <= set(summary["metrics"])
    assert summary["metrics"]["side_swap"]["n"] == summary["cases"]
    assert set(np.unique([summary["metrics"]["side_swap"]["mean"]])) <= set(np.linspace(0, 1, 3))
