"""Small per-sample and per-group primitives shared by the trainer, runner and metrics."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np


def auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Binary ROC AUC (Mann-Whitney with average ranks for ties); NaN if one class only."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(score, dtype=np.float64)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = average_ranks(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties sharing their average rank (``scipy.stats.rankdata`` semantics)."""
    v = np.asarray(values)
    order = np.argsort(v, kind="mergesort")
    sorted_v = v[order]
    starts = np.flatnonzero(np.r_[True, sorted_v[1:] != sorted_v[:-1]])
    ends = np.r_[starts[1:], v.size]
    avg = (starts + ends + 1) / 2.0  # mean of the 1-based positions start+1 .. end
    ranks = np.empty(v.size, dtype=np.float64)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def group_values(values: np.ndarray, groups: np.ndarray, fn: Callable[..., Any], *extra: np.ndarray) -> dict[int, float]:
    """Apply ``fn(values[g], *extra[g])`` per group code (codes < 0 are ignored)."""
    out: dict[int, float] = {}
    for g in np.unique(groups[groups >= 0]):
        m = groups == g
        out[int(g)] = float(fn(values[m], *(e[m] for e in extra)))
    return out


def group_auc(y_true: np.ndarray, score: np.ndarray, groups: np.ndarray) -> dict[int, float]:
    """AUC per group code; NaN (with a warning) for a group with a single class."""
    res = group_values(np.asarray(y_true), np.asarray(groups), auc, np.asarray(score))
    bad = [g for g, v in res.items() if np.isnan(v)]
    if bad:
        warnings.warn(f"AUC undefined (single class) for group code(s) {bad}; set to NaN.", stacklevel=2)
    return res


def dice_iou_per_sample(pred: np.ndarray, true: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample Dice and IoU of label maps, averaged over foreground classes 1..C-1.

    Empty-mask policy: both empty → 1; exactly one empty → 0 (per class).
    """
    pred = np.asarray(pred)
    true = np.asarray(true)
    n = pred.shape[0]
    p = pred.reshape(n, -1)
    t = true.reshape(n, -1)
    dices, ious = [], []
    for c in range(1, max(num_classes, 2)):
        pc, tc = p == c, t == c
        inter = (pc & tc).sum(1).astype(np.float64)
        sp, st = pc.sum(1).astype(np.float64), tc.sum(1).astype(np.float64)
        union = sp + st - inter
        both_empty = (sp + st) == 0
        with np.errstate(invalid="ignore", divide="ignore"):
            d = np.where(both_empty, 1.0, 2 * inter / (sp + st))
            j = np.where(both_empty, 1.0, inter / union)
        dices.append(d)
        ious.append(j)
    return np.mean(dices, axis=0), np.mean(ious, axis=0)
