"""Overhead of the hyper-parameter search machinery per trial, against plain runs.

Usage (from the repository root)::

    PYTHONPATH=. python perf/search_overhead.py [--trials 6] [--epochs 2]

On a tiny synthetic classification suite (ERM and GroupDRO, one thread): the suite's
default runs are trained first, then ``medfairx bench --trials N`` runs the search (Optuna
journal, asking and telling, validation-only scoring, selection per strategy, tuned runs)
and the time of a bench that only reuses the finished defaults is subtracted. The same
trial and tuned configurations are then trained again as plain runs with the local executor,
in the suite's own store (whose one-time setup, e.g. the tracking plugin's database, the
defaults already paid). The ratio of the two is the search's overhead (target: at most 5%).
The modules a search imports once per process (Optuna, the scoring code that a bench's
report imports anyway) are imported before either side is timed; that time is printed apart.
"""

from __future__ import annotations

import argparse
import importlib
import tempfile
import time
from pathlib import Path

import torch

from medfairx.config import load_catalogue
from medfairx.contracts import RunSpec
from medfairx.plugins import get_host
from medfairx.runner.bench import BenchOptions, prepare, run_bench
from medfairx.runner.executors import LocalExecutor, SweepJob
from medfairx.runner.search import TRIALS_DIR, TUNED_DIR, search_root
from medfairx.store import RunStore

CATALOGUE = """
version: 1
include: [embedded]
datasets:
  tiny_cls:
    adapter: synthetic
    task: classification
    image_size: 16
    split: {{train: 0.6, val: 0.2, test: 0.2, seed: 0}}
    options: {{seed: 0, n_samples: 400, spatial_dims: 2, channels: 1}}
    groupings:
      group: {{column: group}}
suites:
  tiny:
    datasets: {{tiny_cls: [group]}}
    methods: [erm, groupdro]
    seeds: [0]
    backbones: {{classification: tiny_cnn}}
    recipe: {{epochs: {epochs}, batch_size: 32}}
    device: cpu
    search: {{trials: {trials}, sampler: tpe, seed: 9}}
"""


def _spec(record: dict) -> RunSpec:
    fields = RunSpec.__dataclass_fields__
    spec = RunSpec(**{k: (tuple(v) if k == "groupings" else v) for k, v in record.items() if k in fields})
    assert spec.run_id == record["run_id"], "a stored record must rebuild the same run"
    return spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    importlib.import_module("optuna")
    importlib.import_module("medfairx.metrics.evaluate")
    imports = time.perf_counter() - t0
    host = get_host()
    quiet = lambda _: None  # noqa: E731 - a throwaway no-op echo
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "datasets.yaml"
        cfg.write_text(CATALOGUE.format(trials=args.trials, epochs=args.epochs))
        catalogue = load_catalogue(cfg)
        out = Path(tmp) / "runs"
        suite = catalogue.suites["tiny"]
        catalogue.suites["tiny"] = suite.model_copy(update={"search": None})
        run_bench(catalogue, BenchOptions(suite="tiny", out=out), host, quiet)  # the defaults only
        t0 = time.perf_counter()
        run_bench(catalogue, BenchOptions(suite="tiny", out=out), host, quiet)  # reuses everything
        fixed = time.perf_counter() - t0
        catalogue.suites["tiny"] = suite
        t0 = time.perf_counter()
        run_bench(catalogue, BenchOptions(suite="tiny", out=out), host, quiet)
        searched = time.perf_counter() - t0 - fixed
        root = search_root(out / "tiny")
        specs = [_spec(r) for d in (TRIALS_DIR, TUNED_DIR) for r in RunStore(root / d).records()]
        _, datasets, _ = prepare(catalogue, BenchOptions(suite="tiny", out=out), host, quiet)
        plain_root = out / "tiny"
        t0 = time.perf_counter()
        LocalExecutor(datasets, host).run(SweepJob(cfg, plain_root, specs), quiet)
        plain = time.perf_counter() - t0
    n = len(specs)
    print(f"{n} runs ({args.trials} trials for each of 2 methods, then the tuned runs), {args.epochs} epochs each")
    print(f"search: {searched:.2f}s  plain runs of the same configurations: {plain:.2f}s  "
          f"(one-time imports, per bench not per trial: {imports:.2f}s)")
    print(f"overhead per run: {(searched - plain) / n * 1000:.0f} ms  ratio search/plain: {searched / plain:.3f} "
          f"({(searched / plain - 1) * 100:+.1f}%; target <= +5%)")


if __name__ == "__main__":
    main()
