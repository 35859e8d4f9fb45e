"""Backbone factories: output shapes, encoder/head contract, registration, errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from medfairx.default_plugins import backbones as plugin
from medfairx.errors import ConfigError
from medfairx.methods.backbones import BUILTIN_BACKBONES, ClassifierNet, build_backbone
from medfairx.specs import BackboneSpec

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CLS_CASES = [
    ("tiny_cnn", 2, 32, 64, {}),
    ("tiny_cnn", 3, 16, 64, {}),
    ("resnet18", 2, 32, 512, {}),
    ("resnet18", 3, 16, 512, {}),
    ("resnet50", 2, 32, 2048, {}),
    ("densenet121", 2, 32, 1024, {}),
]
SEG_CASES = [
    ("tiny_unet", 2, (32, 32), {}),
    ("tiny_unet", 2, (30, 22), {}),  # not a multiple of 4: padded and cropped back
    ("tiny_unet", 3, (16, 16, 16), {}),
    ("unet", 2, (32, 32), {}),
    ("unet", 3, (16, 16, 16), {"channels": (4, 8, 16), "strides": (2, 2), "num_res_units": 1}),
    ("basic_unet", 2, (32, 32), {"features": (4, 4, 8, 16, 32, 4)}),
]


@pytest.mark.parametrize(("name", "dims", "size", "feat", "kw"), CLS_CASES)
def test_classifier_shapes_and_encoder_head(name: str, dims: int, size: int, feat: int, kw: dict) -> None:
    torch.manual_seed(0)
    net = build_backbone(name, in_channels=3, num_classes=4, spatial_dims=dims, task="classification", **kw)
    assert isinstance(net, ClassifierNet)
    assert net.feature_dim == feat
    assert isinstance(net.head, nn.Linear) and net.head.in_features == feat and net.head.out_features == 4
    net.eval()
    x = torch.randn(2, 3, *([size] * dims))
    with torch.no_grad():
        logits = net(x)
        z = net.encoder(x)
        logits2, z2 = net.forward_features(x)
    assert logits.shape == (2, 4)
    assert z.shape == (2, feat)
    assert torch.allclose(logits, net.head(z), atol=1e-6)
    assert torch.allclose(logits2, logits) and torch.allclose(z2, z)


@pytest.mark.parametrize(("name", "dims", "spatial", "kw"), SEG_CASES)
def test_segmentation_shapes(name: str, dims: int, spatial: tuple[int, ...], kw: dict) -> None:
    net = build_backbone(name, in_channels=2, num_classes=3, spatial_dims=dims, task="segmentation", **kw)
    net.eval()
    with torch.no_grad():
        out = net(torch.randn(2, 2, *spatial))
    assert out.shape == (2, 3, *spatial)


def test_registration_lists_every_builtin_with_lazy_targets() -> None:
    got: list[BackboneSpec] = []
    plugin.register_backbones(register=got.append)
    got = [s for s in got if s not in plugin.ENCODER_SPECS]  # checked in test_encoders.py
    assert sorted(s.name for s in got) == sorted(BUILTIN_BACKBONES)
    for spec in got:
        assert isinstance(spec.target, str) and spec.target.startswith("medfairx.methods.backbones:")
        assert spec.load() is BUILTIN_BACKBONES[spec.name]
        assert spec.spatial_dims == (2, 3)
    tasks = {s.name: s.tasks for s in got}
    assert tasks["tiny_cnn"] == ("classification",) and tasks["unet"] == ("segmentation",)


def test_plugin_module_does_not_import_torch() -> None:
    code = "import sys, medfairx.default_plugins.backbones; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_task_mismatch_and_bad_arguments_raise_config_errors() -> None:
    with pytest.raises(ConfigError, match="tiny_unet"):
        build_backbone("tiny_cnn", in_channels=1, num_classes=2, spatial_dims=2, task="segmentation")
    with pytest.raises(ConfigError, match="pretrained"):
        build_backbone("resnet18", in_channels=1, num_classes=2, spatial_dims=2, pretrained=True)
    with pytest.raises(ConfigError, match="spatial_dims"):
        build_backbone("tiny_cnn", in_channels=1, num_classes=2, spatial_dims=1)
    with pytest.raises(ConfigError, match="num_classes"):
        build_backbone("tiny_cnn", in_channels=1, num_classes=1, spatial_dims=2)
    with pytest.raises(ConfigError, match="rejected"):
        build_backbone("tiny_cnn", in_channels=1, num_classes=2, spatial_dims=2, nonsense=3)


def test_local_weights_are_loaded(tmp_path) -> None:
    torch.manual_seed(1)
    a = build_backbone("tiny_cnn", in_channels=1, num_classes=2, spatial_dims=2)
    torch.save(a.state_dict(), tmp_path / "w.pt")
    torch.save(a.encoder.state_dict(), tmp_path / "enc.pt")
    torch.manual_seed(2)
    b = build_backbone("tiny_cnn", in_channels=1, num_classes=2, spatial_dims=2, weights=str(tmp_path / "w.pt"))
    c = build_backbone("tiny_cnn", in_channels=1, num_classes=2, spatial_dims=2, weights=str(tmp_path / "enc.pt"))
    x = torch.randn(2, 1, 16, 16)
    a.eval(), b.eval(), c.eval()
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
        assert torch.equal(a.encoder(x), c.encoder(x))
    with pytest.raises(ConfigError, match="does not exist"):
        build_backbone("tiny_cnn", in_channels=1, num_classes=2, spatial_dims=2, weights=str(tmp_path / "no.pt"))
