"""GroupDRO (Sagawa et al., ICLR 2020), exactly as docs/methods.md §1.3.

Per batch: group losses ``L_g`` (0 for absent groups), optional ``L̃_g = L_g + C/√N_g``,
``q ← q·exp(η·L̃_g)`` renormalised (``q`` persists across batches and epochs and is saved in
the state dict), loss ``Σ_g q_g·L_g`` with ``q`` constant for autograd. Samples outside every
group (code -1) do not contribute to the loss.

Search space (``medfairx bench --trials``, on top of the recipe's ``lr`` / ``weight_decay``):
``eta`` log-uniform on [1e-3, 1e-1] around the paper's 0.01; ``c`` (generalisation adjustment)
uniform on [0, 4], the range Sagawa et al. searched.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from medfairx.errors import ConfigError
from medfairx.methods import (
    Batch,
    RunContext,
    TaskData,
    TrainableMethod,
    group_count,
    group_mean_losses,
    groupdro_adjustment,
    groupdro_update,
    per_sample_loss,
)
from medfairx_baselines import GROUPDRO_SPEC


class GroupDRO(TrainableMethod, spec=GROUPDRO_SPEC):
    """Minimise the worst-group loss with online group weights ``q``.

    Args:
        eta: step size ``η`` of the exponentiated-gradient update of ``q``.
        c: generalisation-adjustment constant ``C`` (``0`` disables ``C/√N_g``).
        recipe: optional :class:`~medfairx.methods.TrainRecipe` overrides.

    Attributes:
        q_: ``(K,)`` current group weights (a probability vector).
    """


    def __init__(self, eta: float = 0.01, c: float = 0.0, recipe: dict[str, Any] | None = None) -> None:
        super().__init__(recipe=recipe)
        self.eta = eta
        self.c = c

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        """A larger step so ``q`` visibly moves in two short epochs."""
        return {"eta": 0.1, "recipe": {"epochs": 2, "max_steps_per_epoch": 3, "batch_size": 16}}

    def on_fit_start(self, train: TaskData, val: TaskData, ctx: RunContext) -> None:
        """Start ``q`` uniform over the grouping's ``K`` groups; compute ``C/√N_g``."""
        if train.groups is None:
            raise ConfigError(
                "GroupDRO needs group codes in the training data but train.groups is None; "
                "run it with a training grouping (it is tagged uses_groups_in_fit)."
            )
        groups = np.asarray(train.groups)
        k = group_count(train)
        if k < 1:
            raise ConfigError("GroupDRO: the training grouping has no groups (n_groups < 1).")
        self.n_groups_ = k
        self.q_ = torch.full((k,), 1.0 / k, dtype=torch.float32, device=self.device_)
        counts = torch.from_numpy(np.bincount(groups[groups >= 0], minlength=k).astype(np.float32))
        adj = groupdro_adjustment(counts, self.c)
        self.adjustment_ = None if adj is None else adj.to(self.device_)

    def compute_loss(self, outputs: Any, batch: Batch, ctx: RunContext) -> torch.Tensor:
        """Update ``q`` with this batch's group losses and return ``Σ_g q_g·L_g``."""
        losses = per_sample_loss(outputs, batch.y, ctx.task)
        group_losses, _ = group_mean_losses(losses, batch.g, self.n_groups_)
        self.q_ = groupdro_update(self.q_, group_losses, eta=self.eta, adjustment=self.adjustment_)
        return (self.q_ * group_losses).sum()

    def extra_state(self) -> dict[str, Any]:
        """The group weights ``q``."""
        return {"q": self.q_.detach().cpu().clone(), "n_groups": self.n_groups_}

    def load_extra_state(self, state: dict[str, Any], ctx: RunContext) -> None:
        """Restore ``q``."""
        if "q" in state:
            self.q_ = state["q"].to(self.device_)
            self.n_groups_ = int(state.get("n_groups", self.q_.numel()))
