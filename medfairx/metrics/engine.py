"""Vectorised, weighted computation of every built-in metric.

A *weight matrix* ``W`` of shape ``(n, B)`` holds, per column, how many times each sample
appears in one resample (``W = 1`` is the data itself; a bootstrap replicate is a column
of multiplicity counts; samples are rows so that gathering a subset copies contiguous
memory). Every measure is computed for all columns at once, without re-sorting:
scores are sorted once per group, and AUC is the Mann-Whitney statistic over tie blocks
(``AUC = sum_k P_k (N_<k + N_k/2) / (P N)``) evaluated with cumulative sums of the
weights in that fixed order. Tail means and percentiles use cumulative counts in the
same way. Measures return ``(B, 1 + G)`` arrays: column 0 overall, then one per group.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medfairx.errors import ConfigError
from medfairx.metrics.catalogue import BY_NAME, CLS, SEG, MetricDef
from medfairx.metrics.groups import encode_groups

ALPHA = 0.1
ECE_BINS = 15
FAIL_BELOW = 0.5
UNKNOWN_MEASURE = "Unknown measure {measure!r} for task {task!r}."
UNKNOWN_TRANSFORM = "Unknown metric transform {transform!r}."
NEEDS_LABELS = "Metric {name!r} needs y_true (labels); got None."
SINGLE_CLASS = "{what} undefined (single class) for group(s) {groups}; set to NaN and excluded from min/gap."
NO_VALUES = "{what} undefined for group(s) {groups} (no sample with a defined value); set to NaN and excluded from min/gap."
MISSING_COLUMN = ("No per-sample column {col!r} (have {have}); predictions stored before it existed lack it: "
                  "re-run, or leave out the metrics that need it.")
MULTICLASS_THRESHOLD = "Thresholded measure {measure!r} is defined for binary tasks only; got {k} classes."


@dataclass
class Problem:
    """Per-sample inputs of one evaluation, with excluded samples already dropped.

    Attributes:
        task: ``classification`` or ``segmentation``.
        codes: group code per sample, ``0..G-1``.
        names: group label of each code.
        y: class index per sample (classification), else ``None``.
        scores: ``(n,)`` P(positive) for binary, ``(n, K)`` class probabilities otherwise.
        values: per-sample columns (``dice``, ``iou``, ``loss``; segmentation runs also
            ``hd95``, ``nsd``, ``boundary_error_share``). Segmentation measures skip NaN
            values (undefined for that sample): a NaN sample counts in no mean, tail or
            percentile, of any resample.
        threshold: decision threshold of thresholded binary measures.
        alpha: tail fraction of CVaR / TailDice.
    """

    task: str
    codes: np.ndarray
    names: tuple[str, ...]
    y: np.ndarray | None = None
    scores: np.ndarray | None = None
    values: dict[str, np.ndarray] = field(default_factory=dict)
    threshold: float = 0.5
    alpha: float = ALPHA

    @classmethod
    def build(
        cls,
        task: str,
        sensitive_features: Any,
        *,
        y_true: Any = None,
        y_score: Any = None,
        values: dict[str, Any] | None = None,
        threshold: float = 0.5,
        alpha: float = ALPHA,
    ) -> Problem:
        """Code the groups and drop samples outside every group."""
        ref = y_score if y_score is not None else next(iter((values or {}).values()))
        n = len(np.asarray(ref))
        codes, names = encode_groups(sensitive_features, n)
        keep = codes >= 0
        y = None if y_true is None else np.asarray(y_true)[keep].astype(np.int64)
        s = None
        if y_score is not None and task == CLS:
            s = np.asarray(y_score, dtype=np.float64)[keep]
            if s.ndim == 2 and s.shape[1] == 2:
                s = s[:, 1]
        vals = {k: np.asarray(v, dtype=np.float64)[keep] for k, v in (values or {}).items()}
        return cls(task, codes[keep], names, y, s, vals, float(threshold), alpha)

    @property
    def n(self) -> int:
        return int(self.codes.size)

    @property
    def n_groups(self) -> int:
        return len(self.names)

    @property
    def num_classes(self) -> int:
        if self.scores is not None and self.scores.ndim == 2:
            return int(self.scores.shape[1])
        return 2

    def subsets(self) -> list[np.ndarray]:
        """Sample positions of overall (all) and of every group."""
        return [np.arange(self.n)] + [np.flatnonzero(self.codes == g) for g in range(self.n_groups)]

    def strata(self) -> np.ndarray:
        """Bootstrap strata: group x label for classification, group for segmentation."""
        if self.task == CLS and self.y is not None:
            return self.codes * (int(self.y.max(initial=0)) + 1) + self.y
        return self.codes.copy()

    def counts(self) -> np.ndarray:
        """Samples in overall and in each group."""
        return np.array([self.n] + [int((self.codes == g).sum()) for g in range(self.n_groups)])

    def prevalence(self) -> np.ndarray:
        """Share of positives (binary) overall and per group; NaN otherwise."""
        if self.y is None or self.num_classes != 2:
            return np.full(self.n_groups + 1, np.nan)
        return np.array([self.y[idx].mean() if idx.size else np.nan for idx in self.subsets()])


# -- weighted primitives ------------------------------------------------------------------


def _nan_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


class _AucRanker:
    """Weighted binary AUC of one subset, sorted once.

    With positives' weights ``u_i`` and ``Nc`` the cumulative weight of negatives in
    ascending score order, ``AUC = sum_i u_i (Nc[a_i] + Nc[b_i]) / 2 / (P N)``, where
    ``a_i`` / ``b_i`` count the negatives strictly below / at-or-below positive ``i``'s
    score (the two coincide without ties): the Mann-Whitney statistic with ties = 1/2.
    """

    def __init__(self, idx: np.ndarray, score: np.ndarray, positive: np.ndarray) -> None:
        order = idx[np.argsort(score[idx], kind="mergesort")]
        s, pos = score[order], positive[order].astype(bool)
        self.pos_idx, self.neg_idx = order[pos], order[~pos]
        neg_scores = s[~pos]
        self.below = np.searchsorted(neg_scores, s[pos], side="left")
        self.at_or_below = np.searchsorted(neg_scores, s[pos], side="right")
        self.ties = bool((self.below != self.at_or_below).any())

    def __call__(self, W: np.ndarray) -> np.ndarray:
        if self.pos_idx.size == 0 or self.neg_idx.size == 0:
            return np.full(W.shape[1], np.nan)
        cum = np.zeros((self.neg_idx.size + 1, W.shape[1]))
        np.cumsum(W[self.neg_idx], axis=0, out=cum[1:])
        wp = W[self.pos_idx]
        below = cum[self.below]
        if self.ties:
            below = 0.5 * (below + cum[self.at_or_below])
        num = np.einsum("ij,ij->j", wp, below)
        return _nan_div(num, wp.sum(axis=0) * cum[-1])


class _Ordered:
    """One subset sorted worst-first by a per-sample value (for tails and percentiles)."""

    def __init__(self, idx: np.ndarray, x: np.ndarray, *, worst_is_low: bool) -> None:
        key = x[idx] if worst_is_low else -x[idx]
        self.order = idx[np.argsort(key, kind="mergesort")]
        self.x = x[self.order]

    def tail_mean(self, W: np.ndarray, alpha: float) -> np.ndarray:
        """Mean of the worst ``ceil(alpha * n)`` values of each weighted column."""
        w = W[self.order]
        total = w.sum(axis=0)
        k = np.ceil(alpha * total - 1e-9)
        c = np.cumsum(w, axis=0)
        take = np.clip(k[None, :] - (c - w), 0.0, w)
        return _nan_div(take.T @ self.x, k)

    def quantile(self, W: np.ndarray, q: float) -> np.ndarray:
        """``np.percentile(..., 100*q)`` (linear interpolation) of each weighted column (ascending x)."""
        w = W[self.order]
        total = w.sum(axis=0)
        out = np.full(W.shape[1], np.nan)
        ok = total > 0
        if not ok.any() or self.x.size == 0:
            return out
        c = np.cumsum(w, axis=0)
        h = (total - 1) * q
        lo = np.floor(h)
        hi = np.minimum(lo + 1, total - 1)
        i_lo = np.minimum((c <= lo[None, :]).sum(axis=0), self.x.size - 1)
        i_hi = np.minimum((c <= hi[None, :]).sum(axis=0), self.x.size - 1)
        v = self.x[i_lo] + (h - lo) * (self.x[i_hi] - self.x[i_lo])
        out[ok] = v[ok]
        return out


# -- the engine ---------------------------------------------------------------------------


class Engine:
    """Computes measures and metric values of one :class:`Problem` for weight matrices."""

    def __init__(self, problem: Problem) -> None:
        self.p = problem
        self._subsets = problem.subsets()
        G = problem.n_groups
        self._onehot = np.zeros((problem.n, G + 1))
        self._onehot[:, 0] = 1.0
        if problem.n:
            self._onehot[np.arange(problem.n), problem.codes + 1] = 1.0
        self._cache: dict[str, Any] = {}

    # -- helpers -----------------------------------------------------------------------

    def _sums(self, W: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Weighted sums of ``x`` overall and per group: ``(B, 1 + G)``."""
        return W.T @ (self._onehot * x[:, None])

    def _means(self, W: np.ndarray, x: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
        m = np.ones(self.p.n) if where is None else where.astype(np.float64)
        return _nan_div(self._sums(W, x * m), self._sums(W, m))

    def _labels(self, name: str) -> np.ndarray:
        if self.p.y is None:
            raise ConfigError(NEEDS_LABELS.format(name=name))
        return self.p.y

    def _pred(self, measure: str) -> np.ndarray:
        if self.p.num_classes != 2:
            if measure in ("accuracy", "balanced_accuracy"):
                return np.argmax(self.p.scores, axis=1)
            raise ConfigError(MULTICLASS_THRESHOLD.format(measure=measure, k=self.p.num_classes))
        return (self.p.scores >= self.p.threshold).astype(np.int64)

    def _rankers(self) -> list[list[_AucRanker]]:
        """Per subset, one ranker per one-vs-rest class (one ranker for binary tasks)."""
        if "rankers" not in self._cache:
            y, s = self._labels("auc"), self.p.scores
            if self.p.num_classes == 2:
                cols = [(s, y == 1)]
            else:
                cols = [(s[:, k], y == k) for k in range(self.p.num_classes)]
            self._cache["rankers"] = [[_AucRanker(idx, sc, pos) for sc, pos in cols] for idx in self._subsets]
        return self._cache["rankers"]

    def _ordered(self, col: str, *, worst_is_low: bool) -> list[_Ordered]:
        """Per subset, its defined (non-NaN) samples of ``col`` sorted worst-first."""
        key = f"ordered:{col}:{worst_is_low}"
        if key not in self._cache:
            x = self._column(col)
            defined = ~np.isnan(x)
            self._cache[key] = [_Ordered(idx[defined[idx]], x, worst_is_low=worst_is_low) for idx in self._subsets]
        return self._cache[key]

    def _defined(self, col: str) -> tuple[np.ndarray, np.ndarray | None]:
        """``col`` with NaN set to 0 and the mask of defined samples (``None`` when all are)."""
        x = self._column(col)
        defined = ~np.isnan(x)
        if defined.all():
            return x, None
        return np.where(defined, x, 0.0), defined

    def _column(self, col: str) -> np.ndarray:
        if col == "loss" and "loss" not in self.p.values:
            y, s = self._labels("cvar_loss"), self.p.scores
            p_true = np.where(y == 1, s, 1.0 - s) if self.p.num_classes == 2 else s[np.arange(y.size), y]
            self.p.values["loss"] = -np.log(np.clip(p_true, 1e-12, 1.0))
        if col not in self.p.values:
            raise ConfigError(MISSING_COLUMN.format(col=col, have=sorted(self.p.values)))
        return self.p.values[col]

    # -- measures ----------------------------------------------------------------------

    def measure(self, measure: str, W: np.ndarray) -> np.ndarray:
        """One measure for every column of ``W``: ``(B, 1 + G)``."""
        op, _, col = measure.partition(":")
        fn = self._SEG.get(op) if col else self._CLS.get(op)
        if fn is None:
            raise ConfigError(UNKNOWN_MEASURE.format(measure=measure, task=self.p.task))
        return fn(self, W, col) if col else fn(self, W)

    def _auc(self, W: np.ndarray) -> np.ndarray:
        cols = []
        for rankers in self._rankers():
            per_class = np.stack([r(W) for r in rankers], axis=1)
            if per_class.shape[1] == 1:
                cols.append(per_class[:, 0])
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    defined = (~np.isnan(per_class)).sum(axis=1)
                    cols.append(np.where(defined >= 2, np.nanmean(per_class, axis=1), np.nan))
        return np.stack(cols, axis=1)

    def _rate(self, W: np.ndarray, measure: str, num: np.ndarray, where: np.ndarray | None) -> np.ndarray:
        self._labels(measure)
        return self._means(W, num.astype(np.float64), where)

    def _accuracy(self, W: np.ndarray) -> np.ndarray:
        y = self._labels("accuracy")
        return self._rate(W, "accuracy", self._pred("accuracy") == y, None)

    def _balanced_accuracy(self, W: np.ndarray) -> np.ndarray:
        y = self._labels("balanced_accuracy")
        correct = (self._pred("balanced_accuracy") == y).astype(np.float64)
        recalls = np.stack([self._means(W, correct, y == k) for k in range(self.p.num_classes)], axis=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(recalls, axis=0)

    def _tpr(self, W: np.ndarray) -> np.ndarray:
        y = self._labels("tpr")
        return self._rate(W, "tpr", self._pred("tpr") == 1, y == 1)

    def _fpr(self, W: np.ndarray) -> np.ndarray:
        y = self._labels("fpr")
        return self._rate(W, "fpr", self._pred("fpr") == 1, y == 0)

    def _fnr(self, W: np.ndarray) -> np.ndarray:
        return 1.0 - self._tpr(W)

    def _ppr(self, W: np.ndarray) -> np.ndarray:
        self._labels("ppr")
        return self._means(W, (self._pred("ppr") == 1).astype(np.float64))

    def _f1(self, W: np.ndarray) -> np.ndarray:
        y, pred = self._labels("f1"), self._pred("f1")
        tp = ((pred == 1) & (y == 1)).astype(np.float64)
        wrong = (pred != y).astype(np.float64)  # FP + FN
        return _nan_div(2.0 * self._sums(W, tp), self._sums(W, 2.0 * tp + wrong))

    def _brier(self, W: np.ndarray) -> np.ndarray:
        y, s = self._labels("brier"), self.p.scores
        if self.p.num_classes == 2:
            err = (s - y) ** 2
        else:
            err = ((s - np.eye(self.p.num_classes)[y]) ** 2).sum(axis=1)
        return self._means(W, err)

    def _ece(self, W: np.ndarray) -> np.ndarray:
        y, s = self._labels("ece"), self.p.scores
        if self.p.num_classes == 2:
            conf, target = s, y.astype(np.float64)
        else:
            conf, target = s.max(axis=1), (s.argmax(axis=1) == y).astype(np.float64)
        b = np.minimum((conf * ECE_BINS).astype(np.int64), ECE_BINS - 1)
        total = np.zeros((W.shape[1], self.p.n_groups + 1))
        for m in range(ECE_BINS):
            inside = b == m
            if inside.any():
                total += np.abs(self._sums(W, np.where(inside, target - conf, 0.0)))
        return _nan_div(total, self._sums(W, np.ones(self.p.n)))

    def _cvar_loss(self, W: np.ndarray) -> np.ndarray:
        ordered = self._ordered("loss", worst_is_low=False)
        return np.stack([o.tail_mean(W, self.p.alpha) for o in ordered], axis=1)

    def _seg_mean(self, W: np.ndarray, col: str) -> np.ndarray:
        x, defined = self._defined(col)
        return self._means(W, x, defined)

    def _seg_tail(self, W: np.ndarray, col: str) -> np.ndarray:
        return np.stack([o.tail_mean(W, self.p.alpha) for o in self._ordered(col, worst_is_low=True)], axis=1)

    def _seg_p10(self, W: np.ndarray, col: str) -> np.ndarray:
        return np.stack([o.quantile(W, 0.10) for o in self._ordered(col, worst_is_low=True)], axis=1)

    def _seg_fail(self, W: np.ndarray, col: str) -> np.ndarray:
        x, defined = self._defined(col)
        return self._means(W, (x < FAIL_BELOW).astype(np.float64), defined)

    def _seg_hidden_gap(self, W: np.ndarray, col: str) -> np.ndarray:
        return self._seg_mean(W, col) - self._seg_tail(W, col)

    _CLS: dict[str, Callable[..., np.ndarray]] = {
        "auc": _auc,
        "accuracy": _accuracy,
        "balanced_accuracy": _balanced_accuracy,
        "tpr": _tpr,
        "fpr": _fpr,
        "fnr": _fnr,
        "ppr": _ppr,
        "f1": _f1,
        "brier": _brier,
        "ece": _ece,
        "cvar_loss": _cvar_loss,
    }
    _SEG: dict[str, Callable[..., np.ndarray]] = {
        "mean": _seg_mean,
        "tail": _seg_tail,
        "p10": _seg_p10,
        "fail": _seg_fail,
        "hidden_gap": _seg_hidden_gap,
    }

    # -- metrics -----------------------------------------------------------------------

    def compute(self, defs: list[MetricDef], W: np.ndarray) -> dict[str, np.ndarray]:
        """Every metric of ``defs`` for every column of ``W`` (``(n, B)``), sharing measures.

        Returns:
            ``name -> (B, 1 + G)`` for base metrics, ``name -> (B,)`` for summaries.
        """
        measured: dict[str, np.ndarray] = {}
        out: dict[str, np.ndarray] = {}
        for d in defs:
            arrays = []
            for m in d.measures:
                if m not in measured:
                    measured[m] = self.measure(m, W)
                arrays.append(measured[m])
            out[d.name] = arrays[0] if d.transform is None else apply_transform(d.transform, arrays)
        return out


# -- transforms ---------------------------------------------------------------------------


def _groups(a: np.ndarray) -> np.ndarray:
    return a[:, 1:]


def _nanreduce(fn: Callable[..., np.ndarray], g: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(g, axis=1)


def _gap(a: np.ndarray) -> np.ndarray:
    g = _groups(a)
    return _nanreduce(np.nanmax, g) - _nanreduce(np.nanmin, g)


def _es(a: np.ndarray, reducer: Callable[..., np.ndarray]) -> np.ndarray:
    o, g = a[:, 0], _groups(a)
    dev = _nanreduce(reducer, np.abs(o[:, None] - g))
    dev = np.where(np.isnan(g).all(axis=1), np.nan, dev)
    return o / (1.0 + dev)


TRANSFORMS: dict[str, Callable[[list[np.ndarray]], np.ndarray]] = {
    "worst_min": lambda a: _nanreduce(np.nanmin, _groups(a[0])),
    "worst_max": lambda a: _nanreduce(np.nanmax, _groups(a[0])),
    "gap": lambda a: _gap(a[0]),
    "es_mean": lambda a: _es(a[0], np.nanmean),
    "es_sum": lambda a: _es(a[0], np.nansum),
    "es_std": lambda a: a[0][:, 0] / (1.0 + _nanreduce(np.nanstd, _groups(a[0]))),
    "mean_psd": lambda a: _nanreduce(np.nanstd, _groups(a[0])) / a[0][:, 0],
    "max_psd": lambda a: _gap(a[0]) / a[0][:, 0],
    "max_gap": lambda a: np.max(np.stack([_gap(x) for x in a]), axis=0),
    "one_minus_gap": lambda a: 1.0 - _gap(a[0]),
    "one_minus_mean_gap": lambda a: 1.0 - np.mean(np.stack([_gap(x) for x in a]), axis=0),
}


def apply_transform(transform: str, arrays: list[np.ndarray]) -> np.ndarray:
    """Reduce measure arrays ``(B, 1 + G)`` to one summary per row (NaN groups excluded)."""
    try:
        fn = TRANSFORMS[transform]
    except KeyError:
        raise ConfigError(UNKNOWN_TRANSFORM.format(transform=transform)) from None
    return fn(arrays)


def warn_undefined(defs: list[MetricDef], point: dict[str, np.ndarray], names: tuple[str, ...]) -> None:
    """Warn once per base metric whose point value is NaN for some group."""
    for d in defs:
        if d.transform is None and d.name in point:
            bad = [names[i] for i, v in enumerate(point[d.name][0, 1:]) if math.isnan(v)]
            if bad:
                why = SINGLE_CLASS if d.task == CLS else NO_VALUES
                warnings.warn(why.format(what=d.name, groups=bad), RuntimeWarning, stacklevel=3)


def resolve_defs(names: list[str] | None, task: str, *, num_classes: int = 2) -> list[MetricDef]:
    """Built-in definitions by name (default: all of ``task``; thresholded ones need binary)."""
    if names is None:
        defs = [d for d in BY_NAME.values() if d.task == task]
        if task == CLS and num_classes != 2:
            defs = [d for d in defs if not d.thresholded or set(d.measures) <= {"accuracy", "balanced_accuracy"}]
        return defs
    return [BY_NAME[n] for n in names]


__all__ = ["ALPHA", "CLS", "ECE_BINS", "SEG", "Engine", "Problem", "apply_transform", "resolve_defs"]
