"""Built-in backbones: tiny CPU networks and monai networks (random initialisation).

Targets are lazy strings, so registering them never imports torch or monai.
"""

from __future__ import annotations

from medfairx.hookspecs import hookimpl
from medfairx.specs import BackboneSpec, Register

_MOD = "medfairx.methods.backbones"
_CLS = ("classification",)
_SEG = ("segmentation",)
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


@hookimpl
def register_backbones(register: Register) -> None:
    """Register the built-in backbones."""
    for spec in BUILTIN_SPECS:
        register(spec)
