"""Decision thresholds chosen on VALIDATION predictions only (never on test labels).

Policies (a sample is predicted positive when ``score >= threshold``):

* ``f1`` (default): the threshold maximising F1 on validation;
* ``youden``: the threshold maximising ``TPR - FPR`` on validation;
* ``sensitivity:<x>``: the largest threshold whose validation TPR is at least ``x``;
* ``specificity:<x>``: the smallest threshold whose validation TNR is at least ``x``;
* ``fixed:<t>``: ``t`` itself (FairVision uses ``fixed:0.5``).

Candidates are the distinct validation scores; ties in the criterion go to the largest
threshold.
"""

from __future__ import annotations

import warnings

import numpy as np

from medfairx.errors import ConfigError

DEFAULT_POLICY = "f1"
BAD_POLICY = (
    "Unknown threshold policy {policy!r}. Use 'f1', 'youden', 'sensitivity:<0..1>', "
    "'specificity:<0..1>' or 'fixed:<t>' (e.g. 'sensitivity:0.8')."
)
DEGENERATE_VAL = (
    "Validation predictions have a single class ({n_pos} positives, {n_neg} negatives); "
    "threshold policy {policy!r} falls back to 0.5."
)
FALLBACK = 0.5


def parse_policy(policy: str) -> tuple[str, float | None]:
    """Split ``"name:value"`` and validate it; raise :class:`ConfigError` otherwise."""
    name, _, arg = str(policy).partition(":")
    if name in ("f1", "youden") and not arg:
        return name, None
    if name in ("sensitivity", "specificity", "fixed") and arg:
        try:
            value = float(arg)
        except ValueError:
            raise ConfigError(BAD_POLICY.format(policy=policy)) from None
        if name != "fixed" and not 0.0 <= value <= 1.0:
            raise ConfigError(BAD_POLICY.format(policy=policy))
        return name, value
    raise ConfigError(BAD_POLICY.format(policy=policy))


def choose_threshold(y_val: np.ndarray, s_val: np.ndarray, policy: str = DEFAULT_POLICY) -> float:
    """Choose a decision threshold from validation labels and scores.

    Args:
        y_val: validation labels (0/1).
        s_val: validation scores, P(positive).
        policy: see the module docstring.

    Returns:
        The threshold (predict positive when ``score >= threshold``).
    """
    name, value = parse_policy(policy)
    if name == "fixed":
        assert value is not None, "parse_policy gives fixed its threshold"
        return float(value)
    y = np.asarray(y_val).astype(bool)
    s = np.asarray(s_val, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        warnings.warn(DEGENERATE_VAL.format(n_pos=n_pos, n_neg=n_neg, policy=policy), RuntimeWarning, stacklevel=2)
        return FALLBACK
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last_of_tie = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    cand = s_sorted[last_of_tie]  # descending distinct scores
    tp = np.cumsum(y_sorted)[last_of_tie].astype(np.float64)
    fp = np.cumsum(~y_sorted)[last_of_tie].astype(np.float64)
    tpr, fpr = tp / n_pos, fp / n_neg
    if name == "f1":
        return float(cand[np.argmax(2 * tp / (tp + fp + n_pos))])
    if name == "youden":
        return float(cand[np.argmax(tpr - fpr)])
    assert value is not None, "parse_policy gives sensitivity and specificity a target"
    if name == "sensitivity":
        return float(cand[np.flatnonzero(tpr >= value - 1e-12)[0]])
    ok = np.flatnonzero(1.0 - fpr >= value - 1e-12)  # specificity
    return float(cand[ok[-1]]) if ok.size else float(np.nextafter(cand[0], np.inf))
