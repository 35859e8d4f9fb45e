"""FEBS — Fair Error-Bound Scaling for segmentation (Tian et al., ICLR 2024; docs/methods.md §2.2).

Per batch:

1. group error ``E_g = Σ_c D(P_c[B_g], T_c[B_g])`` — the soft Dice loss of §0 per class,
   summed over classes, computed over all pixels of all of group ``g``'s images;
2. group weight ``w_g = tanh((min_{g'} E_{g'} / E_g)^γ)`` where the minimum runs over the
   groups **present in the batch** (the official code takes it over a fixed-length array
   holding zeros for absent groups, which zeroes every weight — not reproduced);
3. ``L_FEBS = (1/C) Σ_c D(P_c ⊙ w_{a_i}, T_c)`` — every image's predicted probabilities are
   multiplied by its group's weight inside a batch-level soft Dice;
4. ``L = 0.5·CE + 0.5·L_FEBS`` with the batch-mean pixel cross-entropy.

Samples outside every group (code ``< 0``) are treated as one extra group [INFERRED]. The
weights are constants for autograd by default (``detach_weights=True``) [INFERRED: the paper
does not say; they act as scaling factors].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medfairx.errors import ConfigError
from medfairx.methods import DICE_SMOOTH, soft_dice_loss


def febs_group_errors(
    probs: torch.Tensor, target: torch.Tensor, groups: torch.Tensor, *, smooth: float = DICE_SMOOTH
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch-level group errors ``E_g`` of the groups present in the batch.

    Args:
        probs: ``(n, C, *spatial)`` softmax probabilities.
        target: ``(n, *spatial)`` integer label maps.
        groups: ``(n,)`` group codes (codes ``< 0`` form one extra group, reported as ``-1``).
        smooth: Dice smoothing ``s``.

    Returns:
        ``(codes, errors)``: the sorted group codes present and their ``E_g`` (same order).
    """
    num_classes = probs.shape[1]
    g = torch.where(groups < 0, torch.full_like(groups, -1), groups).long()
    codes = torch.unique(g)
    errors = torch.stack(
        [soft_dice_loss(probs[g == k], target[g == k], smooth=smooth, per_sample=False) * num_classes for k in codes]
    )
    return codes, errors


def febs_weights_from_errors(errors: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """``w_g = tanh((min E / E_g)^γ)`` over the given (present) groups' errors."""
    if errors.numel() == 0:
        raise ConfigError("FEBS needs at least one group in the batch.")
    ratio = errors.min() / errors.clamp_min(torch.finfo(errors.dtype).tiny)
    return torch.tanh(ratio.pow(gamma))


def febs_sample_weights(
    probs: torch.Tensor,
    target: torch.Tensor,
    groups: torch.Tensor,
    *,
    gamma: float = 1.0,
    smooth: float = DICE_SMOOTH,
) -> tuple[torch.Tensor, dict[int, float]]:
    """Per-image FEBS weights ``w_{a_i}`` and the group weights they come from.

    Returns:
        ``(weights, by_group)``: ``(n,)`` weights (with the graph of ``probs``; detach them
        for constant weights) and ``{group code: w_g}`` for the groups present (``-1`` =
        samples outside every group).
    """
    codes, errors = febs_group_errors(probs, target, groups, smooth=smooth)
    w_groups = febs_weights_from_errors(errors, gamma)
    g = torch.where(groups < 0, torch.full_like(groups, -1), groups).long()
    position = torch.searchsorted(codes, g)
    return w_groups[position], {int(k): float(w) for k, w in zip(codes.tolist(), w_groups.detach(), strict=False)}


def febs_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    groups: torch.Tensor,
    *,
    gamma: float = 1.0,
    ce_weight: float = 0.5,
    detach_weights: bool = True,
    smooth: float = DICE_SMOOTH,
) -> torch.Tensor:
    """The FEBS training loss ``ce_weight·CE + (1 − ce_weight)·L_FEBS`` of a batch.

    Args:
        logits: ``(n, C, *spatial)`` segmentation logits.
        target: ``(n, *spatial)`` integer label maps.
        groups: ``(n,)`` group codes.
        gamma: the exponent ``γ``.
        ce_weight: weight of the cross-entropy term (0.5 in the official code).
        detach_weights: treat ``w_{a_i}`` as constants for autograd.
        smooth: Dice smoothing ``s``.

    Returns:
        A scalar float32 loss.

    Raises:
        ConfigError: ``logits`` are not segmentation logits.
    """
    if logits.dim() < 4:
        raise ConfigError(f"FEBS is a segmentation loss; got logits of shape {tuple(logits.shape)}.")
    logits = logits.to(torch.float32)
    target = target.long()
    probs = torch.softmax(logits, dim=1)
    weights, _ = febs_sample_weights(probs, target, groups, gamma=gamma, smooth=smooth)
    if detach_weights:
        weights = weights.detach()
    scaled = probs * weights.view(-1, *([1] * (probs.dim() - 1)))
    l_febs = soft_dice_loss(scaled, target, smooth=smooth, per_sample=False)
    ce = F.cross_entropy(logits, target)
    return ce_weight * ce + (1.0 - ce_weight) * l_febs
