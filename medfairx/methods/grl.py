"""Gradient reversal (Ganin et al., JMLR 2016) and the group adversary (docs/methods.md §1.5).

* :func:`grad_reverse` / :class:`GradientReversal` — identity in the forward pass, gradient
  multiplied by ``−λ`` in the backward pass.
* :func:`grl_lambda` — the DANN schedule ``λ_p = λ_max·(2/(1+e^{−γp}) − 1)``, ``γ = 10``.
* :class:`GroupAdversary` — ``Linear(d→128) → ReLU → Linear(128→K)`` on pooled features.
* :class:`FeatureTap` — captures a sub-module's output during the ordinary forward pass, so
  feature-level losses need no second forward (classification: ``model.encoder``;
  segmentation: the UNet bottleneck, globally average-pooled).

Shared by the plugins medfairx-baselines (ADV) and medfairx-qpnet.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from medfairx.errors import ConfigError


class _ReverseGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, lam: float) -> torch.Tensor:
        ctx.lam = float(lam)
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.lam * grad, None


def grad_reverse(x: torch.Tensor, lam: float = 1.0) -> torch.Tensor:
    """``x`` unchanged in the forward pass; the gradient becomes ``−λ·grad`` backwards."""
    out: torch.Tensor = _ReverseGrad.apply(x, lam)
    return out


class GradientReversal(nn.Module):
    """A gradient-reversal layer with a settable coefficient ``lambda_``.

    Args:
        lambda_: the initial ``λ`` (update it during training, e.g. with :func:`grl_lambda`).
    """

    def __init__(self, lambda_: float = 1.0) -> None:
        super().__init__()
        self.lambda_ = float(lambda_)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Identity; reverses and scales the gradient."""
        return grad_reverse(x, self.lambda_)


def grl_lambda(progress: float, lambda_max: float = 1.0, gamma: float = 10.0) -> float:
    """The DANN schedule ``λ_p = λ_max·(2/(1+e^{−γp}) − 1)`` for progress ``p ∈ [0, 1]``."""
    p = min(max(float(progress), 0.0), 1.0)
    return float(lambda_max) * (2.0 / (1.0 + math.exp(-gamma * p)) - 1.0)


class GroupAdversary(nn.Module):
    """The adversary ``h``: ``Linear(d→hidden) → ReLU → Linear(hidden→K)`` (logits over groups).

    Args:
        in_features: feature size ``d``.
        n_groups: ``K``.
        hidden: hidden width (128 as in MEDFAIR).
    """

    def __init__(self, in_features: int, n_groups: int, hidden: int = 128) -> None:
        super().__init__()
        if in_features < 1 or n_groups < 1:
            raise ConfigError(f"GroupAdversary needs d >= 1 and K >= 1; got d={in_features}, K={n_groups}.")
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, n_groups))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Group logits ``(n, K)``."""
        logits: torch.Tensor = self.net(z)
        return logits


def pool_features(t: torch.Tensor) -> torch.Tensor:
    """``(n, d)`` features as they are; ``(n, d, *spatial)`` maps globally average-pooled."""
    return t if t.dim() == 2 else t.flatten(2).mean(-1)


def feature_module(model: nn.Module, task: str) -> nn.Module:
    """The sub-module whose output is the representation ``z`` of docs/methods.md §1.5.

    Classification: ``model.encoder`` (every :class:`~medfairx.methods.backbones.ClassifierNet`).
    Segmentation: the bottleneck of the UNet (``bottleneck`` of ``tiny_unet``, ``down_4`` of
    monai's ``BasicUNet``) [INFERRED].

    Raises:
        ConfigError: the backbone exposes no such module.
    """
    names = ("encoder",) if task == "classification" else ("bottleneck", "down_4")
    for name in names:
        sub = getattr(model, name, None)
        if isinstance(sub, nn.Module):
            return sub
    raise ConfigError(
        f"{type(model).__name__} exposes none of {list(names)}, so no feature representation can be "
        f"tapped for the {task} adversary; use a backbone that does (classification: any "
        "ClassifierNet; segmentation: tiny_unet or basic_unet)."
    )


class FeatureTap:
    """Record a sub-module's (pooled) output on every forward pass.

    Args:
        module: the sub-module to tap (see :func:`feature_module`).

    Attributes:
        features: the last ``(n, d)`` pooled output (with gradient), or ``None``.
    """

    def __init__(self, module: nn.Module) -> None:
        self.features: torch.Tensor | None = None
        self._handle = module.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, inputs: Any, output: Any) -> None:
        out = output[0] if isinstance(output, (tuple, list)) else output
        self.features = pool_features(out)

    def pop(self) -> torch.Tensor:
        """The features of the last forward pass (and forget them).

        Raises:
            RuntimeError: no forward pass happened since the last ``pop``.
        """
        if self.features is None:
            raise RuntimeError("FeatureTap: no forward pass was recorded.")
        out, self.features = self.features, None
        return out

    def remove(self) -> None:
        """Detach the hook from the module."""
        self._handle.remove()
