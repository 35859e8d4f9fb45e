"""Task losses and group-weighting primitives shared by every trainable method.

Conventions (docs/methods.md §0):

* **Classification** (binary included) uses ``C`` logits and softmax cross-entropy. For
  ``C = 2`` this equals BCE-with-logits on the logit difference ``z_1 - z_0``, so the one
  convention covers both; predicted scores are softmax probabilities ``(N, C)``.
* **Segmentation** uses the per-image loss ``ℓ_i = 0.5·CE_i + 0.5·Dice_i``, where ``CE_i`` is
  the mean pixel cross-entropy of image ``i`` and ``Dice_i`` is the soft Dice loss of
  :func:`soft_dice_loss` (softmax probabilities, background included, smoothing ``s=1e-5``,
  squared terms in the denominator, averaged over classes).

Losses are always computed in float32, also under autocast.

Shared by core (training loop) and the plugins medfairx-baselines, medfairx-fairdro, medfairx-qpnet and medfairx-spare.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medfairx.errors import ConfigError

DICE_SMOOTH = 1e-5


def _one_hot(target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(N, *spatial)`` labels → ``(N, C, *spatial)`` float one-hot."""
    return F.one_hot(target.long(), num_classes).movedim(-1, 1).to(torch.float32)


def soft_dice_loss(
    probs: torch.Tensor,
    target: torch.Tensor,
    *,
    smooth: float = DICE_SMOOTH,
    per_sample: bool = True,
) -> torch.Tensor:
    """Soft Dice loss ``1 − (2ΣPT + s)/(ΣP² + ΣT² + s)`` per class, averaged over classes.

    Args:
        probs: ``(N, C, *spatial)`` class probabilities (e.g. a softmax of logits).
        target: ``(N, *spatial)`` integer label maps, or ``(N, C, *spatial)`` one-hot /
            soft targets.
        smooth: the smoothing constant ``s``.
        per_sample: ``True``: sums run over each image's pixels and the result is ``(N,)``
            (the per-image loss of docs/methods.md §0). ``False``: sums run over the whole batch,
            as FairSeg's ``DiceLoss`` does, and the result is a scalar.

    Returns:
        ``(N,)`` per-image losses, or a scalar when ``per_sample`` is ``False``.
    """
    probs = probs.to(torch.float32)
    num_classes = probs.shape[1]
    t = target.to(torch.float32) if target.dim() == probs.dim() else _one_hot(target, num_classes)
    if t.shape != probs.shape:
        raise ConfigError(
            f"soft_dice_loss: target shape {tuple(target.shape)} does not match probabilities "
            f"{tuple(probs.shape)}; pass (N, *spatial) label maps or (N, C, *spatial) one-hot."
        )
    dims = tuple(range(2, probs.dim())) if per_sample else (0, *range(2, probs.dim()))
    inter = (probs * t).sum(dims)
    denom = (probs * probs).sum(dims) + (t * t).sum(dims)
    dice = 1.0 - (2.0 * inter + smooth) / (denom + smooth)  # (N, C) or (C,)
    return dice.mean(-1)


def per_sample_loss(logits: torch.Tensor, target: torch.Tensor, task: str) -> torch.Tensor:
    """The task loss of every sample, with gradient (docs/methods.md §0).

    Args:
        logits: ``(N, C)`` (classification) or ``(N, C, *spatial)`` (segmentation).
        target: ``(N,)`` class indices or ``(N, *spatial)`` label maps.
        task: ``"classification"`` or ``"segmentation"``.

    Returns:
        ``(N,)`` float32 losses: cross-entropy, or ``0.5·CE_i + 0.5·Dice_i`` per image.

    Raises:
        ConfigError: unknown task.
    """
    logits = logits.to(torch.float32)
    target = target.long()
    if task == "classification":
        return F.cross_entropy(logits, target, reduction="none")
    if task == "segmentation":
        ce = F.cross_entropy(logits, target, reduction="none").flatten(1).mean(1)
        dice = soft_dice_loss(torch.softmax(logits, dim=1), target)
        return 0.5 * ce + 0.5 * dice
    raise ConfigError(f"Unknown task {task!r}: expected 'classification' or 'segmentation'.")


def group_mean_losses(
    per_sample: torch.Tensor, groups: torch.Tensor, n_groups: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss of each group in a batch: ``L_g = Σ_{i∈B_g} ℓ_i / max(n_g, 1)``.

    Samples with a negative group code (outside every group) are ignored.

    Args:
        per_sample: ``(N,)`` losses (gradients flow through).
        groups: ``(N,)`` integer group codes.
        n_groups: ``K``.

    Returns:
        ``(losses, counts)``: ``(K,)`` group means (0 for absent groups) and ``(K,)``
        float batch counts ``n_g``.
    """
    groups = groups.long()
    valid = groups >= 0
    codes = torch.where(valid, groups, torch.zeros_like(groups))
    weights = valid.to(per_sample.dtype)
    sums = torch.zeros(n_groups, dtype=per_sample.dtype, device=per_sample.device)
    sums = sums.index_add(0, codes, per_sample * weights)
    counts = torch.zeros(n_groups, dtype=per_sample.dtype, device=per_sample.device)
    counts = counts.index_add(0, codes, weights)
    return sums / counts.clamp_min(1.0), counts


def groupdro_update(
    q: torch.Tensor,
    group_losses: torch.Tensor,
    *,
    eta: float,
    adjustment: torch.Tensor | None = None,
) -> torch.Tensor:
    """One exponentiated-gradient step on the GroupDRO weights (docs/methods.md §1.3, steps 2-3).

    ``q_g ← q_g · exp(η·(L_g + adj_g))`` then ``q ← q / Σq``; ``L_g`` is detached. An absent
    group (``L_g = 0``) keeps factor ``exp(η·adj_g)`` (1 when there is no adjustment).
    Computed in log space, so a large ``η·L`` cannot overflow.

    Args:
        q: ``(K,)`` current weights (a probability vector).
        group_losses: ``(K,)`` batch group losses ``L_g``.
        eta: the step size ``η``.
        adjustment: optional ``(K,)`` ``C/√N_g`` terms.

    Returns:
        The new ``(K,)`` weights (a new tensor; ``q`` is not modified).
    """
    adjusted = group_losses.detach().to(q.dtype)
    if adjustment is not None:
        adjusted = adjusted + adjustment.to(q.dtype)
    logits = torch.log(q) + eta * adjusted
    return torch.softmax(logits, dim=0)


def groupdro_adjustment(train_counts: torch.Tensor, c: float) -> torch.Tensor | None:
    """The generalisation adjustment ``C/√N_g`` (``None`` when ``C == 0``).

    Args:
        train_counts: ``(K,)`` training-set group sizes ``N_g`` (a group of size 0 gets no
            adjustment).
        c: the constant ``C``.
    """
    if c == 0:
        return None
    counts = train_counts.to(torch.float64)
    adj = torch.where(counts > 0, c / counts.clamp_min(1.0).sqrt(), torch.zeros_like(counts))
    return adj.to(torch.float32)
