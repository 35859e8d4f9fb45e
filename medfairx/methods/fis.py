"""FIS — Fair Identity Scaling weights (FairVision, Luo et al. 2024; docs/methods.md §2.1).

The per-sample weight mixes an individual ("hard sample") and a group ("hard group") term,
``w_i = (1−c)·s^I_i + c·s^G_i``, and the loss is ``L_FIS = (1/n) Σ_i w_i·ℓ_i``. Two variants:

* ``"fairvision"`` (official code, the stand-alone FIS baseline's default):
  ``s^I = softmax_batch(ℓ/T)·R``; group distances ``o_g = S_ε(L̂_g, L̂)`` between the losses
  ``L̂_g`` of an extra batch of ``m`` samples of every group (no grad) and their
  concatenation ``L̂``; ``s^G_i = softmax_batch(o_{a_i}/T)·R`` — a softmax over the batch's
  samples, so a group's total weight grows with its count in the batch.
* ``"fairdi"`` (FairDi eq. (1), literal): ``s^I = softmax_batch(ℓ/T)·R``,
  ``o_g = S_ε(L, L_g)`` between the batch losses and group ``g``'s batch losses,
  ``s^G(g) = softmax over the groups present in the batch of o_g/T``, ``·R``
  (``T = R = 1`` gives eq. (1) exactly).

Gradients: ``s^I`` is differentiable unless ``detach=True`` (the official code does not
detach); ``s^G`` is computed from loss values without gradient. Samples outside every group
(code ``< 0``) get ``s^G_i = 0`` and are left out of the group softmax [INFERRED].

:class:`FairIdentityScaler` bundles the hyper-parameters; FairDi calls it with ``c = 0``
(teachers) and ``c = 0.5`` (backbone, student).

Shared by the plugins medfairx-baselines (FIS) and medfairx-fairdi.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from medfairx.errors import ConfigError
from medfairx.methods.ot import (
    OT_BACKENDS,
    sinkhorn_divergences_to_pool,
)

FIS_VARIANTS: tuple[str, ...] = ("fairvision", "fairdi")


def individual_weights(losses: torch.Tensor, *, temperature: float = 1.0, right_asymptote: float = 1.0) -> torch.Tensor:
    """``s^I_i = softmax_i(ℓ_i/T)·R`` over the batch (log-sum-exp stable; keeps the graph)."""
    return torch.softmax(losses.to(torch.float32) / temperature, dim=0) * right_asymptote


def group_distances_fairvision(
    group_losses: Mapping[int, torch.Tensor], *, blur: float = 0.1, backend: str = "sinkhorn"
) -> dict[int, float]:
    """``o_g = S_ε(L̂_g, L̂)`` with ``L̂ = concat_g L̂_g`` (variant ``fairvision``).

    Args:
        group_losses: ``{group: losses of that group's extra batch}``.
        blur: geomloss blur (``ε = blur²``).
        backend: OT backend (see :mod:`medfairx.methods.ot`).
    """
    if not group_losses:
        raise ConfigError("FIS: no group loss samples were given.")
    pool = torch.cat([v.detach().reshape(-1).to(torch.float64).cpu() for v in group_losses.values()])
    return sinkhorn_divergences_to_pool(
        {g: v.detach().reshape(-1) for g, v in group_losses.items()}, pool, blur=blur, backend=backend
    )


def group_distances_batch(
    losses: torch.Tensor, groups: torch.Tensor, *, blur: float = 0.1, backend: str = "sinkhorn"
) -> dict[int, float]:
    """``o_g = S_ε(L, L_g)`` for the groups present in the batch (variant ``fairdi``)."""
    values = losses.detach().reshape(-1).to(torch.float64).cpu()
    codes = groups.detach().reshape(-1).cpu()
    samples = {int(g): values[codes == g] for g in torch.unique(codes[codes >= 0]).tolist()}
    if not samples:
        return {}
    # = {g: sinkhorn_divergence(values, samples[g])}, with OT_ε(L, L) solved once per batch
    return sinkhorn_divergences_to_pool(samples, values, blur=blur, backend=backend, pool_first=True)


def group_weights(
    groups: torch.Tensor,
    distances: Mapping[int, float],
    *,
    variant: str = "fairvision",
    temperature: float = 1.0,
    right_asymptote: float = 1.0,
) -> torch.Tensor:
    """Per-sample group weights ``s^G_i`` (no gradient).

    Args:
        groups: ``(n,)`` group codes of the batch (base images under CutMix).
        distances: ``{group: o_g}``; must cover every group code ``≥ 0`` in the batch.
        variant: ``"fairvision"`` (softmax over the batch's samples) or ``"fairdi"``
            (softmax over the groups present).
        temperature: ``T``.
        right_asymptote: ``R``.

    Returns:
        ``(n,)`` float32 weights on ``groups``' device (0 for codes ``< 0``).

    Raises:
        ConfigError: unknown variant or a group without a distance.
    """
    if variant not in FIS_VARIANTS:
        raise ConfigError(f"Unknown FIS variant {variant!r}; use one of {', '.join(FIS_VARIANTS)}.")
    g = groups.detach().long().cpu()
    valid = g >= 0
    missing = sorted(set(torch.unique(g[valid]).tolist()) - set(distances))
    if missing:
        raise ConfigError(f"FIS: no group distance for group(s) {missing} present in the batch.")
    out = torch.zeros(len(g), dtype=torch.float32)
    if bool(valid.any()):
        if variant == "fairvision":
            o = torch.tensor([float(distances[int(k)]) for k in g[valid].tolist()], dtype=torch.float64)
            out[valid] = (torch.softmax(o / temperature, dim=0) * right_asymptote).to(torch.float32)
        else:
            present = sorted(set(g[valid].tolist()))
            o = torch.tensor([float(distances[k]) for k in present], dtype=torch.float64)
            per_group = dict(zip(present, (torch.softmax(o / temperature, dim=0) * right_asymptote).tolist(), strict=False))
            out[valid] = torch.tensor([per_group[k] for k in g[valid].tolist()], dtype=torch.float32)
    return out.to(groups.device)


def fis_weights(
    losses: torch.Tensor,
    groups: torch.Tensor,
    distances: Mapping[int, float],
    *,
    c: float = 0.5,
    variant: str = "fairvision",
    temperature: float = 1.0,
    right_asymptote: float = 1.0,
    detach: bool = False,
) -> torch.Tensor:
    """``w_i = (1−c)·s^I_i + c·s^G_i`` (see the module docstring)."""
    s_i = individual_weights(losses, temperature=temperature, right_asymptote=right_asymptote)
    if detach:
        s_i = s_i.detach()
    if c == 0:
        return s_i
    s_g = group_weights(groups, distances, variant=variant, temperature=temperature, right_asymptote=right_asymptote)
    return (1.0 - c) * s_i + c * s_g


def fis_loss(losses: torch.Tensor, weights: torch.Tensor, *, rescale: bool = False) -> torch.Tensor:
    """``L_FIS = (1/n) Σ_i w_i·ℓ_i``, times ``n`` when ``rescale`` (the ``fis_rescale`` option)."""
    total = (weights * losses.to(torch.float32)).sum()
    return total if rescale else total / losses.numel()


@dataclass(frozen=True)
class FairIdentityScaler:
    """FIS with fixed hyper-parameters: ``scaler(losses, groups, group_losses=None)``.

    Attributes:
        c: mixing coefficient between individual (``1−c``) and group (``c``) weights.
        variant: ``"fairvision"`` or ``"fairdi"``.
        temperature: ``T``.
        right_asymptote: ``R``.
        blur: geomloss blur of the Sinkhorn divergence (``ε = blur²``).
        ot_backend: ``"sinkhorn"``, ``"pot"`` or ``"wasserstein_1d"``.
        detach_weights: make ``s^I`` a constant for autograd.
        rescale: multiply the loss by ``n`` (``fis_rescale``).
    """

    c: float = 0.5
    variant: str = "fairvision"
    temperature: float = 1.0
    right_asymptote: float = 1.0
    blur: float = 0.1
    ot_backend: str = "sinkhorn"
    detach_weights: bool = False
    rescale: bool = False

    def __post_init__(self) -> None:
        if self.variant not in FIS_VARIANTS:
            raise ConfigError(f"Unknown FIS variant {self.variant!r}; use one of {', '.join(FIS_VARIANTS)}.")
        if self.ot_backend not in OT_BACKENDS:
            raise ConfigError(f"Unknown OT backend {self.ot_backend!r}; use one of {', '.join(OT_BACKENDS)}.")
        if not 0.0 <= self.c <= 1.0:
            raise ConfigError(f"FIS: c must be in [0, 1], got {self.c}.")
        if not self.temperature > 0:
            raise ConfigError(f"FIS: temperature must be > 0, got {self.temperature}.")

    def distances(
        self, losses: torch.Tensor, groups: torch.Tensor, group_losses: Mapping[int, torch.Tensor] | None = None
    ) -> dict[int, float]:
        """The group distances ``o_g`` of the variant.

        Raises:
            ConfigError: ``fairvision`` without ``group_losses``.
        """
        if self.variant == "fairdi":
            return group_distances_batch(losses, groups, blur=self.blur, backend=self.ot_backend)
        if group_losses is None:
            raise ConfigError("FIS variant 'fairvision' needs the extra per-group loss samples (group_losses).")
        return group_distances_fairvision(group_losses, blur=self.blur, backend=self.ot_backend)

    def weights(
        self,
        losses: torch.Tensor,
        groups: torch.Tensor,
        group_losses: Mapping[int, torch.Tensor] | None = None,
        *,
        distances: Mapping[int, float] | None = None,
    ) -> torch.Tensor:
        """Per-sample weights ``w_i`` (pass ``distances`` to reuse already computed ``o_g``)."""
        if distances is None:
            distances = {} if self.c == 0 else self.distances(losses, groups, group_losses)
        return fis_weights(
            losses, groups, distances, c=self.c, variant=self.variant, temperature=self.temperature,
            right_asymptote=self.right_asymptote, detach=self.detach_weights,
        )

    def __call__(
        self, losses: torch.Tensor, groups: torch.Tensor, group_losses: Mapping[int, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """``L_FIS`` of a batch of per-sample losses (with gradient)."""
        return fis_loss(losses, self.weights(losses, groups, group_losses), rescale=self.rescale)
