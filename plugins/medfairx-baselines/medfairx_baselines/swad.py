"""SWAD (Cha et al., NeurIPS 2021; docs/methods.md §1.4): ERM with dense weight averaging over a
validation loss valley, then BatchNorm recalibration on the training data.

After every optimiser step the parameters enter the running segment average (an optimiser
step post-hook); after every epoch's validation the segment ends and LossValley receives it
with the score ``v`` of the current weights ``θ_t``: ``1 − worst-group val AUC`` for
classification when validation groups are available (else the validation loss), the
validation loss for segmentation. The final model is the valley average, or the last segment
if the valley was never detected (logged). Early stopping is off by default (``patience=0``)
because the average, not a checkpoint, is the output; the valley's death stops averaging but
training continues to ``recipe.epochs`` (as in the original code).

Search space (``medfairx bench --trials``, on top of the recipe's ``lr`` / ``weight_decay``):
``n_converge`` 1-5, ``n_tolerance`` 3-10 and ``tolerance_ratio`` uniform on [0.1, 0.5], around
Cha et al.'s 3, 6 and 0.3.
"""

from __future__ import annotations

import math
from itertools import islice
from typing import Any

import torch
from torch import nn

from medfairx.errors import ConfigError
from medfairx.methods import ArraySource, Optimization, RunContext, TaskData, TrainableMethod, TrainRecipe
from medfairx_baselines import SWAD_SPEC
from medfairx_baselines.swad_average import (
    LossValley,
    SegmentAverage,
    load_parameters,
    recalibrate_bn,
)

#: LossValley presets: (n_tolerance, tolerance_ratio); n_converge is 3 in both.
PRESETS: dict[str, tuple[int, float]] = {"original": (6, 0.3), "medfair": (9, 0.05)}
SCORES: tuple[str, ...] = ("auto", "worst_group_auc", "loss")


class SWAD(TrainableMethod, spec=SWAD_SPEC):
    """Stochastic weight averaging, densely, over the detected loss valley.

    Args:
        n_converge: ``N_s``.
        n_tolerance: ``N_e``.
        tolerance_ratio: ``r``.
        preset: ``None`` (use the three values above), ``"original"`` (3, 6, 0.3) or
            ``"medfair"`` (3, 9, 0.05); a preset overrides ``n_tolerance`` and
            ``tolerance_ratio``.
        score: validation score ``v``: ``"auto"`` (see the module docstring),
            ``"worst_group_auc"`` (``1 −`` worst-group AUC, classification) or ``"loss"``.
        bn_batches: batches used to recalibrate BatchNorm (``None``: one full pass over the
            training data, as MEDFAIR; the original uses 500).
        recipe: optional :class:`~medfairx.methods.TrainRecipe` overrides.

    Attributes:
        valley_: the :class:`~medfairx_baselines.swad_average.LossValley` of the last fit.
        swad_info_: convergence summary (converged, dead, included segments, threshold).
    """

    epochs_are_checkpoints = False  # per-epoch predictions use the current, not the averaged, weights
    default_recipe = {"patience": 0}

    def __init__(
        self,
        n_converge: int = 3,
        n_tolerance: int = 6,
        tolerance_ratio: float = 0.3,
        preset: str | None = None,
        score: str = "auto",
        bn_batches: int | None = None,
        recipe: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(recipe=recipe)
        self.n_converge = n_converge
        self.n_tolerance = n_tolerance
        self.tolerance_ratio = tolerance_ratio
        self.preset = preset
        self.score = score
        self.bn_batches = bn_batches

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        """Four short epochs with a 2/2 valley so that averaging can happen."""
        return {
            "n_converge": 2,
            "n_tolerance": 2,
            "recipe": {"epochs": 4, "max_steps_per_epoch": 2, "batch_size": 16},
        }

    def valley_params(self) -> tuple[int, int, float]:
        """``(N_s, N_e, r)`` after applying :attr:`preset`.

        Raises:
            ConfigError: unknown preset.
        """
        if self.preset is None:
            return int(self.n_converge), int(self.n_tolerance), float(self.tolerance_ratio)
        if self.preset not in PRESETS:
            raise ConfigError(f"SWAD: unknown preset {self.preset!r}; use one of {sorted(PRESETS)} or None.")
        n_e, r = PRESETS[self.preset]
        return int(self.n_converge), n_e, r

    def on_fit_start(self, train: TaskData, val: TaskData, ctx: RunContext) -> None:
        """Create the valley detector and the first segment."""
        if self.score not in SCORES:
            raise ConfigError(f"SWAD: unknown score {self.score!r}; use one of {', '.join(SCORES)}.")
        if self.score == "worst_group_auc" and (ctx.task != "classification" or val.groups is None):
            raise ConfigError("SWAD score 'worst_group_auc' needs a classification task with validation groups.")
        n_s, n_e, r = self.valley_params()
        self.valley_ = LossValley(n_s, n_e, r)
        self.segment_ = SegmentAverage()
        self.global_step_ = 0
        self.use_group_auc_ = ctx.task == "classification" and val.groups is not None and self.score != "loss"

    def configure_optimizer(
        self, model: nn.Module, ctx: RunContext, *, recipe: TrainRecipe | None = None, steps_per_epoch: int = 1
    ) -> Optimization:
        """The recipe's optimiser, with a post-step hook that feeds the segment average."""
        opt = super().configure_optimizer(model, ctx, recipe=recipe, steps_per_epoch=steps_per_epoch)

        def after_step(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
            self.global_step_ += 1
            self.segment_.update(self.model_, self.global_step_)

        opt.optimizer.register_step_post_hook(after_step)
        return opt

    def validation_score(self, record: dict[str, Any]) -> float:
        """``v`` (lower is better) from one trainer history record."""
        if self.use_group_auc_:
            vals = [v for v in (record.get("val_group_auc") or {}).values() if not math.isnan(v)]
            if vals:
                return 1.0 - min(vals)
            if not math.isnan(record.get("val_auc", math.nan)):
                return 1.0 - float(record["val_auc"])
        return float(record["val_loss"])

    def on_epoch_end(self, epoch: int, ctx: RunContext) -> None:
        """Close the epoch's segment and hand it to LossValley with this epoch's ``v``."""
        if self.segment_.count == 0:
            return
        v = self.validation_score(ctx.history[-1])
        was_converged, was_dead = self.valley_.converged, self.valley_.dead
        self.valley_.update(self.segment_.freeze(), v)
        if self.valley_.converged and not was_converged:
            ctx.log(
                f"[swad] converged at segment {self.valley_.converge_segment} (epoch {epoch}); "
                f"threshold {self.valley_.threshold:.4f}"
            )
        if self.valley_.dead and not was_dead:
            ctx.log(f"[swad] loss valley is dead at epoch {epoch}; averaging stopped.")

    def fit(self, train: TaskData, val: TaskData, ctx: RunContext) -> SWAD:
        """ERM training, then the valley average and BatchNorm recalibration."""
        super().fit(train, val, ctx)
        valley = self.valley_
        final = valley.finalize()
        if not valley.converged:
            ctx.log(
                f"[swad] the validation score never reached a loss valley in {len(valley.scores)} epochs; "
                "using the last segment's average (SWAD code behaviour)."
            )
        load_parameters(self.model_, final)
        recipe = self.recipe_for(ctx)
        source = ArraySource(train.images, self.device_)
        batches = (source.gather(idx)[0] for idx in source.sequential_batches(max(recipe.batch_size, 2)))
        if self.bn_batches is not None:
            batches = islice(batches, int(self.bn_batches))
        recalibrate_bn(self.model_, batches)
        self.swad_info_ = {
            "converged": valley.converged,
            "dead": valley.dead,
            "converge_segment": valley.converge_segment,
            "threshold": valley.threshold,
            "included_segments": list(valley.included) if valley.converged else [len(valley.scores)],
            "scores": list(valley.scores),
        }
        ctx.log(f"[swad] averaged segments (epochs) {self.swad_info_['included_segments']}")
        self.selected_epoch_ = None
        return self

    def extra_state(self) -> dict[str, Any]:
        """The valley summary."""
        return {"swad": dict(getattr(self, "swad_info_", {}))}

    def load_extra_state(self, state: dict[str, Any], ctx: RunContext) -> None:
        """Restore the valley summary."""
        self.swad_info_ = dict(state.get("swad", {}))
