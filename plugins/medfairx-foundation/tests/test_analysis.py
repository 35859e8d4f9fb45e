"""Group tests vs scipy, error maps and boundary shares by hand, the per-group evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from medfairx.errors import ConfigError
from medfairx_foundation.analysis import (
    boundary_shares,
    boundary_shell,
    canonical_crop,
    dice_tests,
    difference_maps,
    error_maps,
    evaluate_prompted,
    group_error_maps,
    group_tests,
)
from medfairx_foundation.classical import BoxEllipse


def test_group_tests_equal_scipy() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0.8, 0.05, 30), rng.normal(0.7, 0.1, 20), rng.normal(0.75, 0.05, 10)])
    groups = np.repeat([0, 1, 2], [30, 20, 10])
    groups[:2] = -1  # outside every group: ignored
    res = group_tests(values, groups, {0: "a", 1: "b", 2: "c"})
    parts = [values[2:30], values[30:50], values[50:]]
    f, k = stats.f_oneway(*parts), stats.kruskal(*parts)
    assert res.anova_f == pytest.approx(f.statistic) and res.anova_p == pytest.approx(f.pvalue)
    assert res.kruskal_h == pytest.approx(k.statistic) and res.kruskal_p == pytest.approx(k.pvalue)
    assert res.sizes == {"a": 28, "b": 20, "c": 10} and res.n_groups == 3
    single = group_tests(values[:10], np.zeros(10, dtype=int))
    assert np.isnan(single.anova_p) and np.isnan(single.kruskal_p)


def test_dice_tests_from_stored_predictions() -> None:
    frame = pd.DataFrame(
        {
            "split": ["test"] * 6 + ["val"],
            "group:sex": ["F", "F", "F", "M", "M", None, "M"],
            "dice": [0.9, 0.8, 0.85, 0.6, 0.7, 0.1, 0.0],
        }
    )
    res = dice_tests(frame, "sex")
    f = stats.f_oneway([0.9, 0.8, 0.85], [0.6, 0.7])
    assert res.anova_p == pytest.approx(f.pvalue) and res.sizes == {"F": 3, "M": 2}
    with pytest.raises(ConfigError, match="group:age"):
        dice_tests(frame, "age")


def test_canonical_crop_and_error_maps_by_hand() -> None:
    m = np.arange(16).reshape(4, 4)
    np.testing.assert_array_equal(canonical_crop(m, (1, 1, 2, 2), 4), np.repeat(np.repeat([[5, 6], [9, 10]], 2, 0), 2, 1))
    np.testing.assert_array_equal(canonical_crop(m, (-1, 1, 0, 1), 2), [[0, 4], [0, 4]])  # outside the image -> 0
    truth = np.zeros((10, 10), bool)
    truth[2:6, 2:6] = True
    pred = np.zeros((10, 10), bool)
    pred[2:6, 3:7] = True  # shifted right by one column
    fn, fp = error_maps(pred, truth, size=4, margin=0.0)  # frame = the 4x4 truth box, 1:1
    np.testing.assert_array_equal(fn[:, 0], 1.0) and np.testing.assert_array_equal(fn[:, 1:], 0.0)
    assert fp.sum() == 0.0  # the false-positive column lies outside the tight box
    fn, fp = error_maps(pred, truth, size=6, margin=0.25)  # one pixel of margin: 6x6 frame
    assert fn.sum() == 4.0 and fp.sum() == 4.0 and fp[1:5, 5].all()
    assert error_maps(pred, np.zeros_like(truth)) is None


def test_group_maps_and_differences() -> None:
    truth = np.zeros((3, 8, 8), int)
    truth[:, 2:6, 2:6] = 1
    pred = truth.copy()
    pred[1, 2:6, 2] = 0  # group 1: a false-negative column
    maps = group_error_maps(pred, truth, np.array([0, 1, 1]), ("a", "b"), size=4, margin=0.0)
    assert maps["a"]["n"] == 1 and maps["b"]["n"] == 2
    np.testing.assert_array_equal(maps["b"]["fn"][:, 0], 0.5)
    diff = difference_maps(maps, "a")
    np.testing.assert_array_equal(diff["b"]["fn"], maps["b"]["fn"])
    with pytest.raises(ConfigError):
        difference_maps(maps, "z")


def test_boundary_shell_and_shares_by_hand() -> None:
    truth = np.zeros((12, 12), bool)
    truth[3:9, 3:9] = True  # 6x6
    shell = boundary_shell(truth, width=1)
    # Euclidean radius 1 (a cross): dilated = 8x8 without its 4 corners, eroded = 4x4
    assert shell.sum() == 8 * 8 - 4 - 4 * 4
    assert not shell[2, 2] and shell[2, 3] and not shell[5, 5]
    pred = np.zeros((2, 12, 12), bool)
    pred[0, 2:10, 2:10] = True  # 8x8: 28 FP pixels, all in the shell but the 4 corners
    pred[1, 3:9, 3:9] = True
    pred[1, 5:7, 5:7] = False  # a hole 2 px inside the boundary: interior error for width 1
    out = boundary_shares(pred, np.stack([truth, truth]), np.array([0, 1]), ("dil", "hole"), width=1)
    assert out["dil"]["fp_shell"] == 24 / 28 and np.isnan(out["dil"]["fn_shell"]) and out["dil"]["error_pixels"] == 28
    assert out["hole"]["fn_shell"] == 0.0 and out["hole"]["error_shell"] == 0.0


def test_evaluate_prompted_per_group(make_blobs, make_ctx) -> None:
    data = make_blobs(n=12)
    ctx = make_ctx()
    ev = evaluate_prompted(BoxEllipse().fit(data, data, ctx), data, ctx, seed=0)
    s = ev.summary()
    assert s["n"] == {"high": 8, "low": 4} and s["group_dice"]["high"] > 0.9
    manual = float(np.mean(ev.scores["dice"][data.groups == 1]))
    assert s["group_dice"]["low"] == pytest.approx(manual)
    assert s["prompts"]["n_prompts"] == 12 and "anova_p" in s["dice_test"]
    with pytest.raises(ConfigError, match="labels and groups"):
        evaluate_prompted(BoxEllipse().fit(data, data, ctx), data.without_groups(), ctx)
