"""HDF5 cache of preprocessed images (and masks), keyed by a hash of its inputs.

File ``<cache_dir>/<dataset>-<key>.h5`` holds ``images`` ``(N, C, *spatial)`` uint8 chunked
per image, optional ``masks`` ``(N, *spatial)`` uint8, ``sample_ids``, and attributes
``key``, ``format`` and ``complete=1``. It is written to a temporary file and renamed, so a
crashed build never leaves a file that looks complete. Image and mask chunks carry fletcher32
checksums. A file that cannot be opened, lacks ``complete`` or checksums, has another key,
other shapes or other sample ids, or whose bytes fail a checksum when read, is rebuilt with
a :class:`CacheRebuildWarning`, never used.

The key hashes the *content* of the source files (:func:`file_fingerprints`), remembered
per file signature so that an unchanged folder is only stat-ed.
"""

from __future__ import annotations

import errno
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
from medfairx.fileio import FILE_MODE, atomic_write_json

CACHE_FORMAT_VERSION = 1  # part of every key and revision: an old cache is caught by its missing checksums
FINGERPRINT_FORMAT = 1
BUILD_BATCH = 256
CACHE_WRITE_FAILED = (
    "Cannot write the {what} {path}: {why}. Free space there, or point the cache to a writable folder with "
    "room: set MEDFAIRX_CACHE=<folder> (or cache_dir: in datasets.yaml)."
)

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


def file_digest(path: str | Path) -> str:
    """blake2b (128-bit) hex digest of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _stat_signature(st: os.stat_result) -> list[int]:
    # ctime cannot be set back by a user (unlike mtime), so a rewrite always changes the signature
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _read_memo(memo: Path | None) -> dict[str, list[Any]]:
    if memo is None:
        return {}
    try:
        data = json.loads(memo.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != FINGERPRINT_FORMAT or not isinstance(data.get("files"), dict):
        return {}
    result: dict[str, list[Any]] = data["files"]
    return result


def file_fingerprints(paths: Iterable[Path], *, memo: str | Path | None = None, workers: int = 4) -> list[tuple[str, str]]:
    """``(file name, content digest)`` of each path: what keys a pixel cache and a dataset revision.

    The digest is :func:`file_digest` of the bytes, so a file replaced by another of the same
    size changes it. ``memo`` (a JSON file, usually in the cache folder) remembers each
    digest with the file's size, mtime, ctime and inode: files whose signature is unchanged
    are not read again, so a second load only stats them. A memo that cannot be read is
    ignored; one that cannot be written is not kept.
    """
    paths = [Path(p) for p in paths]
    memo = Path(memo) if memo is not None else None
    known = _read_memo(memo)
    cwd = Path.cwd()
    keys = [str(p if p.is_absolute() else cwd / p) for p in paths]
    sigs = [_stat_signature(os.stat(p)) for p in paths]
    digests: list[str | None] = [
        str(known[k][4]) if isinstance(known.get(k), list) and len(known[k]) == 5 and known[k][:4] == sig else None
        for k, sig in zip(keys, sigs, strict=False)
    ]
    todo = [i for i, d in enumerate(digests) if d is None]
    if todo:
        n = max(1, min(workers, len(todo)))
        shares = [todo[k::n] for k in range(n)]  # one list per thread: no per-file task overhead
        with ThreadPoolExecutor(max_workers=n) as pool:  # hashlib releases the GIL
            for share, found in zip(shares, pool.map(lambda idx: [file_digest(paths[i]) for i in idx], shares), strict=False):
                for i, digest in zip(share, found, strict=False):
                    digests[i] = digest
    if memo is not None and (todo or len(known) != len(keys)):
        files = {k: [*sig, d] for k, sig, d in zip(keys, sigs, digests, strict=False)}
        try:
            atomic_write_json(memo, {"format": FINGERPRINT_FORMAT, "files": files}, indent=None)
        except OSError:  # e.g. a read-only cache folder: the digests are right, only not remembered
            pass
    return [(p.name, str(d)) for p, d in zip(paths, digests, strict=False)]


def fingerprint_memo(cache_dir: str | Path, dataset: str, what: str) -> Path:
    """Where :func:`file_fingerprints` remembers the digests of ``dataset``'s ``what`` (images, masks)."""
    return Path(cache_dir) / "fingerprints" / f"{dataset}-{what}.json"


def cache_write_error(what: str, path: str | Path, exc: OSError) -> DataError:
    """One-line :class:`DataError` for a cache file that cannot be written (full disk, read-only folder)."""
    if exc.errno == errno.ENOSPC:
        why = "the disk is full"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = "the folder is not writable"
    else:
        why = exc.strerror or type(exc).__name__
    return DataError(CACHE_WRITE_FAILED.format(what=what, path=path, why=why))


def cache_key(**parts: Any) -> str:
    """A 16-hex-digit key: sha256 of the canonical JSON of ``parts`` plus the format version."""
    payload = json.dumps({"format": CACHE_FORMAT_VERSION, **parts}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def header_problem(f: h5py.File, key: str) -> str | None:
    """Why an open cache file's header makes it unusable: not marked complete, or another key."""
    if int(f.attrs.get("complete", 0)) != 1:
        return "incomplete (no complete flag)"
    if f.attrs.get("key") != key:
        return f"stale (key {f.attrs.get('key')!r}, expected {key!r})"
    return None


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
                header = header_problem(f, self.key)
                if header is not None:
                    return header
                if f["images"].shape != (n, *self.image_shape) or f["images"].dtype != np.uint8:
                    return f"of the wrong shape {f['images'].shape} (expected {(n, *self.image_shape)})"
                if self.mask_shape is not None and ("masks" not in f or f["masks"].shape != (n, *self.mask_shape)):
                    return "missing its masks or of the wrong mask shape"
                if not f["images"].fletcher32 or ("masks" in f and not f["masks"].fletcher32):
                    return "without checksums (an older cache format)"
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
        """Decode every sample and write the cache atomically.

        Raises:
            DataError: the cache folder is not writable or the disk is full (one line).
        """
        try:
            self._build()
        except OSError as exc:
            raise cache_write_error("HDF5 cache", self.path, exc) from None

    def _build(self) -> None:
        n = len(self.sample_ids)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.stem + ".", suffix=".h5.tmp")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            with h5py.File(tmp, "w") as f:  # fletcher32: every chunk carries a checksum, checked on read
                images = f.create_dataset("images", (n, *self.image_shape), np.uint8, chunks=(1, *self.image_shape),
                                          fletcher32=True)
                masks = None
                if self.mask_shape is not None:
                    masks = f.create_dataset("masks", (n, *self.mask_shape), np.uint8, chunks=(1, *self.mask_shape),
                                             fletcher32=True)
                f.create_dataset("sample_ids", data=np.asarray(self.sample_ids, dtype=object), dtype=h5py.string_dtype())
                with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
                    for start in range(0, n, BUILD_BATCH):
                        stop = min(start + BUILD_BATCH, n)
                        items = list(pool.map(self.build_item, range(start, stop)))
                        images[start:stop] = np.stack([im for im, _ in items])
                        if masks is not None:
                            masks[start:stop] = np.stack([m for _, m in items if m is not None])  # masks exist when built
                f.attrs["key"] = self.key
                f.attrs["format"] = CACHE_FORMAT_VERSION
                f.attrs["complete"] = 1
            tmp.chmod(FILE_MODE)  # mkstemp creates 0600; caches are shared like any output file
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
        keep = self.nbytes() <= self.memory_limit
        for attempt in range(2):
            path = self.ensure()
            try:
                with h5py.File(path, "r") as f:
                    wanted = None if keep else rows
                    out = _take(f["images"], wanted), (_take(f["masks"], wanted) if "masks" in f else None)
                break
            except OSError as exc:  # e.g. a chunk whose checksum does not match: bytes changed on disk
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                if attempt:
                    raise DataError(f"Cannot read HDF5 cache {path} ({reason}) even after rebuilding it. Delete "
                                    "the file and check the disk.") from None
                warnings.warn(f"HDF5 cache {path} is corrupt ({reason}); rebuilding it.", CacheRebuildWarning,
                              stacklevel=2)
                self.build()
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
    result: np.ndarray = slab[rows - lo]
    return result
