"""FairDRO / DuetFair (docs/methods.md §6): dMoE + subgroup-conditioned DRO.

* Network and routing: :class:`~medfairx_fairdro.dmoe.DMoE` (attribute-aware inference).
* Loss: :func:`~medfairx_fairdro.losses.fairdro_aggregate` of the per-image losses
  ``ℓ_i = 0.5·CE_i + 0.5·Dice_i``: per-group ``R_g = (1−ω)·mean + ω·CVaR_α`` (or the KL tail),
  equal weights over the groups of the batch (or GroupDRO weights ``q``, which persist across
  batches and epochs and are saved in the state dict).
* Batches: :class:`~medfairx.methods.GroupStratifiedSampler` guarantees
  ``min_per_group`` samples of every present group per batch, so the per-group CVaR is not
  just the per-group maximum. If ``K·min_per_group`` exceeds the batch size, the guarantee is
  lowered to ``⌊batch_size / K⌋`` (logged).

Samples outside every group (code ``-1``) fill free batch slots, are routed by router 0 and
do not contribute to the loss.

Search space (``medfairx bench --trials``, on top of the recipe's ``lr`` / ``weight_decay``):
the CVaR level ``alpha`` uniform on [0.1, 0.5] (0.25); the tail weight ``omega`` uniform on [0,
1] (1); ``top_k`` 1-4.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from medfairx.errors import ConfigError
from medfairx.methods import (
    Batch,
    GroupStratifiedSampler,
    IndexSampler,
    RunContext,
    TaskData,
    group_count,
    per_sample_loss,
)
from medfairx_fairdro import FAIRDRO_SPEC
from medfairx_fairdro.dmoe import DMoE
from medfairx_fairdro.losses import check_fairdro_options, fairdro_aggregate


class FairDRO(DMoE, spec=FAIRDRO_SPEC):
    """dMoE trained with FairDRO's per-group tail-risk aggregation on stratified batches.

    Args:
        alpha: CVaR tail fraction ``α`` (``α = 1`` → group-mean loss).
        omega: weight ``ω`` of the tail in ``R_g = (1−ω)·mean + ω·Tail``.
        tail: ``"cvar"`` (exact discrete CVaR_α) or ``"kl"`` (``t⁻¹·log mean exp(t·ℓ)``).
        t: temperature of the KL tail.
        across: ``"mean"`` (equal weights over present groups) or ``"groupdro"``.
        eta: GroupDRO step size ``η`` (``across="groupdro"`` only).
        min_per_group: samples of every present group guaranteed in each batch.
        n_experts: see :class:`~medfairx_fairdro.dmoe.DMoE`.
        top_k: see :class:`~medfairx_fairdro.dmoe.DMoE`.
        expert_width: see :class:`~medfairx_fairdro.dmoe.DMoE`.
        expert_dropout: see :class:`~medfairx_fairdro.dmoe.DMoE`.
        router_noise_eval: see :class:`~medfairx_fairdro.dmoe.DMoE`.
        max_attr: see :class:`~medfairx_fairdro.dmoe.DMoE`.
        channels: see :class:`~medfairx_fairdro.dmoe.DMoE`.
        recipe: optional :class:`~medfairx.methods.TrainRecipe` overrides.

    Attributes:
        n_groups_: ``K``, groups of the training grouping.
        q_: ``(K,)`` GroupDRO weights (``across="groupdro"``), else ``None``.
        last_risks_: ``(K,)`` detached ``R_g`` of the last training batch (for inspection).
    """


    def __init__(
        self,
        alpha: float = 0.25,
        omega: float = 1.0,
        tail: str = "cvar",
        t: float = 1.0,
        across: str = "mean",
        eta: float = 0.01,
        min_per_group: int = 4,
        n_experts: int = 8,
        top_k: int = 2,
        expert_width: int = 4,
        expert_dropout: float = 0.1,
        router_noise_eval: bool = False,
        max_attr: int | None = None,
        channels: Sequence[int] | None = None,
        recipe: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            n_experts=n_experts, top_k=top_k, expert_width=expert_width, expert_dropout=expert_dropout,
            router_noise_eval=router_noise_eval, max_attr=max_attr, channels=channels, recipe=recipe,
        )
        self.alpha = alpha
        self.omega = omega
        self.tail = tail
        self.t = t
        self.across = across
        self.eta = eta
        self.min_per_group = min_per_group

    def on_fit_start(self, train: TaskData, val: TaskData, ctx: RunContext) -> None:
        """Validate the options; size the group weights ``q`` (uniform) for ``across="groupdro"``."""
        check_fairdro_options(
            alpha=self.alpha, omega=self.omega, tail=self.tail, t=self.t, across=self.across, eta=self.eta
        )
        super().on_fit_start(train, val, ctx)
        assert train.groups is not None  # count_routers has checked
        self.n_groups_ = group_count(train, minimum=1)
        self.q_: torch.Tensor | None = None
        if self.across == "groupdro":
            self.q_ = torch.full((self.n_groups_,), 1.0 / self.n_groups_, dtype=torch.float32, device=self.device_)
        self.last_risks_: torch.Tensor | None = None

    def make_sampler(self, train: TaskData, ctx: RunContext) -> IndexSampler:
        """A :class:`GroupStratifiedSampler` with ``min_per_group`` (lowered to fit the batch).

        Raises:
            ConfigError: ``min_per_group < 1``, or fewer batch slots than groups.
        """
        if int(self.min_per_group) < 1:
            raise ConfigError(f"FairDRO: min_per_group must be >= 1, got {self.min_per_group!r}.")
        assert train.groups is not None
        groups = np.asarray(train.groups)
        n_present = len(np.unique(groups[groups >= 0]))
        batch_size = self.recipe_for(ctx).batch_size
        m = int(self.min_per_group)
        if n_present and n_present * m > batch_size:
            if n_present > batch_size:
                raise ConfigError(
                    f"FairDRO: {n_present} groups cannot all appear in a batch of {batch_size}; raise "
                    "recipe.batch_size or use a coarser grouping."
                )
            m = batch_size // n_present
            ctx.log(
                f"[{self._label()}] {n_present} groups x min_per_group={self.min_per_group} exceed the batch of "
                f"{batch_size}; guaranteeing {m} sample(s) per group instead."
            )
        return GroupStratifiedSampler(groups, batch_size, min_per_group=m, seed=ctx.seed)

    def compute_loss(self, outputs: Any, batch: Batch, ctx: RunContext) -> torch.Tensor:
        """FairDRO's aggregation of the batch's per-image losses (updates ``q`` if used)."""
        if batch.g is None:
            raise self.missing_groups_error()
        losses = per_sample_loss(outputs, batch.y, ctx.task)
        res = fairdro_aggregate(
            losses, batch.g, self.n_groups_, alpha=self.alpha, omega=self.omega, tail=self.tail, t=self.t,
            across=self.across, q=self.q_, eta=self.eta,
        )
        if res.q is not None:
            self.q_ = res.q
        self.last_risks_ = res.risks.detach()
        return res.loss

    def extra_state(self) -> dict[str, Any]:
        """Router count, group count and the GroupDRO weights ``q`` (if any)."""
        state = super().extra_state()
        state["n_groups"] = self.n_groups_
        state["q"] = None if self.q_ is None else self.q_.detach().cpu().clone()
        return state

    def load_extra_state(self, state: dict[str, Any], ctx: RunContext) -> None:
        """Restore ``n_groups_`` and ``q``."""
        self.n_groups_ = int(state.get("n_groups", getattr(self, "n_routers_", 1)))
        q = state.get("q")
        self.q_ = None if q is None else q.to(self.device_)
