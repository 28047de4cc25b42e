"""Run bookkeeping: which saved configs describe the run asked for (resume and the experiment's skip)."""

import shutil

import pytest
import yaml

from sidepair.data.store import Store
from sidepair.errors import ConfigError, SidepairError
from sidepair.evaluation.evaluate import evaluate_run
from sidepair.experiment.jobs import training_finished
from sidepair.models.checkpoint import load_checkpoint, save_checkpoint
from sidepair.training.runinfo import field_defaults, same_run
from sidepair.training.segment import run_train
from sidepair.training.segment_config import TrainConfig
from tests.conftest import tiny_train_config


def test_a_setting_added_later_counts_as_its_default_in_an_older_run():
    defaults = field_defaults(TrainConfig)
    assert defaults["deep_supervision"] is False and defaults["patch_size"] == [160, 224, 160]
    now = {"lr": 0.01, "deep_supervision": False, "device": "cpu"}
    older = {"lr": 0.01, "device": "cuda"}  # written before deep_supervision existed; another device
    assert same_run(older, now, defaults)
    assert not same_run(older, {**now, "deep_supervision": True}, defaults)
    assert not same_run(older, now)  # without the defaults a missing key is a difference
    assert not same_run({**older, "lr": 0.1}, now, defaults)
    assert not same_run({**older, "gone": 1}, now, defaults)  # a setting sidepair no longer has


def test_a_run_saved_without_a_new_setting_is_finished_and_resumes(seg_run, small_store, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(seg_run, out)  # the session's run, copied: its config.yaml is rewritten below
    config = tiny_train_config(small_store)  # the settings seg_run was trained with
    saved = yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))
    assert saved == config.model_dump(mode="json")
    del saved["deep_supervision"]  # as sidepair wrote it before the setting existed
    (out / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False), encoding="utf-8")
    assert training_finished(out, config.model_dump(mode="json"))
    assert len(run_train(config, out, resume=True, progress=False)) == 2  # resumed (finished), not refused
    deep = config.model_copy(update={"deep_supervision": True})
    with pytest.raises(ConfigError, match="--resume with settings other than the run's own"):
        run_train(deep, out, resume=True, progress=False)


def _begun_as_relative(seg_run, small_store, root):
    """seg_run and its store laid out as ``sidepair experiment --out exp`` begun in ``root`` records them."""
    exp = root / "exp"
    shutil.copytree(small_store, exp / "store")
    run = exp / "runs" / "scratch"
    shutil.copytree(seg_run, run)
    saved = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    (run / "config.yaml").write_text(yaml.safe_dump({**saved, "store": "exp/store"}), encoding="utf-8")
    for name in ("checkpoint_best.pt", "checkpoint_last.pt"):
        payload = load_checkpoint(run / name)
        save_checkpoint({**payload, "config": {**payload["config"], "store": "exp/store"}}, run / name)
    return exp, run


def test_a_run_begun_from_one_working_folder_resumes_and_evaluates_from_another(
    seg_run, small_store, tmp_path, monkeypatch
):
    exp, run = _begun_as_relative(seg_run, small_store, tmp_path / "start")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # where "exp/store" names nothing
    config = tiny_train_config(exp / "store")  # the same store, by its absolute path
    assert same_run({"store": "exp/store"}, {"store": str(exp / "store")}, run=run)
    assert not same_run({"store": "exp/store"}, {"store": str(exp / "store")})  # not looked up from run
    assert training_finished(run, config.model_dump(mode="json"))
    assert len(run_train(config, run, resume=True, progress=False)) == 2  # resumed (finished), not refused
    summary = evaluate_run(run, device="cpu", progress=False)
    assert summary["cases"] == len(Store(exp / "store").labelled("test")) > 0
    assert 0.0 <= summary["metrics"]["kidney_dice"]["mean"] <= 1.0
    # Another folder with the same content is another store, and so another run.
    shutil.copytree(exp / "store", tmp_path / "copy")
    other = tiny_train_config(tmp_path / "copy").model_dump(mode="json")
    with pytest.raises(SidepairError, match="made with other settings"):
        training_finished(run, other)
