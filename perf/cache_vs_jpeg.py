"""Throughput of the HDF5-cached loader against decoding the HAM10000 JPEGs with PIL.

Usage (from the repository root)::

    PYTHONPATH=. python perf/cache_vs_jpeg.py [--size 64] [--batch 64] [--jpeg-limit 2000]

Data: ``$MEDFAIRX_DATA/ham10000`` or ``../shared/data/ham10000``. The cache is built first
(if needed) into a temporary folder; both loaders are then timed in the same process,
single-threaded, producing uint8 ``(N, 3, size, size)`` batches.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from medfairx.config import DatasetConfig
from medfairx.data import imaging
from medfairx.data.adapters import ham10000


def data_root() -> Path:
    """HAM10000 folder: ``$MEDFAIRX_DATA/ham10000`` or ``../shared/data/ham10000``."""
    base = os.environ.get("MEDFAIRX_DATA") or str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
    return Path(base) / "ham10000"


def main() -> None:
    """Build the cache, then time cached batches and JPEG decoding on the same images."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--jpeg-limit", type=int, default=2000, help="JPEGs decoded for the PIL rate")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    root = data_root()
    cfg = DatasetConfig(name="ham10000_perf", adapter="ham10000", root=root, image_size=args.size)
    with tempfile.TemporaryDirectory() as cache_dir, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = ham10000.load(cfg, cache_dir=Path(cache_dir))
        n = len(ds)
        t0 = time.perf_counter()
        ds.source.ensure()  # type: ignore[attr-defined]
        build = time.perf_counter() - t0
        rng = np.random.default_rng(0)
        rates = []
        for _ in range(args.repeats):
            ds = ham10000.load(cfg, cache_dir=Path(cache_dir))  # fresh object: nothing held in memory
            t0 = time.perf_counter()
            data = ds.task_data("train")  # what training does: all rows of the split into memory
            order = rng.permutation(len(data))
            batches = [data.images[order[i : i + args.batch]] for i in range(0, len(order), args.batch)]
            rates.append(len(data) / (time.perf_counter() - t0))
        cached = max(rates)
        paths = [root / "images" / f"{sid}.jpg" for sid in ds.metadata.index[: args.jpeg_limit]]
        t0 = time.perf_counter()
        jpeg = np.stack([imaging.load_rgb(p, (args.size, args.size)) for p in paths])
        decoded = len(paths) / (time.perf_counter() - t0)
    assert batches[0].dtype == jpeg.dtype == np.uint8 and batches[0].shape[1:] == jpeg.shape[1:]
    print(f"HAM10000: {n} images, {args.size}x{args.size}, batch {args.batch}, cache build {build:.1f} s")
    print(f"HDF5 cache, fresh open (train split, {len(data)} images, best of {args.repeats}): {cached:,.0f} images/s")
    print(f"PIL JPEG decode+RGB+resize ({len(paths)} images):         {decoded:,.0f} images/s")
    print(f"ratio cache / JPEG: {cached / decoded:,.1f}x")


if __name__ == "__main__":
    main()
