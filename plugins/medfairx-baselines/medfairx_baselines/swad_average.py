"""SWAD pieces (Cha et al., NeurIPS 2021; docs/methods.md §1.4): segment averages, LossValley,
and BatchNorm recalibration.

* :class:`SegmentAverage` — the running average ``θ̄ ← θ̄ + (θ_t − θ̄)/(m+1)`` of the
  parameters over the optimiser steps of one segment (kept on the model's device).
* :class:`LossValley` — decides which segments enter the final average from the
  (lower-is-better) validation score ``v`` of every evaluation point.
* :func:`recalibrate_bn` — ``torch.optim.swa_utils.update_bn`` semantics on training images.

LossValley, with segments ``s_1, s_2, …`` and scores ``v_1, v_2, …``:

* **convergence** at evaluation ``t ≥ N_s`` when the oldest of the last ``N_s`` scores is
  their (first) minimum: the convergence segment is ``c = t − N_s + 1`` and the threshold
  ``τ = mean(v_c … v_t)·(1 + r)``. When ``N_e > N_s``, the contiguous run of earlier
  segments ``c−1, c−2, …`` (no further back than ``t − N_e + 1``) whose ``v ≤ τ`` joins the
  average;
* **valley** after convergence: segment ``j ≥ c`` is decided once ``v_{j+N_e−1}`` is known —
  it is added if ``min(v_j … v_{j+N_e−1}) ≤ τ``, otherwise the valley is dead and averaging
  stops for good;
* **end of training** (valley alive): the undecided segments ``j`` are added in order while
  ``min(v_j … v_T) ≤ τ``;
* segments enter with equal weight; a run that never converged returns its last segment.

This is the rule the reference ``LossValley`` implements, without two index slips of the
code (which can add the convergence segment twice and skips the first earlier segment of
the tolerance run; docs/methods.md §1.4).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from medfairx.errors import ConfigError

ParamState = dict[str, torch.Tensor]


def parameter_state(model: nn.Module, *, device: str | torch.device | None = None) -> ParamState:
    """A detached copy of the model's parameters (``name → tensor``), optionally moved."""
    return {k: p.detach().to(device or p.device, copy=True) for k, p in model.named_parameters()}


def load_parameters(model: nn.Module, params: ParamState) -> None:
    """Copy ``params`` into the model's parameters in place (buffers are left alone).

    Raises:
        ConfigError: a parameter of the model is missing from ``params``.
    """
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name not in params:
                raise ConfigError(f"load_parameters: no value for parameter {name!r}.")
            p.copy_(params[name].to(p.device, p.dtype))


class SegmentAverage:
    """Running mean of a model's parameters over the optimiser steps of one segment.

    Attributes:
        count: iterates averaged so far in the current segment.
        start_step: global step of the segment's first iterate (``None`` when empty).
        end_step: global step of its last iterate.
    """

    def __init__(self) -> None:
        self._avg: ParamState | None = None
        self.count = 0
        self.start_step: int | None = None
        self.end_step: int | None = None

    def update(self, model: nn.Module, step: int | None = None) -> None:
        """Add the current parameters ``θ_t`` (call after every optimiser step)."""
        with torch.no_grad():
            if self._avg is None:
                self._avg = parameter_state(model)
            else:
                for name, p in model.named_parameters():
                    avg = self._avg[name]
                    avg.add_((p.detach().to(avg.dtype) - avg) / (self.count + 1))
        self.count += 1
        step = self.count if step is None else int(step)
        self.start_step = step if self.start_step is None else self.start_step
        self.end_step = step

    def freeze(self) -> ParamState:
        """A CPU copy of the segment's average, then start a new, empty segment.

        Raises:
            ConfigError: the segment holds no iterate.
        """
        if self._avg is None:
            raise ConfigError("SegmentAverage.freeze: the segment is empty (no optimiser step since the last one).")
        out = {k: v.detach().to("cpu", copy=True) for k, v in self._avg.items()}
        self._avg, self.count, self.start_step, self.end_step = None, 0, None, None
        return out


class ParameterAverage:
    """Equal-weight average of parameter states (``AveragedModel.update_parameters``)."""

    def __init__(self) -> None:
        self._avg: ParamState | None = None
        self.n = 0

    def add(self, params: ParamState) -> None:
        """Include one more state."""
        if self._avg is None:
            self._avg = {k: v.detach().to(torch.float64, copy=True) for k, v in params.items()}
        else:
            for k, v in params.items():
                self._avg[k].add_((v.to(torch.float64) - self._avg[k]) / (self.n + 1))
        self.n += 1

    def result(self, like: ParamState | None = None) -> ParamState:
        """The average (cast back to the dtypes of ``like`` when given, else float32)."""
        if self._avg is None:
            raise ConfigError("ParameterAverage.result: nothing was averaged.")
        return {
            k: v.to(like[k].dtype if like is not None else torch.float32) for k, v in self._avg.items()
        }


class LossValley:
    """Loss-valley detection and segment averaging (see the module docstring).

    Args:
        n_converge: ``N_s``, the convergence window.
        n_tolerance: ``N_e``, the tolerance (smoothing) window.
        tolerance_ratio: ``r``; ``τ = mean(converge window)·(1 + r)``.

    Attributes:
        scores: every score ``v`` seen (``scores[j-1] = v_j``).
        converge_segment: ``c`` (1-based), or ``None`` before convergence.
        threshold: ``τ``, or ``None`` before convergence.
        dead: whether the valley ended (averaging stopped).
        included: 1-based indices of the segments in the average, in order.
    """

    def __init__(self, n_converge: int = 3, n_tolerance: int = 6, tolerance_ratio: float = 0.3) -> None:
        if n_converge < 1 or n_tolerance < 1:
            raise ConfigError(f"LossValley needs n_converge, n_tolerance >= 1; got {n_converge}, {n_tolerance}.")
        self.n_converge = int(n_converge)
        self.n_tolerance = int(n_tolerance)
        self.tolerance_ratio = float(tolerance_ratio)
        self.scores: list[float] = []
        self.converge_segment: int | None = None
        self.threshold: float | None = None
        self.dead = False
        self.included: list[int] = []
        self._next = 0  # next undecided segment (1-based) after convergence
        self._window: deque[tuple[int, ParamState]] = deque(maxlen=max(self.n_converge, self.n_tolerance))
        self._average = ParameterAverage()
        self._last: ParamState | None = None

    @property
    def converged(self) -> bool:
        """Whether convergence was detected."""
        return self.converge_segment is not None

    def _params(self, j: int) -> ParamState:
        for idx, params in self._window:
            if idx == j:
                return params
        raise RuntimeError(f"LossValley: segment {j} is no longer held")  # pragma: no cover - invariant

    def _add(self, j: int) -> None:
        self._average.add(self._params(j))
        self.included.append(j)

    def update(self, params: ParamState, score: float) -> None:
        """Record the segment that just ended and its validation score ``v`` (lower is better)."""
        v = float(score)
        if not np.isfinite(v):
            raise ConfigError(f"LossValley: the validation score must be finite, got {score}.")
        self.scores.append(v)
        t = len(self.scores)
        self._window.append((t, params))
        self._last = params
        if self.dead:
            return
        if not self.converged:
            if t < self.n_converge:
                return
            window = self.scores[t - self.n_converge : t]
            if int(np.argmin(window)) != 0:
                return
            c = t - self.n_converge + 1
            self.converge_segment = c
            self.threshold = float(np.mean(window)) * (1.0 + self.tolerance_ratio)
            earlier: list[int] = []
            j = c - 1
            while j >= max(1, t - self.n_tolerance + 1) and self.scores[j - 1] <= self.threshold:
                earlier.append(j)
                j -= 1
            for j in reversed(earlier):
                self._add(j)
            self._next = c
        assert self.threshold is not None
        while self._next + self.n_tolerance - 1 <= t:
            j = self._next
            if min(self.scores[j - 1 : j - 1 + self.n_tolerance]) > self.threshold:
                self.dead = True
                return
            self._add(j)
            self._next += 1

    def finalize(self) -> ParamState:
        """The final parameters: the valley average, or the last segment if never converged.

        Also adds the still undecided segments (end-of-training rule) unless the valley died.

        Raises:
            ConfigError: no segment was ever recorded.
        """
        if self._last is None:
            raise ConfigError("LossValley.finalize: no segment was recorded.")
        if not self.converged:
            return self._last
        if not self.dead:
            t = len(self.scores)
            while self._next <= t and min(self.scores[self._next - 1 :]) <= (self.threshold or 0.0):
                self._add(self._next)
                self._next += 1
            self._next = t + 1
        if self._average.n == 0:  # pragma: no cover - the convergence segment always qualifies
            return self._last
        return self._average.result(like=self._last)


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor]) -> bool:
    """Re-estimate BatchNorm running statistics (``torch.optim.swa_utils.update_bn``).

    Running means/variances are reset and recomputed as plain (momentum-free) averages over
    ``batches`` with the model in train mode; momenta and the train/eval mode are restored.

    Args:
        model: the network (its BatchNorm layers are updated in place).
        batches: input tensors, already on the model's device.

    Returns:
        ``True`` if the model has BatchNorm layers (and they were recalibrated).
    """
    from torch.optim.swa_utils import update_bn

    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if has_bn:
        update_bn(batches, model)
    return has_bn
