"""Vectorised, weighted computation of every built-in metric.

A *weight matrix* ``W`` of shape ``(n, B)`` holds, per column, how many times each sample
appears in one resample (``W = 1`` is the data itself; a bootstrap replicate is a column
of multiplicity counts; samples are rows so that gathering a subset copies contiguous
memory). Every measure is computed for all columns at once, without re-sorting:
scores are sorted once per group, and AUC is the Mann-Whitney statistic over tie blocks
(``AUC = sum_k P_k (N_<k + N_k/2) / (P N)``) evaluated with cumulative sums of the
weights in that fixed order. Tail means and percentiles use cumulative counts in the
same way. Measures return ``(B, 1 + G)`` arrays: column 0 overall, then one per group.
Bootstrap replicates may instead come as :class:`Draws` (their within-stratum draws): AUC
then counts each replicate's draws per stratum, puts the negatives' counts into the
subset's score order and works in exact integer arithmetic, one replicate at a time on
arrays that stay in cache (the same values, bit for bit); every other measure uses their
dense counts.
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
#: A between-group summary is defined only when at least this many groups have a defined value.
MIN_DEFINED_GROUPS = 2
UNKNOWN_MEASURE = "Unknown measure {measure!r} for task {task!r}."
UNKNOWN_TRANSFORM = "Unknown metric transform {transform!r}."
NEEDS_LABELS = "Metric {name!r} needs y_true (labels); got None."
SINGLE_CLASS = ("{what} undefined (single class) for group(s) {groups}; set to NaN and left out of its worst-group / gap "
                "summaries, which are undefined (NaN) when fewer than two groups remain.")
NO_VALUES = ("{what} undefined for group(s) {groups} (no sample with a defined value); set to NaN and left out of its "
             "worst-group / gap summaries, which are undefined (NaN) when fewer than two groups remain.")
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
            strata: np.ndarray = self.codes * (int(self.y.max(initial=0)) + 1) + self.y
            return strata
        return np.array(self.codes, copy=True)

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


class Draws:
    """Bootstrap replicates as within-stratum multiplicity counts.

    Row ``i`` of ``counts`` holds replicate ``i``: how often each sample was drawn, stratum
    by stratum, column ``j`` counting sample ``sample_at[j]`` (``np.concatenate(members)``);
    every replicate draws exactly ``members[s].size`` times from stratum ``s``. AUC reads
    these counts in each subset's sorted score order; every other measure uses
    :meth:`dense`, the ``(n, k)`` counts in sample order.

    Args:
        n: samples.
        members: per stratum, its sample positions.
        counts: ``(k, n)`` integer counts, columns stratum by stratum.
    """

    def __init__(self, n: int, members: list[np.ndarray], counts: np.ndarray) -> None:
        self.n, self.members, self.counts = n, members, counts
        self.k = int(counts.shape[0])
        self.sample_at = np.concatenate(members) if members else np.zeros(0, np.intp)
        self.stops = np.cumsum([m.size for m in members], dtype=np.intp)
        self._dense: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.n, self.k

    def column(self, s: int) -> slice:
        """Columns of stratum ``s`` in :attr:`counts`."""
        stop = int(self.stops[s])
        return slice(stop - self.members[s].size, stop)

    def dense(self) -> np.ndarray:
        """Multiplicity counts ``(n, k)``: how often each sample appears in each replicate."""
        if self._dense is None:
            out = np.zeros((self.k, self.n))
            out[:, self.sample_at] = self.counts
            self._dense = np.ascontiguousarray(out.T)
        return self._dense


@dataclass
class _DrawPlan:
    """Where one subset's strata go in its sorted score order (see :meth:`_AucRanker.plan`).

    Attributes:
        perm: sorted-negative position ``q`` reads count column ``perm[q]`` of :attr:`Draws.counts`.
        pos: count columns of each stratum of the subset's positives.
        below: per positive stratum, per member: negatives strictly below its score.
        at_or_below: the same, at or below (``None`` without ties).
    """

    perm: np.ndarray
    pos: list[slice]
    below: list[np.ndarray]
    at_or_below: list[np.ndarray] | None


class _AucRanker:
    """Weighted binary AUC of one subset, sorted once.

    With positives' weights ``u_i`` and ``Nc`` the cumulative weight of negatives in
    ascending score order, ``AUC = sum_i u_i (Nc[a_i] + Nc[b_i]) / 2 / (P N)``, where
    ``a_i`` / ``b_i`` count the negatives strictly below / at-or-below positive ``i``'s
    score (the two coincide without ties): the Mann-Whitney statistic with ties = 1/2.
    """

    def __init__(self, idx: np.ndarray, score: np.ndarray, positive: np.ndarray,
                 order: np.ndarray | None = None) -> None:
        """``order``: ``idx`` already sorted by score, e.g. filtered from the overall order.

        The order of tied scores is irrelevant (only the counts below and at a score enter),
        so the faster unstable sort is used.
        """
        if order is None:
            order = idx[np.argsort(score[idx])]
        s, pos = score[order], positive[order].astype(bool)
        self.pos_idx, self.neg_idx = order[pos], order[~pos]
        neg_scores = s[~pos]
        self.below = np.searchsorted(neg_scores, s[pos], side="left")
        self.at_or_below = np.searchsorted(neg_scores, s[pos], side="right")
        self.ties = bool((self.below != self.at_or_below).any())
        self._plan: tuple[list[np.ndarray], _DrawPlan | None] | None = None

    @property
    def defined(self) -> bool:
        """Whether the subset has both classes (else its AUC is NaN)."""
        return bool(self.pos_idx.size and self.neg_idx.size)

    def __call__(self, W: np.ndarray | Draws) -> np.ndarray:
        if not self.defined:
            return np.full(W.shape[1], np.nan)
        if isinstance(W, Draws):
            if self.plan(W) is not None:
                return self._from_draws(W)
            W = W.dense()
        cum = np.zeros((self.neg_idx.size + 1, W.shape[1]))
        np.cumsum(W[self.neg_idx], axis=0, out=cum[1:])
        wp = W[self.pos_idx]
        below = cum[self.below]
        if self.ties:
            below = 0.5 * (below + cum[self.at_or_below])
        num = np.einsum("ij,ij->j", wp, below)
        return _nan_div(num, wp.sum(axis=0) * cum[-1])

    def plan(self, D: Draws) -> _DrawPlan | None:
        """How the strata of ``D`` map into this subset's sorted order (cached per ``D.members``).

        ``None`` when some stratum is split (part positive, part negative, or part outside the
        subset): such draws are counted densely instead.
        """
        members, n = D.members, D.n
        if self._plan is not None and self._plan[0] is members:
            return self._plan[1]
        neg_rank = np.full(n, -1, np.intp)
        neg_rank[self.neg_idx] = np.arange(self.neg_idx.size)
        below = np.full(n, -1, np.intp)
        below[self.pos_idx] = self.below
        at = np.full(n, -1, np.intp)
        at[self.pos_idx] = self.at_or_below
        perm = np.empty(self.neg_idx.size, np.intp)
        pos: list[int] = []
        plan: _DrawPlan | None = None
        for s in range(len(members)):
            cols = D.column(s)
            samples = D.sample_at[cols]
            r, b = neg_rank[samples], below[samples]
            if (r >= 0).all():
                perm[r] = np.arange(cols.start, cols.stop)
            elif (b >= 0).all():
                pos.append(s)
            elif not ((r < 0) & (b < 0)).all():
                break
        else:
            cols_of = [D.column(s) for s in pos]
            plan = _DrawPlan(perm, cols_of, [below[D.sample_at[c]] for c in cols_of],
                             [at[D.sample_at[c]] for c in cols_of] if self.ties else None)
        self._plan = (members, plan)
        return plan

    def _from_draws(self, D: Draws) -> np.ndarray:
        """The same AUCs from within-stratum draws (see :func:`_aucs_from_draws`)."""
        return _aucs_from_draws([self], D)[0]


def _aucs_from_draws(rankers: list[_AucRanker], D: Draws) -> list[np.ndarray]:
    """AUCs of several subsets from the same draws, in exact integer arithmetic.

    Replicate by replicate, and every subset of one replicate in turn while its counts are
    in cache: the negatives' counts are put into the subset's sorted score order (one
    gather) and accumulated; each positive stratum's counts are then weighed against the
    cumulative negative counts at its members' ``below`` positions. Every ranker must have
    a plan (:meth:`_AucRanker.plan`) and both classes.
    """
    plans = [r.plan(D) for r in rankers]
    assert all(p is not None for p in plans), "called only when every stratum maps into the subset"
    num = np.zeros((len(rankers), D.k), np.int64)
    neg_total = np.zeros((len(rankers), D.k), np.int64)
    cums = [np.zeros(r.neg_idx.size + 1, np.int64) for r in rankers]
    for i, counts in enumerate(D.counts):
        for j, (plan, cum) in enumerate(zip(plans, cums, strict=True)):
            assert plan is not None
            np.cumsum(np.take(counts, plan.perm), out=cum[1:])
            for q, cols in enumerate(plan.pos):
                c = counts[cols]
                num[j, i] += np.einsum("i,i->", c, np.take(cum, plan.below[q]))
                if plan.at_or_below is not None:
                    num[j, i] += np.einsum("i,i->", c, np.take(cum, plan.at_or_below[q]))
            neg_total[j, i] = cum[-1]
    out = []
    for j, (r, plan) in enumerate(zip(rankers, plans, strict=True)):
        assert plan is not None
        pos_total = float(sum(cols.stop - cols.start for cols in plan.pos))
        scaled = num[j].astype(np.float64) * (0.5 if r.ties else 1.0)
        out.append(_nan_div(scaled, pos_total * neg_total[j].astype(np.float64)))
    return out


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
        sums: np.ndarray = W.T @ (self._onehot * x[:, None])
        return sums

    def _means(self, W: np.ndarray, x: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
        m = np.ones(self.p.n) if where is None else where.astype(np.float64)
        return _nan_div(self._sums(W, x * m), self._sums(W, m))

    def _labels(self, name: str) -> np.ndarray:
        if self.p.y is None:
            raise ConfigError(NEEDS_LABELS.format(name=name))
        return self.p.y

    def _scores(self) -> np.ndarray:
        assert self.p.scores is not None, "classification measures are computed from scores"
        return self.p.scores

    def _pred(self, measure: str) -> np.ndarray:
        s = self._scores()
        if self.p.num_classes != 2:
            if measure in ("accuracy", "balanced_accuracy"):
                result: np.ndarray = np.argmax(s, axis=1)
                return result
            raise ConfigError(MULTICLASS_THRESHOLD.format(measure=measure, k=self.p.num_classes))
        return np.asarray(s >= self.p.threshold).astype(np.int64)

    def _rankers(self) -> list[list[_AucRanker]]:
        """Per subset, one ranker per one-vs-rest class (one ranker for binary tasks)."""
        if "rankers" not in self._cache:
            y, s = self._labels("auc"), self._scores()
            if self.p.num_classes == 2:
                cols = [(s, y == 1)]
            else:
                cols = [(s[:, k], y == k) for k in range(self.p.num_classes)]
            rankers: list[list[_AucRanker]] = [[] for _ in self._subsets]
            for sc, pos in cols:
                # sorted once: a subset's score order is the overall one filtered to it
                overall = np.argsort(sc)
                for row, idx in zip(rankers, self._subsets, strict=False):
                    inside = np.zeros(self.p.n, bool)
                    inside[idx] = True
                    row.append(_AucRanker(idx, sc, pos, order=overall[inside[overall]]))
            self._cache["rankers"] = rankers
        cached: list[list[_AucRanker]] = self._cache["rankers"]
        return cached

    def _ordered(self, col: str, *, worst_is_low: bool) -> list[_Ordered]:
        """Per subset, its defined (non-NaN) samples of ``col`` sorted worst-first."""
        key = f"ordered:{col}:{worst_is_low}"
        if key not in self._cache:
            x = self._column(col)
            defined = ~np.isnan(x)
            self._cache[key] = [_Ordered(idx[defined[idx]], x, worst_is_low=worst_is_low) for idx in self._subsets]
        ordered: list[_Ordered] = self._cache[key]
        return ordered

    def _defined(self, col: str) -> tuple[np.ndarray, np.ndarray | None]:
        """``col`` with NaN set to 0 and the mask of defined samples (``None`` when all are)."""
        x = self._column(col)
        defined = ~np.isnan(x)
        if defined.all():
            return x, None
        return np.where(defined, x, 0.0), defined

    def _column(self, col: str) -> np.ndarray:
        if col == "loss" and "loss" not in self.p.values:
            y, s = self._labels("cvar_loss"), self._scores()
            p_true = np.where(y == 1, s, 1.0 - s) if self.p.num_classes == 2 else s[np.arange(y.size), y]
            self.p.values["loss"] = -np.log(np.clip(p_true, 1e-12, 1.0))
        if col not in self.p.values:
            raise ConfigError(MISSING_COLUMN.format(col=col, have=sorted(self.p.values)))
        return self.p.values[col]

    # -- measures ----------------------------------------------------------------------

    def measure(self, measure: str, W: np.ndarray | Draws) -> np.ndarray:
        """One measure for every column of ``W`` (weights, or :class:`Draws`): ``(B, 1 + G)``."""
        op, _, col = measure.partition(":")
        fn = self._SEG.get(op) if col else self._CLS.get(op)
        if fn is None:
            raise ConfigError(UNKNOWN_MEASURE.format(measure=measure, task=self.p.task))
        if isinstance(W, Draws) and fn is not Engine._auc:
            W = W.dense()
        return fn(self, W, col) if col else fn(self, W)

    def _auc(self, W: np.ndarray | Draws) -> np.ndarray:
        drawn: dict[int, np.ndarray] = {}
        if isinstance(W, Draws):
            fast = [r for row in self._rankers() for r in row if r.defined and r.plan(W) is not None]
            drawn = {id(r): v for r, v in zip(fast, _aucs_from_draws(fast, W), strict=True)}
        cols = []
        for rankers in self._rankers():
            per_class = np.stack([drawn[id(r)] if id(r) in drawn else r(W) for r in rankers], axis=1)
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
            mean: np.ndarray = np.nanmean(recalls, axis=0)
            return mean

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
        y, s = self._labels("brier"), self._scores()
        if self.p.num_classes == 2:
            err = (s - y) ** 2
        else:
            err = ((s - np.eye(self.p.num_classes)[y]) ** 2).sum(axis=1)
        return self._means(W, err)

    def _ece(self, W: np.ndarray) -> np.ndarray:
        y, s = self._labels("ece"), self._scores()
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
        gap: np.ndarray = self._seg_mean(W, col) - self._seg_tail(W, col)
        return gap

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

    def compute(self, defs: list[MetricDef], W: np.ndarray | Draws) -> dict[str, np.ndarray]:
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


def _between_defined(g: np.ndarray) -> np.ndarray:
    """Per row: whether at least :data:`MIN_DEFINED_GROUPS` groups have a defined (non-NaN) value."""
    return np.asarray((~np.isnan(g)).sum(axis=1) >= MIN_DEFINED_GROUPS)


def _nanreduce(fn: Callable[..., np.ndarray], g: np.ndarray) -> np.ndarray:
    """``fn`` over the defined groups of each row; NaN where fewer than two groups are defined.

    Every summary (worst group, gap, ratio, equity-scaled score) compares groups, so one
    defined group is not "no gap": it is no comparison, and the summary is undefined.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = fn(g, axis=1)
    return np.where(_between_defined(g), out, np.nan)


def _gap(a: np.ndarray) -> np.ndarray:
    g = _groups(a)
    gap: np.ndarray = _nanreduce(np.nanmax, g) - _nanreduce(np.nanmin, g)
    return gap


def _es(a: np.ndarray, reducer: Callable[..., np.ndarray]) -> np.ndarray:
    o, g = a[:, 0], _groups(a)
    dev = _nanreduce(reducer, np.abs(o[:, None] - g))
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


#: Why a measure is undefined for a subset (overall or one group), by measure operation.
UNDEFINED_WHY: dict[str, str] = {
    "auc": "test labels all of one class",
    "tpr": "no positive test sample",
    "fnr": "no positive test sample",
    "fpr": "no negative test sample",
    "f1": "no positive and no predicted positive",
}
NO_DEFINED_SAMPLE = "no test sample with a defined {col}"
UNDEFINED_NOTE = "undefined: {why}"
TOO_FEW_GROUPS = "fewer than two groups with a defined {measure}"
LEFT_OUT_NOTE = "computed over the defined groups; left out: {groups}"


def _why(measure: str) -> str:
    op, _, col = measure.partition(":")
    return NO_DEFINED_SAMPLE.format(col=col) if col else UNDEFINED_WHY.get(op, "undefined value")


def undefined_notes(problem: Problem, defs: list[MetricDef], point: dict[str, np.ndarray]) -> dict[tuple[str, str], str]:
    """A reason for every undefined value, and the groups a defined summary left out.

    Args:
        problem: the per-sample inputs the point values were computed on.
        defs: the metric definitions.
        point: point values (``(1 + G,)`` for base metrics, scalars for summaries).

    Returns:
        ``(metric, group) -> note``, with ``group`` ``""`` for overall and summary rows;
        rows without a note are absent.
    """
    names, notes = problem.names, {}
    engine, ones = Engine(problem), np.ones((problem.n, 1))
    measured: dict[str, np.ndarray] = {}
    for d in defs:
        v = np.atleast_1d(np.asarray(point[d.name], dtype=np.float64))
        if d.transform is None:
            counts = problem.counts()
            for j in np.flatnonzero(np.isnan(v)):
                why = "no test sample" if counts[j] == 0 else _why(d.measures[0])
                notes[(d.name, "" if j == 0 else names[j - 1])] = UNDEFINED_NOTE.format(why=why)
            continue
        left_out: dict[str, str] = {}
        too_few = []
        for m in d.measures:
            if m not in measured:
                measured[m] = engine.measure(m, ones)[0]
            groups = measured[m][1:]
            for g in np.flatnonzero(np.isnan(groups)):
                left_out.setdefault(names[g], _why(m))
            if (~np.isnan(groups)).sum() < MIN_DEFINED_GROUPS:
                too_few.append(m.partition(":")[2] or m)
        detail = "; ".join(f"{g}: {w}" for g, w in left_out.items())
        if np.isnan(v[0]):
            if too_few:
                why = TOO_FEW_GROUPS.format(measure=", ".join(too_few))
                why += f" (of {len(names)} group(s){'; ' + detail if detail else ''})"
            else:
                why = f"{', '.join(d.measures)} undefined overall"
            notes[(d.name, "")] = UNDEFINED_NOTE.format(why=why)
        elif left_out:
            notes[(d.name, "")] = LEFT_OUT_NOTE.format(groups=detail)
    return notes


def resolve_defs(names: list[str] | None, task: str, *, num_classes: int = 2) -> list[MetricDef]:
    """Built-in definitions by name (default: all of ``task``; thresholded ones need binary)."""
    if names is None:
        defs = [d for d in BY_NAME.values() if d.task == task]
        if task == CLS and num_classes != 2:
            defs = [d for d in defs if not d.thresholded or set(d.measures) <= {"accuracy", "balanced_accuracy"}]
        return defs
    return [BY_NAME[n] for n in names]


__all__ = ["ALPHA", "CLS", "Draws", "ECE_BINS", "MIN_DEFINED_GROUPS", "SEG", "Engine", "Problem", "apply_transform", "resolve_defs",
           "undefined_notes"]
