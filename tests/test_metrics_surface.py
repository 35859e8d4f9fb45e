"""Spatial segmentation metrics (HD95, NSD, boundary-error share): monai agreement, hand-computed
values, the empty-mask policy, NaN-aware group aggregation and old run stores without the columns."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from medfairx.contracts import TaskData
from medfairx.errors import ConfigError
from medfairx.metrics import surface
from medfairx.metrics.basic import dice_iou_per_sample
from medfairx.metrics.bootstrap import StratifiedBootstrap, bootstrap
from medfairx.metrics.catalogue import BY_NAME
from medfairx.metrics.engine import Engine, Problem
from medfairx.metrics.evaluate import RESULT_COLUMNS, evaluate_runs, score_predictions
from medfairx.metrics.functions import METRICS
from medfairx.metrics.surface import SURFACE_COLUMNS, surface_metrics_per_sample
from medfairx.runner.execute import predictions_frame

NEW_METRICS = ("hd95", "worst_group_hd95", "hd95_gap", "nsd", "worst_group_nsd", "nsd_gap", "boundary_error_share")
# monai returns float32: its distances, percentiles and ratios carry float32 rounding (eps 1.2e-7)
MONAI_RTOL, MONAI_ATOL = 2e-6, 1e-6


def _blobs(rng: np.random.Generator, n: int, shape: tuple[int, ...], num_classes: int) -> np.ndarray:
    """Smooth random label maps; every class present in every sample."""
    out = np.zeros((n, *shape), np.int64)
    for i in range(n):
        for c in range(1, num_classes):
            noise = ndimage.gaussian_filter(rng.standard_normal(shape), 1.5)
            out[i][noise > np.quantile(noise, 0.6 + 0.1 * c)] = c
    return out


def _onehot(x: np.ndarray, num_classes: int):
    import torch

    return torch.from_numpy(np.moveaxis(np.eye(num_classes)[x], -1, 1))


def _square(shape=(20, 20), rows=(5, 11), cols=(5, 11)) -> np.ndarray:
    m = np.zeros(shape, np.int64)
    m[rows[0]:rows[1], cols[0]:cols[1]] = 1
    return m


# -- (a) agreement with monai ---------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("shape", "num_classes"), [((32, 32), 2), ((36, 28), 3), ((12, 14, 16), 2), ((10, 12, 9), 3)])
@pytest.mark.parametrize("spacing", [None, "anisotropic"])
def test_matches_monai(seed, shape, num_classes, spacing):
    from monai.metrics import compute_hausdorff_distance, compute_surface_dice

    rng = np.random.default_rng(seed)
    true, pred = _blobs(rng, 5, shape, num_classes), _blobs(rng, 5, shape, num_classes)
    for c in range(1, num_classes):  # non-empty masks: the cases where monai and the policy agree
        assert (true == c).any(axis=tuple(range(1, true.ndim))).all()
        assert (pred == c).any(axis=tuple(range(1, pred.ndim))).all()
    sp = None if spacing is None else [0.7] + [1.3] * (len(shape) - 1)
    kw = {} if sp is None else {"spacing": sp}
    ours = surface_metrics_per_sample(pred, true, num_classes, tolerance=2.0, spacing=sp)
    p1, t1 = _onehot(pred, num_classes), _onehot(true, num_classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hd = compute_hausdorff_distance(p1, t1, percentile=95, **kw).numpy().astype(np.float64)
        nsd = compute_surface_dice(p1, t1, class_thresholds=[2.0] * (num_classes - 1), **kw).numpy().astype(np.float64)
    np.testing.assert_allclose(ours["hd95"], hd.mean(axis=1), rtol=MONAI_RTOL, atol=MONAI_ATOL)
    np.testing.assert_allclose(ours["nsd"], nsd.mean(axis=1), rtol=MONAI_RTOL, atol=MONAI_ATOL)
    assert 0 < ours["nsd"].min() and ours["nsd"].max() < 1 and (ours["hd95"] > 0).all()  # not a trivial case


@pytest.mark.parametrize("shape", [(32, 32), (12, 14, 16)])
def test_hd95_differs_from_monai_only_by_float32_quantiles(monkeypatch, shape):
    # The residual difference above is torch.quantile's float32 arithmetic: pushing our surface
    # distances through it reproduces monai's HD95 bit for bit, so the distance sets are identical.
    import torch
    from monai.metrics import compute_hausdorff_distance

    def torch_quantiles(values, owner, n, q):
        return np.array([float(torch.quantile(torch.tensor(values[owner == i], dtype=torch.float32), q))
                         for i in range(n)])

    rng = np.random.default_rng(5)
    true, pred = _blobs(rng, 6, shape, 2), _blobs(rng, 6, shape, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = compute_hausdorff_distance(_onehot(pred, 2), _onehot(true, 2), percentile=95).numpy()[:, 0]
    monkeypatch.setattr(surface, "_quantiles", torch_quantiles)
    ours = surface_metrics_per_sample(pred, true, 2)["hd95"].astype(np.float32)
    np.testing.assert_array_equal(ours, ref)


def test_stacked_and_chunked_equal_one_sample_at_a_time(monkeypatch):
    rng = np.random.default_rng(7)
    true, pred = _blobs(rng, 7, (24, 24), 3), _blobs(rng, 7, (24, 24), 3)
    true[2] = 0  # empty ground truth beside non-empty samples: no cross-talk between samples
    pred[4][pred[4] == 2] = 0
    stacked = surface_metrics_per_sample(pred, true, 3)
    monkeypatch.setattr(surface, "CHUNK_VOXELS", 3 * 24 * 24)  # chunks of 3 samples
    chunked = surface_metrics_per_sample(pred, true, 3)
    for k in SURFACE_COLUMNS:
        single = np.array([surface_metrics_per_sample(pred[i:i + 1], true[i:i + 1], 3)[k][0] for i in range(7)])
        np.testing.assert_array_equal(stacked[k], single)
        np.testing.assert_array_equal(chunked[k], single)


# -- (b) and (d) hand-computed examples -------------------------------------------------------


def test_square_shifted_by_three_pixels():
    # GT: 6x6 square (rows/cols 5..10); prediction: the same square 3 px to the right (cols 8..13).
    # Each surface has 20 pixels (6x6 minus its 4x4 interior). Distances from the predicted surface
    # to the GT surface: 0 x6 (rows 5 and 10, cols 8..10 lie on the GT surface), 1 x2, 2 x2, 3 x2
    # (rows 5 and 10, cols 11..13), 1, 2, 2, 1 (col 8, rows 6..9: nearest is the GT top/bottom edge
    # or col 10) and 3 x4 (col 13, rows 6..9). Sorted: 0x6, 1x4, 2x4, 3x6; the other direction is
    # the mirror image. q95: h = 19 * 0.95 = 18.05 -> 3. NSD(2): 14 of 20 in each direction.
    true = _square()[None]
    pred = _square(cols=(8, 14))[None]
    r = surface_metrics_per_sample(pred, true, 2, tolerance=2.0)
    assert r["hd95"][0] == pytest.approx(3.0, abs=1e-12)
    assert r["nsd"][0] == pytest.approx(28 / 40, abs=1e-12)
    assert surface_metrics_per_sample(pred, true, 2, tolerance=3.0)["nsd"][0] == pytest.approx(1.0)
    assert surface_metrics_per_sample(pred, true, 2, tolerance=0.5)["nsd"][0] == pytest.approx(12 / 40)
    # twice the pixel size doubles every distance (tolerance 4 then admits the same 28 of 40)
    r2 = surface_metrics_per_sample(pred, true, 2, tolerance=4.0, spacing=2.0)
    assert r2["hd95"][0] == pytest.approx(6.0) and r2["nsd"][0] == pytest.approx(28 / 40)
    # Boundary share: errors are FN cols 5..7 and FP cols 11..13 (18 + 18 px). The 2-px shell holds
    # the GT pixels within 2 px of the background (all but the central 2x2: rows/cols 7..8) and the
    # background within 2 px of the GT. FN in the shell: 18 - 2 (pixels (7,7), (8,7)); FP in the
    # shell: cols 11 and 12 (12 px), not col 13 (3 px away). Share = (16 + 12) / 36.
    assert r["boundary_error_share"][0] == pytest.approx(28 / 36, abs=1e-12)


def test_boundary_share_counts_far_errors_as_interior():
    true = _square()[None]
    ring = ndimage.binary_dilation(true[0].astype(bool)).astype(np.int64)[None]  # 1-px ring of FPs (4-connected)
    far = ring.copy()
    far[0, 16:18, 16:18] = 1  # a 2x2 false-positive blob 6 px from the GT
    r = surface_metrics_per_sample(np.concatenate([ring, far]), np.concatenate([true, true]), 2)
    n_ring = int(ring.sum() - true.sum())  # 24
    np.testing.assert_allclose(r["boundary_error_share"], [1.0, n_ring / (n_ring + 4)])
    # the shell is a Euclidean ball: predicting the 10x10 square rows/cols 3..12 (64 FP pixels) leaves
    # 3 pixels per corner, e.g. (3,3), (3,4), (4,3) at sqrt(8) and sqrt(5) > 2 px, outside the shell
    big = _square(rows=(3, 13), cols=(3, 13))[None]
    assert surface_metrics_per_sample(big, true, 2)["boundary_error_share"][0] == pytest.approx(52 / 64, abs=1e-12)
    # the shell half-width matters: with shell 0 no pixel is in the shell
    assert surface_metrics_per_sample(far, true, 2, shell=0)["boundary_error_share"][0] == 0.0


def test_boundary_shell_includes_the_image_border():
    # GT: cols 0..5 of a 10x10 image (touching the top, bottom and left borders), nothing predicted:
    # all 60 GT pixels are errors. Beyond the border counts as background (as for the surface), so
    # only rows 2..7 x cols 2..3 are more than 2 px from the boundary: share = 48 / 60.
    true = np.zeros((1, 10, 10), np.int64)
    true[0, :, :6] = 1
    r = surface_metrics_per_sample(np.zeros_like(true), true, 2)
    assert r["boundary_error_share"][0] == pytest.approx(48 / 60, abs=1e-12)


# -- (c) empty-mask policy ------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(20, 20), (20, 20, 20)])
def test_empty_mask_policy(shape):
    obj = np.zeros(shape, np.int64)
    obj[tuple(slice(5, 11) for _ in shape)] = 1  # a 6-px square / cube
    empty = np.zeros(shape, np.int64)
    pred = np.stack([empty, empty, obj, obj])
    true = np.stack([empty, obj, empty, obj])
    r = surface_metrics_per_sample(pred, true, 2)
    # both empty / prediction empty / GT empty / identical
    np.testing.assert_array_equal(r["hd95"], [0.0, np.nan, np.nan, 0.0])
    np.testing.assert_array_equal(r["nsd"], [1.0, 0.0, 0.0, 1.0])
    # prediction empty: every GT voxel is an error; those within 2 px of the background are in the
    # shell (all but the central 2^d block); GT empty: no shell; no error at all: NaN
    inner = 2 ** len(shape)
    n = 6 ** len(shape)
    np.testing.assert_array_equal(r["boundary_error_share"], [np.nan, (n - inner) / n, 0.0, np.nan])


def test_classes_are_averaged_ignoring_nan():
    true = np.zeros((2, 20, 20), np.int64)
    true[:, 5:11, 5:11] = 1
    pred = true.copy()
    pred[0, 5:11, 8:14] = 1  # class 1: 3-px shift (HD95 3, NSD 0.7, share 28/36 as above)
    pred[0, 5:11, 5:8] = 0
    pred[0, 15:17, 15:17] = 2  # class 2: predicted only -> HD95 NaN, NSD 0, share 0
    pred[1, 15:17, 15:17] = 2  # sample 1: class 1 perfect (HD95 0, NSD 1, share NaN)
    r = surface_metrics_per_sample(pred, true, 3)
    np.testing.assert_allclose(r["hd95"], [3.0, 0.0])
    np.testing.assert_allclose(r["nsd"], [(0.7 + 0.0) / 2, (1.0 + 0.0) / 2])
    np.testing.assert_allclose(r["boundary_error_share"], [(28 / 36 + 0.0) / 2, 0.0])
    only_missing = surface_metrics_per_sample(np.zeros((1, 8, 8), int), np.pad(np.ones((1, 2, 2), int), ((0, 0), (3, 3), (3, 3))), 2)
    assert np.isnan(only_missing["hd95"][0])  # every class NaN -> NaN


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="same shape"):
        surface_metrics_per_sample(np.zeros((2, 4, 4)), np.zeros((2, 4, 5)), 2)
    with pytest.raises(ValueError, match="same shape"):
        surface_metrics_per_sample(np.zeros((4, 4)), np.zeros((4, 4)), 2)
    with pytest.raises(ValueError, match="spacing"):
        surface_metrics_per_sample(np.zeros((2, 4, 4)), np.zeros((2, 4, 4)), 2, spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="tolerance"):
        surface_metrics_per_sample(np.zeros((2, 4, 4)), np.zeros((2, 4, 4)), 2, tolerance=-1.0)


# -- (e) group disaggregation with NaN samples ------------------------------------------------


def _nan_values(seed: int = 3, n: int = 90) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    g = rng.choice(["a", "b", "c"], n)
    hd = rng.gamma(2.0, 2.0, n) + 2.0 * (g == "c")
    hd[rng.random(n) < 0.2] = np.nan
    nsd = np.clip(rng.beta(6, 2, n) - 0.2 * (g == "a"), 0, 1)
    nsd[rng.random(n) < 0.1] = np.nan
    return g, hd, nsd


def test_group_values_are_nan_excluding_means():
    g, hd, nsd = _nan_values()
    assert np.isnan(hd).sum() > 5 and np.isnan(nsd).sum() > 3
    kw = dict(sensitive_features=g)
    ref_hd = {k: np.nanmean(hd[g == k]) for k in "abc"}
    ref_nsd = {k: np.nanmean(nsd[g == k]) for k in "abc"}
    f = METRICS["hd95"].frame(None, hd, **kw)
    assert f.overall == pytest.approx(np.nanmean(hd), abs=1e-12)
    assert f.by_group.to_dict() == pytest.approx(ref_hd, abs=1e-12)
    assert METRICS["worst_group_hd95"](None, hd, **kw) == pytest.approx(max(ref_hd.values()), abs=1e-12)  # lower is better
    assert METRICS["hd95_gap"](None, hd, **kw) == pytest.approx(max(ref_hd.values()) - min(ref_hd.values()), abs=1e-12)
    assert METRICS["nsd"].frame(None, nsd, **kw).by_group.to_dict() == pytest.approx(ref_nsd, abs=1e-12)
    assert METRICS["worst_group_nsd"](None, nsd, **kw) == pytest.approx(min(ref_nsd.values()), abs=1e-12)
    assert METRICS["nsd_gap"](None, nsd, **kw) == pytest.approx(max(ref_nsd.values()) - min(ref_nsd.values()), abs=1e-12)
    share = METRICS["boundary_error_share"].frame(None, nsd, **kw)  # any per-sample column with NaNs
    assert share.by_group.to_dict() == pytest.approx(ref_nsd, abs=1e-12)


def test_tail_percentile_and_fail_skip_nan():
    g, _, nsd = _nan_values()
    p = Problem.build("segmentation", g, values={"nsd": nsd})
    e = Engine(p)
    W = np.ones((p.n, 1))
    tail, p10, fail = (e.measure(m, W)[0] for m in ("tail:nsd", "p10:nsd", "fail:nsd"))
    for j, k in enumerate("abc", start=1):
        x = nsd[(g == k) & ~np.isnan(nsd)]
        assert tail[j] == pytest.approx(np.sort(x)[: int(np.ceil(0.1 * x.size - 1e-9))].mean(), abs=1e-12)
        assert p10[j] == pytest.approx(np.percentile(x, 10), abs=1e-12)
        assert fail[j] == pytest.approx((x < 0.5).mean(), abs=1e-12)


def test_bootstrap_replicates_exclude_nan_samples():
    g, hd, _ = _nan_values()
    p = Problem.build("segmentation", g, values={"hd95": hd})
    res = bootstrap(p, [BY_NAME["hd95"], BY_NAME["hd95_gap"]], n_boot=30, seed=4)
    sampler = StratifiedBootstrap(p.strata(), 30, 4)
    for b in (0, 7, 29):
        idx = sampler.indices(b)
        x, gg = p.values["hd95"][idx], p.codes[idx]
        means = [np.nanmean(x[gg == k]) for k in range(3)]
        np.testing.assert_allclose(res.replicates["hd95"][b], [np.nanmean(x), *means], rtol=1e-12)
        assert res.replicates["hd95_gap"][b] == pytest.approx(max(means) - min(means), rel=1e-12)
    assert np.isfinite(res.low["hd95"]).all() and (res.low["hd95"] < res.high["hd95"]).all()


class _Dataset:
    def __init__(self, ids: np.ndarray, sex: np.ndarray) -> None:
        self.meta = pd.DataFrame({"patient_id": ids, "label": 0}, index=ids)
        self.groups = pd.DataFrame({"sex": sex}, index=ids)

    def split_metadata(self, split: str) -> pd.DataFrame:
        return self.meta

    def group_labels(self, split: str) -> pd.DataFrame:
        return self.groups


def test_predictions_frame_stores_the_columns_and_groups_average_them():
    rng = np.random.default_rng(11)
    n = 12
    true = _blobs(rng, n, (24, 24), 2)
    pred = _blobs(rng, n, (24, 24), 2)
    pred[[1, 6]] = 0  # empty predictions: HD95 NaN for those samples
    scores = np.stack([pred == 0, pred == 1], axis=1).astype(np.float32) * 0.8 + 0.1
    ids = np.array([f"s{i:02d}" for i in range(n)])
    sex = np.array(["F", "M"] * (n // 2))
    truth = TaskData(images=np.zeros((n, 1, 24, 24), np.float32), labels=true, groups=None, sample_ids=ids)
    spec = SimpleNamespace(run_id="r", groupings=("sex",))
    frame = predictions_frame(_Dataset(ids, sex), "test", spec, scores, truth, 2, "segmentation")
    expected = surface_metrics_per_sample(pred, true, 2)
    for col in SURFACE_COLUMNS:
        np.testing.assert_array_equal(frame[col].to_numpy(), expected[col])
    np.testing.assert_array_equal(frame["dice"].to_numpy(), dice_iou_per_sample(pred, true, 2)[0])
    assert frame["hd95"].isna().sum() == 2
    rows = score_predictions(frame, task="segmentation", grouping="sex", n_boot=20)
    hd = rows[rows["metric"] == "hd95"].set_index("group")["value"]
    for k in ("F", "M"):
        x = frame.loc[sex == k, "hd95"].to_numpy()
        assert hd[k] == pytest.approx(np.nanmean(x), abs=1e-12)
        assert hd[k] != pytest.approx(np.nan_to_num(x).mean())  # NaN really excluded, not counted as 0
    assert set(NEW_METRICS) <= set(rows["metric"])
    worst = rows.loc[rows["metric"] == "worst_group_hd95", "value"].item()
    assert worst == pytest.approx(max(hd["F"], hd["M"]))
    kinds = rows.drop_duplicates("metric").set_index("metric")
    assert not kinds.loc["hd95", "higher_is_better"] and kinds.loc["nsd", "higher_is_better"]
    assert not kinds.loc["boundary_error_share", "higher_is_better"]
    assert kinds.loc["hd95_gap", "kind"] == "fairness" and kinds.loc["boundary_error_share", "kind"] == "descriptive"


# -- (f) stores written before the columns existed ----------------------------------------------


def _old_frame(n: int = 60, new_columns: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    parts = []
    for split in ("val", "test"):
        d = rng.beta(6, 2, n)
        df = pd.DataFrame({"split": split, "sample_id": [f"{split}{i:03d}" for i in range(n)],
                           "group:sex": np.array(["F", "M"])[np.arange(n) % 2], "dice": d, "iou": d / (2 - d),
                           "loss": 1 - d})
        if new_columns:
            df["hd95"] = np.where(d < 0.3, np.nan, 10 * (1 - d))
            df["nsd"] = d
            df["boundary_error_share"] = 0.5
        parts.append(df)
    return pd.concat(parts, ignore_index=True)


def test_old_predictions_without_the_columns_are_scored():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # silently: no warning either
        rows = score_predictions(_old_frame(), task="segmentation", grouping="sex", n_boot=10)
        only = score_predictions(_old_frame(), task="segmentation", grouping="sex", n_boot=10,
                                 metrics=["hd95", "dice", "nsd_gap"])
        none = score_predictions(_old_frame(), task="segmentation", grouping="sex", n_boot=10, metrics=["hd95"])
    assert not set(NEW_METRICS) & set(rows["metric"]) and {"dice", "tail_dice", "fail_rate"} <= set(rows["metric"])
    assert set(only["metric"]) == {"dice"}
    assert none.empty
    new = score_predictions(_old_frame(new_columns=True), task="segmentation", grouping="sex", n_boot=10)
    assert set(NEW_METRICS) <= set(new["metric"])
    dice_old = rows[rows["metric"] == "dice"].reset_index(drop=True)
    dice_new = new[new["metric"] == "dice"].reset_index(drop=True)
    pd.testing.assert_frame_equal(dice_old, dice_new)  # Dice results do not depend on the new columns


def _write_run(root: Path, name: str, frame: pd.DataFrame) -> None:
    d = root / "suite" / name
    d.mkdir(parents=True)
    json.dump(dict(run_id=name, suite="suite", status="ok", method=name, dataset="segtoy", task="segmentation",
                   num_classes=2, train_grouping=None, groupings=["sex"], seed=0, error=None),
              (d / "run.json").open("w"))
    frame.assign(run_id=name).to_parquet(d / "predictions.parquet")


def test_evaluate_runs_mixes_old_and_new_stores(tmp_path):
    _write_run(tmp_path, "old", _old_frame())
    _write_run(tmp_path, "new", _old_frame(new_columns=True))
    res = evaluate_runs(tmp_path, n_boot=10, strategies=["final"])
    assert list(res.columns) == list(RESULT_COLUMNS)
    by_method = res.groupby("method")["metric"].agg(set)
    assert not set(NEW_METRICS) & by_method["old"] and set(NEW_METRICS) <= by_method["new"]
    assert "dice" in by_method["old"]
    only_old = tmp_path / "only_old"
    _write_run(only_old, "old", _old_frame())
    empty = evaluate_runs(only_old, n_boot=10, metrics=["hd95"], strategies=["final"])
    assert empty.empty and list(empty.columns) == list(RESULT_COLUMNS)


def test_engine_names_the_missing_column():
    p = Problem.build("segmentation", np.array(["a", "b"]), values={"dice": np.array([0.5, 0.7])})
    with pytest.raises(ConfigError, match="No per-sample column 'hd95'"):
        bootstrap(p, [BY_NAME["hd95"]], n_boot=0)


def test_catalogue_entries():
    for name in NEW_METRICS:
        assert name in METRICS and BY_NAME[name].task == "segmentation"
    assert BY_NAME["worst_group_hd95"].transform == "worst_max"
    assert BY_NAME["worst_group_nsd"].transform == "worst_min"
    assert BY_NAME["boundary_error_share"].needs == ("boundary_error_share",)
    assert "not necessarily better" in BY_NAME["boundary_error_share"].summary


def test_slice_dice_scores_only_the_prompted_slices() -> None:
    """A volume whose object is found on its prompted slices but with a false positive on an
    unprompted slice: slice_dice ignores the unprompted slice, the volume Dice does not."""
    from medfairx.data.prompts import PromptConfig, derive_prompts

    true = np.zeros((2, 4, 8, 8), np.int64)
    true[0, 1:3, 2:6, 2:6] = 1  # slices 1 and 2 hold the object
    true[1, 0, 1:4, 1:4] = 1
    pred = true.copy()
    pred[0, 3, 0:2, 0:2] = 1  # false positive on unprompted slice 3
    pred[1, 0, 1:4, 1] = 0  # 3 of 9 object pixels missed on prompted slice 0
    ids = np.array(["a", "b"])
    prompts = derive_prompts(true, ids, PromptConfig(), seed=0)
    scores = np.stack([1 - pred, pred], axis=1).astype(np.float32)
    truth = TaskData(images=np.zeros((2, 1, 4, 8, 8), np.float32), labels=true, groups=None, sample_ids=ids)
    spec = SimpleNamespace(run_id="r", groupings=("sex",))
    frame = predictions_frame(_Dataset(ids, np.array(["F", "M"])), "test", spec, scores, truth, 2, "segmentation",
                              prompts=prompts)
    assert frame["slice_dice"].tolist() == pytest.approx([1.0, 2 * 6 / (6 + 9)])
    assert frame["dice"].iloc[0] == pytest.approx(2 * 32 / (32 + 36))  # the volume Dice sees the false positive
    no_prompts = predictions_frame(_Dataset(ids, np.array(["F", "M"])), "test", spec, scores, truth, 2, "segmentation")
    assert "slice_dice" not in no_prompts.columns
