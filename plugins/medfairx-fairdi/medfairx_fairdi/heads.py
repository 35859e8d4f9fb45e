"""Backbone / head split of a network and a trainable head on a frozen backbone.

FairDi (docs/methods.md §3) trains new heads on a frozen backbone ``f_θ*``:

* **classification** — the framework's :class:`~medfairx.methods.backbones.ClassifierNet`:
  backbone = ``encoder``, head = ``head`` (a linear layer);
* **segmentation** [INFERRED] — head = the network's final convolution (``out`` of
  ``tiny_unet``, ``final_conv`` of monai's ``BasicUNet``); backbone = the network with that
  convolution replaced by an identity, i.e. everything that produces the head's input.

:class:`HeadOnFrozenBackbone` keeps the backbone in eval mode (BatchNorm statistics frozen),
without gradients, whatever mode the wrapper is put in.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from medfairx.errors import ConfigError

#: Attribute names of a segmentation network's final convolution, tried in order.
SEG_HEAD_NAMES: tuple[str, ...] = ("out", "final_conv")


def split_head(model: nn.Module, task: str) -> tuple[nn.Module, nn.Module]:
    """Split ``model`` into ``(backbone, head)`` with ``head(backbone(x)) == model(x)``.

    The segmentation split replaces the head attribute of ``model`` in place (the returned
    backbone *is* ``model``); pass a copy to keep the original network intact.

    Args:
        model: a freshly built or trained network.
        task: ``"classification"`` or ``"segmentation"``.

    Returns:
        ``(backbone, head)``.

    Raises:
        ConfigError: the network exposes no head this function knows.
    """
    if task == "classification":
        encoder, head = getattr(model, "encoder", None), getattr(model, "head", None)
        if not isinstance(encoder, nn.Module) or not isinstance(head, nn.Module):
            raise ConfigError(
                f"FairDi needs a classification backbone with `encoder` and `head` (a ClassifierNet); "
                f"{type(model).__name__} has none. Use a built-in classification backbone."
            )
        return encoder, head
    for name in SEG_HEAD_NAMES:
        head = getattr(model, name, None)
        if isinstance(head, (nn.Conv2d, nn.Conv3d)):
            setattr(model, name, nn.Identity())
            return model, head
    raise ConfigError(
        f"FairDi's segmentation variant retrains the final convolution of the network, but "
        f"{type(model).__name__} has no conv attribute named {' or '.join(SEG_HEAD_NAMES)}. Use "
        "backbone 'tiny_unet' or 'basic_unet'."
    )


def fresh_head(head: nn.Module) -> nn.Module:
    """A randomly re-initialised copy of ``head`` (draws from torch's global RNG)."""
    new = copy.deepcopy(head)
    for m in new.modules():
        reset = getattr(m, "reset_parameters", None)
        if callable(reset):
            reset()
    return new


class HeadOnFrozenBackbone(nn.Module):
    """``head(backbone(x))`` where only ``head`` trains.

    The backbone's parameters get ``requires_grad=False``, it always stays in eval mode
    (BatchNorm uses its running statistics) and its forward pass runs without autograd.
    Several wrappers may share one backbone.

    Args:
        backbone: the frozen feature extractor.
        head: the trainable head.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.backbone.requires_grad_(False)
        self.backbone.eval()

    def train(self, mode: bool = True) -> HeadOnFrozenBackbone:
        """Set the head's mode; the backbone stays in eval mode."""
        super().train(mode)
        self.backbone.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features of ``x`` (no gradient)."""
        with torch.no_grad():
            return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the head on frozen features."""
        return self.head(self.features(x))
