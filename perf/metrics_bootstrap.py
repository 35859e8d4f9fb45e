"""Benchmark: per-group AUC with 100 bootstrap resamples, medfairx vs fairlearn MetricFrame.

100,000 binary predictions over 4 groups. Checks that the point values agree to 1e-9 and
prints both wall times and the speed ratio (target >= 300x), and the time of the DeLong
intervals (overall, per group and of the gap) on the same data. medfairx (well under a
second) is timed as the median of ``--repeat`` runs, so that one moment of load on a
shared machine does not decide the ratio; fairlearn (about a minute) is timed once.

Run: ``PYTHONPATH=. .venv/bin/python perf/metrics_bootstrap.py [--n 100000] [--n-boot 100]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from fairlearn.metrics import MetricFrame
from sklearn.metrics import roc_auc_score

from medfairx.metrics.bootstrap import bootstrap
from medfairx.metrics.delong import delong_intervals
from medfairx.metrics.engine import Problem, resolve_defs


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, scores and 4 group labels with group-dependent separability."""
    rng = np.random.default_rng(seed)
    g = rng.choice(np.array(["g0", "g1", "g2", "g3"]), n, p=[0.4, 0.3, 0.2, 0.1])
    y = rng.integers(0, 2, n)
    strength = 1.0 + 0.2 * np.array([int(x[1]) for x in g])
    s = 1 / (1 + np.exp(-(rng.normal(0, 1, n) + strength * y)))
    return y, s, g


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--n-boot", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5, help="runs of medfairx (the median is reported)")
    args = ap.parse_args()
    y, s, g = make_data(args.n)

    times = []
    for _ in range(max(1, args.repeat)):
        t0 = time.perf_counter()
        problem = Problem.build("classification", g, y_true=y, y_score=s)
        res = bootstrap(problem, resolve_defs(["auc"], "classification"), n_boot=args.n_boot, seed=0)
        times.append(time.perf_counter() - t0)
    t_ours = float(np.median(times))

    t0 = time.perf_counter()
    mf = MetricFrame(metrics=roc_auc_score, y_true=y, y_pred=s, sensitive_features=g, n_boot=args.n_boot,
                     ci_quantiles=[0.025, 0.975], random_state=0)
    t_fl = time.perf_counter() - t0

    t0 = time.perf_counter()
    cis = delong_intervals(problem.y, problem.scores, problem.codes, problem.names)
    t_delong = time.perf_counter() - t0

    ours = res.point["auc"][1:]
    theirs = mf.by_group.loc[list(problem.names)].to_numpy(np.float64)
    diff = float(np.max(np.abs(ours - theirs)))
    print(f"n={args.n} groups={len(problem.names)} n_boot={args.n_boot}")
    print("group   medfairx AUC   fairlearn AUC   medfairx 95% CI     fairlearn 95% CI    DeLong 95% CI")
    lo, hi = mf.by_group_ci
    for i, name in enumerate(problem.names):
        d_lo, d_hi = cis[("auc", name)]
        print(f"{name:6s}  {ours[i]:.10f}   {theirs[i]:.10f}   [{res.low['auc'][i + 1]:.4f}, {res.high['auc'][i + 1]:.4f}]"
              f"   [{lo[name]:.4f}, {hi[name]:.4f}]   [{d_lo:.4f}, {d_hi:.4f}]")
    print(f"max |point difference| = {diff:.2e}  ({'OK' if diff < 1e-9 else 'MISMATCH'})")
    print(f"medfairx: {t_ours:.3f} s (median of {len(times)}; first {times[0]:.3f} s, fastest {min(times):.3f} s)"
          f"   fairlearn: {t_fl:.2f} s   speed-up: {t_fl / t_ours:.0f}x")
    print(f"DeLong intervals (overall, {len(problem.names)} groups, gap): {t_delong * 1000:.1f} ms")
    if diff >= 1e-9:
        raise SystemExit("point values disagree")


if __name__ == "__main__":
    main()
