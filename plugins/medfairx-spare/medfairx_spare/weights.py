"""SPARE stage 1: fixed sample weights from minimal perturbations (docs/methods.md §5, Algorithm 1).

For a target group ``t`` and every training sample ``x``:

* utility distance ``δ^u(x)`` — the smallest untargeted perturbation that changes the decision
  of ``f_t^ref`` (the diagnosis model trained on ``D_t``);
* similarity distance ``δ^s(x)`` — 0 if the group predictor already predicts ``t``, else the
  smallest perturbation that makes ``f_g`` predict ``t`` (targeted);
* ``δ = α·δ^u + (1−α)·δ^s`` (Eq. 2), optionally divided by its median over D
  (``delta_scale``), and ``w = exp(−δ)`` (Algorithm 1, line 5).

The perturbation solvers live in :mod:`medfairx_spare.perturbation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from medfairx.errors import ConfigError
from medfairx.methods import TaskData, predict_proba
from medfairx_spare.perturbation import perturbation_distances

#: SPARE §5.2.2: most in-group weights should exceed this value.
IN_GROUP_THRESHOLD = 0.8


def combined_distance(delta_u: np.ndarray, delta_s: np.ndarray, alpha: float) -> np.ndarray:
    """Eq. (2): ``δ = α·δ^u + (1−α)·δ^s``.

    Raises:
        ConfigError: ``alpha`` outside ``[0, 1]``.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"SPARE: alpha must be in [0, 1], got {alpha}.")
    return alpha * np.asarray(delta_u, dtype=np.float64) + (1.0 - alpha) * np.asarray(delta_s, dtype=np.float64)


def weights_from_distance(delta: np.ndarray, *, delta_scale: bool = False) -> np.ndarray:
    """``w = exp(−δ)``, or ``exp(−δ / median(δ))`` with ``delta_scale`` (a zero median is
    left unscaled)."""
    d = np.asarray(delta, dtype=np.float64)
    if delta_scale and d.size:
        med = float(np.median(d))
        if med > 0:
            d = d / med
    return np.exp(-d)


def similarity_distance(
    group_model: nn.Module,
    images: np.ndarray,
    target: int,
    *,
    predicted_groups: np.ndarray | None = None,
    batch_size: int = 128,
    **solver: Any,
) -> np.ndarray:
    """``δ^s``: 0 where ``f_g`` predicts ``target`` already, else the targeted perturbation size.

    Args:
        group_model: ``f_g`` (``K`` logits).
        images: ``(N, C, *spatial)`` training images.
        target: the group ``t``.
        predicted_groups: ``argmax f_g(x)`` if already computed.
        batch_size: search batch size.
        **solver: options of :func:`~medfairx_spare.perturbation.minimal_perturbation`.
    """
    if predicted_groups is None:
        predicted_groups = predict_proba(group_model, _images_only(images), batch_size=batch_size, amp=False).argmax(1)
    out = np.zeros(len(images), dtype=np.float64)
    rows = np.flatnonzero(np.asarray(predicted_groups) != target)
    if rows.size:
        out[rows] = perturbation_distances(
            group_model, images[rows], targets=np.full(rows.size, int(target)), batch_size=batch_size, **solver
        )
    return out


def utility_distance(reference_model: nn.Module, images: np.ndarray, *, batch_size: int = 128, **solver: Any) -> np.ndarray:
    """``δ^u``: the untargeted perturbation size that changes ``f_t^ref``'s own decision."""
    return perturbation_distances(reference_model, images, targets=None, batch_size=batch_size, **solver)


@dataclass
class SpareWeights:
    """Stage-1 quantities of one target group.

    Attributes:
        target: the group ``t``.
        delta_u: ``(N,)`` utility distances.
        delta_s: ``(N,)`` similarity distances.
        delta: ``(N,)`` combined (and, with ``delta_scale``, rescaled) distances.
        weights: ``(N,)`` ``exp(−δ)``.
    """

    target: int
    delta_u: np.ndarray
    delta_s: np.ndarray
    delta: np.ndarray
    weights: np.ndarray

    def sanity(self, groups: np.ndarray, threshold: float = IN_GROUP_THRESHOLD) -> dict[str, float]:
        """§5.2.2 check: share of in-group weights above ``threshold`` and mean weights.

        Returns:
            ``{"in_group_share_above", "in_group_mean", "out_group_mean"}`` (NaN when empty).
        """
        g = np.asarray(groups)
        inside, outside = self.weights[g == self.target], self.weights[g != self.target]
        return {
            "in_group_share_above": float(np.mean(inside > threshold)) if inside.size else float("nan"),
            "in_group_mean": float(inside.mean()) if inside.size else float("nan"),
            "out_group_mean": float(outside.mean()) if outside.size else float("nan"),
        }


def spare_weights(
    reference_model: nn.Module,
    group_model: nn.Module,
    images: np.ndarray,
    target: int,
    *,
    alpha: float = 0.5,
    delta_scale: bool = False,
    predicted_groups: np.ndarray | None = None,
    batch_size: int = 128,
    **solver: Any,
) -> SpareWeights:
    """All stage-1 quantities of target group ``target`` (see the module docstring).

    Args:
        reference_model: ``f_t^ref``.
        group_model: ``f_g``.
        images: ``(N, C, *spatial)`` training images (``uint8`` or float).
        target: the group ``t``.
        alpha: ``α`` (0: similarity only; 1: utility only).
        delta_scale: divide ``δ`` by its median over the images.
        predicted_groups: ``argmax f_g`` of the images if already computed.
        batch_size: search batch size.
        **solver: perturbation options (``method``, ``beta``, ``lr``, ``steps``, ``overshoot``,
            ``max_iter``).
    """
    du = utility_distance(reference_model, images, batch_size=batch_size, **solver) if alpha > 0 else np.zeros(len(images))
    ds = (
        similarity_distance(group_model, images, target, predicted_groups=predicted_groups, batch_size=batch_size, **solver)
        if alpha < 1
        else np.zeros(len(images))
    )
    delta = combined_distance(du, ds, alpha)
    if delta_scale and delta.size and float(np.median(delta)) > 0:
        delta = delta / float(np.median(delta))
    return SpareWeights(int(target), du, ds, delta, weights_from_distance(delta))


def _images_only(images: np.ndarray) -> TaskData:
    return TaskData(images=images, labels=None, groups=None, sample_ids=np.arange(len(images)).astype(str))
