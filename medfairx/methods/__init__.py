"""The public API for method authors: import what a method needs from here.

Importing this package stays light (no torch): :class:`Method`, :class:`RunContext`,
:class:`TaskData`, :class:`TrainRecipe` and :func:`group_count` are plain; every other name
is loaded from its module (which imports torch) on first use. Groups of names:

* contract: ``Method``, ``RunContext``, ``TaskData``, ``TrainRecipe``, ``group_count``;
* training loop: ``TrainableMethod``, ``Batch``, ``Optimization``, ``TrainResult``,
  ``train_model``, ``evaluate_model``, ``predict_proba``, ``make_optimization``,
  ``layered_recipe``, ``eval_batch_size``, ``cpu_state``, ``default_augment``,
  ``classification_auc``;
* networks and devices: ``build_backbone``, ``resolve_device``, ``seed_everything``,
  ``images_to_float``, ``ArraySource``, ``standardized`` (frozen features scaled as the
  head's ``Standardize`` layer scales them, for methods without a network);
* losses: ``per_sample_loss``, ``soft_dice_loss``, ``DICE_SMOOTH``, ``group_mean_losses``,
  ``groupdro_update``, ``groupdro_adjustment``;
* samplers: ``IndexSampler``, ``WeightedSampler``, ``GroupStratifiedSampler``;
* building blocks shared by several methods: ``CutMix``, ``mixed_per_sample_loss``
  (CutMix), ``FairIdentityScaler``, ``fis_loss`` (Fair Identity Scaling),
  ``GradientReversal``, ``grad_reverse``, ``grl_lambda``, ``GroupAdversary``,
  ``FeatureTap``, ``feature_module`` (adversarial debiasing).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from medfairx.contracts import TaskData, TrainRecipe
from medfairx.methods.base import Method, RunContext, group_count

if TYPE_CHECKING:
    from medfairx.methods.backbones import build_backbone
    from medfairx.methods.cutmix import CutMix, mixed_per_sample_loss
    from medfairx.methods.device import ArraySource, images_to_float, resolve_device, seed_everything
    from medfairx.methods.encoders import standardized
    from medfairx.methods.fis import FairIdentityScaler, fis_loss
    from medfairx.methods.grl import (
        FeatureTap,
        GradientReversal,
        GroupAdversary,
        feature_module,
        grad_reverse,
        grl_lambda,
    )
    from medfairx.methods.losses import (
        DICE_SMOOTH,
        group_mean_losses,
        groupdro_adjustment,
        groupdro_update,
        per_sample_loss,
        soft_dice_loss,
    )
    from medfairx.methods.sampling import IndexSampler, WeightedSampler
    from medfairx.methods.stratified_sampling import GroupStratifiedSampler
    from medfairx.methods.trainable import (
        Batch,
        Optimization,
        TrainableMethod,
        TrainResult,
        classification_auc,
        cpu_state,
        default_augment,
        eval_batch_size,
        evaluate_model,
        layered_recipe,
        make_optimization,
        predict_proba,
        train_model,
    )

_LAZY: dict[str, str] = {
    **dict.fromkeys(["build_backbone"], "backbones"),
    **dict.fromkeys(["CutMix", "mixed_per_sample_loss"], "cutmix"),
    **dict.fromkeys(["ArraySource", "images_to_float", "resolve_device", "seed_everything"], "device"),
    **dict.fromkeys(["standardized"], "encoders"),
    **dict.fromkeys(["FairIdentityScaler", "fis_loss"], "fis"),
    **dict.fromkeys(
        ["FeatureTap", "GradientReversal", "GroupAdversary", "feature_module", "grad_reverse", "grl_lambda"], "grl"
    ),
    **dict.fromkeys(
        [
            "DICE_SMOOTH",
            "group_mean_losses",
            "groupdro_adjustment",
            "groupdro_update",
            "per_sample_loss",
            "soft_dice_loss",
        ],
        "losses",
    ),
    **dict.fromkeys(["IndexSampler", "WeightedSampler"], "sampling"),
    **dict.fromkeys(["GroupStratifiedSampler"], "stratified_sampling"),
    **dict.fromkeys(
        [
            "Batch",
            "Optimization",
            "TrainResult",
            "TrainableMethod",
            "classification_auc",
            "cpu_state",
            "default_augment",
            "eval_batch_size",
            "evaluate_model",
            "layered_recipe",
            "make_optimization",
            "predict_proba",
            "train_model",
        ],
        "trainable",
    ),
}

__all__ = [
    "DICE_SMOOTH",
    "ArraySource",
    "Batch",
    "CutMix",
    "FairIdentityScaler",
    "FeatureTap",
    "GradientReversal",
    "GroupAdversary",
    "GroupStratifiedSampler",
    "IndexSampler",
    "Method",
    "Optimization",
    "RunContext",
    "TaskData",
    "TrainRecipe",
    "TrainResult",
    "TrainableMethod",
    "WeightedSampler",
    "build_backbone",
    "classification_auc",
    "cpu_state",
    "default_augment",
    "eval_batch_size",
    "evaluate_model",
    "feature_module",
    "fis_loss",
    "grad_reverse",
    "grl_lambda",
    "group_count",
    "group_mean_losses",
    "groupdro_adjustment",
    "groupdro_update",
    "images_to_float",
    "layered_recipe",
    "make_optimization",
    "mixed_per_sample_loss",
    "per_sample_loss",
    "predict_proba",
    "resolve_device",
    "seed_everything",
    "soft_dice_loss",
    "standardized",
    "train_model",
]


def __getattr__(name: str) -> Any:
    """Load a torch-backed name from its module on first use (and cache it here)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'medfairx.methods' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"medfairx.methods.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
