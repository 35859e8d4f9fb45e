"""The Pareto fairness criterion learning-curve experiment (docs/methods.md §4.1).

For one dataset and grouping, the dominant group's training set is cut to nested, seeded
fractions (default 0, 0.1, 0.25, 0.5, 0.75, 1.0) while the other groups' training data, the
validation split and the test split stay fixed. Every ``(method, fraction, seed)`` is one
ordinary run, executed by :func:`medfairx.runner.execute.execute_run` on a dataset view
whose ``task_data("train")`` is the subset, and stored in its own run store
``<out>/frac-<fraction>/`` (finished runs are never retrained).

Each group's test AUC is bootstrapped with the stratified bootstrap of
:mod:`medfairx.metrics.bootstrap`. The test rows are the same for every run, so the
replicates are paired and the seed-mean AUC gets its CI from the seed-mean of the
replicates. The criterion holds when every group's AUC is non-decreasing in the dominant
group's training size ``s``. ``V_g = max_{s<s'} (A_g(s) − A_g(s'))_+``, and a violation is
declared only for a drop that exceeds the CI half-widths of both points involved
(``tolerance="max"``; ``"sum"`` asks for non-overlapping intervals).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medfairx.errors import ConfigError, UnknownNameError
from medfairx.fileio import atomic_write_csv, atomic_write_text

DEFAULT_FRACTIONS: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)
TOLERANCES: tuple[str, ...] = ("max", "sum")
HELD, HELD_CI, VIOLATED, UNDETERMINED = "held", "held within CI", "violated", "undetermined"
CURVE_JSON = "curve.json"
POINT_COLUMNS = ["method", "fraction", "dominant_n", "group", "value", "ci_low", "ci_high", "half_width",
                 "seeds", "seed_values", "n_test"]
Echo = Callable[[str], None]


# --- the design ------------------------------------------------------------------------


@dataclass
class CurveOptions:
    """What ``medfairx curve`` runs.

    Attributes:
        dataset: catalogue dataset.
        grouping: grouping of that dataset.
        methods: registered method names.
        suite: suite whose recipe, backbones and device are used (default: the first suite
            listing the dataset, else ``default``'s settings).
        fractions: dominant-group training fractions (nested subsets).
        seeds: training seeds (each seed also draws its own nested subsets).
        epochs: overrides the recipe's epochs.
        backbone: overrides the suite's classification backbone.
        device: overrides the suite's device.
        params: method name → hyper-parameter overrides.
        params_mode: ``"default"`` or ``"test"`` (``Method.test_params()``).
        dominant: the varied group (default: the largest training group).
        out: run store of the experiment.
        report_dir: HTML/SVG/CSV output folder.
        n_boot: bootstrap replicates.
        ci: CI coverage.
        tolerance: ``"max"`` or ``"sum"`` of the two half-widths.
    """

    dataset: str
    grouping: str
    methods: list[str]
    suite: str | None = None
    fractions: list[float] = field(default_factory=lambda: list(DEFAULT_FRACTIONS))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    epochs: int | None = None
    backbone: str | None = None
    device: str | None = None
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    params_mode: str = "default"
    dominant: str | None = None
    out: Path | None = None
    report_dir: Path | None = None
    n_boot: int = 1000
    ci: float = 0.95
    tolerance: str = "max"

    def validated(self) -> CurveOptions:
        """Check the options; fractions become a sorted unique list in [0, 1].

        Raises:
            ConfigError: fractions outside [0, 1], no methods or seeds, or a bad tolerance.
        """
        fr = sorted({round(float(f), 6) for f in self.fractions})
        if not fr or fr[0] < 0 or fr[-1] > 1:
            raise ConfigError(f"--fractions must lie in [0, 1]; got {self.fractions}.")
        if len(fr) < 2:
            raise ConfigError("--fractions needs at least two values to draw a curve.")
        if not self.methods or not self.seeds:
            raise ConfigError("medfairx curve needs at least one method (--methods) and one seed (--seeds).")
        if self.tolerance not in TOLERANCES:
            raise ConfigError(f"Unknown tolerance {self.tolerance!r}; use one of {', '.join(TOLERANCES)}.")
        self.fractions = fr
        return self


def dominant_keep_mask(groups: np.ndarray, dominant: int, fraction: float, seed: int) -> np.ndarray:
    """Training rows kept at ``fraction``: every non-dominant row plus nested dominant rows.

    The dominant rows are permuted by ``default_rng([seed, 4111])`` and the first
    ``round(fraction·N_dom)`` are kept, so for one seed the subsets are nested in the fraction.

    Args:
        groups: ``(N,)`` training group codes (``-1`` = outside every group: always kept).
        dominant: the varied group's code.
        fraction: in [0, 1].
        seed: subset seed.
    """
    g = np.asarray(groups)
    dom = np.flatnonzero(g == dominant)
    order = np.random.default_rng([int(seed), 4111]).permutation(dom)
    keep: np.ndarray = g != dominant
    keep[order[: int(round(float(fraction) * dom.size))]] = True
    return keep


class SubsetTrainDataset:
    """A dataset view whose ``task_data("train", …)`` keeps only ``train_ids``.

    Everything else (validation, test, metadata, card, group labels) is the wrapped
    dataset's, so :func:`~medfairx.runner.execute.execute_run` works on it unchanged.

    Args:
        base: a :class:`~medfairx.data.dataset.FairDataset`.
        train_ids: the training sample ids to keep.
        cache: a dict shared by the views of one dataset, so each split is read once
            (splits are read-only for methods).
    """

    def __init__(self, base: Any, train_ids: np.ndarray, cache: dict[tuple[str, str | None], Any] | None = None) -> None:
        self._base = base
        self._train_ids = np.asarray(train_ids).astype(str)
        self._cache = cache if cache is not None else {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)

    def task_data(self, split: str, grouping: str | None = None) -> Any:
        """The base split (read once per view family); the training split restricted to the kept ids."""
        key = (split, grouping)
        if key not in self._cache:
            self._cache[key] = self._base.task_data(split, grouping)
        data = self._cache[key]
        if split != "train":
            return data
        return data.subset(np.isin(data.sample_ids.astype(str), self._train_ids))


def fraction_dir(fraction: float) -> str:
    """Store sub-folder of a fraction, e.g. ``frac-0.25``."""
    return f"frac-{float(fraction):g}"


# --- the verdict -----------------------------------------------------------------------


def criterion_verdict(
    sizes: Sequence[float],
    values: Sequence[float],
    half_widths: Sequence[float],
    *,
    tolerance: str = "max",
) -> dict[str, Any]:
    """The Pareto-criterion verdict of one group's learning curve.

    ``V = max_{s<s'} (A(s) − A(s'))_+`` over pairs of distinct sizes. A pair violates the
    criterion when its drop exceeds the tolerance ``max(h_s, h_s')`` (``"max"``: larger than
    both points' CI half-widths) or ``h_s + h_s'`` (``"sum"``). Points with NaN values are
    ignored; NaN half-widths count as 0.

    Args:
        sizes: dominant-group training size of each point.
        values: the group's metric at each point.
        half_widths: CI half-width of each point.
        tolerance: ``"max"`` or ``"sum"``.

    Returns:
        ``{"verdict", "V", "s", "s_prime", "h_s", "h_s_prime", "worst_excess", "violations"}``:
        ``verdict`` is ``"held"`` (non-decreasing), ``"held within CI"`` (drops, none beyond
        the tolerance), ``"violated"`` or ``"undetermined"`` (fewer than two points);
        ``s``/``s_prime``/``h_*`` describe the pair achieving ``V``; ``violations`` lists
        every violating pair ``(s, s', drop, tolerance)``.

    Raises:
        ConfigError: unknown tolerance or mismatched lengths.
    """
    if tolerance not in TOLERANCES:
        raise ConfigError(f"Unknown tolerance {tolerance!r}; use one of {', '.join(TOLERANCES)}.")
    if not len(sizes) == len(values) == len(half_widths):
        raise ConfigError("criterion_verdict: sizes, values and half_widths must have the same length.")
    pts = sorted(
        (float(s), float(v), float(h) if math.isfinite(float(h)) else 0.0)
        for s, v, h in zip(sizes, values, half_widths, strict=True)
        if math.isfinite(float(v))
    )
    out: dict[str, Any] = {"verdict": UNDETERMINED, "V": float("nan"), "s": None, "s_prime": None,
                           "h_s": float("nan"), "h_s_prime": float("nan"), "worst_excess": float("nan"),
                           "violations": []}
    if len({p[0] for p in pts}) < 2:
        return out
    best: tuple[float, float | None, float | None, float, float] = (0.0, None, None, float("nan"), float("nan"))
    worst_excess = -math.inf
    for i, (s, a, h) in enumerate(pts):
        for s2, a2, h2 in pts[i + 1 :]:
            if s2 <= s:
                continue
            drop = a - a2
            tol = max(h, h2) if tolerance == "max" else h + h2
            if drop > best[0]:
                best = (drop, s, s2, h, h2)
            worst_excess = max(worst_excess, drop - tol)
            if drop > 0 and drop > tol:
                out["violations"].append((s, s2, drop, tol))
    out.update(V=best[0], s=best[1], s_prime=best[2], h_s=best[3], h_s_prime=best[4], worst_excess=worst_excess)
    out["verdict"] = VIOLATED if out["violations"] else (HELD if best[0] <= 0 else HELD_CI)
    return out


# --- running ---------------------------------------------------------------------------


def _suite_for(catalogue: Any, opts: CurveOptions) -> tuple[str, Any]:
    if opts.suite is not None:
        if opts.suite not in catalogue.suites:
            raise UnknownNameError("suite", opts.suite, catalogue.suites, hint=f"Suites are defined in {catalogue.path}.")
        return opts.suite, catalogue.suites[opts.suite]
    for name, suite in catalogue.suites.items():
        if opts.dataset in suite.datasets:
            return name, suite
    return "default", catalogue.suites["default"]


@dataclass
class CurvePlan:
    """The planned runs of a curve and what they need."""

    runs: list[tuple[float, Any]]  # (fraction, RunSpec)
    dataset: Any
    design: dict[str, Any]
    train_ids: dict[tuple[float, int], np.ndarray]


def plan_curve(catalogue: Any, opts: CurveOptions, host: Any, echo: Echo) -> CurvePlan:
    """Load the dataset, choose the dominant group and plan every ``(method, fraction, seed)``.

    Raises:
        ConfigError: unknown grouping or dominant group, or a segmentation dataset.
    """
    from medfairx.contracts import RunSpec
    from medfairx.data import load_dataset
    from medfairx.version import __version__

    opts.validated()
    if opts.dataset not in catalogue.datasets:
        raise UnknownNameError("dataset", opts.dataset, catalogue.datasets, hint=f"Defined in {catalogue.path}.")
    suite_name, suite = _suite_for(catalogue, opts)
    echo(f"loading dataset {opts.dataset} ...")
    ds = load_dataset(catalogue, opts.dataset)
    if opts.grouping not in ds.groupings:
        raise ConfigError(
            f"Dataset {opts.dataset!r} has no grouping {opts.grouping!r}; it defines {sorted(ds.groupings)}."
        )
    if ds.card.task != "classification":
        raise ConfigError("medfairx curve scores test AUC and needs a classification dataset.")
    train = ds.task_data("train", opts.grouping)
    groups = train.groups
    assert groups is not None, "task_data with a grouping carries group codes"
    counts = np.bincount(groups[groups >= 0], minlength=train.n_groups)
    names = list(train.group_names)
    if opts.dominant is None:
        dom = int(np.argmax(counts))
    elif opts.dominant in names:
        dom = names.index(opts.dominant)
    else:
        raise ConfigError(f"--dominant {opts.dominant!r} is not a group of {opts.grouping!r}: {names}.")
    recipe = dict(suite.recipe or {})
    if opts.epochs is not None:
        recipe["epochs"] = int(opts.epochs)
    backbone = opts.backbone or dict(suite.backbones).get("classification", "tiny_cnn")
    device = opts.device or suite.device
    reg = host.registry("methods")
    specs = {m: reg.get(m) for m in opts.methods}
    curve_suite = f"curve-{opts.dataset}-{opts.grouping}"
    train_ids: dict[tuple[float, int], np.ndarray] = {}
    sizes: dict[str, int] = {}
    for f in opts.fractions:
        for seed in opts.seeds:
            keep = dominant_keep_mask(groups, dom, f, seed)
            train_ids[(f, seed)] = train.sample_ids[keep]
            sizes[f"{f:g}"] = int(((groups == dom) & keep).sum())
    runs: list[tuple[float, Any]] = []
    for m, spec in specs.items():
        if ds.card.task not in spec.tags.tasks:
            raise ConfigError(f"Method {m!r} does not support {ds.card.task}.")
        cls = spec.load()
        params = dict(cls.test_params()) if opts.params_mode == "test" else {}
        params.update(opts.params.get(m, {}))
        aware = spec.tags.uses_groups_in_fit or spec.tags.uses_groups_in_predict
        origin = reg.origin(m)
        for f in opts.fractions:
            for seed in opts.seeds:
                runs.append((f, RunSpec(
                    suite=curve_suite, method=m, dataset=opts.dataset, seed=int(seed),
                    train_grouping=opts.grouping if aware else None, groupings=(opts.grouping,),
                    params=params, params_mode=opts.params_mode, backbone=backbone, recipe=dict(recipe),
                    device=device, dataset_revision=ds.revision, split_hash=ds.splits.hash,
                    versions={"medfairx": __version__, "plugin": origin.dist, "plugin_version": origin.version},
                )))
    design = {
        "dataset": opts.dataset, "grouping": opts.grouping, "suite": suite_name, "dominant": names[dom],
        "groups": names, "train_counts": dict(zip(names, map(int, counts), strict=True)),
        "fractions": opts.fractions, "dominant_n": sizes, "seeds": list(opts.seeds), "methods": list(opts.methods),
        "backbone": backbone, "recipe": recipe, "split_hash": ds.splits.hash, "tolerance": opts.tolerance,
        "n_boot": opts.n_boot, "ci": opts.ci,
        "runs": {f"{f:g}": sorted({spec.run_id for f2, spec in runs if f2 == f}) for f in opts.fractions},
        "subset_hash": hashlib.sha256(
            json.dumps({f"{k[0]:g}/{k[1]}": sorted(v.tolist()) for k, v in train_ids.items()}).encode()
        ).hexdigest()[:12],
    }
    return CurvePlan(runs, ds, design, train_ids)


def run_curve(catalogue: Any, opts: CurveOptions, host: Any, echo: Echo, *, verbose: bool = False) -> dict[str, Any]:
    """Plan, train what is not finished, score, and write the report.

    Returns:
        ``{"design", "ran", "reused", "failed", "seconds", "points", "verdicts", "files"}``.
    """
    from medfairx.runner.execute import execute_run
    from medfairx.store import RunStore, atomic_write_json

    t0 = time.perf_counter()
    plan = plan_curve(catalogue, opts, host, echo)
    out = Path(opts.out or Path("runs") / f"curve-{opts.dataset}-{opts.grouping}")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / CURVE_JSON, plan.design)
    ran: list[str] = []
    reused: list[str] = []
    failed: list[str] = []
    reg = host.registry("methods")
    views: dict[tuple[float, int], SubsetTrainDataset] = {}
    shared: dict[tuple[str, str | None], Any] = {}
    for i, (f, spec) in enumerate(plan.runs, 1):
        store = RunStore(out / fraction_dir(f))
        if store.is_finished(spec.run_id):
            reused.append(spec.run_id)
            continue
        store.root.mkdir(parents=True, exist_ok=True)
        store.clean_temporaries()
        key = (f, spec.seed)
        view = views.setdefault(key, SubsetTrainDataset(plan.dataset, plan.train_ids[key], shared))
        echo(f"[{i}/{len(plan.runs)}] {spec.method} fraction {f:g} (n_dom={plan.design['dominant_n'][f'{f:g}']}) "
             f"seed {spec.seed}")
        t1 = time.perf_counter()
        rec = execute_run(spec, view, reg.get(spec.method), store, echo=echo if verbose else None)
        (ran if rec["status"] == "ok" else failed).append(spec.run_id)
        echo(f"    {rec['status']} in {time.perf_counter() - t1:.1f}s"
             + (f": {rec['error']['type']}: {rec['error']['message']}" if rec.get("error") else ""))
    points = score_curve(out, plan.design, n_boot=opts.n_boot, ci=opts.ci)
    verdicts = curve_verdicts(points, tolerance=opts.tolerance)
    report_dir = Path(opts.report_dir or Path("leaderboards") / plan.design["suite"]
                      / f"curve-{opts.dataset}-{opts.grouping}")
    files = write_curve_report(points, verdicts, plan.design, report_dir)
    return {"design": plan.design, "ran": ran, "reused": reused, "failed": failed,
            "seconds": time.perf_counter() - t0, "points": points, "verdicts": verdicts, "files": files}


# --- scoring ---------------------------------------------------------------------------


def score_curve(out: Path, design: dict[str, Any], *, n_boot: int = 1000, ci: float = 0.95,
                seed: int = 0) -> pd.DataFrame:
    """Per (method, fraction, group): seed-mean test AUC with a paired-bootstrap CI.

    Reads the finished runs the design planned (``design["runs"]``: run ids per fraction)
    under ``out/frac-*/``; runs of an older configuration in the same store are ignored. The
    replicates of one point's seeds share their resamples (same test rows, same bootstrap
    seed) and are averaged replicate by replicate.
    """
    from medfairx.metrics.bootstrap import bootstrap
    from medfairx.metrics.catalogue import BY_NAME
    from medfairx.metrics.predictions import problem_from_frame
    from medfairx.store import RunStore

    column = f"group:{design['grouping']}"
    rows: list[dict[str, Any]] = []
    for f in design["fractions"]:
        store = RunStore(Path(out) / fraction_dir(f))
        by_method: dict[str, list[tuple[int, np.ndarray, np.ndarray, tuple[str, ...], np.ndarray]]] = {}
        for run_id in design["runs"].get(f"{f:g}", []):
            rec = store.record(run_id)
            if rec is None or not store.is_finished(run_id):
                continue
            pred = pd.read_parquet(store.run_dir(rec["run_id"]) / "predictions.parquet")
            test = pred[(pred["split"] == "test") & pred[column].notna()].sort_values("sample_id")
            problem = problem_from_frame(test, "classification", column)
            res = bootstrap(problem, [BY_NAME["auc"]], n_boot=n_boot, seed=seed, ci=ci)
            by_method.setdefault(rec["method"], []).append(
                (int(rec["seed"]), np.asarray(res.point["auc"]), res.replicates["auc"], tuple(problem.names),
                 np.asarray(problem.counts()))
            )
        for method, items in by_method.items():
            names = items[0][3]
            same = [it for it in items if it[3] == names]
            point = np.mean([it[1] for it in same], axis=0)
            reps = np.mean([it[2] for it in same], axis=0) if n_boot else np.empty((0, len(names) + 1))
            q = [(1 - ci) / 2 * 100, (1 + ci) / 2 * 100]
            for j, g in enumerate(("overall", *names)):
                if n_boot:
                    col = reps[:, j]
                    col = col[np.isfinite(col)]
                    lo, hi = np.percentile(col, q) if col.size else (np.nan, np.nan)
                else:
                    lo = hi = np.nan
                v = float(point[j])
                rows.append({
                    "method": method, "fraction": float(f), "dominant_n": int(design["dominant_n"][f"{f:g}"]),
                    "group": g, "value": v, "ci_low": float(lo), "ci_high": float(hi),
                    "half_width": float(max(v - lo, hi - v)) if math.isfinite(v) and math.isfinite(lo) else np.nan,
                    "seeds": len(same),
                    "seed_values": ";".join(f"{it[0]}:{float(it[1][j]):.4f}" for it in sorted(same, key=lambda t: t[0])),
                    "n_test": int(same[0][4][j]),
                })
    frame = pd.DataFrame(rows, columns=POINT_COLUMNS)
    result: pd.DataFrame = frame.sort_values(["method", "group", "dominant_n", "fraction"], kind="stable").reset_index(drop=True)
    return result


def curve_verdicts(points: pd.DataFrame, *, tolerance: str = "max") -> pd.DataFrame:
    """One verdict row per (method, group) from :func:`score_curve`'s points (groups only)."""
    rows = []
    for (method, group), part in points[points["group"] != "overall"].groupby(["method", "group"], sort=True):
        v = criterion_verdict(part["dominant_n"].to_numpy(float), part["value"].to_numpy(float),
                              part["half_width"].to_numpy(float), tolerance=tolerance)
        rows.append({"method": method, "group": group, "verdict": v["verdict"], "V": v["V"], "s": v["s"],
                     "s_prime": v["s_prime"], "h_s": v["h_s"], "h_s_prime": v["h_s_prime"],
                     "worst_excess": v["worst_excess"], "n_violations": len(v["violations"]),
                     "points": len(part)})
    result: pd.DataFrame = pd.DataFrame(rows, columns=["method", "group", "verdict", "V", "s", "s_prime", "h_s", "h_s_prime",
                                       "worst_excess", "n_violations", "points"])
    return result


# --- report ----------------------------------------------------------------------------


def curve_svg(points: pd.DataFrame, method: str, dominant: str) -> str:
    """Every group's AUC (with CI bars) vs the dominant group's training size for one method."""
    from medfairx.report.svgplot import PALETTE, SvgChart, nice_ticks

    part = points[(points["method"] == method) & (points["group"] != "overall")]
    xs = part["dominant_n"].to_numpy(float)
    lo_y = np.nanmin(part["ci_low"].fillna(part["value"])) if len(part) else 0.0
    hi_y = np.nanmax(part["ci_high"].fillna(part["value"])) if len(part) else 1.0
    yt = nice_ticks(float(lo_y), float(hi_y))
    x_hi = float(xs.max()) if xs.size and xs.max() > 0 else 1.0
    xt = nice_ticks(0.0, x_hi)
    chart = SvgChart(560, 340, (xt[0], xt[-1]), (yt[0], yt[-1]), margin=(60, 20, 30, 70))
    chart.axes(title=f"{method}: test AUC per group vs {dominant} training size", xlabel=f"{dominant} training samples",
               ylabel="test AUC", xticks=xt, yticks=yt)
    legend = []
    for k, (group, g) in enumerate(part.groupby("group", sort=True)):
        color = PALETTE[k % len(PALETTE)]
        g = g.sort_values("dominant_n")
        chart.line(g["dominant_n"].tolist(), g["value"].tolist(), color=color, width=1.5)
        for r in g.itertuples():
            chart.errorbar(r.dominant_n, r.ci_low, r.ci_high)
            chart.circle(r.dominant_n, r.value, color=color, r=4,
                         tip=f"{group}: n_dom={r.dominant_n} (fraction {r.fraction:g}) AUC {r.value:.4f} "
                             f"[{r.ci_low:.4f}, {r.ci_high:.4f}] over {r.seeds} seed(s)")
        legend.append((str(group), color))
    chart.legend(legend, y=chart.height - 8)
    return chart.to_svg()


def write_curve_report(points: pd.DataFrame, verdicts: pd.DataFrame, design: dict[str, Any], report_dir: Path) -> list[Path]:
    """Write ``index.html``, one SVG per method, ``points.csv`` and ``verdicts.csv``."""
    import jinja2

    from medfairx.report.render import inline_svg, make_environment, render_page
    from medfairx.version import __version__

    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    files = [report_dir / "points.csv", report_dir / "verdicts.csv"]
    atomic_write_csv(files[0], points)
    atomic_write_csv(files[1], verdicts)
    methods = []
    for method in design["methods"]:
        if not (points["method"] == method).any():
            methods.append({"name": method, "svg": None, "svg_file": None, "verdicts": [], "points": []})
            continue
        svg = curve_svg(points, method, design["dominant"])
        path = report_dir / f"curve-{_slug(method)}.svg"
        atomic_write_text(path, svg + "\n")
        files.append(path)
        methods.append({
            "name": method, "svg": inline_svg(svg), "svg_file": path.name,
            "verdicts": verdicts[verdicts["method"] == method].to_dict("records"),
            "points": points[points["method"] == method].to_dict("records"),
        })
    env = make_environment([jinja2.PackageLoader("medfairx.analysis", "templates")])
    page = render_page(
        env, "curve.html", report_dir / "index.html", design=design, methods=methods,
        version=__version__, generated=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    return [page, *files]


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def design_dict(opts: CurveOptions) -> dict[str, Any]:
    """The options as JSON-ready data (for logs)."""
    d = asdict(opts)
    d["out"], d["report_dir"] = str(opts.out), str(opts.report_dir)
    return d
