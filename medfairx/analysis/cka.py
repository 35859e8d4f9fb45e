"""Linear CKA per layer between two trained networks, and the ΔCKA protocol (docs/methods.md §4.2).

* :func:`linear_cka` — the full linear estimator (Kornblith et al. 2019) on column-centred
  activations, ``‖YᵀX‖_F² / (‖XᵀX‖_F·‖YᵀY‖_F)``, computed in the Gram (N×N) form when a
  layer has more features than inputs (flattened conv maps);
* :func:`unbiased_hsic` / :class:`MinibatchCKA` — the ``minibatch_unbiased`` option: the
  unbiased HSIC of Song et al. (diagonals zeroed) summed over batches (Nguyen et al. 2021,
  ``torch_cka``, batches of 80);
* :func:`select_layers` — the 18 ResNet-18 points (``conv1``, the 16 ``layerX.Y.conv1/conv2``
  and the first Linear after the encoder: ``fc``/``head``, or QP-Net's ``proj``) or every
  Conv/Linear layer, or a user list;
* :func:`cka_per_layer` — activations captured with forward hooks on the same images;
* :func:`delta_cka` — ``ΔCKA = CKA_2 − CKA_1`` per layer for the Mixed and QPI arms;
* :func:`cka_svg` — a line plot with :mod:`medfairx.report.svgplot`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from medfairx.errors import ConfigError

ESTIMATORS: tuple[str, ...] = ("full_linear", "minibatch_unbiased")
DEFAULT_MINIBATCH = 80
_RESNET_BLOCK = re.compile(r"(^|\.)layer(\d+)\.(\d+)\.conv([12])$")


# --- estimators --------------------------------------------------------------------------


def _as_2d(x: Any) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    return a.reshape(a.shape[0], -1)


def linear_cka(x: Any, y: Any) -> float:
    """Full linear CKA of ``(N, p)`` and ``(N, q)`` activations (higher dims are flattened).

    Columns are centred; the feature form ``‖YᵀX‖²/(‖XᵀX‖·‖YᵀY‖)`` is used when both
    widths are at most ``N``, else the equal Gram form ``⟨HKH, HLH⟩/(‖HKH‖·‖HLH‖)``.
    NaN when either representation is constant.

    Raises:
        ConfigError: different numbers of rows, or fewer than 2.
    """
    x, y = _as_2d(x), _as_2d(y)
    n = x.shape[0]
    if y.shape[0] != n or n < 2:
        raise ConfigError(f"linear_cka needs the same N >= 2 inputs for both; got {x.shape[0]} and {y.shape[0]}.")
    x = x - x.mean(0, keepdims=True)
    y = y - y.mean(0, keepdims=True)
    if max(x.shape[1], y.shape[1]) <= n:
        num = np.linalg.norm(y.T @ x) ** 2
        den = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    else:
        k, l_ = x @ x.T, y @ y.T  # already centred: H K H = X_c X_cᵀ
        num = float(np.sum(k * l_))
        den = np.linalg.norm(k) * np.linalg.norm(l_)
    return float(num / den) if den > 0 else float("nan")


def unbiased_hsic(k: np.ndarray, l_: np.ndarray) -> float:
    """Unbiased HSIC (Song et al. 2012) of two ``(n, n)`` Gram matrices, ``n >= 4``.

    ``[tr(K̃L̃) + 1ᵀK̃1·1ᵀL̃1/((n−1)(n−2)) − 2/(n−2)·1ᵀK̃L̃1] / (n(n−3))`` with the diagonals
    of ``K̃``, ``L̃`` set to zero.
    """
    n = k.shape[0]
    if n < 4:
        raise ConfigError(f"unbiased_hsic needs n >= 4 samples, got {n}.")
    kt, lt = k.copy(), l_.copy()
    np.fill_diagonal(kt, 0.0)
    np.fill_diagonal(lt, 0.0)
    ones = np.ones(n)
    term1 = float(np.sum(kt * lt))  # tr(K̃L̃) for symmetric matrices
    term2 = float(ones @ kt @ ones) * float(ones @ lt @ ones) / ((n - 1) * (n - 2))
    term3 = 2.0 / (n - 2) * float(ones @ kt @ lt @ ones)
    result: float = (term1 + term2 - term3) / (n * (n - 3))
    return result


class MinibatchCKA:
    """Accumulates unbiased HSIC over minibatches: ``ΣHSIC(K,L)/√(ΣHSIC(K,K)·ΣHSIC(L,L))``."""

    def __init__(self) -> None:
        self.xy = self.xx = self.yy = 0.0

    def update(self, x: Any, y: Any) -> None:
        """Add one batch of paired activations (batches with fewer than 4 rows are skipped)."""
        x, y = _as_2d(x), _as_2d(y)
        if x.shape[0] < 4:
            return
        k, l_ = x @ x.T, y @ y.T
        self.xy += unbiased_hsic(k, l_)
        self.xx += unbiased_hsic(k, k)
        self.yy += unbiased_hsic(l_, l_)

    def value(self) -> float:
        """The minibatch CKA (NaN when undefined)."""
        den = np.sqrt(max(self.xx, 0.0) * max(self.yy, 0.0))
        return float(self.xy / den) if den > 0 else float("nan")


# --- layers ------------------------------------------------------------------------------


def select_layers(model: Any, layers: Sequence[str] | None = None) -> list[str]:
    """Module names to record.

    Args:
        model: a torch module.
        layers: explicit names (exact, or a unique suffix such as ``layer1.0.conv1``);
            ``None`` → the ResNet points when the net has ``layerX.Y.conv1/conv2`` modules
            (stem ``conv1``, every block conv, first Linear), else every Conv/Linear layer.

    Raises:
        ConfigError: a requested name matches no module or several.
    """
    from torch import nn

    named = dict(model.named_modules())
    if layers:
        out = []
        for want in layers:
            hits = [n for n in named if n == want] or [n for n in named if n.endswith("." + want)]
            if len(hits) != 1:
                raise ConfigError(
                    f"Layer {want!r} matches {len(hits)} modules of {type(model).__name__}; use the full name, one "
                    f"of e.g. {[n for n in named if n][:12]}."
                )
            out.append(hits[0])
        return out
    convs = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
    blocks = [n for n, m in named.items() if isinstance(m, convs) and _RESNET_BLOCK.search(n)]
    linears = [n for n, m in named.items() if isinstance(m, nn.Linear)]
    if blocks:
        stem = [n for n, m in named.items() if isinstance(m, convs) and n.split(".")[-1] == "conv1" and "layer" not in n]
        return stem[:1] + blocks + linears[:1]
    return [n for n, m in named.items() if isinstance(m, (*convs, nn.Linear))]


def short_label(name: str) -> str:
    """Compact layer label: ``encoder.layer3.1.conv2`` → ``3.1.2``, ``encoder.conv1`` → ``conv1``."""
    m = _RESNET_BLOCK.search(name)
    if m:
        return f"{m.group(2)}.{m.group(3)}.{m.group(4)}"
    return name.split(".")[-1] if name.split(".")[-1] in ("conv1", "fc", "head", "proj") else name


# --- activations -------------------------------------------------------------------------


def _batches(model_a: Any, model_b: Any, images: np.ndarray, layers_a: list[str], layers_b: list[str],
             batch_size: int) -> Any:
    """Yield per batch the flattened float64 activations ``([A_layer…], [B_layer…])``."""
    import torch

    from medfairx.methods.device import images_to_float

    def hooks(model: Any, names: list[str], store: dict[str, Any]) -> list[Any]:
        mods = dict(model.named_modules())

        def make(name: str) -> Any:
            def hook(_m: Any, _i: Any, out: Any) -> None:
                t = out[0] if isinstance(out, (tuple, list)) else out
                store[name] = t.detach().flatten(1).to("cpu", torch.float64).numpy()
            return hook

        return [mods[n].register_forward_hook(make(n)) for n in names]

    rec_a: dict[str, Any] = {}
    rec_b: dict[str, Any] = {}
    handles = hooks(model_a, layers_a, rec_a) + hooks(model_b, layers_b, rec_b)
    modes = (model_a.training, model_b.training)
    model_a.eval()
    model_b.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                x = torch.as_tensor(images[start : start + batch_size])
                x = images_to_float(x) if x.dtype == torch.uint8 else x.float()
                dev_a = next(model_a.parameters()).device
                dev_b = next(model_b.parameters()).device
                model_a(x.to(dev_a))
                model_b(x.to(dev_b))
                yield [rec_a[n] for n in layers_a], [rec_b[n] for n in layers_b]
    finally:
        for h in handles:
            h.remove()
        model_a.train(modes[0])
        model_b.train(modes[1])


def cka_per_layer(
    model_a: Any,
    model_b: Any,
    images: np.ndarray,
    *,
    layers_a: Sequence[str] | None = None,
    layers_b: Sequence[str] | None = None,
    estimator: str = "full_linear",
    batch_size: int = DEFAULT_MINIBATCH,
) -> pd.DataFrame:
    """Linear CKA between two networks at paired layers, on the same images.

    Layers are paired by position (:func:`select_layers` of each model), so two
    architectures with the same number of points can be compared (e.g. ``head`` ↔ ``proj``).

    Args:
        model_a: first network (``nn.Module``).
        model_b: second network.
        images: ``(N, C, *spatial)`` ``uint8`` (normalised like the trainer does) or float.
        layers_a: names for ``model_a`` (default :func:`select_layers`).
        layers_b: names for ``model_b`` (default: ``layers_a`` if it has them, else its own).
        estimator: ``"full_linear"`` (all N at once) or ``"minibatch_unbiased"``.
        batch_size: forward batch size (and the minibatch of the unbiased estimator).

    Returns:
        Columns ``index, layer, label, layer_b, cka, estimator, n``.

    Raises:
        ConfigError: unknown estimator or mismatched layer counts.
    """
    if estimator not in ESTIMATORS:
        raise ConfigError(f"Unknown cka_estimator {estimator!r}; use one of {', '.join(ESTIMATORS)}.")
    la = select_layers(model_a, layers_a)
    if layers_b is None:
        names_b = dict(model_b.named_modules())
        lb = la if all(n in names_b for n in la) else select_layers(model_b, None)
    else:
        lb = select_layers(model_b, layers_b)
    if len(la) != len(lb):
        raise ConfigError(f"The two models give {len(la)} and {len(lb)} layers; pass --layers for both to pair them.")
    if estimator == "full_linear":
        acts_a: list[list[np.ndarray]] = [[] for _ in la]
        acts_b: list[list[np.ndarray]] = [[] for _ in lb]
        for xa, xb in _batches(model_a, model_b, images, la, lb, batch_size):
            for i in range(len(la)):
                acts_a[i].append(xa[i].astype(np.float32))
                acts_b[i].append(xb[i].astype(np.float32))
        values = [linear_cka(np.concatenate(a), np.concatenate(b)) for a, b in zip(acts_a, acts_b, strict=True)]
    else:
        accs = [MinibatchCKA() for _ in la]
        for xa, xb in _batches(model_a, model_b, images, la, lb, batch_size):
            for acc, a, b in zip(accs, xa, xb, strict=True):
                acc.update(a, b)
        values = [acc.value() for acc in accs]
    result: pd.DataFrame = pd.DataFrame({
        "index": range(len(la)), "layer": la, "label": [short_label(n) for n in la], "layer_b": lb,
        "cka": values, "estimator": estimator, "n": len(images),
    })
    return result


# --- ΔCKA ----------------------------------------------------------------------------------


def delta_cka(cka1: pd.DataFrame, cka2_mixed: pd.DataFrame, cka2_qpi: pd.DataFrame | None = None) -> pd.DataFrame:
    """The ΔCKA protocol of §4.2, per layer (paired by position).

    Args:
        cka1: ``CKA(M_IN, M_IN→less)`` from :func:`cka_per_layer`.
        cka2_mixed: ``CKA(M_dom, M_dom→less)``.
        cka2_qpi: ``CKA(M_dom, M_dom→QPI)`` (optional).

    Returns:
        Columns ``index, layer, label, cka1, cka2_mixed, delta_mixed`` (+ ``cka2_qpi, delta_qpi``).

    Raises:
        ConfigError: the tables have different numbers of layers.
    """
    tables = [t for t in (cka1, cka2_mixed, cka2_qpi) if t is not None]
    if len({len(t) for t in tables}) != 1:
        raise ConfigError("delta_cka: the CKA tables must cover the same layers.")
    out: pd.DataFrame = pd.DataFrame({"index": cka1["index"].to_numpy(), "layer": cka1["layer"].to_numpy(),
                        "label": cka1["label"].to_numpy(), "cka1": cka1["cka"].to_numpy()})
    out["cka2_mixed"] = cka2_mixed["cka"].to_numpy()
    out["delta_mixed"] = out["cka2_mixed"] - out["cka1"]
    if cka2_qpi is not None:
        out["cka2_qpi"] = cka2_qpi["cka"].to_numpy()
        out["delta_qpi"] = out["cka2_qpi"] - out["cka1"]
    return out


# --- plot ----------------------------------------------------------------------------------


def cka_svg(series: dict[str, pd.DataFrame], *, column: str = "cka", title: str = "Linear CKA per layer",
            ylabel: str = "CKA") -> str:
    """A line per entry of ``series`` (``index``/``label`` + ``column``) over the layers."""
    from medfairx.report.svgplot import PALETTE, SvgChart, nice_ticks

    first = next(iter(series.values()))
    vals = np.concatenate([t[column].to_numpy(float) for t in series.values()])
    vals = vals[np.isfinite(vals)]
    lo = min(0.0, float(vals.min())) if vals.size else 0.0
    hi = max(1.0, float(vals.max())) if vals.size and column == "cka" else (float(vals.max()) if vals.size else 1.0)
    yt = nice_ticks(lo, hi)
    n = len(first)
    chart = SvgChart(max(420, 42 * n + 90), 340, (-0.5, n - 0.5), (yt[0], yt[-1]), margin=(60, 20, 30, 70))
    chart.axes(title=title, xlabel="layer", ylabel=ylabel, xticks=None, yticks=yt,
               xticklabels=list(zip(first["index"].astype(float), first["label"].astype(str), strict=True)))
    legend = []
    for k, (name, t) in enumerate(series.items()):
        color = PALETTE[k % len(PALETTE)]
        ok = np.isfinite(t[column].to_numpy(float))
        chart.line(t["index"][ok].tolist(), t[column][ok].tolist(), color=color, width=1.5)
        for r in t[ok].itertuples():
            chart.circle(float(r.index), float(getattr(r, column)), color=color, r=3.5,
                         tip=f"{name} · {r.layer}: {getattr(r, column):.4f}")
        legend.append((name, color))
    chart.legend(legend, y=chart.height - 8)
    return chart.to_svg()
