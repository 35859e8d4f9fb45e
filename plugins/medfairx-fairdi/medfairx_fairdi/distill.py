"""Knowledge-distillation primitives (FairDi eq. (3), docs/methods.md §3; Hinton et al. 2015).

* :func:`kl_divergence` — ``KL(p ‖ q) = Σ_k p_k·log(p_k/q_k)`` over the class axis with both
  distributions clamped to ``[eps, 1−eps]``; for two classes it equals the binary form
  ``p·log(p/q) + (1−p)·log((1−p)/(1−q))`` of :func:`binary_kl` (``p = P(class 1)``).
* :func:`distillation_kl` — the per-sample KL between a student and a temperature-softened
  teacher, in either direction:

  - ``"paper"`` (FairDi eq. (3), literal): ``KL(p_s ‖ p_t^τ)``, ``p_s = softmax(z_s)`` (no τ on
    the student), ``p_t^τ = softmax(z_t/τ)``;
  - ``"hinton"``: ``KL(p_t^τ ‖ p_s^τ)`` with both softened by τ.

  Segmentation logits ``(N, C, *spatial)`` give the KL of every pixel, averaged per image.
* :func:`select_by_group` — each sample's row of a stack of per-group outputs (the teacher
  of the sample's own group).
* :func:`distillation_objective` — eq. (3): ``(1/n) Σ_i [λτ²·KL_i + (1−λ)·w_i·ℓ_i]``.

Probabilities are clamped and the logarithms taken in float64 (``1 − 1e-7`` is not a
float32 number); results are float32, also under autocast.
"""

from __future__ import annotations

import torch

from medfairx.errors import ConfigError

KD_DIRECTIONS: tuple[str, ...] = ("paper", "hinton")
#: Probabilities are clamped to ``[KL_EPS, 1 − KL_EPS]`` before logarithms (docs/methods.md §3).
KL_EPS = 1e-7


def binary_kl(p: torch.Tensor, q: torch.Tensor, *, eps: float = KL_EPS) -> torch.Tensor:
    """Elementwise binary KL ``p·log(p/q) + (1−p)·log((1−p)/(1−q))``.

    Args:
        p: probabilities of the positive class under the first distribution.
        q: probabilities of the positive class under the second distribution.
        eps: both are clamped to ``[eps, 1−eps]`` (in float64).

    Returns:
        A tensor of the broadcast shape of ``p`` and ``q`` (float32).
    """
    p = p.to(torch.float64).clamp(eps, 1.0 - eps)
    q = q.to(torch.float64).clamp(eps, 1.0 - eps)
    return (p * torch.log(p / q) + (1.0 - p) * torch.log((1.0 - p) / (1.0 - q))).to(torch.float32)


def kl_divergence(p: torch.Tensor, q: torch.Tensor, *, dim: int = 1, eps: float = KL_EPS) -> torch.Tensor:
    """Categorical ``KL(p ‖ q) = Σ_k p_k·log(p_k/q_k)`` over ``dim`` with clamped probabilities.

    Args:
        p: probabilities (summing to 1 over ``dim``).
        q: probabilities of the same shape.
        dim: the class axis.
        eps: both are clamped to ``[eps, 1−eps]`` (for two classes this is exactly
            :func:`binary_kl` of the class-1 probabilities).

    Returns:
        ``p``'s shape without ``dim`` (float32).
    """
    p = p.to(torch.float64).clamp(eps, 1.0 - eps)
    q = q.to(torch.float64).clamp(eps, 1.0 - eps)
    return (p * torch.log(p / q)).sum(dim).to(torch.float32)


def distillation_kl(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    *,
    tau: float,
    direction: str = "paper",
    eps: float = KL_EPS,
) -> torch.Tensor:
    """Per-sample KL between student and softened teacher (see the module docstring).

    Args:
        student_logits: ``(N, C)`` or ``(N, C, *spatial)``.
        teacher_logits: the same shape (no gradient is needed through it).
        tau: the temperature ``τ > 0``.
        direction: ``"paper"`` — ``KL(softmax(z_s) ‖ softmax(z_t/τ))`` (FairDi eq. (3));
            ``"hinton"`` — ``KL(softmax(z_t/τ) ‖ softmax(z_s/τ))``.
        eps: probability clamp.

    Returns:
        ``(N,)`` float32 values; for segmentation the mean over pixels of each image.

    Raises:
        ConfigError: unknown direction, non-positive ``tau`` or mismatched shapes.
    """
    if direction not in KD_DIRECTIONS:
        raise ConfigError(f"Unknown kd_direction {direction!r}; use one of {', '.join(KD_DIRECTIONS)}.")
    if not tau > 0:
        raise ConfigError(f"Distillation temperature tau must be > 0, got {tau}.")
    if student_logits.shape != teacher_logits.shape:
        raise ConfigError(
            f"distillation_kl: student logits {tuple(student_logits.shape)} and teacher logits "
            f"{tuple(teacher_logits.shape)} must have the same shape."
        )
    zs = student_logits.to(torch.float32)
    zt = teacher_logits.to(torch.float32)
    p_t = torch.softmax(zt / tau, dim=1)
    if direction == "paper":
        kl = kl_divergence(torch.softmax(zs, dim=1), p_t, dim=1, eps=eps)
    else:
        kl = kl_divergence(p_t, torch.softmax(zs / tau, dim=1), dim=1, eps=eps)
    return kl.flatten(1).mean(1) if kl.dim() > 1 else kl


def select_by_group(stacked: torch.Tensor, groups: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row ``i`` of ``stacked[groups[i]]``: every sample's output from its own group's model.

    Args:
        stacked: ``(G, N, ...)`` outputs of ``G`` per-group models on the same ``N`` samples.
        groups: ``(N,)`` group codes; codes outside ``[0, G)`` (e.g. −1) have no model.

    Returns:
        ``(selected, valid)``: ``(N, ...)`` outputs (zeros where ``valid`` is false) and the
        ``(N,)`` boolean mask of samples whose group has a model.
    """
    g = groups.to(stacked.device).long()
    valid = (g >= 0) & (g < stacked.shape[0])
    codes = torch.where(valid, g, torch.zeros_like(g))
    index = codes.view(1, -1, *([1] * (stacked.dim() - 2))).expand(1, *stacked.shape[1:])
    selected = stacked.gather(0, index).squeeze(0)
    mask = valid.view(-1, *([1] * (selected.dim() - 1)))
    return torch.where(mask, selected, torch.zeros_like(selected)), valid


def distillation_objective(
    kl: torch.Tensor,
    losses: torch.Tensor,
    weights: torch.Tensor,
    *,
    lam: float,
    tau: float,
    kl_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """FairDi eq. (3): ``(1/n) Σ_i [λτ²·KL_i + (1−λ)·w_i·ℓ_i]``.

    Args:
        kl: ``(n,)`` per-sample KL terms.
        losses: ``(n,)`` per-sample task losses ``ℓ_i`` (with gradient).
        weights: ``(n,)`` sample weights ``w_i`` (FIS weights in FairDi).
        lam: ``λ`` in ``[0, 1]``.
        tau: ``τ`` (the ``τ²`` factor keeps gradient magnitudes comparable across ``τ``).
        kl_mask: optional ``(n,)`` boolean mask; samples where it is false contribute no KL
            (e.g. samples outside every group have no teacher).

    Returns:
        A scalar.

    Raises:
        ConfigError: ``lam`` outside ``[0, 1]``.
    """
    if not 0.0 <= lam <= 1.0:
        raise ConfigError(f"Distillation weight lambda must be in [0, 1], got {lam}.")
    kl = kl.to(torch.float32)
    if kl_mask is not None:
        kl = torch.where(kl_mask.to(kl.device), kl, torch.zeros_like(kl))
    per_sample = lam * tau**2 * kl + (1.0 - lam) * weights.to(torch.float32) * losses.to(torch.float32)
    return per_sample.mean()
