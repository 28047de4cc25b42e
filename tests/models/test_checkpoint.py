"""Checkpoints: loadable with weights_only, corruption refused, truncation falls back to the previous one."""

import zipfile

import pytest
import torch

from sidepair.errors import SidepairError
from sidepair.models.checkpoint import (
    BEST,
    LAST,
    PREV,
    PretrainCheckpoint,
    SegmentationCheckpoint,
    load_checkpoint,
    load_resume_checkpoint,
    read_checkpoint,
    save_checkpoint,
)


def payload(epoch):
    torch.manual_seed(epoch)
    return SegmentationCheckpoint(
        network_weights={"w": torch.randn(64, 64)},
        epoch=epoch,
        best_metric=0.5,
        monitor="val_dice",
        history=[{"epoch": e} for e in range(1, epoch + 1)],
        seed=0,
        sidepair_version="test",
        config={"dims": 2, "patch_size": [32, 32], "batch_size": 4},
        encoder_config={"spatial_dims": 2},
        store_fingerprint="abc",
    )


def tensor_offset(path):
    """Byte offset of the tensor's stored data inside the checkpoint's zip."""
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if "/data/" in i.filename)
    with open(path, "rb") as handle:
        handle.seek(info.header_offset + 26)
        name_len, extra_len = (int.from_bytes(handle.read(2), "little") for _ in range(2))
    return info.header_offset + 30 + name_len + extra_len


def test_roundtrip_and_plain_torch_load(tmp_path):
    save_checkpoint(payload(1), tmp_path / LAST)
    assert load_checkpoint(tmp_path / LAST)["epoch"] == 1
    assert torch.load(tmp_path / LAST, weights_only=True)["epoch"] == 1  # the digest lives in the zip comment
    with zipfile.ZipFile(tmp_path / LAST) as archive:
        assert archive.comment.startswith(b"sidepair-sha256:")


def test_a_flipped_bit_in_a_tensor_is_refused_where_torch_would_load_it(tmp_path):
    path = tmp_path / LAST
    save_checkpoint(payload(1), path)
    data = bytearray(path.read_bytes())
    data[tensor_offset(path) + 100] ^= 0x10
    path.write_bytes(bytes(data))
    silently = torch.load(path, weights_only=True)["network_weights"]["w"]
    assert not torch.equal(silently, payload(1).network_weights["w"])  # torch alone does not notice
    with pytest.raises(SidepairError, match="corrupted checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize("keep", [0.3, 0.9])
def test_a_truncated_checkpoint_is_refused(tmp_path, keep):
    path = tmp_path / LAST
    save_checkpoint(payload(1), path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(SidepairError, match=f"{LAST}: (truncated or unreadable|unreadable) checkpoint"):
        load_checkpoint(path)


def test_resume_falls_back_to_the_previous_then_the_best(tmp_path):
    save_checkpoint(payload(1), tmp_path / BEST)
    for epoch in (1, 2, 3):
        save_checkpoint(payload(epoch), tmp_path / LAST, keep_previous=True)
    assert load_checkpoint(tmp_path / PREV)["epoch"] == 2
    assert load_resume_checkpoint(tmp_path).epoch == 3
    (tmp_path / LAST).write_bytes((tmp_path / LAST).read_bytes()[:500])
    with pytest.warns(UserWarning, match=f"{LAST}: .*checkpoint .*; resuming from {PREV}"):
        assert load_resume_checkpoint(tmp_path).epoch == 2
    (tmp_path / PREV).write_bytes(b"garbage")
    with pytest.warns(UserWarning, match=f"resuming from {BEST}"):
        assert load_resume_checkpoint(tmp_path).epoch == 1
    (tmp_path / BEST).unlink()
    with pytest.raises(SidepairError, match="no usable checkpoint to resume from"):
        load_resume_checkpoint(tmp_path)
    assert load_resume_checkpoint(tmp_path / "empty") is None


def test_typed_reader_checks_kind_and_fields(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(payload(2), path)
    ckpt = read_checkpoint(path, SegmentationCheckpoint)
    assert ckpt.epoch == 2 and ckpt.dims == 2 and ckpt.patch_size == (32, 32) and ckpt.labels == "kidney"
    with pytest.raises(SidepairError, match="a segmentation checkpoint, not a pretraining run"):
        read_checkpoint(path, PretrainCheckpoint)
    old = {k: v for k, v in payload(1).payload().items() if k != "store_fingerprint"}
    save_checkpoint(old, path)
    with pytest.raises(SidepairError, match="without 'store_fingerprint'.*rerun `sidepair train`"):
        read_checkpoint(path)
