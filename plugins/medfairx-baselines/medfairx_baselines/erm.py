"""ERM (docs/methods.md §1.1): the framework loop with the mean per-sample task loss.

Search space (``medfairx bench --trials``): the recipe's ``lr`` and ``weight_decay`` only
(:data:`medfairx.specs.RECIPE_SEARCH_SPACE`).
"""

from __future__ import annotations

from typing import Any

from medfairx.methods import TrainableMethod
from medfairx_baselines import ERM_SPEC


class ERM(TrainableMethod, spec=ERM_SPEC):
    """Empirical risk minimisation, ``L = (1/n) Σ_i ℓ_i``, with the task recipe.

    Args:
        recipe: optional :class:`~medfairx.methods.TrainRecipe` overrides.
    """


    def __init__(self, recipe: dict[str, Any] | None = None) -> None:
        super().__init__(recipe=recipe)

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        """Two short epochs."""
        return {"recipe": {"epochs": 2, "max_steps_per_epoch": 3, "batch_size": 16}}
