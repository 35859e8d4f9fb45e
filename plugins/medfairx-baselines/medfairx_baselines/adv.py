"""ADV — adversarial fair representations with gradient reversal (docs/methods.md §1.5, GRL variant).

``L = ℓ_task + CE(h(GRL_λ(z)), a)`` with a single optimiser over the network and the
adversary ``h = Linear(d→128) → ReLU → Linear(128→K)``. ``z`` is the encoder's pooled feature
(classification) or the globally average-pooled UNet bottleneck (segmentation, [INFERRED]),
captured during the ordinary forward pass. ``λ_p = λ_max·(2/(1+e^{−10p}) − 1)`` with ``p`` the
fraction of the planned optimiser steps done. The adversary minimises its own error; the
reversed gradient makes the encoder maximise it. Inference uses ``g∘f`` only.

Search space (``medfairx bench --trials``, on top of the recipe's ``lr`` / ``weight_decay``):
``adv_weight`` log-uniform on [0.1, 10] around 1; ``lambda_max`` uniform on [0.1, 1].
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medfairx.errors import ConfigError
from medfairx.methods import (
    Batch,
    FeatureTap,
    GroupAdversary,
    Optimization,
    RunContext,
    TaskData,
    TrainableMethod,
    TrainRecipe,
    feature_module,
    grad_reverse,
    grl_lambda,
    group_count,
    make_optimization,
    per_sample_loss,
)
from medfairx_baselines import ADV_SPEC


class ADV(TrainableMethod, spec=ADV_SPEC):
    """Gradient-reversal adversarial training against the sensitive attribute.

    Args:
        lambda_max: ``λ_max`` of the schedule.
        adv_weight: weight of the adversary's cross-entropy in the total loss (1 in §1.5).
        hidden: adversary width.
        schedule: ``"dann"`` (the ``λ_p`` ramp) or ``"constant"`` (``λ = λ_max``).
        recipe: optional :class:`~medfairx.methods.TrainRecipe` overrides.

    Attributes:
        adversary_: the fitted :class:`~medfairx.methods.GroupAdversary`.
        lambda_: the last ``λ`` used.
    """


    def __init__(
        self,
        lambda_max: float = 1.0,
        adv_weight: float = 1.0,
        hidden: int = 128,
        schedule: str = "dann",
        recipe: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(recipe=recipe)
        self.lambda_max = lambda_max
        self.adv_weight = adv_weight
        self.hidden = hidden
        self.schedule = schedule

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        """Two short epochs with a small adversary."""
        return {"hidden": 16, "recipe": {"epochs": 2, "max_steps_per_epoch": 3, "batch_size": 16}}

    def on_fit_start(self, train: TaskData, val: TaskData, ctx: RunContext) -> None:
        """Tap the representation and build the adversary (feature size from one eval pass)."""
        if self.schedule not in ("dann", "constant"):
            raise ConfigError(f"ADV: unknown schedule {self.schedule!r}; use 'dann' or 'constant'.")
        if train.groups is None:
            raise ConfigError(
                "ADV needs group codes in the training data but train.groups is None; run it with a "
                "training grouping (it is tagged uses_groups_in_fit)."
            )
        self.n_groups_ = group_count(train)
        if self.n_groups_ < 2:
            raise ConfigError("ADV needs at least two groups to predict; the training grouping has fewer.")
        module = feature_module(self.model_, ctx.task)
        self.tap_ = FeatureTap(module)
        from medfairx.methods import images_to_float

        x = images_to_float(torch.from_numpy(np.ascontiguousarray(train.images[:2])).to(self.device_))
        was_training = self.model_.training
        self.model_.eval()
        with torch.no_grad():
            self.model_(x)
        self.model_.train(was_training)
        d = int(self.tap_.pop().shape[1])
        self.adversary_ = GroupAdversary(d, self.n_groups_, self.hidden).to(self.device_)
        self.step_ = 0
        self.lambda_ = 0.0

    def configure_optimizer(
        self, model: nn.Module, ctx: RunContext, *, recipe: TrainRecipe | None = None, steps_per_epoch: int = 1
    ) -> Optimization:
        """One optimiser over the network and the adversary; remembers the planned steps."""
        recipe = recipe or self.recipe_for(ctx)
        self.total_steps_ = max(recipe.epochs * max(steps_per_epoch, 1), 1)
        params = list(model.parameters()) + list(self.adversary_.parameters())
        return make_optimization(params, recipe, steps_per_epoch)

    def compute_loss(self, outputs: Any, batch: Batch, ctx: RunContext) -> torch.Tensor:
        """``mean ℓ_task + adv_weight·CE(h(GRL_λ(z)), a)`` (codes -1 ignored by the CE)."""
        if self.schedule == "dann":
            self.lambda_ = grl_lambda(self.step_ / self.total_steps_, self.lambda_max)
        else:
            self.lambda_ = float(self.lambda_max)
        self.step_ += 1
        task_loss = per_sample_loss(outputs, batch.y, ctx.task).mean()
        z = self.tap_.pop()
        adv_logits = self.adversary_(grad_reverse(z.float(), self.lambda_)).float()
        g = batch.g.long()
        if not bool((g >= 0).any()):
            return task_loss + 0.0 * adv_logits.sum()
        adv_loss = F.cross_entropy(adv_logits, g, ignore_index=-1)
        return task_loss + self.adv_weight * adv_loss

    def fit(self, train: TaskData, val: TaskData, ctx: RunContext) -> ADV:
        """Train (see the module docstring); the feature hook is removed afterwards."""
        try:
            super().fit(train, val, ctx)
        finally:
            tap = getattr(self, "tap_", None)
            if tap is not None:
                tap.remove()
                del self.tap_
        return self

    def extra_state(self) -> dict[str, Any]:
        """The adversary's weights (not needed to predict; kept for analysis)."""
        return {
            "adversary": {k: v.detach().cpu().clone() for k, v in self.adversary_.state_dict().items()},
            "n_groups": self.n_groups_,
        }

    def load_extra_state(self, state: dict[str, Any], ctx: RunContext) -> None:
        """Rebuild the adversary from :meth:`extra_state`."""
        if "adversary" in state:
            weights = state["adversary"]
            d = int(weights["net.0.weight"].shape[1])
            self.n_groups_ = int(state.get("n_groups", weights["net.2.weight"].shape[0]))
            self.adversary_ = GroupAdversary(d, self.n_groups_, int(weights["net.0.weight"].shape[0]))
            self.adversary_.load_state_dict(weights)
            self.adversary_.to(self.device_)
