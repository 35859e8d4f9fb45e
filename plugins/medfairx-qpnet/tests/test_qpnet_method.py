"""QP-Net: registration, the two stages on toy data, δ trace, K-way, state round trip."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import medfairx_qpnet
from medfairx.contracts import TaskData, TrainRecipe
from medfairx.errors import ConfigError
from medfairx.methods.base import RunContext
from medfairx.specs import MethodSpec
from medfairx_qpnet.method import QPNet, QPNetwork

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def squares(n: int, seed: int, n_groups: int = 2, size: int = 16) -> TaskData:
    """Dark noise; a bright 5x5 square means y = 1; group 1 (and 2) less prevalent."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 80, size=(n, 1, size, size)).astype(np.uint8)
    y = rng.integers(0, 2, size=n)
    for i in np.flatnonzero(y):
        a, b = rng.integers(0, size - 5, size=2)
        x[i, 0, a : a + 5, b : b + 5] = 220
    u = rng.random(n)
    groups = np.where(u < 0.7, 0, 1) if n_groups == 2 else np.where(u < 0.6, 0, np.where(u < 0.8, 1, 2))
    names = ("maj", "min") if n_groups == 2 else ("a", "b", "c")
    return TaskData(x, y, groups.astype(np.int64), np.array([f"s{i}" for i in range(n)]), n_groups, names)


def make_ctx(**recipe: object) -> RunContext:
    base = dict(epochs=3, batch_size=16, lr=3e-3, scheduler="none", patience=0)
    base.update(recipe)
    return RunContext(task="classification", num_classes=2, in_channels=1, image_size=(16, 16),
                      backbone="tiny_cnn", recipe=TrainRecipe(**base), log=lambda s: None)  # type: ignore[arg-type]


def test_registration_is_lazy_and_truthful() -> None:
    got: list[MethodSpec] = []
    medfairx_qpnet.register_methods(register=got.append)
    (spec,) = got
    assert spec.name == "qpnet" and isinstance(spec.target, str) and spec.load() is QPNet
    assert spec.tags.uses_groups_in_fit and not spec.tags.uses_groups_in_predict
    assert spec.tags.tasks == ("classification",)
    assert (QPNet.name, QPNet.tags, QPNet.summary) == (spec.name, spec.tags, spec.summary)
    code = "import sys, medfairx_qpnet; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_defaults_follow_methods_md() -> None:
    p = QPNet().get_params()
    assert (p["gamma_d"], p["gamma_mmd"], p["gamma_bss"], p["bss_k"], p["sigma"]) == (0.2, 0.8, 0.5, 1, 0.05)
    assert (p["mmd_kernel"], p["delta_source"], p["k_groups"], p["z_dim"]) == ("paper", "val", "binarize", 100)
    assert tuple(p["hidden"]) == (70, 50, 20) and p["lr"] == 1e-4 and p["weight_decay"] == 0.03


def test_network_shapes() -> None:
    enc = torch.nn.Sequential(torch.nn.Flatten(1), torch.nn.Linear(16, 8))
    net = QPNetwork(enc, 8, 3, 1)
    logits, z, dl = net.forward_all(torch.randn(4, 1, 4, 4))
    assert logits.shape == (4, 3) and z.shape == (4, 100) and dl.shape == (4, 1)
    assert [m.out_features for m in net.classifier if isinstance(m, torch.nn.Linear)] == [70, 50, 20, 3]


def test_fit_learns_and_traces_delta() -> None:
    train, val = squares(192, 0), squares(96, 1)
    ctx = make_ctx()
    seen: list[tuple[str, int]] = []
    ctx.observe_epoch = lambda stage, e, predict: seen.append((stage, e))
    m = QPNet(lr=3e-3, mmd_normalize=True).fit(train, val, ctx)
    assert m.less_codes_ == (1,)
    assert [h["stage"] for h in ctx.history] == ["qpnet"] * 3  # stage A keeps its own history
    assert seen == [("qpnet", 1), ("qpnet", 2), ("qpnet", 3)]  # and is not observed (not deployed)
    assert m.delta_history_[0]["delta_used"] == {0: 0.5}  # epoch 1 uses 0.5
    for h in m.delta_history_[:-1]:
        assert 0.0 <= h["delta_used"][0] <= 1.0 and set(h["terms"]) >= {"l_y", "l_d", "mmd", "bss"}
    assert 0.0 < m.a_mix_[0] <= 1.0
    assert ctx.history[-1]["val_auc"] > 0.9
    p = m.predict_scores(val.without_labels().without_groups(), ctx)
    assert p.shape == (96, 2) and p.dtype == np.float32
    state = m.state_dict()
    m2 = QPNet().load_state_dict(state, make_ctx())
    np.testing.assert_allclose(m2.predict_scores(val.without_labels(), ctx), p, atol=1e-6)


@pytest.mark.parametrize(
    "params",
    [
        {"k_groups": "kway", "mmd_kernel": "multi"},
        {"delta_source": "batch", "qp_code_guards": True, "mix_arch": "backbone"},
    ],
)
def test_options_run(params: dict) -> None:
    n_groups = 3 if params.get("k_groups") == "kway" else 2
    train, val = squares(96, 0, n_groups), squares(48, 1, n_groups)
    m = QPNet(**QPNet.test_params(), **params).fit(train, val, make_ctx())
    assert m.epochs_trained_ == 2
    if n_groups == 3:
        assert m.less_codes_ == (1, 2) and m.n_domain_out_ == 3 and set(m.deltas_) == {0}
    else:
        assert m.delta_history_[-1]["delta_used"][0] != 0.5 or m.deltas_ == {0: 0.5}


def test_one_group_falls_back_to_ce_and_errors() -> None:
    train, val = squares(64, 0), squares(48, 1)
    only_min = train.subset(train.groups == 1)
    m = QPNet(**QPNet.test_params()).fit(only_min, val, make_ctx())
    assert set(m.delta_history_[0]["terms"]) == {"loss", "l_y"}  # no MMD, BSS or adversary
    with pytest.raises(ConfigError):
        QPNet().fit(train.without_groups(), val, make_ctx())
    with pytest.raises(ConfigError):
        QPNet(delta_source="test").fit(train, val, make_ctx())
