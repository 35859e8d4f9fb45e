"""fairdro, dmoe and moe as medfairx methods: registration, routing by group at fit, validation
and prediction time, FairDRO's loss and sampler, state round trips."""

from __future__ import annotations

import pickle
import subprocess
import sys
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import medfairx_fairdro
from medfairx.contracts import TaskData
from medfairx.errors import ConfigError
from medfairx.methods.base import RunContext
from medfairx.methods.losses import group_mean_losses, per_sample_loss
from medfairx.methods.stratified_sampling import GroupStratifiedSampler
from medfairx.methods.trainable import Batch, TrainableMethod
from medfairx.testing.toy import make_cpu_run_context, make_toy_splits
from medfairx_fairdro.dmoe import DMoE
from medfairx_fairdro.fairdro import FairDRO
from medfairx_fairdro.networks import DMoEUNet, channels_for_backbone
from medfairx_fairdro.vmoe import MoE

TINY = {"channels": (4, 8), "n_experts": 4, "recipe": {"epochs": 2, "max_steps_per_epoch": 2, "batch_size": 16}}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def splits() -> dict[str, TaskData]:
    return make_toy_splits("segmentation", spatial_dims=2, n_train=48, n_val=16, n_test=12)


def ctx(dims: int = 2, **changes: Any) -> RunContext:
    return make_cpu_run_context("segmentation", spatial_dims=dims, **changes)


@pytest.fixture(scope="module")
def fitted(splits: dict[str, TaskData]) -> dict[str, Any]:
    torch.set_num_threads(1)
    out: dict[str, Any] = {}
    for cls in (FairDRO, DMoE, MoE):
        train, val = splits["train"], splits["val"]
        if cls is MoE:
            train, val = train.without_groups(), val.without_groups()
        out[cls.name] = cls(**TINY).fit(train, val, ctx())
    return out


# --- registration ---------------------------------------------------------------------


def test_entry_point_registers_the_three_methods() -> None:
    from medfairx.plugins import get_host

    reg = get_host().registry("methods")
    for name, cls in (("fairdro", FairDRO), ("dmoe", DMoE), ("moe", MoE)):
        spec = reg.get(name)
        assert spec.load() is cls and spec.tags == cls.tags and cls.name == name
        assert reg.origin(name).dist == "medfairx-fairdro"
    assert FairDRO.tags.uses_groups_in_fit and FairDRO.tags.uses_groups_in_predict
    assert DMoE.tags.uses_groups_in_fit and DMoE.tags.uses_groups_in_predict
    assert not MoE.tags.uses_groups_in_fit and not MoE.tags.uses_groups_in_predict
    assert {spec.name for spec in medfairx_fairdro.SPECS} == {"fairdro", "dmoe", "moe"}
    assert all(s.tags.tasks == ("segmentation",) and s.tags.spatial_dims == (2, 3) for s in medfairx_fairdro.SPECS)


def test_importing_the_plugin_does_not_import_torch() -> None:
    code = "import sys, medfairx_fairdro; assert 'torch' not in sys.modules and 'monai' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_defaults_follow_methods_md() -> None:
    p = FairDRO().get_params()
    assert (p["alpha"], p["omega"], p["tail"], p["across"], p["min_per_group"]) == (0.25, 1.0, "cvar", "mean", 4)
    assert (p["n_experts"], p["top_k"], p["expert_dropout"], p["expert_width"]) == (8, 2, 0.1, 4)
    assert p["router_noise_eval"] is False
    assert set(DMoE().get_params()) == set(MoE().get_params())


# --- routing at fit, validation and prediction ----------------------------------------


def test_predictions_are_probabilities(fitted: dict[str, Any], splits: dict[str, TaskData]) -> None:
    test = splits["test"].without_labels()
    for name, m in fitted.items():
        p = m.predict_scores(test if name != "moe" else test.without_groups(), ctx())
        assert p.shape == (12, 2, 16, 16) and p.dtype == np.float32
        assert np.allclose(p.sum(1), 1.0, atol=1e-5)
        assert m.selected_epoch_ in (1, 2)


def test_attribute_routed_methods_use_the_groups_at_prediction(fitted: dict[str, Any], splits: dict[str, TaskData]) -> None:
    test = splits["test"].without_labels()
    assert test.groups is not None
    for name in ("fairdro", "dmoe"):
        m = fitted[name]
        assert isinstance(m.model_, DMoEUNet) and m.n_routers_ == 3
        base = m.predict_scores(test, ctx())
        shifted = m.predict_scores(replace(test, groups=(test.groups + 1) % 3), ctx())
        assert not np.allclose(base, shifted)
        # code -1 (outside every group) falls back to router 0
        outside = m.predict_scores(replace(test, groups=np.full(len(test), -1)), ctx())
        zeros = m.predict_scores(replace(test, groups=np.zeros(len(test), dtype=np.int64)), ctx())
        assert np.allclose(outside, zeros)
        with pytest.raises(ConfigError, match="uses_groups_in_predict"):
            m.predict_scores(test.without_groups(), ctx())


def test_moe_ignores_groups(fitted: dict[str, Any], splits: dict[str, TaskData]) -> None:
    m = fitted["moe"]
    assert m.n_routers_ == 1
    test = splits["test"].without_labels()
    assert test.groups is not None
    a = m.predict_scores(test.without_groups(), ctx())
    b = m.predict_scores(replace(test, groups=test.groups[::-1].copy()), ctx())
    assert np.array_equal(a, b)


def test_router_noise_at_inference_only_on_request(splits: dict[str, TaskData]) -> None:
    test = splits["test"].without_labels()
    params = {**TINY, "recipe": {"epochs": 1, "max_steps_per_epoch": 1, "batch_size": 16}}
    quiet = DMoE(**params).fit(splits["train"], splits["val"], ctx())
    assert np.array_equal(quiet.predict_scores(test, ctx()), quiet.predict_scores(test, ctx()))
    noisy = DMoE(**params, router_noise_eval=True).fit(splits["train"], splits["val"], ctx())
    assert not np.array_equal(noisy.predict_scores(test, ctx()), noisy.predict_scores(test, ctx()))


def test_max_attr_sets_the_router_count(splits: dict[str, TaskData]) -> None:
    m = DMoE(**TINY, max_attr=5)
    assert m.count_routers(splits["train"]) == 5
    with pytest.raises(ConfigError, match="max_attr"):
        DMoE(**TINY, max_attr=2).count_routers(splits["train"])
    with pytest.raises(ConfigError, match="train.groups is None"):
        DMoE(**TINY).fit(splits["train"].without_groups(), splits["val"].without_groups(), ctx())


def test_default_channels_follow_the_run_backbone() -> None:
    assert channels_for_backbone("tiny_unet") == (8, 16, 32)
    assert channels_for_backbone("tiny_unet", {"width": 4}) == (4, 8, 16)
    assert channels_for_backbone("unet", {"channels": [8, 16, 32, 64]}) == (8, 16, 32, 64)
    assert channels_for_backbone("basic_unet") == (16, 32, 64, 128, 256)
    assert DMoE().network_channels(ctx()) == (8, 16, 32)  # toy context: tiny_unet
    assert DMoE(channels=[4, 8]).network_channels(ctx()) == (4, 8)


def test_classification_is_refused() -> None:
    with pytest.raises(ConfigError, match="segmentation"):
        DMoE().build_model(make_cpu_run_context("classification"))


# --- FairDRO's loss and sampler --------------------------------------------------------


def test_fairdro_loss_alpha_one_is_group_mean(splits: dict[str, TaskData]) -> None:
    m = FairDRO(alpha=1.0, omega=1.0)
    m.n_groups_, m.q_ = 3, None
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(9, 2, 16, 16, generator=gen)
    y = torch.from_numpy(splits["train"].labels[:9])
    g = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 2])
    loss = m.compute_loss(logits, Batch(logits, y, g, np.arange(9)), ctx())
    means, counts = group_mean_losses(per_sample_loss(logits, y, "segmentation"), g, 3)
    assert loss.item() == pytest.approx(means[counts > 0].mean().item(), rel=1e-6)


def test_fairdro_sampler_is_stratified_and_adapts_to_the_batch(splits: dict[str, TaskData]) -> None:
    logs: list[str] = []
    m = FairDRO(**TINY)
    s = m.make_sampler(splits["train"], ctx(log=logs.append))
    assert isinstance(s, GroupStratifiedSampler) and s.min_per_group == 4 and s.batch_size == 16
    small = FairDRO(min_per_group=8, recipe={"batch_size": 12})
    s2 = small.make_sampler(splits["train"], ctx(log=logs.append))
    assert s2.min_per_group == 4 and any("guaranteeing 4" in line for line in logs)


def test_groupdro_weights_persist_and_round_trip(splits: dict[str, TaskData]) -> None:
    m = FairDRO(**TINY, across="groupdro", eta=1.0).fit(splits["train"], splits["val"], ctx())
    assert m.q_ is not None and m.q_.shape == (3,)
    assert float(m.q_.sum()) == pytest.approx(1.0) and not torch.allclose(m.q_, torch.full((3,), 1 / 3))
    state = pickle.loads(pickle.dumps(m.state_dict()))
    assert torch.equal(state["extra"]["q"], m.q_.cpu())
    fresh = FairDRO(**TINY, across="groupdro").load_state_dict(state, ctx())
    assert fresh.eta == 1.0 and torch.equal(fresh.q_, m.q_) and fresh.n_routers_ == 3
    assert fresh.channels_ == m.channels_ == (4, 8)
    test = splits["test"].without_labels()
    assert np.array_equal(fresh.predict_scores(test, ctx()), m.predict_scores(test, ctx()))


def test_fairdro_3d_end_to_end() -> None:
    sp = make_toy_splits("segmentation", spatial_dims=3, n_train=32, n_val=8, n_test=6, n_groups=2)
    m = FairDRO(**{**TINY, "tail": "kl"}).fit(sp["train"], sp["val"], ctx(3))
    p = m.predict_scores(sp["test"].without_labels(), ctx(3))
    assert p.shape == (6, 2, 8, 8, 8) and np.isfinite(p).all()


# --- the TrainableMethod.forward hook (medfairx/methods/trainable.py) -----------------------


class _GroupShift(nn.Module):
    """A 1x1 convolution whose class-1 logit is shifted by the group code (to see it was passed)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1)
        self.seen: list[bool] = []

    def forward(self, x: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        self.seen.append(g is not None)
        out = self.conv(x)
        if g is None:
            return out
        shift = torch.stack([torch.zeros_like(g), g], dim=1).float()  # class-1 logit + g
        return out + shift.view(-1, 2, 1, 1)


class _Routed(TrainableMethod):
    name = "routed_probe"

    def build_model(self, ctx: RunContext) -> nn.Module:
        return _GroupShift()

    def forward(self, model: nn.Module, batch: Batch, ctx: RunContext) -> Any:
        return model(batch.x, batch.g)


def test_forward_hook_reaches_training_validation_and_prediction(splits: dict[str, TaskData]) -> None:
    m = _Routed(recipe={"epochs": 1, "max_steps_per_epoch": 1, "batch_size": 16})
    m.fit(splits["train"], splits["val"], ctx())
    seen = m.model_.seen
    assert len(seen) >= 2 and all(seen)  # one training step + validation, groups every time
    test = splits["test"].without_labels()
    with_g = m.predict_scores(test, ctx())
    without = m.predict_scores(test.without_groups(), ctx())
    assert not np.allclose(with_g, without)
