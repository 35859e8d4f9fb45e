"""Group-balanced resampling (docs/methods.md §1.2): ERM with a stratum-balanced weighted sampler.

Sample weights ``w_i = 1/N_{k(i)}`` (strata: group, group × label, or class); every epoch
draws ``N_train`` positions with replacement from a generator seeded by ``(seed, epoch)``
(``WeightedRandomSampler(w, N_train, replacement=True, generator=seeded)`` semantics).

Search space (``medfairx bench --trials``, on top of the recipe's ``lr`` / ``weight_decay``):
``resample_which`` in {group, balanced} (group, or group x label strata).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medfairx.errors import ConfigError
from medfairx.methods import IndexSampler, RunContext, TaskData, TrainableMethod, WeightedSampler
from medfairx_baselines import RESAMPLING_SPEC
from medfairx_baselines.group_sampling import STRATA, stratum_weights


class Resampling(TrainableMethod, spec=RESAMPLING_SPEC):
    """ERM on group-balanced resampled epochs.

    Args:
        resample_which: the stratum ``k(i)``: ``"group"`` (``a_i``, default), ``"balanced"``
            (``(a_i, y_i)``) or ``"class"`` (``y_i``). Samples outside every group (code -1)
            form a stratum of their own.
        recipe: optional :class:`~medfairx.methods.TrainRecipe` overrides.

    Attributes:
        weights_: ``(N_train,)`` the sampling weights of the last fit.
    """


    def __init__(self, resample_which: str = "group", recipe: dict[str, Any] | None = None) -> None:
        super().__init__(recipe=recipe)
        self.resample_which = resample_which

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        """Two short epochs."""
        return {"recipe": {"epochs": 2, "max_steps_per_epoch": 3, "batch_size": 16}}

    def make_sampler(self, train: TaskData, ctx: RunContext) -> IndexSampler:
        """A :class:`~medfairx.methods.WeightedSampler` with ``w_i = 1/N_{k(i)}``.

        Raises:
            ConfigError: unknown stratum, or the stratum needs groups / class labels that the
                training data lacks.
        """
        if self.resample_which not in STRATA:
            raise ConfigError(
                f"Resampling: unknown resample_which {self.resample_which!r}; use one of {', '.join(STRATA)}."
            )
        if self.resample_which != "class" and train.groups is None:
            raise ConfigError(
                "Resampling needs group codes in the training data but train.groups is None; run it "
                "with a training grouping (it is tagged uses_groups_in_fit)."
            )
        labels = None if train.labels is None or np.asarray(train.labels).ndim != 1 else train.labels
        self.weights_ = stratum_weights(train.groups, labels, self.resample_which)
        return WeightedSampler(self.weights_, ctx.seed, num_samples=len(train))
