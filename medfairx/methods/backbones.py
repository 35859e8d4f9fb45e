"""Network factories behind the ``backbones`` registry.

Every factory has the signature ``build(*, in_channels, num_classes, spatial_dims, **kw)``
and returns a freshly initialised :class:`torch.nn.Module`:

* **classification** networks are :class:`ClassifierNet` instances: ``encoder`` maps an
  image to a pooled feature vector of size ``feature_dim`` and ``head`` is an
  ``nn.Linear(feature_dim, num_classes)``; ``forward(x) = head(encoder(x))`` returns
  ``(N, num_classes)`` logits (binary tasks use 2 logits and softmax cross-entropy);
* **segmentation** networks return ``(N, num_classes, *spatial)`` logits.

The monai networks are randomly initialised: no pretrained weights can be downloaded.
Classification factories accept ``weights="path/to/state_dict.pt"`` to load a local
checkpoint into the whole network (or, failing key matches, into the encoder).

Shared by core (training loop, runner, reports) and the plugins medfairx-fairdi, medfairx-qpnet and medfairx-spare.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medfairx.errors import ConfigError
from medfairx.specs import BackboneSpec


class ClassifierNet(nn.Module):
    """``head(encoder(x))`` with the pooled features exposed for feature-level methods.

    Args:
        encoder: maps ``(N, C_in, *spatial)`` to ``(N, feature_dim)``.
        head: ``nn.Linear(feature_dim, num_classes)``.
        feature_dim: size of the encoder output.
    """

    #: set by the pretrained-encoder factories (:mod:`medfairx.methods.encoders`): name, weights, preprocessing
    encoder_info: dict[str, Any]

    def __init__(self, encoder: nn.Module, head: nn.Linear, feature_dim: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.feature_dim = int(feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)``."""
        logits: torch.Tensor = self.head(self.encoder(x))
        return logits

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits, z)``: logits and the pooled features they were computed from."""
        z = self.encoder(x)
        return self.head(z), z


def _conv(spatial_dims: int) -> type[nn.Module]:
    return {2: nn.Conv2d, 3: nn.Conv3d}[_check_dims(spatial_dims)]


def _bn(spatial_dims: int) -> type[nn.Module]:
    return {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[spatial_dims]


def _check_dims(spatial_dims: int) -> int:
    if spatial_dims not in (2, 3):
        raise ConfigError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}.")
    return spatial_dims


def _check_common(in_channels: int, num_classes: int, spatial_dims: int) -> None:
    _check_dims(spatial_dims)
    if in_channels < 1 or num_classes < 2:
        raise ConfigError(
            f"Backbones need in_channels >= 1 and num_classes >= 2 (binary tasks use 2 "
            f"logits); got in_channels={in_channels}, num_classes={num_classes}."
        )


def _conv_block(spatial_dims: int, cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        _conv(spatial_dims)(cin, cout, kernel_size=3, padding=1, bias=False),
        _bn(spatial_dims)(cout),
        nn.ReLU(inplace=True),
    )


def _maybe_load(model: ClassifierNet, weights: str | Path | None) -> ClassifierNet:
    if weights is None:
        return model
    path = Path(weights)
    if not path.is_file():
        raise ConfigError(f"Backbone weights file {str(path)!r} does not exist; fix backbone_kwargs.weights.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # never runs code from the file
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        raise ConfigError(
            f"Backbone weights file {str(path)!r} is not a plain tensor checkpoint that loads with "
            f"weights_only=True ({type(exc).__name__}); save the state_dict alone with torch.save."
        ) from None
    target: nn.Module = model
    if not set(state) & set(model.state_dict()):
        target = model.encoder
    missing, unexpected = target.load_state_dict(state, strict=False)
    if len(missing) == len(target.state_dict()):
        raise ConfigError(
            f"Backbone weights {str(path)!r} share no parameter names with the network; "
            "convert the checkpoint to this architecture's key names."
        )
    return model


# --- tiny networks for CPU runs -------------------------------------------------------


def tiny_cnn(
    *, in_channels: int, num_classes: int, spatial_dims: int = 2, width: int = 16, weights: str | None = None
) -> ClassifierNet:
    """Three conv-BN-ReLU blocks (``width``, ``2·width``, ``4·width`` channels) + global pool.

    Meant for 32-pixel CPU runs; 2D and 3D.
    """
    _check_common(in_channels, num_classes, spatial_dims)
    pool = {2: nn.MaxPool2d, 3: nn.MaxPool3d}[spatial_dims]
    gap = {2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}[spatial_dims]
    encoder = nn.Sequential(
        _conv_block(spatial_dims, in_channels, width),
        pool(2),
        _conv_block(spatial_dims, width, 2 * width),
        pool(2),
        _conv_block(spatial_dims, 2 * width, 4 * width),
        gap(1),
        nn.Flatten(1),
    )
    return _maybe_load(ClassifierNet(encoder, nn.Linear(4 * width, num_classes), 4 * width), weights)


class TinyUNet(nn.Module):
    """A two-level UNet (``width``, ``2·width``, ``4·width`` channels); 2D or 3D.

    Inputs whose spatial size is not a multiple of 4 are padded and the logits cropped back.
    """

    def __init__(self, *, in_channels: int, num_classes: int, spatial_dims: int = 2, width: int = 8) -> None:
        super().__init__()
        _check_common(in_channels, num_classes, spatial_dims)
        self.spatial_dims = spatial_dims
        w = width
        pool = {2: nn.MaxPool2d, 3: nn.MaxPool3d}[spatial_dims]
        up = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[spatial_dims]
        self.enc1 = nn.Sequential(_conv_block(spatial_dims, in_channels, w), _conv_block(spatial_dims, w, w))
        self.enc2 = nn.Sequential(pool(2), _conv_block(spatial_dims, w, 2 * w))
        self.bottleneck = nn.Sequential(pool(2), _conv_block(spatial_dims, 2 * w, 4 * w))
        self.up2 = up(4 * w, 2 * w, kernel_size=2, stride=2)
        self.dec2 = _conv_block(spatial_dims, 4 * w, 2 * w)
        self.up1 = up(2 * w, w, kernel_size=2, stride=2)
        self.dec1 = _conv_block(spatial_dims, 2 * w, w)
        self.out = _conv(spatial_dims)(w, num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes, *spatial)``."""
        spatial = x.shape[2:]
        pad: list[int] = []
        for s in reversed(spatial):
            pad += [0, (-s) % 4]
        if any(pad):
            x = nn.functional.pad(x, pad)
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        b = self.bottleneck(e2)
        d2 = self.dec2(torch.cat([self.up2(b), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        logits: torch.Tensor = self.out(d1)
        if any(pad):
            crop = (slice(None), slice(None), *(slice(0, s) for s in spatial))
            logits = logits[crop]
        return logits


def tiny_unet(*, in_channels: int, num_classes: int, spatial_dims: int = 2, width: int = 8) -> TinyUNet:
    """A small two-level UNet for 32-pixel CPU segmentation runs; 2D and 3D."""
    return TinyUNet(in_channels=in_channels, num_classes=num_classes, spatial_dims=spatial_dims, width=width)


# --- monai networks -------------------------------------------------------------------


def _monai_resnet(
    arch: str, in_channels: int, num_classes: int, spatial_dims: int, weights: str | None, kw: dict[str, Any]
) -> ClassifierNet:
    _check_common(in_channels, num_classes, spatial_dims)
    from monai.networks import nets

    if kw.pop("pretrained", False):
        raise ConfigError(
            f"{arch}: pretrained weights cannot be downloaded here; pass a local checkpoint "
            "with backbone_kwargs.weights='path.pt' or leave pretrained unset (random init)."
        )
    kw.setdefault("conv1_t_size", 7)
    kw.setdefault("conv1_t_stride", 2)  # ImageNet-style stem (monai's default stride is 1)
    encoder = getattr(nets, arch)(
        spatial_dims=spatial_dims, n_input_channels=in_channels, feed_forward=False, **kw
    )
    feature_dim = int(encoder.in_planes)  # channels of layer4's output
    head = nn.Linear(feature_dim, num_classes)
    return _maybe_load(ClassifierNet(encoder, head, feature_dim), weights)


def resnet18(
    *, in_channels: int, num_classes: int, spatial_dims: int = 2, weights: str | None = None, **kw: Any
) -> ClassifierNet:
    """monai ResNet-18 (random init, 7×7 stride-2 stem), 512-d features; 2D and 3D."""
    return _monai_resnet("resnet18", in_channels, num_classes, spatial_dims, weights, kw)


def resnet50(
    *, in_channels: int, num_classes: int, spatial_dims: int = 2, weights: str | None = None, **kw: Any
) -> ClassifierNet:
    """monai ResNet-50 (random init, 7×7 stride-2 stem), 2048-d features; 2D and 3D."""
    return _monai_resnet("resnet50", in_channels, num_classes, spatial_dims, weights, kw)


def densenet121(
    *, in_channels: int, num_classes: int, spatial_dims: int = 2, weights: str | None = None, **kw: Any
) -> ClassifierNet:
    """monai DenseNet-121 (random init), 1024-d features; 2D and 3D."""
    _check_common(in_channels, num_classes, spatial_dims)
    from monai.networks.nets.densenet import DenseNet121

    if kw.pop("pretrained", False):
        raise ConfigError(
            "densenet121: pretrained weights cannot be downloaded here; pass a local "
            "checkpoint with backbone_kwargs.weights='path.pt' (random init otherwise)."
        )
    net = DenseNet121(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=num_classes, **kw)
    class_layers: Any = net.class_layers  # monai's nn.Sequential of pooling and the final Linear
    feature_dim = int(class_layers.out.in_features)
    class_layers.out = nn.Identity()
    return _maybe_load(ClassifierNet(net, nn.Linear(feature_dim, num_classes), feature_dim), weights)


def unet(*, in_channels: int, num_classes: int, spatial_dims: int = 2, **kw: Any) -> nn.Module:
    """monai ``UNet`` (defaults: channels 16-256, strides 2, 2 residual units)."""
    _check_common(in_channels, num_classes, spatial_dims)
    from monai.networks.nets.unet import UNet

    kw.setdefault("channels", (16, 32, 64, 128, 256))
    kw.setdefault("strides", (2, 2, 2, 2))
    kw.setdefault("num_res_units", 2)
    return UNet(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=num_classes, **kw)


def basic_unet(*, in_channels: int, num_classes: int, spatial_dims: int = 2, **kw: Any) -> nn.Module:
    """monai ``BasicUNet`` (default features ``(32, 32, 64, 128, 256, 32)``)."""
    _check_common(in_channels, num_classes, spatial_dims)
    from monai.networks.nets.basic_unet import BasicUNet

    return BasicUNet(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=num_classes, **kw)


#: Built-in factories by registry name (the default plugin registers exactly these).
BUILTIN_BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "tiny_cnn": tiny_cnn,
    "tiny_unet": tiny_unet,
    "resnet18": resnet18,
    "resnet50": resnet50,
    "densenet121": densenet121,
    "unet": unet,
    "basic_unet": basic_unet,
}  # (the pretrained encoders and feature heads live in medfairx.methods.encoders)


def split_backbone_name(name: str) -> tuple[str, str | None]:
    """``"timm:resnet18"`` → ``("timm", "resnet18")``; a plain name → ``(name, None)``."""
    family, sep, model = name.partition(":")
    return (family, model) if sep else (name, None)


def find_backbone_spec(name: str) -> BackboneSpec:
    """The :class:`BackboneSpec` registered as ``name``.

    ``<family>:<model>`` names resolve to the family's spec, which must be a namespace
    (``timm``, ``torchvision``). Every name goes through the process-wide registry (the
    built-in backbones are registered by :mod:`medfairx.default_plugins.backbones`).
    """
    family, model = split_backbone_name(name)
    if model is not None:
        spec = find_backbone_spec(family)
        if not spec.namespace or not model:
            raise ConfigError(
                f"Backbone {name!r}: {family!r} is not a family of models; families: timm:<name>, torchvision:<name>."
            )
        return spec
    from medfairx.plugins import get_host

    found: BackboneSpec = get_host().registry("backbones").get(name)
    return found


def _names_for(task: str) -> list[str]:
    try:
        from medfairx.plugins import get_host

        return sorted(s.name for s in get_host().registry("backbones").items() if task in s.tasks)
    except Exception:  # noqa: BLE001 - only used to enrich an error message
        return []


def build_backbone(
    name: str,
    *,
    in_channels: int,
    num_classes: int,
    spatial_dims: int,
    task: str | None = None,
    **kw: Any,
) -> nn.Module:
    """Build the backbone registered as ``name``.

    Args:
        name: a registry name (``medfairx list backbones``).
        in_channels: image channels.
        num_classes: output logits / channels.
        spatial_dims: 2 or 3.
        task: when given, checked against the backbone's declared tasks.
        **kw: factory-specific options (``ctx.backbone_kwargs``).

    Raises:
        UnknownNameError: no backbone is registered as ``name``.
        ConfigError: the backbone does not support ``task`` / ``spatial_dims`` or rejects ``kw``.
    """
    spec = find_backbone_spec(name)
    if task is not None and task not in spec.tasks:
        raise ConfigError(
            f"Backbone {name!r} supports {list(spec.tasks)}, not {task!r}. "
            f"Pick one of: {', '.join(_names_for(task)) or '(none registered)'}."
        )
    if spatial_dims not in spec.spatial_dims:
        raise ConfigError(
            f"Backbone {name!r} supports spatial_dims {list(spec.spatial_dims)}, not {spatial_dims}."
        )
    factory = spec.load()
    model = split_backbone_name(name)[1]
    if model is not None:
        kw = {**kw, "model": model}
    try:
        net: nn.Module = factory(in_channels=in_channels, num_classes=num_classes, spatial_dims=spatial_dims, **kw)
        return net
    except TypeError as exc:
        raise ConfigError(f"Backbone {name!r} rejected backbone_kwargs {sorted(kw)}: {exc}") from None
