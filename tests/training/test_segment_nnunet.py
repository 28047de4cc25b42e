"""Segmentation training of nnU-Net's own network inside sidepair (``--architecture nnunet``).

On the IPL-written nnU-Net phantom (nnU-Net's fingerprint, plans and 2d preprocessing): scratch and
transfer runs train nnU-Net's whole network, the encoder takes every pretrained tensor, patches reach the
network in nnU-Net's axis order, and prediction comes back in each scan's own geometry.
"""

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from sidepair.config import PreprocessSettings
from sidepair.data.nnunet_grid import nnunet_settings
from sidepair.data.sections import read_crop
from sidepair.data.store import Store
from sidepair.data.volume import load_nifti
from sidepair.evaluation.metrics import dice_score
from sidepair.inference.predictor import ModelInfo, Predictor, load_segmentation_model
from sidepair.models.checkpoint import BEST, read_checkpoint
from sidepair.training.patches import PatchDataset
from sidepair.training.segment_config import resolve_train_config
from tests.conftest import run_cli

pytestmark = pytest.mark.integration

TRAIN = ("--preset", "demo", "--epochs", "1", "--samples-per-epoch", "16", "--batch-size", "8",
         "--device", "cpu")  # fmt: skip


def plans_2d(planned) -> dict:
    return json.loads(planned["plans"].read_text(encoding="utf-8"))["configurations"]["2d"]


def test_scratch_run_trains_nnunets_network_at_the_plans_patch(nnunet_planned, nnunet_store, tmp_path):
    out = tmp_path / "scratch"
    done = run_cli("train", "--store", nnunet_store, "--out", out, "--architecture", "nnunet",
                   "--plans", nnunet_planned["plans"], "--configuration", "2d", *TRAIN)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "scratch (no transfer)" in done.stdout
    ckpt = read_checkpoint(out / BEST)
    assert ckpt.encoder_config["architecture"] == "nnunet"
    keys = set(ckpt.network_weights)
    assert any(k.startswith("encoder.stages.") for k in keys)  # nnU-Net's own key names, no wrapper prefix
    assert any(k.startswith("decoder.seg_layers.") for k in keys)
    # Deep supervision off: one output, at full resolution.
    network, _ = load_segmentation_model(out)
    assert network.decoder.deep_supervision is False
    logits = network(torch.zeros(2, 1, 64, 64))
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, ckpt.out_channels, 64, 64)
    # The plans' patch, as a store-order (y, x) window: the IPL file's network axes (1, 2) are store (x, y).
    patch = plans_2d(nnunet_planned)["patch_size"]
    assert list(ckpt.patch_size) == [patch[1], patch[0]]


def test_transfer_takes_every_pretrained_encoder_tensor(nnunet_planned, nnunet_store, nnunet_run, tmp_path):
    out = tmp_path / "frozen"
    done = run_cli("train", "--store", nnunet_store, "--out", out, "--init", nnunet_run / BEST,
                   "--freeze-encoder", *TRAIN)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    pretrained = read_checkpoint(nnunet_run / BEST).encoder_weights()
    assert f"{len(pretrained)}/{len(pretrained)} encoder tensors transferred" in done.stdout
    trained = read_checkpoint(out / "checkpoint_last.pt").network_weights
    # Frozen: the trained network's encoder is the pretrained one, tensor for tensor.
    assert all(torch.equal(trained[f"encoder.{k}"], v) for k, v in pretrained.items())
    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert run["transfer"].startswith(f"{len(pretrained)}/{len(pretrained)} encoder tensors transferred")


def test_patches_reach_the_network_in_nnunets_axis_order(nnunet_planned, nnunet_store):
    store = Store(nnunet_store)
    config = resolve_train_config(
        "demo", nnunet_store, architecture="nnunet", plans=str(nnunet_planned["plans"]), configuration="2d",
        samples_per_epoch=8, foreground_fraction=1.0, augment=False, mirror=False,
    )  # fmt: skip
    data = PatchDataset(store, store.labelled("train"), config, epoch=0)
    image, target = data[0]
    assert tuple(image.shape[1:]) == tuple(plans_2d(nnunet_planned)["patch_size"])
    case_id, start = data.items[0]
    view = store.cases[case_id].network
    assert view is not None and view.order == [0, 2, 1]
    # The same crop read in store order, then put in nnU-Net's order: the same voxels.
    size = (1, *config.patch_size)
    crop = read_crop(store.array(case_id), start, size, store.background_value(case_id))
    np.testing.assert_array_equal(image.numpy(), view.to_network(crop))
    assert view.to_store(view.to_network(crop)).tobytes() == crop.tobytes()


class Threshold(torch.nn.Module):
    """Logits whose argmax is ``input > t``: prediction's geometry without a trained network."""

    def __init__(self, t: float) -> None:
        super().__init__()
        self.t = t

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros_like(x), x - self.t], dim=1)


@pytest.mark.parametrize(("configuration", "patch"), [("2d", [32, 32]), ("3d_fullres", [16, 32, 32])])
def test_prediction_comes_back_in_the_scans_own_geometry(nnunet_planned, configuration, patch):
    """nnU-Net's preprocessing of an IPL scan, a known per-voxel rule, and the file's own grid back
    (2D: whole slices; 3D: sliding windows in nnU-Net's axis order)."""
    plans = json.loads(nnunet_planned["plans"].read_text(encoding="utf-8"))
    stats = plans["foreground_intensity_properties_per_channel"]["0"]
    hu = 100.0
    assert stats["percentile_00_5"] < hu < stats["percentile_99_5"]
    dims = len(patch)
    settings = PreprocessSettings(
        nnunet=nnunet_settings(nnunet_planned["plans"], configuration), dtype="float32"
    )
    info = ModelInfo(
        source="threshold", labels="kidney", out_channels=2, dims=dims, patch_size=patch, batch_size=4,
        encoder_config={"architecture": "nnunet", "spatial_dims": dims}, stride=[1] * dims,
        preprocess=settings, epoch=0,
    )  # fmt: skip
    predictor = Predictor(Threshold((hu - stats["mean"]) / stats["std"]), info)
    scan = sorted((nnunet_planned["raw"] / "imagesTr").glob("*.nii.gz"))[0]
    prediction = predictor.predict_volume(load_nifti(scan), "kidney")
    raw = nib.load(str(scan))
    np.testing.assert_allclose(prediction.affine, raw.affine, atol=1e-5)
    assert prediction.output.shape == raw.shape
    expected = np.asarray(raw.dataobj) > hu
    assert 0.01 < expected.mean() < 0.9
    # nnU-Net resamples this phantom's ~6 mm voxels to the plans' spacing and back, so a few boundary voxels
    # change; a wrong axis or direction loses far more.
    assert dice_score(prediction.output > 0, expected) > 0.93
    assert all(dice_score(prediction.output > 0, np.flip(expected, a)) < 0.7 for a in range(3))


def test_deep_supervision_trains_nnunets_lower_outputs_and_predicts_with_the_finest(
    nnunet_planned, nnunet_store, tmp_path
):
    out = tmp_path / "deep"
    done = run_cli("train", "--store", nnunet_store, "--out", out, "--architecture", "nnunet",
                   "--plans", nnunet_planned["plans"], "--configuration", "2d", "--deep-supervision",
                   *TRAIN)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    ckpt = read_checkpoint(out / BEST)
    assert ckpt.config["deep_supervision"] is True
    network, _ = load_segmentation_model(out)
    # nnU-Net's heads exist with deep supervision on or off: the state dict is nnU-Net's usual one.
    assert set(ckpt.network_weights) == set(network.state_dict())
    stages = len(network.decoder.seg_layers)
    outputs = network.train()(torch.zeros(2, 1, 64, 64))
    # Every decoder stage's logits, finest first, without the lowest (nnU-Net weights it 0).
    assert [tuple(o.shape[2:]) for o in outputs] == [(64 // 2**i, 64 // 2**i) for i in range(stages - 1)]
    logits = network.eval()(torch.zeros(2, 1, 64, 64))
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, ckpt.out_channels, 64, 64)
