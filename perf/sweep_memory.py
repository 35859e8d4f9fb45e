"""Memory across runs: does a long sweep in one process keep growing?

Plans ``--runs`` ERM runs (one per seed) of a small synthetic dataset through the runner
(:func:`~medfairx.runner.bench.prepare`, then
:func:`~medfairx.runner.executors.run_one_planned` with a shared dataset cache, exactly what
the sequential ``local`` executor does) and prints the resident memory after the first run
and after the last, their ratio (target: < 1.10), and the number of live torch modules,
optimisers and tensors, which point at what is kept alive if memory grows.

Usage::

    python perf/sweep_memory.py                  # 20 runs, CPU
    python perf/sweep_memory.py --runs 50 --device cuda
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
from pathlib import Path

CATALOGUE = """
version: 1
include: [embedded]
datasets:
  mem_cls:
    adapter: synthetic
    description: "small 2D classification for the memory check"
    task: classification
    image_size: {size}
    split: {{train: 0.6, val: 0.2, test: 0.2, seed: 0}}
    options: {{seed: 0, n_samples: {n}, spatial_dims: 2, channels: 1}}
    groupings:
      group: {{column: group, description: "binary attribute"}}
suites:
  mem:
    description: "one ERM run per seed"
    datasets: {{mem_cls: [group]}}
    methods: [erm]
    seeds: [{seeds}]
    params: test
    backbones: {{classification: {backbone}}}
    recipe: {{epochs: {epochs}, batch_size: 32}}
    device: {device}
"""


def rss_mb() -> float:
    """Resident set size of this process in MiB (psutil, else /proc, else peak RSS)."""
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        pass
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if os.uname().sysname == "Darwin" else peak / 2**10


def live_torch_objects() -> dict[str, int]:
    """How many torch modules, optimisers and tensors the garbage collector can see."""
    import warnings

    import torch

    gc.collect()
    counts = {"modules": 0, "optimizers": 0, "tensors": 0, "tensor_mb": 0.0}
    with warnings.catch_warnings():  # isinstance() on deprecated torch aliases warns
        warnings.simplefilter("ignore")
        for obj in gc.get_objects():
            try:
                if isinstance(obj, torch.nn.Module):
                    counts["modules"] += 1
                elif isinstance(obj, torch.optim.Optimizer):
                    counts["optimizers"] += 1
                elif isinstance(obj, torch.Tensor):
                    counts["tensors"] += 1
                    counts["tensor_mb"] += obj.numel() * obj.element_size() / 2**20
            except Exception:  # noqa: BLE001 - some objects refuse isinstance checks
                continue
    counts["tensor_mb"] = round(counts["tensor_mb"], 1)
    return counts


def gpu_mb() -> float | None:
    """Memory held by torch's CUDA allocator in MiB, or None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.memory_allocated() / 2**20


def main() -> None:
    """Run the sweep and print the memory report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--n-samples", type=int, default=600)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--backbone", default="tiny_cnn")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    from medfairx.config import load_catalogue
    from medfairx.plugins import get_host
    from medfairx.runner.bench import BenchOptions, prepare
    from medfairx.runner.executors import run_one_planned

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "datasets.yaml"
        path.write_text(CATALOGUE.format(
            size=args.size, n=args.n_samples, seeds=", ".join(map(str, range(args.runs))),
            backbone=args.backbone, epochs=args.epochs, device=args.device,
        ))
        catalogue = load_catalogue(path)
        plan, datasets, _ = prepare(catalogue, BenchOptions(suite="mem"), get_host(), lambda _line: None)
        store = Path(tmp) / "runs" / "mem"
        print(f"{len(plan.runs)} ERM runs, {args.backbone}, {args.n_samples} images of {args.size}px, "
              f"{args.epochs} epochs, device {args.device}")
        print(f"{'run':>4} {'rss MiB':>9} {'seconds':>8}  status")
        series: list[float] = []
        after_first: dict[str, int] | None = None
        t0 = time.perf_counter()
        for i, spec in enumerate(plan.runs, 1):
            t = time.perf_counter()
            rec = run_one_planned(spec, catalogue.path, store, datasets=datasets)
            gc.collect()
            series.append(rss_mb())
            print(f"{i:>4} {series[-1]:>9.1f} {time.perf_counter() - t:>8.1f}  {rec['status']}")
            if i == 1:
                after_first = live_torch_objects()
        after_last = live_torch_objects()
        first, last = series[0], series[-1]
        print(f"rss after run 1: {first:.1f} MiB; after run {len(series)}: {last:.1f} MiB; "
              f"ratio {last / first:.3f} (target < 1.10); growth per run after the first "
              f"{(last - first) / max(len(series) - 1, 1):.2f} MiB")
        print(f"live torch objects after run 1: {after_first}; after run {len(series)}: {after_last}")
        if gpu_mb() is not None:
            print(f"CUDA memory allocated at the end: {gpu_mb():.1f} MiB")
        print(f"total {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
