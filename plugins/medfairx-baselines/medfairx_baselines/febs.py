"""FEBS — Fair Error-Bound Scaling (Harvard-FairSeg, Tian et al., ICLR 2024; docs/methods.md §2.2).

Segmentation only, 2D and 3D. The loss lives in :mod:`medfairx_baselines.febs_loss`:
``L = 0.5·CE + 0.5·(1/C) Σ_c D(P_c ⊙ w_{a_i}, T_c)`` with
``w_g = tanh((min_{g' present} E_{g'} / E_g)^γ)``. The minimum runs over the groups present in
the batch (the official code's zero-padded minimum, which zeroes all weights when a group is
absent, is not reproduced). Default recipe: the framework's; the official code fine-tunes a
converged baseline with the SEG-2D recipe (SGD 0.01, poly) — pass it via ``recipe``.

Search space (``medfairx bench --trials``, on top of the recipe's ``lr`` / ``weight_decay``):
``gamma`` uniform on [0.5, 2] around 1; ``ce_weight`` uniform on [0.25, 0.75] around 0.5.
"""

from __future__ import annotations

from typing import Any

import torch

from medfairx.errors import ConfigError
from medfairx.methods import Batch, RunContext, TaskData, TrainableMethod
from medfairx_baselines import FEBS_SPEC
from medfairx_baselines.febs_loss import febs_loss


class FEBS(TrainableMethod, spec=FEBS_SPEC):
    """Fair Error-Bound Scaling of the Dice loss by each group's batch error.

    Args:
        gamma: the exponent ``γ``.
        ce_weight: weight of the cross-entropy term (0.5).
        detach_weights: treat the group weights as constants for autograd [INFERRED].
        recipe: optional :class:`~medfairx.methods.TrainRecipe` overrides.
    """


    def __init__(
        self,
        gamma: float = 1.0,
        ce_weight: float = 0.5,
        detach_weights: bool = True,
        recipe: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(recipe=recipe)
        self.gamma = gamma
        self.ce_weight = ce_weight
        self.detach_weights = detach_weights

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        """Two short epochs."""
        return {"recipe": {"epochs": 2, "max_steps_per_epoch": 3, "batch_size": 16}}

    def on_fit_start(self, train: TaskData, val: TaskData, ctx: RunContext) -> None:
        """Check the task and the group codes."""
        if ctx.task != "segmentation":
            raise ConfigError(f"FEBS is a segmentation method; this run's task is {ctx.task!r}.")
        if train.groups is None:
            raise ConfigError(
                "FEBS needs group codes in the training data but train.groups is None; run it with a "
                "training grouping (it is tagged uses_groups_in_fit)."
            )

    def compute_loss(self, outputs: Any, batch: Batch, ctx: RunContext) -> torch.Tensor:
        """The FEBS loss of the batch."""
        return febs_loss(
            outputs, batch.y, batch.g, gamma=self.gamma, ce_weight=self.ce_weight, detach_weights=self.detach_weights
        )
