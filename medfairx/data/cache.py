"""HDF5 cache of preprocessed images (and masks), keyed by a hash of its inputs.

File ``<cache_dir>/<dataset>-<key>.h5`` holds ``images`` ``(N, C, *spatial)`` uint8 chunked
per image, optional ``masks`` ``(N, *spatial)`` uint8, ``sample_ids``, and attributes
``key``, ``format`` and ``complete=1``. It is written to a temporary file and renamed, so a
crashed build never leaves a file that looks complete. A file that cannot be opened, lacks
``complete``, has another key, other shapes or other sample ids is rebuilt with a
:class:`CacheRebuildWarning`, never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from medfairx.errors import DataError

CACHE_FORMAT_VERSION = 1
BUILD_BATCH = 256

Item = tuple[np.ndarray, "np.ndarray | None"]


class CacheRebuildWarning(UserWarning):
    """An existing cache file was corrupt or stale and is being rebuilt."""


def file_sha256(path: str | Path) -> str:
    """sha256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_fingerprints(paths: Iterable[Path]) -> list[tuple[str, int]]:
    """``(file name, size in bytes)`` of each path: cheap change detection for image folders."""
    return [(p.name, p.stat().st_size) for p in paths]


def cache_key(**parts: Any) -> str:
    """A 16-hex-digit key: sha256 of the canonical JSON of ``parts`` plus the format version."""
    payload = json.dumps({"format": CACHE_FORMAT_VERSION, **parts}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass
class H5ImageCache:
    """A lazily built HDF5 image cache.

    Attributes:
        path: the ``.h5`` file.
        key: the input hash the file must carry.
        sample_ids: ids of the rows, in order.
        image_shape: ``(C, *spatial)`` of one image.
        mask_shape: ``spatial`` of one mask, or ``None`` when there are no masks.
        build_item: ``build_item(row) -> (image, mask | None)`` decodes one sample.
        workers: decoding threads used while building.
        memory_limit: caches up to this many bytes are read once and kept in memory
            (later reads index the arrays); larger ones are read per request.
    """

    path: Path
    key: str
    sample_ids: Sequence[str]
    image_shape: tuple[int, ...]
    mask_shape: tuple[int, ...] | None
    build_item: Callable[[int], Item]
    workers: int = 4
    memory_limit: int = 2 << 30
    _memo: tuple[np.ndarray, np.ndarray | None] | None = field(default=None, init=False, repr=False)

    @classmethod
    def for_dataset(cls, cache_dir: str | Path, dataset: str, key: str, **kw: Any) -> H5ImageCache:
        """The cache of ``dataset`` under ``cache_dir`` (file ``<dataset>-<key>.h5``)."""
        return cls(path=Path(cache_dir) / f"{dataset}-{key}.h5", key=key, **kw)

    def problem(self) -> str | None:
        """Why the file on disk cannot be used (``None``: it is valid)."""
        n = len(self.sample_ids)
        try:
            with h5py.File(self.path, "r") as f:
                if int(f.attrs.get("complete", 0)) != 1:
                    return "incomplete (no complete flag)"
                if f.attrs.get("key") != self.key:
                    return f"stale (key {f.attrs.get('key')!r}, expected {self.key!r})"
                if f["images"].shape != (n, *self.image_shape) or f["images"].dtype != np.uint8:
                    return f"of the wrong shape {f['images'].shape} (expected {(n, *self.image_shape)})"
                if self.mask_shape is not None and ("masks" not in f or f["masks"].shape != (n, *self.mask_shape)):
                    return "missing its masks or of the wrong mask shape"
                ids = f["sample_ids"].asstr()[...]
                if list(ids) != list(self.sample_ids):
                    return "for different samples"
        except (OSError, KeyError, ValueError) as exc:
            return f"corrupt ({type(exc).__name__}: {exc})"
        return None

    def ensure(self) -> Path:
        """Return the path of a valid cache file, building (or rebuilding) it if needed."""
        if self.path.exists():
            reason = self.problem()
            if reason is None:
                return self.path
            warnings.warn(f"HDF5 cache {self.path} is {reason}; rebuilding it.", CacheRebuildWarning, stacklevel=2)
        self.build()
        return self.path

    def build(self) -> None:
        """Decode every sample and write the cache atomically."""
        n = len(self.sample_ids)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.stem + ".", suffix=".h5.tmp")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            with h5py.File(tmp, "w") as f:
                images = f.create_dataset("images", (n, *self.image_shape), np.uint8, chunks=(1, *self.image_shape))
                masks = None
                if self.mask_shape is not None:
                    masks = f.create_dataset("masks", (n, *self.mask_shape), np.uint8, chunks=(1, *self.mask_shape))
                f.create_dataset("sample_ids", data=np.asarray(self.sample_ids, dtype=object), dtype=h5py.string_dtype())
                with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
                    for start in range(0, n, BUILD_BATCH):
                        stop = min(start + BUILD_BATCH, n)
                        items = list(pool.map(self.build_item, range(start, stop)))
                        images[start:stop] = np.stack([im for im, _ in items])
                        if masks is not None:
                            masks[start:stop] = np.stack([m for _, m in items])
                f.attrs["key"] = self.key
                f.attrs["format"] = CACHE_FORMAT_VERSION
                f.attrs["complete"] = 1
            tmp.chmod(0o644)  # mkstemp creates 0600; caches are shared like any output file
            tmp.replace(self.path)
        finally:
            tmp.unlink(missing_ok=True)

    def nbytes(self) -> int:
        """Size of the decoded images and masks."""
        n = len(self.sample_ids)
        return n * (int(np.prod(self.image_shape)) + (int(np.prod(self.mask_shape)) if self.mask_shape else 0))

    def read(self, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Images (and masks) of ``rows`` (positions; ``None`` = all) as in-memory arrays."""
        if self._memo is not None:
            images, masks = self._memo
            if rows is None:
                return images, masks
            return images[rows], None if masks is None else masks[rows]
        path = self.ensure()
        keep = self.nbytes() <= self.memory_limit
        try:
            with h5py.File(path, "r") as f:
                wanted = None if keep else rows
                out = _take(f["images"], wanted), (_take(f["masks"], wanted) if "masks" in f else None)
        except OSError as exc:
            raise DataError(f"Cannot read HDF5 cache {path}: {exc}. Delete the file; it is rebuilt on next use.") from None
        if not keep:
            return out
        self._memo = out
        return self.read(rows)


def _take(ds: h5py.Dataset, rows: np.ndarray | None) -> np.ndarray:
    """Rows of an HDF5 dataset in the requested order, reading one contiguous slab."""
    if rows is None:
        out = np.empty(ds.shape, ds.dtype)
        if out.size:
            ds.read_direct(out)
        return out
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        return np.empty((0, *ds.shape[1:]), ds.dtype)
    lo, hi = int(rows.min()), int(rows.max()) + 1
    slab = np.empty((hi - lo, *ds.shape[1:]), ds.dtype)
    ds.read_direct(slab, np.s_[lo:hi])
    if hi - lo == rows.size and (rows == np.arange(lo, hi)).all():
        return slab
    return slab[rows - lo]
