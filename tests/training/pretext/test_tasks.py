"""The pretext tasks on the small phantom store: each learns, each transfers every encoder tensor."""

import json

import pytest

from sidepair.errors import ConfigError
from sidepair.training.pretext import TASKS
from sidepair.training.pretrain import run_pretrain
from sidepair.training.segment import run_train
from tests.conftest import tiny_pretrain_config, tiny_train_config

# A few epochs of a tiny encoder on half (context) sections; the generic tasks read no label either.
LEARN = {"sections": "half", "section_size": (32, 32), "epochs": 4, "pairs_per_epoch": 32, "lr": 2e-3}
MONITOR = {"side-pair": "val_acc", "restoration": "val_gain", "contrastive-views": "val_top1"}


@pytest.fixture(scope="module")
def runs(small_store, tmp_path_factory):
    """One short pretraining run per task, and its history."""
    out = tmp_path_factory.mktemp("pretext")
    done = {}
    for task in TASKS:
        config = tiny_pretrain_config(small_store, task=task, **LEARN)
        done[task] = (out / task, run_pretrain(config, out / task, progress=False))
    return done


@pytest.mark.parametrize("task", list(TASKS))
def test_each_task_learns_and_logs_its_own_measure(runs, task):
    run_dir, history = runs[task]
    losses = [h["train_loss"] for h in history]
    assert losses[-1] < losses[0], losses
    assert MONITOR[task] in history[-1]
    if task == "restoration":
        # The identity's error is what the corruption did; the share the network undoes rises (it starts
        # below 0: a fresh network without skips restores worse than returning its input).
        assert history[-1]["val_identity_error"] > 0
        assert history[0]["val_gain"] < history[-1]["val_gain"] <= 1
    if task == "side-pair":  # the mirror score, logged per epoch beside plain accuracy
        assert all(0 <= h["val_mirror_acc"] <= 1 and "val_mirror_auc" in h for h in history)
    if task == "contrastive-views":
        assert history[-1]["val_top1"] > history[-1]["val_chance"]
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert MONITOR[task] in rows[-1]
    info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    assert info["task"] == task and info["mirror"] is False
    assert info["labels_read"] == {"train": [], "selection": []}  # half sections read no label


@pytest.mark.parametrize("task", list(TASKS))
def test_every_task_transfers_every_encoder_tensor(runs, small_store, tmp_path, task):
    run_dir, _ = runs[task]
    config = tiny_train_config(small_store, init=str(run_dir / "checkpoint_best.pt"), epochs=1)
    run_train(config, tmp_path / "seg", progress=False)
    info = json.loads((tmp_path / "seg" / "run.json").read_text(encoding="utf-8"))
    pretrained = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))["encoder_tensors"]
    assert pretrained > 0
    assert info["transfer"].startswith(f"{pretrained}/{pretrained} encoder tensors transferred from ")


def test_the_same_budget_of_steps_and_sections(small_store):
    """A pair and two views count as two sections; every task runs the same steps per epoch."""
    from sidepair.data.store import Store

    store = Store(small_store)
    counts = {}
    for name, task_class in TASKS.items():
        task = task_class(tiny_pretrain_config(small_store, task=name, **LEARN), store)
        batches = list(task.train_batches(0))
        sections = sum(len(b[0]) * (2 if name != "restoration" else 1) for b in batches)
        counts[name] = (len(batches), sections)
    assert len(set(counts.values())) == 1, counts
    assert counts["side-pair"] == (4, 64)


def test_mirroring_kidney_sections_is_refused(small_store):
    with pytest.raises(ConfigError, match="mirror: a mirrored masked section"):
        tiny_pretrain_config(small_store, mirror=True)
    with pytest.raises(ConfigError, match="side_labels: random is the side-pair control"):
        tiny_pretrain_config(small_store, task="restoration", side_labels="random")
    assert tiny_pretrain_config(small_store, sections="half", mirror=True).mirror
