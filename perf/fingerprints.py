"""Cost of the content fingerprints that key the pixel cache, against a name + size listing.

Usage (from the repository root)::

    PYTHONPATH=. python perf/fingerprints.py [--workers 2]

Data: ``$MEDFAIRX_DATA/ham10000/images`` or ``../shared/data/ham10000/images``. Three timings
in one process: the reference (``(name, size)`` per file, what the key used before it hashed
content), a first load (every file hashed, the memo written) and a second load (the memo
answers; files are only stat-ed). Run it twice to see the effect of a warm page cache.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from medfairx.data.cache import file_fingerprints


def images_dir() -> Path:
    """HAM10000 image folder: ``$MEDFAIRX_DATA/ham10000/images`` or ``../shared/data/ham10000/images``."""
    base = os.environ.get("MEDFAIRX_DATA") or str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
    return Path(base) / "ham10000" / "images"


def main() -> None:
    """Print the three timings and their ratios to the name + size reference."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="hashing threads")
    args = parser.parse_args()
    paths = sorted(images_dir().glob("*.jpg"))
    t0 = time.perf_counter()
    [(p.name, p.stat().st_size) for p in paths]
    reference = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        memo = Path(tmp) / "memo.json"
        t0 = time.perf_counter()
        first = file_fingerprints(paths, memo=memo, workers=args.workers)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        second = file_fingerprints(paths, memo=memo, workers=args.workers)
        warm = time.perf_counter() - t0
    assert first == second
    mb = sum(p.stat().st_size for p in paths) / 2**20
    print(f"{len(paths)} files, {mb:.0f} MiB, {args.workers} hashing threads")
    print(f"name + size (reference) {reference:7.3f} s")
    print(f"first load (hash all)   {cold:7.3f} s  ({cold / reference:5.1f}x reference)")
    print(f"second load (memo)      {warm:7.3f} s  ({warm / reference:5.1f}x reference)")


if __name__ == "__main__":
    main()
