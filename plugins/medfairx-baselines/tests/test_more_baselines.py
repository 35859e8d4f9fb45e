"""Resampling, SWAD, ADV, CutMix, stratified, FIS and FEBS: unit checks of the pieces each
method adds, then short end-to-end fits on tiny synthetic data (CPU, seconds)."""

from __future__ import annotations

import functools
import math
import pickle
from dataclasses import replace

import numpy as np
import pytest
import torch

import medfairx_baselines as mb
from medfairx.errors import ConfigError
from medfairx.methods.grl import (
    GradientReversal,
    GroupAdversary,
    grad_reverse,
    grl_lambda,
)
from medfairx.testing.toy import make_cpu_run_context, make_toy_splits
from medfairx_baselines.group_sampling import GroupBatchStream, stratum_weights
from medfairx_baselines.resampling import Resampling
from medfairx_baselines.stratified import Stratified
from medfairx_baselines.swad import SWAD

NEW = ("resampling", "swad", "adv", "cutmix", "stratified", "fis", "febs")
SPECS = {s.name: s for s in mb.SPECS}


def _fit(name: str, task: str, dims: int = 2, seed: int = 0, **params):
    cls = SPECS[name].load()
    kw = {**cls.test_params(), **params}
    splits = make_toy_splits(task, spatial_dims=dims, num_classes=2, seed=seed)
    ctx = make_cpu_run_context(task, num_classes=2, spatial_dims=dims)
    method = cls(**kw).fit(splits["train"], splits["val"], ctx)
    return method, splits, ctx


@functools.cache
def _fitted(name: str, task: str):
    """One default (test_params) fit per method and task, shared by the tests below."""
    return _fit(name, task)


# --- resampling -------------------------------------------------------------------------


def test_stratum_weights_are_inverse_counts() -> None:
    groups = np.array([0, 0, 0, 1, 2, 2, -1])
    labels = np.array([0, 1, 1, 1, 0, 0, 1])
    w = stratum_weights(groups, labels, "group")
    np.testing.assert_allclose(w, [1 / 3, 1 / 3, 1 / 3, 1, 1 / 2, 1 / 2, 1])  # -1 is its own stratum
    w = stratum_weights(groups, labels, "balanced")
    np.testing.assert_allclose(w, [1, 1 / 2, 1 / 2, 1, 1 / 2, 1 / 2, 1])
    w = stratum_weights(groups, labels, "class")
    np.testing.assert_allclose(w, [1 / 3, 1 / 4, 1 / 4, 1 / 4, 1 / 3, 1 / 3, 1 / 4])
    with pytest.raises(ConfigError):
        stratum_weights(groups, None, "balanced")
    with pytest.raises(ConfigError):
        stratum_weights(groups, labels, "patient")


def test_resampling_sampler_balances_groups() -> None:
    splits = make_toy_splits("classification", num_classes=2, seed=0)
    train = splits["train"]
    groups = train.groups.copy()
    groups[: len(groups) * 2 // 3] = 0  # make group 0 dominant
    train = replace(train, groups=groups)
    ctx = make_cpu_run_context("classification", num_classes=2, seed=4)
    sampler = Resampling().make_sampler(train, ctx)
    draws = np.concatenate([sampler.epoch_indices(e) for e in range(300)])
    assert len(sampler.epoch_indices(0)) == len(train)  # num_samples = N_train
    np.testing.assert_array_equal(sampler.epoch_indices(5), Resampling().make_sampler(train, ctx).epoch_indices(5))
    share = np.bincount(groups[draws], minlength=3) / len(draws)
    np.testing.assert_allclose(share, [1 / 3] * 3, atol=0.02)
    seg = make_toy_splits("segmentation", num_classes=2, seed=0)["train"]
    with pytest.raises(ConfigError):
        Resampling(resample_which="balanced").make_sampler(seg, ctx)


def test_group_batch_stream_cycles_each_group() -> None:
    groups = np.array([0, 1, 0, 1, 0, 2, 0, 1])
    stream = GroupBatchStream(groups, 2, seed=0)
    assert stream.present == (0, 1, 2)
    first_two = np.concatenate([stream.next_batch(0), stream.next_batch(0)])
    assert sorted(first_two.tolist()) == [0, 2, 4, 6]  # one full permutation before repeating
    assert set(stream.next_batch(2).tolist()) == {5}
    with pytest.raises(ConfigError):
        stream.next_batch(3)


# --- ADV / gradient reversal ------------------------------------------------------------------


def test_gradient_reversal_forward_identity_backward_negated() -> None:
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    lam = 0.7
    y = grad_reverse(x, lam)
    torch.testing.assert_close(y, x)
    upstream = torch.randn(4, 3, dtype=torch.float64)
    (g,) = torch.autograd.grad(y, x, upstream)
    torch.testing.assert_close(g, -lam * upstream)
    # through a module, with the layer's own lambda
    layer = GradientReversal(2.0)
    x2 = x.detach().clone().requires_grad_(True)
    (layer(x2) * upstream).sum().backward()
    torch.testing.assert_close(x2.grad, -2.0 * upstream)


def test_grl_schedule() -> None:
    assert grl_lambda(0.0) == 0.0
    assert grl_lambda(1.0, 1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert grl_lambda(0.5, 0.3) == pytest.approx(0.3 * (2 / (1 + math.exp(-5)) - 1))
    assert grl_lambda(2.0) == grl_lambda(1.0)


def test_adversary_architecture() -> None:
    adv = GroupAdversary(64, 3)
    assert [type(m).__name__ for m in adv.net] == ["Linear", "ReLU", "Linear"]
    assert adv.net[0].out_features == 128 and adv(torch.zeros(5, 64)).shape == (5, 3)


def test_adv_fit_schedule_and_state() -> None:
    method, splits, ctx = _fitted("adv", "classification")
    assert method.lambda_ > 0 and method.step_ == 6
    assert not hasattr(method, "tap_")  # the feature hook is removed after fit
    state = method.state_dict()
    assert state["extra"]["adversary"]["net.0.weight"].shape == (16, 64)


# --- stratified ----------------------------------------------------------------------------


def test_stratified_routes_by_true_group() -> None:
    method, splits, ctx = _fitted("stratified", "classification")
    test = splits["test"].without_labels()
    scores = method.predict_scores(test, ctx)
    for g, model in method.models_.items():
        rows = np.flatnonzero(test.groups == g)
        np.testing.assert_allclose(scores[rows], model.predict_scores(test.subset(rows), ctx), atol=1e-6)
    # the same images with other group codes get other models' scores
    rerouted = method.predict_scores(replace(test, groups=(test.groups + 1) % 3), ctx)
    assert not np.allclose(rerouted, scores)
    with pytest.raises(ConfigError):
        method.predict_scores(test.without_groups(), ctx)
    # samples outside every group: the mean of the group models
    outside = replace(test, groups=np.full(len(test), -1))
    mean = np.mean([m.predict_scores(test, ctx) for m in method.models_.values()], axis=0)
    np.testing.assert_allclose(method.predict_scores(outside, ctx), mean, atol=1e-6)


def test_stratified_group_without_training_samples_is_a_clear_error() -> None:
    splits = make_toy_splits("classification", num_classes=2, seed=0)
    train = splits["train"]
    train = replace(train, groups=np.where(train.groups == 2, 0, train.groups))
    ctx = make_cpu_run_context("classification", num_classes=2)
    with pytest.raises(ConfigError, match="no training samples"):
        Stratified(**Stratified.test_params()).fit(train, splits["val"], ctx)


# --- SWAD ---------------------------------------------------------------------------------


def test_swad_averages_segments_and_recalibrates_bn() -> None:
    method, splits, ctx = _fitted("swad", "segmentation")
    info = method.swad_info_
    assert len(info["scores"]) == 4 and info["included_segments"]
    scores = [rec["val_loss"] for rec in ctx.history[:4]]
    assert info["scores"] == pytest.approx(scores)  # segmentation: v = validation loss of θ_t
    bn = [m for m in method.model_.modules() if isinstance(m, torch.nn.BatchNorm2d)][0]
    assert bn.num_batches_tracked.item() > 0
    assert SWAD(preset="medfair").valley_params() == (3, 9, 0.05)


# --- end-to-end ---------------------------------------------------------------------------


CASES = [(n, t) for n in NEW for t in SPECS[n].tags.tasks]


@pytest.mark.parametrize(("name", "task"), CASES)
def test_fit_predict_end_to_end(name: str, task: str) -> None:
    method, splits, ctx = _fitted(name, task)
    test = splits["test"].without_labels()
    if not SPECS[name].tags.uses_groups_in_predict:
        test = test.without_groups()
    scores = method.predict_scores(test, ctx)
    n = len(test)
    assert scores.dtype == np.float32 and scores.shape[:2] == (n, 2)
    assert np.isfinite(scores).all()
    np.testing.assert_allclose(scores.sum(1), 1.0, atol=1e-5)
    state = pickle.loads(pickle.dumps(method.state_dict()))
    again = SPECS[name].load()(**SPECS[name].load().test_params()).load_state_dict(state, ctx)
    np.testing.assert_allclose(again.predict_scores(test, ctx), scores, atol=1e-6)


def test_fis_fairdi_variant_and_3d_febs() -> None:
    method, _, _ = _fit("fis", "classification", variant="fairdi")
    assert set(method.last_distances_) <= {0, 1, 2} and method.last_distances_
    method, _, _ = _fit("fis", "classification", ot_backend="wasserstein_1d", group_forward_mode="eval")
    assert set(method.last_distances_) == {0, 1, 2}
    method, splits, ctx = _fit("febs", "segmentation", dims=3)
    assert method.predict_scores(splits["test"].without_labels().without_groups(), ctx).shape[2:] == (8, 8, 8)


def test_tags_are_truthful() -> None:
    assert SPECS["stratified"].tags.uses_groups_in_predict
    assert not SPECS["cutmix"].tags.uses_groups_in_fit
    assert SPECS["febs"].tags.tasks == ("segmentation",)
    for name in NEW:
        assert SPECS[name].load().tags == SPECS[name].tags
    splits = make_toy_splits("classification", num_classes=2)
    with pytest.raises(ConfigError, match="segmentation"):
        ctx = make_cpu_run_context("classification", num_classes=2)
        SPECS["febs"].load()().fit(splits["train"], splits["val"], ctx)
