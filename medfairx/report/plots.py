"""SVG figures for the leaderboards: CD diagrams, Pareto scatters, per-group bar charts.

The CD diagram is drawn by scikit-posthocs with matplotlib's object API
(``matplotlib.figure.Figure`` with the SVG canvas: no pyplot state, no GUI backend); its
text stays SVG text (escaped by matplotlib) and each figure gets its own hash salt so inline
SVGs on one page have distinct ids. Scatter and bar charts use :mod:`medfairx.report.svgplot`.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from medfairx.report.svgplot import PALETTE, SvgChart, nice_ticks
from medfairx.stats.cd import Comparison, draw_cd_diagram

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_XML_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.S)


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasSVG(fig)
    return fig


def figure_to_svg(fig: Figure, salt: str) -> str:
    """Serialise a matplotlib figure to an SVG element string (no XML prologue).

    Args:
        fig: a ``matplotlib.figure.Figure``.
        salt: a string unique on the page; it seeds the ids matplotlib generates.
    """
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})  # reproducible files
    return _XML_PROLOGUE.sub("", buf.getvalue(), count=1).strip()


def cd_diagram_svg(comparison: Comparison) -> str:
    """The critical-difference diagram of a significant comparison, as SVG."""
    k = comparison.blocks.n_methods
    fig = _new_figure(7.5, 1.4 + 0.32 * k)
    ax = fig.add_subplot(1, 1, 1)
    draw_cd_diagram(comparison, ax)
    return figure_to_svg(fig, f"cd-{comparison.strategy}-{comparison.metric}")


def pareto_front(x: np.ndarray, y: np.ndarray, *, x_higher: bool = True, y_higher: bool = True) -> np.ndarray:
    """Boolean mask of the points no other point dominates (better or equal on both, better on one)."""
    xs = np.asarray(x, dtype=float) * (1 if x_higher else -1)
    ys = np.asarray(y, dtype=float) * (1 if y_higher else -1)
    keep = np.ones(xs.size, dtype=bool)
    for i in range(xs.size):
        dominated = (xs >= xs[i]) & (ys >= ys[i]) & ((xs > xs[i]) | (ys > ys[i]))
        keep[i] = not dominated.any() and np.isfinite(xs[i]) and np.isfinite(ys[i])
    return keep


def _padded(values: np.ndarray, pad: float = 0.08) -> tuple[float, float]:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    span = (hi - lo) or max(abs(hi), 1.0) * 0.1
    return lo - pad * span, hi + pad * span


def pareto_svg(
    points: pd.DataFrame,
    *,
    x_label: str,
    y_label: str,
    title: str,
    x_higher: bool = True,
    y_higher: bool = True,
) -> str:
    """Fairness–utility scatter: one point per method, the Pareto front in red and joined.

    Args:
        points: columns ``method``, ``x``, ``y`` and optionally ``x_std`` / ``y_std``
            (seed standard deviations, drawn as error bars).
        x_label: utility axis label (e.g. overall AUC).
        y_label: fairness axis label (e.g. worst-group AUC).
        title: figure title.
        x_higher: whether a larger x is better.
        y_higher: whether a larger y is better.
    """
    x = points["x"].to_numpy(dtype=float)
    y = points["y"].to_numpy(dtype=float)
    xs = points["x_std"].fillna(0).to_numpy(dtype=float) if "x_std" in points else np.zeros_like(x)
    ys = points["y_std"].fillna(0).to_numpy(dtype=float) if "y_std" in points else np.zeros_like(y)
    xt = nice_ticks(*_padded(np.concatenate([x - xs, x + xs])))
    yt = nice_ticks(*_padded(np.concatenate([y - ys, y + ys])))
    chart = SvgChart(460, 380, (xt[0], xt[-1]), (yt[0], yt[-1]), margin=(70, 90, 30, 64))
    chart.axes(title=title, xlabel=x_label + (" ↑" if x_higher else " ↓"), ylabel=y_label + (" ↑" if y_higher else " ↓"),
               xticks=xt, yticks=yt)
    front = pareto_front(x, y, x_higher=x_higher, y_higher=y_higher)
    order = np.argsort(x[front])
    if front.sum() > 1:
        chart.line(list(x[front][order]), list(y[front][order]), color="#c0392b", width=1.2)
    for i, name in enumerate(points["method"]):
        if not (np.isfinite(x[i]) and np.isfinite(y[i])):
            continue
        chart.errorbar(y[i], x[i] - xs[i], x[i] + xs[i], horizontal=True)
        chart.errorbar(x[i], y[i] - ys[i], y[i] + ys[i])
        color = "#c0392b" if front[i] else "#7f8c8d"
        chart.circle(x[i], y[i], color=color, tip=f"{name}: {x_label} {x[i]:.4f}, {y_label} {y[i]:.4f}")
        chart.text(chart.sx(x[i]) + 7, chart.sy(y[i]) - 6, name, anchor="start", size=10)
    chart.legend([("Pareto front", "#c0392b"), ("dominated", "#7f8c8d"), ("bars: ± seed std", "#444")],
                 y=chart.height - 8)
    return chart.to_svg("pareto")


def group_bars_svg(
    bars: pd.DataFrame,
    *,
    metric: str,
    title: str,
    groups: Sequence[str] | None = None,
) -> str:
    """Grouped bar chart: one cluster per group, one bar per method, CI error bars.

    Args:
        bars: columns ``method``, ``group``, ``mean``, ``ci_low``, ``ci_high``, ``std``.
            The error bar is the CI when both bounds are finite, else ± the seed std.
        metric: y-axis label.
        title: figure title.
        groups: group order (default: sorted).
    """
    groups = list(groups) if groups is not None else sorted(bars["group"].unique())
    methods = list(dict.fromkeys(bars["method"]))
    std = bars["std"].fillna(0)
    lo = bars["ci_low"].where(np.isfinite(bars["ci_low"]), bars["mean"] - std)
    hi = bars["ci_high"].where(np.isfinite(bars["ci_high"]), bars["mean"] + std)
    vals = np.concatenate([bars["mean"].to_numpy(dtype=float), lo.to_numpy(dtype=float), hi.to_numpy(dtype=float)])
    ymin, ymax = _padded(vals, 0.1)
    if np.nanmin(bars["mean"].to_numpy(dtype=float)) >= 0 and ymin > 0 and ymin < 0.25 * ymax:
        ymin = 0.0
    yt = nice_ticks(ymin, ymax)
    width = max(420, 90 + len(groups) * (24 + 16 * len(methods)))
    chart = SvgChart(width, 360, (-0.5, len(groups) - 0.5), (yt[0], yt[-1]), margin=(60, 16, 30, 74))
    chart.axes(title=title, xlabel="group", ylabel=metric, xticks=None, yticks=yt,
               xticklabels=[(i, g) for i, g in enumerate(groups)])
    bw = 0.8 / max(1, len(methods))
    for j, method in enumerate(methods):
        sub = bars[bars["method"] == method].set_index("group")
        color = PALETTE[j % len(PALETTE)]
        for i, g in enumerate(groups):
            if g not in sub.index or not np.isfinite(sub.loc[g, "mean"]):
                continue
            row = sub.loc[g]
            mean, seed_std = float(row["mean"]), float(row["std"]) if np.isfinite(row["std"]) else 0.0
            has_ci = np.isfinite(row["ci_low"]) and np.isfinite(row["ci_high"])
            lo_, hi_ = (float(row["ci_low"]), float(row["ci_high"])) if has_ci else (mean - seed_std, mean + seed_std)
            x0 = i - 0.4 + j * bw
            band = f"95% CI [{lo_:.4f}, {hi_:.4f}]" if has_ci else f"± {seed_std:.4f} (seed std)"
            chart.rect(x0, x0 + bw * 0.92, max(yt[0], 0.0), mean, color=color, tip=f"{method} · {g}: {mean:.4f}, {band}")
            chart.errorbar(x0 + bw * 0.46, lo_, hi_)
    chart.legend([(m, PALETTE[j % len(PALETTE)]) for j, m in enumerate(methods)], y=chart.height - 8)
    return chart.to_svg("group-bars")
