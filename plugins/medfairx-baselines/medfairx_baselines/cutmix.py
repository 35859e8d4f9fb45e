"""CutMix baseline (docs/methods.md §1.6): ERM trained on CutMix batches.

The transform and the mixed loss live in :mod:`medfairx.methods.cutmix` (FairDi reuses them).
Classification uses ``λ'·ℓ(y_i) + (1−λ')·ℓ(y_π(i))``; segmentation pastes the label map with
the same box and uses the plain per-image loss.

Search space (``medfairx bench --trials``, on top of the recipe's ``lr`` / ``weight_decay``):
``beta`` log-uniform on [0.25, 4] around Yun et al.'s 1; ``prob`` uniform on [0.1, 1] around
0.5.
"""

from __future__ import annotations

from typing import Any

import torch

from medfairx.methods import Batch, CutMix, RunContext, TaskData, TrainableMethod, mixed_per_sample_loss
from medfairx_baselines import CUTMIX_SPEC


class CutMixERM(TrainableMethod, spec=CUTMIX_SPEC):
    """ERM + CutMix (applied after the recipe's flips, when ``recipe.augment`` is on).

    Pairs are drawn across the whole batch (the core transform's ``same_group_pairs`` option
    needs group codes, which this group-unaware method does not receive).

    Args:
        beta: ``β`` of ``λ ~ Beta(β, β)``.
        prob: probability of mixing a batch (0.5: the official CIFAR scripts; 1.0: ImageNet).
        recipe: optional :class:`~medfairx.methods.TrainRecipe` overrides.
    """


    def __init__(
        self,
        beta: float = 1.0,
        prob: float = 0.5,
        recipe: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(recipe=recipe)
        self.beta = beta
        self.prob = prob

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        """Two short epochs; every batch mixed."""
        return {"prob": 1.0, "recipe": {"epochs": 2, "max_steps_per_epoch": 3, "batch_size": 16}}

    def on_fit_start(self, train: TaskData, val: TaskData, ctx: RunContext) -> None:
        """A CutMix transform seeded from the run's seed."""
        self.cutmix_ = CutMix(self.beta, self.prob, seed=ctx.seed)

    def augment(self, batch: Batch, ctx: RunContext) -> Batch:
        """The recipe's flips, then CutMix."""
        return self.cutmix_(super().augment(batch, ctx))

    def compute_loss(self, outputs: Any, batch: Batch, ctx: RunContext) -> torch.Tensor:
        """Mean of the CutMix per-sample losses."""
        return mixed_per_sample_loss(outputs, batch, ctx.task).mean()
