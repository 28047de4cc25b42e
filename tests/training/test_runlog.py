"""What a run writes beside its checkpoints follows them: after a kill between writes, metrics.jsonl and
TensorBoard hold every epoch exactly once, with the numbers the resumed run counts, and a finished run
missing what it writes last is resumed to write it."""

import json
import shutil

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sidepair.experiment.runner import training_finished
from sidepair.models.checkpoint import LAST, load_checkpoint
from sidepair.training import loop
from sidepair.training.pretrain import resolve_config, run_pretrain
from sidepair.training.runlog import RunLogger
from sidepair.training.segment import run_train
from sidepair.training.segment_config import TrainConfig

TINY = {
    "section_size": (24, 24),
    "channels": (4, 8),
    "strides": (1, 2),
    "pairs_per_epoch": 16,
    "batch_size": 8,
    "val_pairs": 8,
    "epochs": 2,
    "device": "cpu",
}


def scalars(run_dir, tag="train/loss"):
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    return [(event.step, event.value) for event in events.Scalars(tag)]


def jsonl(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


def test_a_resumed_logger_keeps_the_epochs_its_checkpoint_holds(tmp_path):
    rows = [{"epoch": e, "train_loss": 1.0 / e} for e in (1, 2, 3)]
    first = RunLogger(tmp_path, 0)
    for n in (1, 2, 3):  # epoch 3 logged, but (say) killed before its checkpoint
        first.log(rows[:n])
    first.close()
    resumed = RunLogger(tmp_path, 2)  # the checkpoint holds two epochs
    resumed.log([*rows[:2], {"epoch": 3, "train_loss": 0.25}])
    resumed.close()
    assert scalars(tmp_path) == [(1, 1.0), (2, 0.5), (3, 0.25)]
    assert [r["epoch"] for r in jsonl(tmp_path)] == [1, 2, 3]


class Killed(Exception):
    pass


@pytest.mark.parametrize("killed_in", [1, 2])
def test_a_kill_between_the_log_and_the_checkpoints_repeats_the_epoch_once(
    small_store, tmp_path, monkeypatch, killed_in
):
    config = resolve_config("fast-2d", small_store, sections="masked", **TINY)
    reference = run_pretrain(config, tmp_path / "reference", progress=False)
    save = loop.save_checkpoint

    def save_or_die(checkpoint, path, keep_previous=False):
        # In epoch 1 before any checkpoint (the best goes first), in epoch 2 before the last one.
        if checkpoint.epoch == killed_in and (path.name == LAST or killed_in == 1):
            raise Killed
        save(checkpoint, path, keep_previous)

    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(loop, "save_checkpoint", save_or_die)
        with pytest.raises(Killed):
            run_pretrain(config, run, progress=False)
    if killed_in == 2:
        assert load_checkpoint(run / LAST)["epoch"] == 1
    else:
        assert not list(run.glob("checkpoint_*.pt"))
    assert [r["epoch"] for r in jsonl(run)] == list(range(1, killed_in + 1))  # the log went first
    history = run_pretrain(config, run, resume=True, progress=False)
    assert [r["train_loss"] for r in history] == [r["train_loss"] for r in reference]
    untimed = [{k: v for k, v in r.items() if k != "time_s"} for r in jsonl(run)]
    assert untimed == [{k: v for k, v in r.items() if k != "time_s"} for r in jsonl(tmp_path / "reference")]
    assert [step for step, _ in scalars(run)] == [1, 2]
    assert [v for _, v in scalars(run)] == pytest.approx([v for _, v in scalars(tmp_path / "reference")])


def test_a_log_behind_its_finished_checkpoint_is_rewritten_on_resume(small_store, tmp_path):
    """Runs killed under the old order (checkpoint, then log) hold a log short of their checkpoint."""
    config = resolve_config("fast-2d", small_store, sections="masked", **TINY)
    run = tmp_path / "run"
    full = run_pretrain(config, run, progress=False)
    first = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()[0]
    (run / "metrics.jsonl").write_text(first + "\n", encoding="utf-8")
    assert run_pretrain(config, run, resume=True, progress=False) == full
    assert [r["epoch"] for r in jsonl(run)] == [1, 2]
    assert jsonl(run)[1]["train_loss"] == full[1]["train_loss"]


@pytest.mark.parametrize("lost", ["log row", "convergence", "curves"])
def test_the_experiment_resumes_a_finished_run_killed_before_its_last_writes(seg_run, tmp_path, lost):
    """What a segmentation run writes after its last checkpoint; without it the report misreads the run."""
    run = tmp_path / "run"
    shutil.copytree(seg_run, run)
    resolved = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    assert training_finished(run, resolved)
    info = json.loads((run / "run.json").read_text(encoding="utf-8"))
    if lost == "log row":
        (run / "metrics.jsonl").write_text(json.dumps(jsonl(run)[0]) + "\n", encoding="utf-8")
    elif lost == "convergence":
        kept = {k: v for k, v in info.items() if k not in ("epochs_run", "converged", "stopped_on_plateau")}
        (run / "run.json").write_text(json.dumps(kept), encoding="utf-8")
    else:
        (run / "learning_curves.png").unlink()
    assert not training_finished(run, resolved)
    config = TrainConfig.model_validate(resolved)
    history = run_train(config, run, resume=True, progress=False)  # what the experiment does then
    assert [r["epoch"] for r in history] == [r["epoch"] for r in jsonl(seg_run)]
    assert training_finished(run, resolved)
    assert json.loads((run / "run.json").read_text(encoding="utf-8"))["converged"] == info["converged"]
