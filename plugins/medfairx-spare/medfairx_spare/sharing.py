"""Partial sharing of SPARE's group models (docs/methods.md §5, RQ6 / Table 6).

A :class:`BranchedNet` is one shared trunk followed by one branch per group:

* ``mini`` — trunk = the classifier's ``encoder``, branches = copies of its linear ``head``;
* ``half`` — about half of the layers are group-specific [INFERRED split point]: for a monai
  ResNet the branches are ``layer3``, ``layer4``, pooling and the head (docs/methods.md §5); for a
  sequential encoder (``tiny_cnn``) the second half of its modules and the head;
* ``full`` — the whole network is shared (branches are identities), i.e. one model.

``none`` (separate models) needs no container. :class:`BranchView` exposes one branch as
an ordinary ``model(x) → logits`` network for prediction.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from medfairx.errors import ConfigError

SHARING_MODES: tuple[str, ...] = ("none", "mini", "half", "full")


def _half_split(encoder: nn.Module) -> tuple[nn.Module, nn.Module]:
    """``(first half, second half)`` of an encoder (see the module docstring)."""
    if all(hasattr(encoder, f"layer{i}") for i in range(1, 5)) and hasattr(encoder, "conv1"):
        stem: list[nn.Module] = [encoder.conv1, encoder.bn1, encoder.act]
        if not getattr(encoder, "no_max_pool", False):
            stem.append(encoder.maxpool)
        trunk = nn.Sequential(*stem, encoder.layer1, encoder.layer2)
        branch = nn.Sequential(encoder.layer3, encoder.layer4, encoder.avgpool, nn.Flatten(1))
        return trunk, branch
    if isinstance(encoder, nn.Sequential) and len(encoder) >= 2:
        mods = list(encoder.children())
        cut = len(mods) // 2
        return nn.Sequential(*mods[:cut]), nn.Sequential(*mods[cut:])
    raise ConfigError(
        f"SPARE sharing='half' knows how to split monai ResNets and sequential encoders, not "
        f"{type(encoder).__name__}; use sharing='none', 'mini' or 'full' with this backbone."
    )


class BranchedNet(nn.Module):
    """A shared trunk and one branch per group.

    Args:
        trunk: the shared part.
        branches: one module per group (same architecture).

    ``forward_all(x)`` returns ``(K, N, C)`` logits of every branch; ``forward(x)`` the
    mean over branches (a group-free view used only for the training loop's validation).
    """

    def __init__(self, trunk: nn.Module, branches: list[nn.Module]) -> None:
        super().__init__()
        self.trunk = trunk
        self.branches = nn.ModuleList(branches)

    def forward_branch(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Logits of branch ``k``."""
        return self.branches[k](self.trunk(x))

    def forward_all(self, x: torch.Tensor) -> torch.Tensor:
        """``(K, N, C)`` logits of every branch (the trunk runs once)."""
        z = self.trunk(x)
        return torch.stack([b(z) for b in self.branches])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mean logits over the branches."""
        return self.forward_all(x).mean(0)


class BranchView(nn.Module):
    """Branch ``k`` of a :class:`BranchedNet` as a plain network."""

    def __init__(self, net: BranchedNet, k: int) -> None:
        super().__init__()
        self.net = net
        self.k = int(k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of branch ``k``."""
        return self.net.forward_branch(x, self.k)


def build_branched(network: nn.Module, sharing: str, n_branches: int) -> BranchedNet:
    """Turn a freshly built classification network into a :class:`BranchedNet`.

    Args:
        network: a :class:`~medfairx.methods.backbones.ClassifierNet` (``encoder``, ``head``).
        sharing: ``"mini"``, ``"half"`` or ``"full"``.
        n_branches: number of groups ``K``.

    Raises:
        ConfigError: unknown mode, or a network that cannot be split.
    """
    if sharing not in SHARING_MODES or sharing == "none":
        raise ConfigError(f"build_branched: sharing must be 'mini', 'half' or 'full', got {sharing!r}.")
    if sharing == "full":
        return BranchedNet(network, [nn.Identity() for _ in range(n_branches)])
    encoder, head = getattr(network, "encoder", None), getattr(network, "head", None)
    if not isinstance(encoder, nn.Module) or not isinstance(head, nn.Module):
        raise ConfigError(
            f"SPARE sharing={sharing!r} needs a classifier with `encoder` and `head`; "
            f"{type(network).__name__} has none. Use a built-in classification backbone."
        )
    if sharing == "mini":
        return BranchedNet(encoder, [copy.deepcopy(head) for _ in range(n_branches)])
    trunk, rest = _half_split(encoder)
    return BranchedNet(trunk, [nn.Sequential(copy.deepcopy(rest), copy.deepcopy(head)) for _ in range(n_branches)])
