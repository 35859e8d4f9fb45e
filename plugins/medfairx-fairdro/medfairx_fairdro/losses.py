"""FairDRO's subgroup-conditioned aggregation of per-image losses (docs/methods.md §6, "FairDRO loss").

Given per-image losses ``ℓ_i`` (``0.5·CE_i + 0.5·Dice_i``, docs/methods.md §0) and group codes:

1. for every group ``g`` present in the batch, a tail risk of its losses: the exact discrete
   ``CVaR_α`` (:func:`discrete_cvar`, default) or, with ``tail="kl"``, the KL-DRO / tilted
   loss ``t⁻¹·log mean exp(t·ℓ)`` (:func:`tilted_risk`);
2. within-group risk ``R_g = (1−ω)·mean_{B_g} ℓ + ω·Tail_g``;
3. across groups: equal weights over the groups present, ``L = (1/|G_B|) Σ_{g∈G_B} R_g``
   (``across="mean"``, default), or GroupDRO weights ``q`` (docs/methods.md §1.3) over the ``R_g``
   (``across="groupdro"``: ``q ← normalise(q·exp(η·R_g))``, ``L = Σ_g q_g·R_g``, absent groups
   have ``R_g = 0``; the update is :func:`medfairx.methods.groupdro_update`).

With ``tail="kl"`` and ``ω = 1`` (the default), ``R_g`` is exactly the tilted loss of the spec;
``ω < 1`` mixes it with the mean like the CVaR tail ([INFERRED]). Samples with a negative
group code (outside every group) do not contribute. ``α = 1`` gives ``CVaR = mean``, so
``α = 1`` (or ``ω = 0``) reduces FairDRO to the group-mean loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from medfairx.errors import ConfigError
from medfairx.methods import groupdro_update

TAILS: tuple[str, ...] = ("cvar", "kl")
ACROSS: tuple[str, ...] = ("mean", "groupdro")


def check_fairdro_options(
    *, alpha: float, omega: float, tail: str, t: float, across: str, eta: float
) -> None:
    """Validate FairDRO's hyper-parameters.

    Raises:
        ConfigError: a value outside its domain (``0 < α ≤ 1``, ``0 ≤ ω ≤ 1``, ``t > 0``,
            ``η ≥ 0``, known ``tail`` and ``across``).
    """
    problems = []
    if not 0.0 < float(alpha) <= 1.0:
        problems.append(f"alpha must lie in (0, 1], got {alpha!r}")
    if not 0.0 <= float(omega) <= 1.0:
        problems.append(f"omega must lie in [0, 1], got {omega!r}")
    if tail not in TAILS:
        problems.append(f"tail must be one of {', '.join(TAILS)}, got {tail!r}")
    if not float(t) > 0.0:
        problems.append(f"t must be > 0, got {t!r}")
    if across not in ACROSS:
        problems.append(f"across must be one of {', '.join(ACROSS)}, got {across!r}")
    if not float(eta) >= 0.0:
        problems.append(f"eta must be >= 0, got {eta!r}")
    if problems:
        raise ConfigError("FairDRO: " + "; ".join(problems) + ".")


def discrete_cvar(losses: torch.Tensor, alpha: float) -> torch.Tensor:
    """Exact discrete ``CVaR_α`` of ``n`` losses (the mean of the worst ``α`` fraction).

    The top ``⌊α·n⌋`` losses get weight 1, the next one the fractional weight
    ``α·n − ⌊α·n⌋``, and the sum is divided by ``α·n``. If ``α·n < 1`` the result is the
    maximum. ``α = 1`` gives the mean. Gradients flow to the losses that carry weight.

    Args:
        losses: ``(n,)`` losses, ``n ≥ 1``.
        alpha: tail fraction in ``(0, 1]``.

    Returns:
        A scalar tensor.
    """
    n = losses.numel()
    if n == 0:
        raise ConfigError("discrete_cvar: needs at least one loss.")
    mass = float(alpha) * n
    if mass <= 1.0:
        return losses.max()
    ordered = torch.sort(losses.reshape(-1), descending=True).values
    full = int(math.floor(mass))
    weights = torch.zeros(n, dtype=ordered.dtype, device=ordered.device)
    weights[:full] = 1.0
    if full < n:
        weights[full] = mass - full
    return (weights * ordered).sum() / mass


def tilted_risk(losses: torch.Tensor, t: float = 1.0) -> torch.Tensor:
    """KL-DRO / tilted loss ``t⁻¹·log mean exp(t·ℓ)``, computed with log-sum-exp.

    Args:
        losses: ``(n,)`` losses, ``n ≥ 1``.
        t: temperature ``t > 0``.
    """
    n = losses.numel()
    if n == 0:
        raise ConfigError("tilted_risk: needs at least one loss.")
    flat = losses.reshape(-1)
    return (torch.logsumexp(t * flat, dim=0) - math.log(n)) / t


def within_group_risks(
    per_sample: torch.Tensor,
    groups: torch.Tensor,
    n_groups: int,
    *,
    alpha: float = 0.25,
    omega: float = 1.0,
    tail: str = "cvar",
    t: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``R_g = (1−ω)·mean_{B_g} ℓ + ω·Tail_g`` for every group of a batch.

    Args:
        per_sample: ``(N,)`` losses (gradients flow through).
        groups: ``(N,)`` group codes; negative codes are ignored.
        n_groups: ``K``.
        alpha: CVaR tail fraction.
        omega: weight of the tail term.
        tail: ``"cvar"`` or ``"kl"``.
        t: temperature of the ``"kl"`` tail.

    Returns:
        ``(risks, present)``: ``(K,)`` risks (0 for groups absent from the batch) and a
        ``(K,)`` boolean mask of the groups present.
    """
    groups = groups.to(per_sample.device).long().reshape(-1)
    losses = per_sample.reshape(-1)
    risks: list[torch.Tensor] = []
    present = torch.zeros(n_groups, dtype=torch.bool, device=losses.device)
    zero = losses.new_zeros(())
    for g in range(n_groups):
        members = losses[groups == g]
        if members.numel() == 0:
            risks.append(zero)
            continue
        present[g] = True
        tail_risk = discrete_cvar(members, alpha) if tail == "cvar" else tilted_risk(members, t)
        risks.append((1.0 - omega) * members.mean() + omega * tail_risk)
    return torch.stack(risks) if risks else losses.new_zeros(0), present


@dataclass(frozen=True)
class FairDROAggregate:
    """What :func:`fairdro_aggregate` computed for one batch.

    Attributes:
        loss: the scalar training loss.
        risks: ``(K,)`` within-group risks ``R_g`` (0 for absent groups).
        present: ``(K,)`` mask of the groups present in the batch.
        q: the updated GroupDRO weights (``across="groupdro"``), else ``None``.
    """

    loss: torch.Tensor
    risks: torch.Tensor
    present: torch.Tensor
    q: torch.Tensor | None = None


def fairdro_aggregate(
    per_sample: torch.Tensor,
    groups: torch.Tensor,
    n_groups: int,
    *,
    alpha: float = 0.25,
    omega: float = 1.0,
    tail: str = "cvar",
    t: float = 1.0,
    across: str = "mean",
    q: torch.Tensor | None = None,
    eta: float = 0.01,
) -> FairDROAggregate:
    """FairDRO's batch loss from per-image losses (module docstring, steps 1-3).

    Args:
        per_sample: ``(N,)`` per-image losses.
        groups: ``(N,)`` group codes (negative = outside every group, ignored).
        n_groups: ``K``.
        alpha: CVaR tail fraction ``α``.
        omega: tail weight ``ω``.
        tail: ``"cvar"`` or ``"kl"``.
        t: temperature of the ``"kl"`` tail.
        across: ``"mean"`` (equal weights over present groups) or ``"groupdro"``.
        q: ``(K,)`` current GroupDRO weights (required for ``across="groupdro"``).
        eta: GroupDRO step size ``η``.

    Returns:
        A :class:`FairDROAggregate`. A batch without any grouped sample gives a zero loss
        that still depends on the graph (so ``backward`` works).

    Raises:
        ConfigError: invalid options, or ``across="groupdro"`` without ``q``.
    """
    check_fairdro_options(alpha=alpha, omega=omega, tail=tail, t=t, across=across, eta=eta)
    risks, present = within_group_risks(per_sample, groups, n_groups, alpha=alpha, omega=omega, tail=tail, t=t)
    new_q: torch.Tensor | None = None
    if across == "groupdro":
        if q is None:
            raise ConfigError("fairdro_aggregate: across='groupdro' needs the current weights q.")
        new_q = groupdro_update(q, risks, eta=eta)
    if not bool(present.any()):
        loss = per_sample.sum() * 0.0
    elif new_q is not None:
        loss = (new_q.to(risks.dtype) * risks).sum()
    else:
        loss = risks[present].mean()
    return FairDROAggregate(loss, risks, present, new_q)
