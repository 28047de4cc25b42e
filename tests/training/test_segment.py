"""Segmentation training and evaluation end to end on the small phantom store."""

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.losses import DiceCELoss

from sidepair.data.splits import select_fraction
from sidepair.data.store import Store
from sidepair.errors import ConfigError, SidepairError
from sidepair.evaluation.evaluate import evaluate_run
from sidepair.inference.export import export_model
from sidepair.models.checkpoint import read_checkpoint
from sidepair.training.segment import run_train
from sidepair.training.segment_config import resolve_train_config
from sidepair.training.segment_task import NnUNetDeepSupervision, SegmentationTask
from tests.conftest import tiny_train_config

ARCH = {"channels": (4, 8, 16), "strides": (1, 2, 2)}
SEG = {"patch_size": (32, 32), "epochs": 1, "batch_size": 8, "samples_per_epoch": 16, "device": "cpu"}


def _encoder_state(run):
    return {
        k[len("encoder.") :]: v
        for k, v in torch.load(run / "checkpoint_last.pt", weights_only=True)["network_weights"].items()
        if k.startswith("encoder.")
    }


def test_transfer_run_records_every_tensor(small_store, pretrained, tmp_path):
    config = resolve_train_config("fast-2d", small_store, init=str(pretrained), **SEG)
    assert config.channels == ARCH["channels"]  # the architecture comes from the checkpoint
    task = SegmentationTask(config, Store(small_store))
    reference = read_checkpoint(pretrained).encoder_weights()
    for name, tensor in task.model.encoder.state_dict().items():
        torch.testing.assert_close(tensor, reference[name], rtol=0, atol=0)
    run_train(config, tmp_path / "ssl", progress=False)
    run = json.loads((tmp_path / "ssl" / "run.json").read_text(encoding="utf-8"))
    n = len(reference)
    assert run["transfer"].startswith(f"{n}/{n} encoder tensors transferred from ")
    ckpt = torch.load(tmp_path / "ssl" / "checkpoint_last.pt", weights_only=True)
    assert ckpt["kind"] == "segmentation" and ckpt["transferred"] == f"{n}/{n} encoder tensors transferred"


def test_frozen_encoder_stays_equal_unfrozen_changes(small_store, pretrained, tmp_path):
    reference = read_checkpoint(pretrained).encoder_weights()
    frozen = resolve_train_config("fast-2d", small_store, init=str(pretrained), freeze_encoder=True, **SEG)
    run_train(frozen, tmp_path / "frozen", progress=False)
    for name, tensor in _encoder_state(tmp_path / "frozen").items():
        torch.testing.assert_close(tensor, reference[name], rtol=0, atol=0)
    free = resolve_train_config("fast-2d", small_store, init=str(pretrained), **SEG)
    run_train(free, tmp_path / "free", progress=False)
    changed = [
        n
        for n, t in _encoder_state(tmp_path / "free").items()
        if t.is_floating_point() and not torch.equal(t, reference[n])
    ]
    assert changed


def test_label_fraction_subsets_are_deterministic_and_nested(small_store, pretrained):
    ids = [f"case_{i:03d}" for i in range(40)]
    quarter, half = select_fraction(ids, 0.25, 3), select_fraction(ids, 0.5, 3)
    assert len(quarter) == 10 and set(quarter) <= set(half)
    assert select_fraction(ids, 0.25, 3) == quarter != select_fraction(ids, 0.25, 4)
    store = Store(small_store)
    scratch = SegmentationTask(
        resolve_train_config("fast-2d", small_store, label_fraction=0.5, seed=2, **SEG), store
    )
    ssl = SegmentationTask(
        resolve_train_config("fast-2d", small_store, init=str(pretrained), label_fraction=0.5, seed=2, **SEG),
        store,
    )
    assert scratch.train_ids == ssl.train_ids and len(scratch.train_ids) == 3


def test_train_and_evaluate_write_predictions_in_source_geometry(small_store, small_phantom, tmp_path):
    config = resolve_train_config("fast-2d", small_store, **{**SEG, "epochs": 2})
    history = run_train(config, tmp_path / "scratch", progress=False)
    assert [r["epoch"] for r in history] == [1, 2] and 0 <= history[-1]["val_dice"] <= 1
    summary = evaluate_run(tmp_path / "scratch", "test", device="cpu", progress=False)
    out = tmp_path / "scratch" / "eval_test"
    store = Store(small_store)
    assert summary["cases"] == len(store.split("test")) == 2
    for case_id in store.split("test"):
        pred = nib.load(out / "predictions" / f"{case_id}.nii.gz")
        source = nib.load(small_phantom / case_id / "imaging.nii.gz")
        assert pred.shape == source.shape
        np.testing.assert_allclose(pred.affine, source.affine, atol=1e-5)
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert {"mean", "sd", "median", "n"} <= set(metrics["metrics"]["kidney_dice"])
    assert metrics["data"].startswith("phantom ")
    rows = (out / "per_case.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0].startswith("case_id,") and len(rows) == 3
    assert (out / "cases.png").stat().st_size > 10_000


def test_wrong_inits_are_refused(small_store, pretrained, tmp_path):
    config = resolve_train_config("fast-2d", small_store, **SEG)
    run_train(config, tmp_path / "seg", progress=False)
    with pytest.raises(SidepairError, match="a segmentation checkpoint, not a pretraining run"):
        resolve_train_config("fast-2d", small_store, init=str(tmp_path / "seg" / "checkpoint_last.pt"))
    with pytest.raises(ConfigError, match="freeze_encoder needs a pretrained --init checkpoint"):
        resolve_train_config("fast-2d", small_store, freeze_encoder=True)
    with pytest.raises(SidepairError, match="a pretrain checkpoint, not a segmentation model"):
        evaluate_run(pretrained.parent, "test", device="cpu", progress=False)


def test_unfreeze_after_releases_the_encoder(small_store, pretrained):
    config = resolve_train_config(
        "fast-2d", small_store, init=str(pretrained), freeze_encoder=True, unfreeze_after=2, **SEG
    )
    task = SegmentationTask(config, Store(small_store))
    trainable = []
    for epoch in range(4):
        task.on_epoch_start(epoch)
        trainable.append(all(p.requires_grad for p in task.model.encoder.parameters()))
    assert trainable == [False, False, True, True]
    assert all(p.requires_grad for p in task.model.decoder.parameters())


def test_sides_labels_and_paper_loss(small_store, tmp_path):
    config = resolve_train_config("fast-2d", small_store, labels="sides", loss="paper", **SEG)
    task = SegmentationTask(config, Store(small_store))
    assert task.model.decoder.out.conv.conv.out_channels == 3
    assert (task.loss.lambda_dice, task.loss.lambda_ce) == (0.8, 0.2)
    run_train(config, tmp_path / "sides", progress=False)
    ckpt = torch.load(tmp_path / "sides" / "checkpoint_last.pt", weights_only=True)
    assert ckpt["labels"] == "sides" and ckpt["out_channels"] == 3


def test_3d_training_uses_sliding_windows(small_store, tmp_path):
    config = resolve_train_config(
        "kits19-paper",
        small_store,
        patch_size=(16, 32, 32),
        channels=(4, 8, 16),
        strides=(1, (1, 2, 2), 2),
        epochs=1,
        batch_size=2,
        samples_per_epoch=4,
        device="cpu",
    )
    history = run_train(config, tmp_path / "3d", progress=False)
    assert config.dims == 3 and 0 <= history[0]["val_dice"] <= 1
    summary = evaluate_run(tmp_path / "3d", "test", device="cpu", progress=False)
    assert summary["cases"] == 2


def test_encoder_architecture_is_validated_for_segmentation_too(small_store):
    with pytest.raises(ConfigError, match="channels \\(4, 8\\) and strides \\(1, 2, 2\\) differ in length"):
        resolve_train_config("fast-2d", small_store, channels=(4, 8), strides=(1, 2, 2))


def test_segmentation_counts_must_be_positive(small_store):
    with pytest.raises(ConfigError, match="train.epochs: Input should be greater than or equal to 1"):
        resolve_train_config("fast-2d", small_store, epochs=0)
    with pytest.raises(ConfigError, match="train.lr: Input should be greater than 0"):
        resolve_train_config("fast-2d", small_store, lr=0.0)


def test_convergence_flag_and_stop_on_plateau(small_store, tmp_path):
    """A short run has not converged; a run stopped on a plateau has, ends early, and stays finished."""
    short = tiny_train_config(small_store, epochs=2, samples_per_epoch=16)
    run_train(short, tmp_path / "short", progress=False)
    info = json.loads((tmp_path / "short" / "run.json").read_text(encoding="utf-8"))
    assert info["converged"] is False and info["stopped_on_plateau"] is False and info["epochs_run"] == 2
    # A plateau of one epoch without a gain of 0.5 in Dice: reached at epoch 2 of a budget of 10 (the raw
    # curve, no least number of epochs).
    long = tiny_train_config(
        small_store,
        epochs=10,
        samples_per_epoch=16,
        stop_on_plateau=True,
        plateau_window=1,
        plateau_min_delta=0.5,
        smoothing=0.0,
        min_epochs=0,
    )
    history = run_train(long, tmp_path / "long", progress=False)
    assert len(history) == 2
    info = json.loads((tmp_path / "long" / "run.json").read_text(encoding="utf-8"))
    assert info["converged"] is True and info["stopped_on_plateau"] is True and info["epochs_run"] == 2
    assert "last 1 epochs did not raise the best validation Dice by more than 0.5" in info["convergence_rule"]
    assert torch.load(tmp_path / "long" / "checkpoint_last.pt", weights_only=True)["stopped"] is True
    assert len(run_train(long, tmp_path / "long", resume=True, progress=False)) == 2  # finished, not resumed
    # No run is called converged, or stopped, before min_epochs; the smoothed curve is the one judged.
    later = long.model_copy(update={"min_epochs": 4, "smoothing": 0.5})
    history = run_train(later, tmp_path / "later", progress=False)
    assert len(history) == 4 and "val_dice_ema" in history[-1]
    info = json.loads((tmp_path / "later" / "run.json").read_text(encoding="utf-8"))
    assert info["converged"] is True and "moving average (smoothing 0.5)" in info["convergence_rule"]
    assert "after at least 4 epochs" in info["convergence_rule"]


def test_deep_supervision_weights_and_an_end_to_end_run(small_store, tmp_path):
    """nnU-Net's weights (1/2^i, normalised), labels downsampled to each output, heads unused to predict."""
    dicece = DiceCELoss(to_onehot_y=True, softmax=True, batch=True, include_background=False)
    loss = NnUNetDeepSupervision(dicece)
    assert loss.get_weights(3) == pytest.approx([4 / 7, 2 / 7, 1 / 7])
    torch.manual_seed(0)
    fine, coarse = torch.randn(2, 2, 8, 8), torch.randn(2, 2, 4, 4)
    target = (torch.rand(2, 1, 8, 8) > 0.5).float()
    by_hand = (2 * dicece(fine, target) + dicece(coarse, target[:, :, 1::2, 1::2])) / 3
    torch.testing.assert_close(loss([fine, coarse], target), by_hand)
    deep = {"channels": (4, 8, 16, 32), "strides": (1, 2, 2, 2)}
    config = tiny_train_config(
        small_store, epochs=1, samples_per_epoch=16, val_patches=16, deep_supervision=True, **deep
    )
    task = SegmentationTask(config, Store(small_store))
    assert isinstance(task.loss, NnUNetDeepSupervision) and len(task.model.decoder.heads) == 1
    run_train(config, tmp_path / "deep", progress=False)
    weights = torch.load(tmp_path / "deep" / "checkpoint_best.pt", weights_only=True)["network_weights"]
    assert "decoder.heads.0.conv.conv.weight" in weights
    summary = evaluate_run(tmp_path / "deep", "test", device="cpu", progress=False)
    assert summary["cases"] == 2 and 0 <= summary["metrics"]["kidney_dice"]["mean"] <= 1
    # An exported file holds the full-resolution output alone, as PyTorch evaluates it.
    exported = export_model(tmp_path / "deep", "torchscript", tmp_path / "deep.ts")
    assert exported["max_abs_diff"] < 1e-4
