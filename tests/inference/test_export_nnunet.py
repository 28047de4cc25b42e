"""Side-pair pretraining of nnU-Net's own encoder, handed to nnU-Net's ``load_pretrained_weights``.

End to end on a tiny phantom: nnU-Net raw layout, nnU-Net's fingerprint and plans, ``sidepair prepare
--plans``, ``sidepair pretrain --architecture nnunet``, ``sidepair export --format nnunet``, then nnU-Net's
loader into a network nnU-Net builds from the same plans.
"""

import dataclasses
import json
import sys

import pytest
import torch

from sidepair.errors import ConfigError, SidepairError
from sidepair.inference.export_nnunet import export_nnunet
from sidepair.models.checkpoint import BEST, read_checkpoint, save_checkpoint
from tests.conftest import run_cli

pytestmark = pytest.mark.integration


def nnunet_network(plans, configuration="2d"):
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    conf = PlansManager(str(plans)).get_configuration(configuration)
    return get_network_from_plans(
        conf.network_arch_class_name, conf.network_arch_init_kwargs, conf.network_arch_init_kwargs_req_import,
        1, 4, allow_init=True, deep_supervision=True,
    )  # fmt: skip


def test_nnunets_loader_takes_every_pretrained_encoder_tensor(nnunet_planned, nnunet_run, tmp_path):
    from nnunetv2.run.load_pretrained_weights import load_pretrained_weights

    ckpt = read_checkpoint(nnunet_run / BEST)
    assert ckpt.encoder_config["architecture"] == "nnunet"
    assert ckpt.encoder_config["network_class_name"].endswith("PlainConvUNet")
    out = tmp_path / "pretrained.pth"
    done = run_cli(
        "export", "--model", nnunet_run, "--format", "nnunet", "--plans", nnunet_planned["plans"],
        "--configuration", "2d", "--out", out,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    encoder = ckpt.encoder_weights()
    assert f"{len(encoder)}/{len(encoder)} encoder tensors transferred" in done.stdout
    network = nnunet_network(nnunet_planned["plans"])
    load_pretrained_weights(network, str(out))
    state = network.state_dict()
    assert all(torch.equal(state[f"encoder.{k}"], v) for k, v in encoder.items())
    saved = torch.load(out, weights_only=False)["network_weights"]
    decoder = [k for k in state if k.startswith("decoder.") and ".seg_layers." not in k]
    assert decoder and all(torch.equal(state[k], saved[k]) for k in decoder)
    assert set(saved) == set(state)


def test_export_refuses_other_configurations_plans_and_shapes(nnunet_planned, nnunet_run, tmp_path):
    plans = nnunet_planned["plans"]
    done = run_cli("export", "--model", nnunet_run, "--format", "nnunet", "--plans", plans,
                   "--configuration", "3d_fullres", "--out", tmp_path / "x.pth")  # fmt: skip
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1
    assert 'configuration ("2d" against "3d_fullres") differs from the pretraining' in done.stderr
    changed = json.loads(plans.read_text(encoding="utf-8"))
    features = changed["configurations"]["2d"]["architecture"]["arch_kwargs"]["features_per_stage"]
    features[-1] += 8
    (tmp_path / "dataset.json").write_text((plans.parent / "dataset.json").read_text(encoding="utf-8"))
    (tmp_path / "plans.json").write_text(json.dumps(changed), encoding="utf-8")
    with pytest.raises(SidepairError, match=r"arch_kwargs\.features_per_stage\[\d\] \(\d+ against \d+\)"):
        export_nnunet(nnunet_run, tmp_path / "plans.json", "2d", tmp_path / "x.pth")
    ckpt = read_checkpoint(nnunet_run / BEST)
    weights = dict(ckpt.network_weights)
    name = next(k for k in weights if k.startswith("encoder.") and k.endswith("conv.weight"))
    weights[name] = torch.zeros(1, 1, 3, 3)
    save_checkpoint(dataclasses.replace(ckpt, network_weights=weights), tmp_path / "bad.pt")
    with pytest.raises(SidepairError, match=f"shape of {name.removeprefix('encoder.')} is \\(1, 1, 3, 3\\)"):
        export_nnunet(tmp_path / "bad.pt", plans, "2d", tmp_path / "x.pth")
    assert not (tmp_path / "x.pth").exists()


def test_export_refuses_a_monai_pretraining(nnunet_planned, pretrained, tmp_path):
    with pytest.raises(SidepairError, match="pretrained with the monai architecture, not nnU-Net's"):
        export_nnunet(pretrained, nnunet_planned["plans"], "2d", tmp_path / "x.pth")


def test_without_the_extra_the_error_names_it(monkeypatch):
    from sidepair.nnunet_plans import require_nnunet

    monkeypatch.setitem(sys.modules, "nnunetv2", None)  # import then raises ImportError
    with pytest.raises(ConfigError, match=r'install the extra: pip install -e "\.\[nnunet\]"'):
        require_nnunet()
