"""Linear CKA (docs/methods.md §4.2) against an independent HSIC Gram-form reference; layers; ΔCKA; CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medfairx.analysis.cka import (
    MinibatchCKA,
    cka_per_layer,
    cka_svg,
    delta_cka,
    linear_cka,
    select_layers,
    short_label,
    unbiased_hsic,
)
from medfairx.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def hsic_cka_reference(x: np.ndarray, y: np.ndarray) -> float:
    """HSIC(K,L)/sqrt(HSIC(K,K) HSIC(L,L)), K = XX^T, L = YY^T, HSIC = tr(KHLH)/(N-1)^2 (no centring of X, Y)."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = x @ x.T, y @ y.T

    def hsic(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.trace(a @ h @ b @ h)) / (n - 1) ** 2

    return hsic(k, l_) / np.sqrt(hsic(k, k) * hsic(l_, l_))


@pytest.mark.parametrize("shape", [((40, 5), (40, 7)), ((12, 30), (12, 50)), ((20, 8), (20, 64))])
def test_linear_cka_matches_hsic_gram_form(shape: tuple) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape[0])
    y = np.tanh(x @ rng.normal(size=(shape[0][1], shape[1][1]))) + 0.3 * rng.normal(size=shape[1])
    assert linear_cka(x, y) == pytest.approx(hsic_cka_reference(x, y), rel=1e-10)
    assert 0.0 < linear_cka(x, y) < 1.0


def test_linear_cka_invariances() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(30, 6)), rng.normal(size=(30, 40))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(y, y) == pytest.approx(1.0)  # Gram path
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    assert linear_cka(x @ q, y) == pytest.approx(linear_cka(x, y), rel=1e-10)  # orthogonal transform
    assert linear_cka(3.7 * x, 0.2 * y) == pytest.approx(linear_cka(x, y), rel=1e-10)  # isotropic scaling
    assert linear_cka(x + 5.0, y) == pytest.approx(linear_cka(x, y), rel=1e-10)  # translation
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x))
    assert linear_cka(x.reshape(30, 2, 3), y) == pytest.approx(linear_cka(x, y))  # maps are flattened
    assert np.isnan(linear_cka(np.ones((5, 3)), x[:5]))
    with pytest.raises(ConfigError):
        linear_cka(x, y[:10])


def test_unbiased_hsic_and_minibatch_estimator() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(10, 4))
    k = x @ x.T
    # reference: explicit sums with zero diagonals, Song et al. (2012) eq. (5)
    n = 10
    kt = k - np.diag(np.diag(k))
    ref = (np.trace(kt @ kt) + kt.sum() * kt.sum() / ((n - 1) * (n - 2)) - 2 / (n - 2) * (kt @ kt).sum()) / (n * (n - 3))
    assert unbiased_hsic(k, k) == pytest.approx(ref)
    acc = MinibatchCKA()
    big = rng.normal(size=(60, 4))
    for s in range(0, 60, 20):
        acc.update(big[s : s + 20], 2.5 * big[s : s + 20])
    assert acc.value() == pytest.approx(1.0)  # identical up to scale
    y = rng.normal(size=(60, 3))
    ref_acc = [unbiased_hsic(big[s : s + 20] @ big[s : s + 20].T, y[s : s + 20] @ y[s : s + 20].T) for s in (0, 20, 40)]
    mixed = MinibatchCKA()
    for s in (0, 20, 40):
        mixed.update(big[s : s + 20], y[s : s + 20])
    kk = sum(unbiased_hsic(big[s : s + 20] @ big[s : s + 20].T, big[s : s + 20] @ big[s : s + 20].T) for s in (0, 20, 40))
    ll = sum(unbiased_hsic(y[s : s + 20] @ y[s : s + 20].T, y[s : s + 20] @ y[s : s + 20].T) for s in (0, 20, 40))
    assert mixed.value() == pytest.approx(sum(ref_acc) / np.sqrt(kk * ll))
    acc.update(big[:3], y[:3])  # too small: skipped
    assert acc.value() == pytest.approx(1.0)
    with pytest.raises(ConfigError):
        unbiased_hsic(k[:3, :3], k[:3, :3])


def test_resnet18_layer_points_and_labels() -> None:
    from medfairx.methods.backbones import resnet18, tiny_cnn

    net = resnet18(in_channels=3, num_classes=2)
    names = select_layers(net)
    assert len(names) == 18 and names[0] == "encoder.conv1" and names[-1] == "head"
    assert names[1:17] == [f"encoder.layer{i}.{j}.conv{c}" for i in range(1, 5) for j in (0, 1) for c in (1, 2)]
    assert short_label(names[5]) == "2.0.1" and short_label(names[0]) == "conv1"
    small = tiny_cnn(in_channels=1, num_classes=2)
    assert select_layers(small) == ["encoder.0.0", "encoder.2.0", "encoder.4.0", "head"]
    assert select_layers(small, ["head", "encoder.2.0"]) == ["head", "encoder.2.0"]
    with pytest.raises(ConfigError):
        select_layers(small, ["nope"])


def test_cka_per_layer_identical_and_different_models() -> None:
    import torch

    from medfairx.methods.backbones import tiny_cnn

    torch.manual_seed(0)
    a, b = tiny_cnn(in_channels=1, num_classes=2, width=4), tiny_cnn(in_channels=1, num_classes=2, width=4)
    images = np.random.default_rng(0).integers(0, 255, size=(24, 1, 12, 12)).astype(np.uint8)
    same = cka_per_layer(a, a, images, batch_size=10)
    assert np.allclose(same["cka"], 1.0) and list(same["label"]) == ["encoder.0.0", "encoder.2.0", "encoder.4.0", "head"]
    diff = cka_per_layer(a, b, images, batch_size=10)
    assert (diff["cka"] < 0.9999).all()
    mb = cka_per_layer(a, a, images, estimator="minibatch_unbiased", batch_size=8)
    assert np.allclose(mb["cka"], 1.0)
    with pytest.raises(ConfigError):
        cka_per_layer(a, b, images, estimator="rbf")
    d = delta_cka(diff, same, diff)
    assert np.allclose(d["delta_mixed"], 1.0 - diff["cka"]) and np.allclose(d["delta_qpi"], 0.0)
    svg = cka_svg({"a vs b": diff, "<x>": same})
    assert svg.startswith("<svg") and "&lt;x&gt;" in svg


def test_cka_command_trains_saves_and_reuses(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from medfairx.cli.cka_cmd import cka
    from medfairx.runner.state import load_state

    args = ["--model", "a=method:erm", "--model", "b=method:groupdro", "--dataset", "synthetic_cls",
            "--grouping", "group", "--epochs", "1", "--max-images", "40", "--out", str(tmp_path)]
    res = CliRunner().invoke(cka, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    table = pd.read_csv(tmp_path / "cka.csv")
    assert list(table["pair"].unique()) == ["a vs b"] and table["cka"].between(0, 1.0000001).all()
    assert (tmp_path / "cka.svg").read_text().startswith("<svg")
    state = tmp_path / "models" / "a" / "state.pt"
    method, ctx = load_state(state)
    assert method.fitted_ and ctx.backbone == "tiny_cnn"
    # saved weights are reused (no retraining), and a run folder / state file is accepted as source
    res2 = CliRunner().invoke(cka, [*args[:2], "--model", f"c={state}", *args[4:], "--pair", "a,c"],
                              catch_exceptions=False)
    assert res2.exit_code == 0, res2.output
    again = pd.read_csv(tmp_path / "cka.csv")
    assert np.allclose(again["cka"], 1.0)
