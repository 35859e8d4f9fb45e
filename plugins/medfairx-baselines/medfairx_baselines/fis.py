"""FIS — Fair Identity Scaling (FairVision, Luo et al. 2024; docs/methods.md §2.1) as a baseline.

The weights live in :mod:`medfairx.methods.fis` (FairDi reuses them). Variant
``"fairvision"`` (default) forwards an extra batch of ``m`` samples of every group through
the current model under ``no_grad`` at every step (per-group endless streams,
:class:`~medfairx_baselines.group_sampling.GroupBatchStream`) to measure the group distances
``o_g = S_ε(L̂_g, L̂)``; variant ``"fairdi"`` uses the batch's own losses (FairDi eq. (1)).
Loss ``L = (1/n) Σ_i ((1−c)·s^I_i + c·s^G_i)·ℓ_i``.

Search space (``medfairx bench --trials``, on top of the recipe's ``lr`` / ``weight_decay``):
``c`` uniform on [0, 1] (0.5 in FairVision); ``temperature`` log-uniform on [0.25, 4] around 1;
``blur`` log-uniform on [0.01, 1] around 0.1.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from medfairx.errors import ConfigError
from medfairx.methods import (
    ArraySource,
    Batch,
    FairIdentityScaler,
    RunContext,
    TaskData,
    TrainableMethod,
    default_augment,
    fis_loss,
    mixed_per_sample_loss,
    per_sample_loss,
)
from medfairx_baselines import FIS_SPEC
from medfairx_baselines.group_sampling import GroupBatchStream


class FIS(TrainableMethod, spec=FIS_SPEC):
    """Fair Identity Scaling.

    Args:
        variant: ``"fairvision"`` (official code) or ``"fairdi"`` (FairDi eq. (1)).
        c: mixing coefficient of the group weight.
        temperature: ``T`` of both softmaxes.
        right_asymptote: ``R`` (1 in the released scripts).
        group_batch_size: ``m``, extra samples per group and step (``fairvision``).
        blur: geomloss blur of the Sinkhorn divergence (``ε = blur²``).
        ot_backend: ``"sinkhorn"`` (log-domain torch), ``"pot"`` (POT, slow) or
            ``"wasserstein_1d"`` (cheap ε→0 approximation; tag such results).
        detach_weights: make the individual weights constants for autograd (the official
            code keeps their gradient).
        fis_rescale: multiply the loss by ``n`` (undo the ≈1/n scale of the weights).
        group_forward_mode: ``"train"`` (official: the extra forward passes update
            BatchNorm statistics) or ``"eval"``.
        recipe: optional :class:`~medfairx.methods.TrainRecipe` overrides.

    Attributes:
        last_distances_: the group distances ``o_g`` of the last step.
    """


    def __init__(
        self,
        variant: str = "fairvision",
        c: float = 0.5,
        temperature: float = 1.0,
        right_asymptote: float = 1.0,
        group_batch_size: int = 64,
        blur: float = 0.1,
        ot_backend: str = "sinkhorn",
        detach_weights: bool = False,
        fis_rescale: bool = False,
        group_forward_mode: str = "train",
        recipe: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(recipe=recipe)
        self.variant = variant
        self.c = c
        self.temperature = temperature
        self.right_asymptote = right_asymptote
        self.group_batch_size = group_batch_size
        self.blur = blur
        self.ot_backend = ot_backend
        self.detach_weights = detach_weights
        self.fis_rescale = fis_rescale
        self.group_forward_mode = group_forward_mode

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        """Two short epochs, 8 extra samples per group."""
        return {"group_batch_size": 8, "recipe": {"epochs": 2, "max_steps_per_epoch": 3, "batch_size": 16}}

    def on_fit_start(self, train: TaskData, val: TaskData, ctx: RunContext) -> None:
        """Validate options; set up the scaler and (fairvision) the per-group streams."""
        if train.groups is None:
            raise ConfigError(
                "FIS needs group codes in the training data but train.groups is None; run it with a "
                "training grouping (it is tagged uses_groups_in_fit)."
            )
        if self.group_forward_mode not in ("train", "eval"):
            raise ConfigError(f"FIS: group_forward_mode must be 'train' or 'eval', got {self.group_forward_mode!r}.")
        self.scaler_ = FairIdentityScaler(
            c=self.c, variant=self.variant, temperature=self.temperature, right_asymptote=self.right_asymptote,
            blur=self.blur, ot_backend=self.ot_backend, detach_weights=self.detach_weights, rescale=self.fis_rescale,
        )
        self.last_distances_: dict[int, float] = {}
        self.streams_: GroupBatchStream | None = None
        if self.variant == "fairvision" and self.c != 0:
            self.streams_ = GroupBatchStream(np.asarray(train.groups), self.group_batch_size, ctx.seed)
            self.source_ = ArraySource(train.images, self.device_, labels=train.labels, groups=train.groups)
            self.augment_extra_ = bool(self.recipe_for(ctx).augment)

    def _group_losses(self, ctx: RunContext) -> dict[int, torch.Tensor]:
        """Losses ``L̂_g`` of one extra batch per group, current model, no gradient."""
        assert self.streams_ is not None
        model = self.model_
        was_training = model.training
        model.train(self.group_forward_mode == "train")
        out: dict[int, torch.Tensor] = {}
        try:
            with torch.no_grad():
                for g in self.streams_.present:
                    idx = self.streams_.next_batch(g)
                    x, y, gg = self.source_.gather(idx)
                    b = default_augment(
                        Batch(x, y, gg, idx), spatial_dims=ctx.spatial_dims, enabled=self.augment_extra_
                    )
                    out[g] = per_sample_loss(self.forward(model, b, ctx), b.y, ctx.task).float()
        finally:
            model.train(was_training)
        return out

    def compute_loss(self, outputs: Any, batch: Batch, ctx: RunContext) -> torch.Tensor:
        """``(1/n) Σ_i w_i·ℓ_i`` with the FIS weights of the variant (CutMix-aware losses)."""
        losses = mixed_per_sample_loss(outputs, batch, ctx.task)
        if self.c != 0:
            group_losses = self._group_losses(ctx) if self.streams_ is not None else None
            self.last_distances_ = self.scaler_.distances(losses, batch.g, group_losses)
        weights = self.scaler_.weights(losses, batch.g, distances=self.last_distances_)
        return fis_loss(losses, weights, rescale=self.fis_rescale)

    def extra_state(self) -> dict[str, Any]:
        """The last step's group distances (for inspection; not needed to predict)."""
        return {"last_distances": dict(getattr(self, "last_distances_", {}))}
