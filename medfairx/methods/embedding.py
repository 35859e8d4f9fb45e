"""Running a frozen encoder over a dataset's images, once, into the embedding cache.

:func:`embed_dataset` builds the encoder through the backbone registry, preprocesses the
images the encoder's way (resize with its interpolation, its mean/std), runs batches in
``channels_last`` under ``torch.inference_mode`` and stores the features in the
:class:`~medfairx.data.embeddings.H5EmbeddingCache` (computed only when no valid cache exists).

Used by core only (the frozen-encoder protocol and ``medfairx embed``).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from medfairx.data.cache import file_sha256
from medfairx.data.dataset import FairDataset
from medfairx.data.embeddings import (
    INIT_SEED,
    Echo,
    Embeddings,
    EncoderChoice,
    H5EmbeddingCache,
    embedding_key,
)
from medfairx.errors import ConfigError, DataError
from medfairx.methods.backbones import build_backbone, find_backbone_spec
from medfairx.methods.device import images_to_float

__all__ = ["build_encoder", "embed_dataset", "encode_images"]


def build_encoder(dataset: FairDataset, choice: EncoderChoice) -> Any:
    """The encoder network for ``dataset``'s images (a ClassifierNet carrying ``encoder_info``)."""
    if dataset.card.task != "classification":
        raise ConfigError(f"Dataset {dataset.name!r} is a {dataset.card.task} dataset; frozen-feature protocols "
                          "are for classification (segmentation trains end to end).")
    channels = dataset.image_shape[0]
    import torch

    with torch.random.fork_rng(devices=[]):  # a random-init encoder is the same network every time (seed 0)
        torch.manual_seed(INIT_SEED)
        net = build_backbone(choice.backbone, in_channels=channels, num_classes=2,
                             spatial_dims=dataset.card.spatial_dims, task="classification", **_accepted(choice))
    info = getattr(net, "encoder_info", None)
    if info is None:  # a plain backbone (tiny_cnn, monai nets): no preprocessing of its own
        info = {"name": choice.backbone, "pretrained": choice.weights is not None, "pretrained_requested": False,
                "weights": choice.weights, "weights_sha256": file_sha256(choice.weights) if choice.weights else None,
                "preprocessing": None}
    return net, info


def _accepted(choice: EncoderChoice) -> dict[str, Any]:
    """The choice's factory keywords; ``pretrained: false`` is dropped for networks without weights."""
    kw = choice.backbone_kwargs()
    params = inspect.signature(find_backbone_spec(choice.backbone).load()).parameters
    if "pretrained" not in params and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        if choice.pretrained:
            raise ConfigError(f"Encoder {choice.backbone!r} has no pretrained weights; set `pretrained: false` "
                              "(random init) or pick a pretrained encoder such as efficientnet_lite0.")
        kw.pop("pretrained")
    return kw


def encode_images(encoder: Any, images: Callable[[np.ndarray], np.ndarray], n: int, *, input_size: tuple[int, ...] | None,
                  interpolation: str, batch_size: int, device: str = "cpu",
                  progress: Callable[[int, int, float], None] | None = None) -> np.ndarray:
    """Run ``encoder`` over ``n`` uint8 images read by ``images(rows)``, in batches.

    Returns ``(n, D)`` float32 features. Batches are converted like the trainer converts
    them, resized to ``input_size`` (spatial) when it differs, ``channels_last``, and run under
    ``torch.inference_mode``.
    """
    import torch

    encoder = encoder.to(device).eval().to(memory_format=torch.channels_last)
    out: list[np.ndarray] = []
    t0 = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            rows = np.arange(start, min(start + batch_size, n))
            x = images_to_float(torch.from_numpy(np.ascontiguousarray(images(rows))).to(device))
            if input_size is not None and tuple(x.shape[2:]) != tuple(input_size):
                x = torch.nn.functional.interpolate(x, size=tuple(input_size), mode=interpolation,
                                                    align_corners=False, antialias=True)
            out.append(encoder(x.contiguous(memory_format=torch.channels_last)).float().cpu().numpy())
            if progress is not None:
                progress(int(rows[-1]) + 1, n, time.perf_counter() - t0)
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def embed_dataset(dataset: FairDataset, choice: EncoderChoice, cache_dir: str | Path, *, refresh: bool = False,
                  device: str = "cpu", echo: Echo | None = None) -> Embeddings:
    """The embeddings of every sample of ``dataset``: from the cache, else computed and cached.

    Args:
        dataset: a classification dataset.
        choice: the encoder.
        cache_dir: the catalogue's cache folder (files go to its ``embeddings/``).
        refresh: recompute even when a valid cache exists.
        device: where the encoder runs.
        echo: progress lines (``images/s``).
    """
    net, info = build_encoder(dataset, choice)
    options = dict(choice.options)
    key = embedding_key(dataset, dataset.image_shape, info, options)
    cache = H5EmbeddingCache.for_dataset(cache_dir, dataset, key)
    if not refresh:
        features = cache.read()
        if features is not None:
            return Embeddings(features, key, cache.path, info, encoded=0)
    prep = info.get("preprocessing") or {}
    input_size = tuple(prep["input_size"][1:]) if prep.get("input_size") else None
    last = [0.0]

    def progress(done: int, total: int, seconds: float) -> None:
        event = getattr(echo, "event", None)  # a progress display (medfairx.runner.progress) draws a bar
        if event is not None:
            event("embedding", dataset=dataset.name, done=done, total=total, seconds=seconds)
        if echo is not None and (done == total or seconds - last[0] >= 10):
            last[0] = seconds
            echo(f"  embedded {done:,}/{total:,} images of {dataset.name} ({done / max(seconds, 1e-9):.1f} images/s)")

    if echo is not None:
        echo(f"embedding {len(dataset):,} images of {dataset.name} with {info['name']} "
             f"({'pretrained' if info['pretrained'] else 'random init'}) -> {cache.path}")
    t0 = time.perf_counter()
    features = encode_images(net.encoder, lambda rows: dataset.source.read(rows)[0], len(dataset),
                             input_size=input_size, interpolation=prep.get("interpolation", "bilinear"),
                             batch_size=choice.batch_size, device=device, progress=progress)
    seconds = time.perf_counter() - t0
    if not np.isfinite(features).all():
        raise DataError(f"Encoder {info['name']} produced non-finite features on {dataset.name}; check its weights.")
    cache.write(features, info)
    return Embeddings(features, key, cache.path, info, encoded=len(dataset), seconds=seconds)
