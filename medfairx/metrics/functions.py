"""The built-in metrics as fairlearn-style callables (the targets of the MetricSpecs).

Every name of :data:`medfairx.metrics.catalogue.METRIC_DEFS` is a module attribute here::

    from medfairx.metrics.functions import auc_gap, equalized_odds_difference
    auc_gap(y_true, y_score, sensitive_features=sex)
    equalized_odds_difference(y_true, y_score, sensitive_features=sex, threshold=0.3)

Classification callables take ``y_score`` = P(positive) (binary) or ``(n, K)`` class
probabilities; thresholded ones predict positive when ``y_score >= threshold``.
Segmentation callables take ``y_score`` = the per-sample Dice (or IoU) values and ignore
``y_true``. Base metrics return the overall value (``.frame(...)`` gives the per-group
:class:`~medfairx.metrics.groups.GroupedScores`); summary metrics return the summary.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from medfairx.errors import ConfigError
from medfairx.metrics.catalogue import METRIC_DEFS, SEG, MetricDef
from medfairx.metrics.engine import ALPHA, Engine, Problem, warn_undefined
from medfairx.metrics.groups import GroupedScores

NOT_BASE = "{name!r} is a summary metric; .frame() exists for base metrics only (e.g. {base!r})."


class EngineMetric:
    """A built-in metric: ``fn(y_true, y_score, *, sensitive_features, **kw) -> float``."""

    def __init__(self, definition: MetricDef) -> None:
        self.definition = definition
        self.__name__ = definition.name
        self.__qualname__ = definition.name
        self.__module__ = __name__
        self.__doc__ = f"{definition.summary} ({definition.kind}; higher is better: {definition.higher_is_better})."

    def problem(self, y_true: Any, y_score: Any, sensitive_features: Any, threshold: float, alpha: float) -> Problem:
        """The :class:`Problem` this metric evaluates."""
        d = self.definition
        if d.task == SEG:
            col = d.measures[0].split(":", 1)[1]
            return Problem.build(SEG, sensitive_features, values={col: y_score}, alpha=alpha)
        return Problem.build(d.task, sensitive_features, y_true=y_true, y_score=y_score,
                             threshold=threshold, alpha=alpha)

    def _point(self, y_true: Any, y_score: Any, sensitive_features: Any, threshold: float,
               alpha: float) -> tuple[Problem, np.ndarray]:
        p = self.problem(y_true, y_score, sensitive_features, threshold, alpha)
        vals = Engine(p).compute([self.definition], np.ones((p.n, 1)))
        warn_undefined([self.definition], vals, p.names)
        return p, vals[self.definition.name]

    def __call__(self, y_true: Any, y_score: Any, *, sensitive_features: Any, threshold: float = 0.5,
                 alpha: float = ALPHA) -> float:
        """The metric value (overall for base metrics, else the summary)."""
        _, v = self._point(y_true, y_score, sensitive_features, threshold, alpha)
        return float(v[0, 0] if self.definition.transform is None else v[0])

    def frame(self, y_true: Any, y_score: Any, *, sensitive_features: Any, threshold: float = 0.5,
              alpha: float = ALPHA) -> GroupedScores:
        """Overall and per-group values (base metrics only)."""
        d = self.definition
        if d.transform is not None:
            raise ConfigError(NOT_BASE.format(name=d.name, base=d.measures[0].split(":")[-1]))
        p, v = self._point(y_true, y_score, sensitive_features, threshold, alpha)
        return GroupedScores(
            overall=float(v[0, 0]),
            by_group=pd.Series(v[0, 1:], index=pd.Index(p.names, name="group"), name=d.name),
            higher_is_better=d.higher_is_better,
            counts=pd.Series(p.counts()[1:], index=pd.Index(p.names, name="group"), name="n"),
        )

    def __repr__(self) -> str:
        return f"<medfairx metric {self.definition.name}>"


METRICS: dict[str, EngineMetric] = {d.name: EngineMetric(d) for d in METRIC_DEFS}
globals().update(METRICS)

__all__ = ["METRICS", "EngineMetric", *METRICS]
