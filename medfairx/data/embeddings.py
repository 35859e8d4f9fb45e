"""Frozen-encoder embeddings: computed once per (images, encoder, weights, preprocessing), cached in HDF5.

File ``<cache_dir>/embeddings/<adapter>-<key>.h5`` holds ``features`` ``(N, D)`` float32
(fletcher32 checksums), ``sample_ids`` (every sample of the dataset, in metadata order) and
attributes ``key``, ``format``, ``complete=1`` and ``encoder`` (JSON). The key is
:func:`medfairx.data.cache.cache_key` of the dataset's pixels (the key of its image cache:
the content of its image files, the size and the resampling; not its label, groupings or
split), its sample ids, the image shape, the encoder's name, the sha256 of its weights file
and its preprocessing. Catalogue entries that read the same images (another label, a held-out
site, an external-test copy) therefore share one file and the encoder runs once for all of
them. A dataset whose pixels have no cache key (in memory) is keyed by its name and revision
and its file is named after the dataset. Like the image cache it is written to a temporary file and renamed; a file that
is corrupt, stale (another key), incomplete, for other samples or holds non-finite values is
rebuilt with a :class:`~medfairx.data.cache.CacheRebuildWarning`, never used.

The pixels come from the dataset's image cache at the dataset's ``image_size`` (the adapter's
whole-image resize); when that differs from the encoder's input size they are resized again
with the encoder's interpolation. Then the encoder's own mean/std, ``torch.inference_mode``,
batches in ``channels_last``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from medfairx.data.cache import CacheRebuildWarning, cache_key, cache_write_error, header_problem
from medfairx.data.dataset import ArraySource, FairDataset
from medfairx.errors import DataError
from medfairx.fileio import FILE_MODE

EMBEDDINGS_FORMAT = 1
FROZEN_PROTOCOLS = ("linear_probe", "knn")
INIT_SEED = 0  # torch seed of the parameters a random-init (or partly loaded) encoder starts from

Echo = Callable[[str], None]


@dataclass(frozen=True)
class EncoderChoice:
    """Which encoder embeds the images, with which weights.

    Attributes:
        backbone: a classification backbone name (``efficientnet_lite0``, ``timm:<name>``, ...).
        pretrained: load the encoder's pretrained weights (an error if there are none).
        weights: a local weights file (overrides the libraries' caches).
        batch_size: images per forward pass.
        options: other keyword arguments of the backbone factory.
    """

    backbone: str = "efficientnet_lite0"
    pretrained: bool = True
    weights: str | None = None
    batch_size: int = 64
    options: tuple[tuple[str, Any], ...] = ()

    def backbone_kwargs(self) -> dict[str, Any]:
        """What the backbone factory receives."""
        kw = {**dict(self.options), "pretrained": self.pretrained}
        if self.weights is not None:
            kw["weights"] = str(self.weights)
        return kw

    @classmethod
    def from_config(cls, cfg: Any) -> EncoderChoice:
        """From a suite's ``encoder:`` block (:class:`~medfairx.config.EncoderConfig`) or ``None``."""
        if cfg is None:
            return cls()
        return cls(cfg.backbone, cfg.pretrained, None if cfg.weights is None else str(cfg.weights), cfg.batch_size,
                   tuple(sorted(cfg.options.items())))


@dataclass
class Embeddings:
    """The embeddings of every sample of a dataset.

    Attributes:
        features: ``(N, D)`` float32, rows in the dataset's metadata order.
        key: the cache key.
        path: the cache file.
        encoder: the encoder's record (name, pretrained, weights, weights_sha256, preprocessing).
        encoded: images run through the encoder by this call (0: read from the cache).
        seconds: time spent encoding.
    """

    features: np.ndarray
    key: str
    path: Path
    encoder: dict[str, Any]
    encoded: int = 0
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        """Encoding throughput of this call (NaN when nothing was encoded)."""
        return self.encoded / self.seconds if self.encoded and self.seconds > 0 else float("nan")

    def protocol_record(self, protocol: str) -> dict[str, Any]:
        """What a run on these features records (and its id hashes)."""
        return {
            "name": protocol,
            "encoder": self.encoder["name"],
            "pretrained": self.encoder["pretrained"],
            "weights_file": None if self.encoder["weights"] is None else Path(self.encoder["weights"]).name,
            "weights_sha256": self.encoder["weights_sha256"],
            "preprocessing": self.encoder["preprocessing"],
            "embeddings": self.key,
            "feature_dim": int(self.features.shape[1]),
        }


@dataclass
class H5EmbeddingCache:
    """One embeddings file and the facts it must match."""

    path: Path
    key: str
    sample_ids: list[str]

    @classmethod
    def for_dataset(cls, cache_dir: str | Path, dataset: FairDataset, key: str) -> H5EmbeddingCache:
        """The file of ``dataset``'s embeddings under ``cache_dir/embeddings`` (see the module docstring)."""
        stem = dataset.config.adapter if _pixels_key(dataset) else dataset.name
        return cls(Path(cache_dir) / "embeddings" / f"{stem}-{key}.h5", key, [str(s) for s in dataset.metadata.index])

    def problem(self) -> str | None:
        """Why the file cannot be used (``None``: valid)."""
        try:
            with h5py.File(self.path, "r") as f:
                header = header_problem(f, self.key)
                if header is not None:
                    return header
                feats = f["features"]
                if feats.ndim != 2 or feats.shape[0] != len(self.sample_ids) or feats.dtype != np.float32:
                    return f"of the wrong shape {feats.shape} (expected ({len(self.sample_ids)}, D) float32)"
                if not feats.fletcher32:
                    return "without checksums"
                if list(f["sample_ids"].asstr()[...]) != self.sample_ids:
                    return "for different samples"
        except (OSError, KeyError, ValueError) as exc:
            return f"corrupt ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        return None

    def read(self) -> np.ndarray | None:
        """The features, or ``None`` (with a rebuild warning) when the file is unusable."""
        if not self.path.exists():
            return None
        reason = self.problem()
        if reason is None:
            try:
                with h5py.File(self.path, "r") as f:
                    features: np.ndarray = f["features"][...]
                if np.isfinite(features).all():
                    return features
                reason = "holding non-finite values"
            except OSError as exc:  # a chunk whose checksum fails: bytes changed on disk
                reason = f"corrupt ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
        warnings.warn(f"Embedding cache {self.path} is {reason}; rebuilding it.", CacheRebuildWarning, stacklevel=3)
        return None

    def write(self, features: np.ndarray, encoder: dict[str, Any]) -> None:
        """Write ``features`` atomically (temporary file, then rename).

        Raises:
            DataError: the folder is not writable or the disk is full.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.stem + ".", suffix=".h5.tmp")
            os.close(fd)
            tmp = Path(tmp_name)
            try:
                with h5py.File(tmp, "w") as f:
                    f.create_dataset("features", data=features.astype(np.float32), fletcher32=True,
                                     chunks=(min(len(features), 1024) or 1, features.shape[1]))
                    f.create_dataset("sample_ids", data=np.asarray(self.sample_ids, dtype=object),
                                     dtype=h5py.string_dtype())
                    f.attrs["key"] = self.key
                    f.attrs["format"] = EMBEDDINGS_FORMAT
                    f.attrs["encoder"] = json.dumps(encoder, sort_keys=True)
                    f.attrs["complete"] = 1
                tmp.chmod(FILE_MODE)
                tmp.replace(self.path)
            finally:
                tmp.unlink(missing_ok=True)
        except OSError as exc:
            raise cache_write_error("embedding cache", self.path, exc) from None


def embedding_key(dataset: FairDataset, image_shape: tuple[int, ...], encoder: dict[str, Any],
                  options: dict[str, Any]) -> str:
    """The cache key of ``dataset``'s embeddings under ``encoder`` (see the module docstring)."""
    pixels = _pixels_key(dataset)
    images: dict[str, Any] = {"pixels": pixels} if pixels else {"dataset": dataset.name, "revision": dataset.revision}
    samples = hashlib.sha256("\n".join(str(s) for s in dataset.metadata.index).encode()).hexdigest()
    return cache_key(kind="embeddings", embeddings_format=EMBEDDINGS_FORMAT, **images, samples=samples,
                     image_shape=list(image_shape), encoder=encoder["name"],
                     pretrained=encoder["pretrained"], weights_sha256=encoder["weights_sha256"],
                     preprocessing=encoder["preprocessing"], options=options, init_seed=INIT_SEED)


def _pixels_key(dataset: FairDataset) -> str | None:
    """The key of the image cache ``dataset`` reads its pixels from (``None``: pixels in memory)."""
    key = getattr(dataset.source, "key", None)
    return key if isinstance(key, str) and key else None


def frozen_dataset(dataset: FairDataset, embeddings: Embeddings) -> FairDataset:
    """``dataset`` whose "images" are its feature vectors (what methods see under a frozen protocol)."""
    if embeddings.features.shape[0] != len(dataset):
        raise DataError(f"Embeddings of {dataset.name!r} have {embeddings.features.shape[0]} rows, "
                        f"the dataset {len(dataset)}; rebuild them with `medfairx embed`.")
    out = FairDataset(name=dataset.name, card=dataset.card, config=dataset.config, metadata=dataset.metadata,
                      source=ArraySource(embeddings.features), splits=dataset.splits, revision=dataset.revision,
                      groupings=dataset.groupings, info={**dataset.info, "protocol": embeddings.protocol_record("")})
    out.embeddings = embeddings  # type: ignore[attr-defined]  # an extra attribute the frozen-feature protocol reads
    return out
