"""The public Python API: the verbs as functions on a tiny phantom, and the pretrained encoder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import sidepair
from sidepair.errors import UsageError
from sidepair.models.checkpoint import PretrainCheckpoint, read_checkpoint
from tests.conftest import ROOT

TINY_ENCODER = {"channels": (4, 8, 16), "strides": (1, 2, 2), "device": "cpu"}


def test_load_encoder_holds_the_checkpoints_weights(pretrained: Path):
    encoder = sidepair.load_encoder(pretrained.parent)  # the run folder: its best checkpoint
    ckpt = read_checkpoint(pretrained, PretrainCheckpoint)
    expected = ckpt.encoder_weights()
    got = encoder.state_dict()
    assert sorted(got) == sorted(expected) and len(got) > 5
    for name, tensor in expected.items():
        assert torch.equal(got[name], tensor), name
    assert not encoder.training and encoder.encoder_config["channels"] == [4, 8, 16]
    assert encoder.preprocess["spacing_zyx"] == [4.0, 4.0, 4.0]
    skips, bottleneck = encoder(torch.zeros(2, 1, 32, 32))
    assert [s.shape[1:] for s in skips] == [(4, 32, 32), (8, 16, 16)]
    assert bottleneck.shape == (2, 16, 8, 8)
    assert sidepair.load_encoder(pretrained).state_dict().keys() == got.keys()  # the file itself


def test_the_docs_example_puts_the_encoder_into_monais_dynunet(pretrained: Path):
    page = (ROOT / "docs" / "python-api.md").read_text(encoding="utf-8")
    code = re.search(r"<!-- example: dynunet -->\n```python\n(.*?)```", page, re.S).group(1)
    assert len(code.strip().splitlines()) <= 14
    scope = {"RUN": pretrained.parent}
    exec(compile(code, "docs/python-api.md", "exec"), scope)  # noqa: S102  (the page's own example)
    net, encoder = scope["net"], scope["encoder"]
    assert not scope["result"].unexpected_keys and scope["result"].missing_keys  # the decoder's
    net.eval()
    x = torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    h = net.input_block(x)
    for block in net.downsamples:
        h = block(h)
    assert torch.equal(net.bottleneck(h), encoder(x)[1])  # the same features, tensor for tensor
    assert net(x).shape == (1, 3, 32, 32)


def test_the_verbs_as_functions_end_to_end(small_phantom: Path, tmp_path: Path):
    store = sidepair.prepare(
        small_phantom, tmp_path / "store", "fast-2d", spacing=(4, 4, 4), side_check="off", progress=False
    )
    assert (store / "index.json").is_file()
    tiny = {**TINY_ENCODER, "epochs": 1, "batch_size": 8}
    ssl = sidepair.pretrain(
        store, tmp_path / "ssl", sections="masked", section_size=(24, 24), pairs_per_epoch=16, val_pairs=8,
        progress=False, **tiny,
    )  # fmt: skip
    run = sidepair.train(
        store, tmp_path / "ft", init=str(ssl / "checkpoint_best.pt"), patch_size=(32, 32),
        samples_per_epoch=16, progress=False, **{**tiny, "steps": None},
    )  # fmt: skip
    summary = sidepair.evaluate(run, device="cpu")
    dice = summary["metrics"]["kidney_dice"]
    assert dice["n"] == summary["cases"] == 2 and 0.0 <= dice["mean"] <= 1.0
    assert (run / "eval_test" / "per_case.csv").is_file()
    with pytest.raises(UsageError, match="--plans and --configuration go together"):
        sidepair.prepare(small_phantom, tmp_path / "s2", plans="p.json")


def test_public_names_are_documented():
    for name in sidepair.PUBLIC:
        doc = getattr(sidepair, name).__doc__
        assert doc and "Args:" in doc, name
    assert "Returns:" in sidepair.load_encoder.__doc__ and "Input convention" in sidepair.load_encoder.__doc__
