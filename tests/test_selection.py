"""Selection strategies on fabricated epoch histories with hand-known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from medfairx.selection import STRATEGIES, pareto_front, select_overall, val_table

# per-epoch validation mean Dice of group A (30 samples) and B (10 samples); overall = .75 A + .25 B
#   epoch:      0     1     2     3     4
A = [0.60, 0.95, 0.70, 0.65, 0.88]
B = [0.50, 0.40, 0.58, 0.55, 0.52]
# overall: .575 .8125 .67 .625 .79 -> overall picks 1; worst group: .50 .40 .58 .55 .52 -> 2
# Pareto front {1, 2, 4}; best worst group on it -> 2
# DTO (A span .35, B span .18): e1 = 1, e2 = .714, e4 = sqrt(.2^2 + .333^2) = .389 -> 4
EXPECTED = {"overall": 1, "worst_group": 2, "pareto": 2, "dto": 4, "final": None}


def _seg_history(test_dice: float = 0.3) -> pd.DataFrame:
    rows = []
    for epoch, (a, b) in enumerate(zip(A, B, strict=False)):
        for split, va, vb in (("val", a, b), ("test", test_dice, 1 - test_dice)):
            for i in range(40):
                grp = "A" if i < 30 else "B"
                rows.append(dict(epoch=epoch, split=split, sample_id=f"{split}{i}", dice=va if grp == "A" else vb,
                                 iou=0.0, loss=0.0, **{"group:site": grp}))
    return pd.DataFrame(rows)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_hand_known_choices(name):
    assert STRATEGIES[name](_seg_history(), task="segmentation", group_column="group:site") == EXPECTED[name]


@pytest.mark.parametrize("name", list(EXPECTED))
def test_test_rows_never_change_the_choice(name):
    a = STRATEGIES[name](_seg_history(0.3), task="segmentation", group_column="group:site")
    b = STRATEGIES[name](_seg_history(0.99), task="segmentation", group_column="group:site")
    assert a == b


def test_val_table_and_pareto_front():
    table = val_table(_seg_history(), task="segmentation", group_column="group:site")
    np.testing.assert_allclose(table["overall"], [0.75 * a + 0.25 * b for a, b in zip(A, B, strict=False)])
    assert list(pareto_front(table[["g:A", "g:B"]])) == [1, 2, 4]


def test_classification_overall_uses_val_auc_only():
    rng = np.random.default_rng(0)
    rows, aucs = [], []
    for epoch, strength in enumerate([0.2, 1.5, 0.8]):
        for split in ("val", "test"):
            y = rng.integers(0, 2, 200)
            s = 1 / (1 + np.exp(-(rng.normal(0, 1, 200) + strength * y)))
            if split == "test":  # corrupt test: perfectly informative at epoch 0 only
                y = (s > 0.5).astype(int) if epoch == 0 else rng.integers(0, 2, 200)
            else:
                aucs.append(roc_auc_score(y, s))
            rows += [dict(epoch=epoch, split=split, sample_id=f"{split}{i}", y_true=y[i], score=s[i],
                          **{"group:sex": "FM"[i % 2]}) for i in range(200)]
    hist = pd.DataFrame(rows)
    assert select_overall(hist, task="classification", group_column="group:sex") == int(np.argmax(aucs))
