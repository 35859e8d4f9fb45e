"""Protocols: how a suite's encoder is used — end to end (``finetune``) or frozen (``linear_probe``, ``knn``).

Under a frozen protocol the encoder runs once per (dataset, encoder, weights, preprocessing)
(:func:`medfairx.methods.embedding.embed_dataset`, cached), and every method trains on a
dataset whose "images" are the feature vectors, with the suite's feature head
(``backbones.classification``: ``linear`` by default, or ``mlp``) through the usual Method
API and training loop. With the suite's ``standardize_features`` the head's first layer
standardises every feature with the mean and std of the run's training split
(:class:`~medfairx.methods.encoders.Standardize`, fitted in
:func:`~medfairx.runner.execute.execute_run`; ``knn`` scales its vectors the same way).
Methods whose tags say they need pixels (``inputs=("images",)``) are not planned, with the
reason. Segmentation datasets keep end-to-end training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medfairx.data.embeddings import (
    FROZEN_PROTOCOLS,
    Embeddings,
    EncoderChoice,
    H5EmbeddingCache,
    frozen_dataset,
)
from medfairx.errors import DataError
from medfairx.methods.embedding import build_encoder, embed_dataset

#: Methods a ``knn`` suite runs when it names none.
KNN_METHODS = ("knn",)


def apply_protocol(suite: Any, dataset: Any, cache_dir: str | Path, *, echo: Any = None,
                   refresh: bool = False) -> tuple[Any, dict[str, Any]]:
    """The dataset the suite's runs see and what its planning entry gains.

    Returns:
        ``(dataset, extra)``: ``extra`` may set ``inputs``, ``backbone`` and ``protocol``
        (see :func:`medfairx.runner.plan.plan_runs`).
    """
    protocol = getattr(suite, "protocol", "finetune")
    if protocol not in FROZEN_PROTOCOLS:
        if suite.encoder is None or dataset.card.task != "classification":
            return dataset, {}
        choice = EncoderChoice.from_config(suite.encoder)
        _, info = build_encoder(dataset, choice)
        record = {"name": "finetune", "encoder": info["name"], "pretrained": info["pretrained"],
                  "weights_sha256": info["weights_sha256"], "preprocessing": info["preprocessing"],
                  "backbone_kwargs": choice.backbone_kwargs()}
        return dataset, {"backbone": choice.backbone, "protocol": record}
    if dataset.card.task != "classification":
        if echo is not None:
            echo(f"{dataset.name}: {dataset.card.task} trains end to end under protocol {protocol}")
        return dataset, {}
    emb = embed_dataset(dataset, EncoderChoice.from_config(suite.encoder), cache_dir, refresh=refresh, echo=echo)
    if echo is not None:
        echo(f"{dataset.name}: {emb.encoded:,} images encoded"
             + (f" ({emb.images_per_second:.1f} images/s)" if emb.encoded else f" (embeddings read from {emb.path})"))
    head = suite.backbones.get("classification") or "linear"
    record = emb.protocol_record(protocol)
    if getattr(suite, "standardize_features", False):  # the head's scaler, fitted on each run's training split
        record["backbone_kwargs"] = {"standardize": True}
    return frozen_dataset(dataset, emb), {"inputs": "features", "backbone": head, "protocol": record}


def dataset_for_run(dataset: Any, protocol: dict[str, Any], cache_dir: str | Path) -> Any:
    """``dataset`` as a planned run with ``protocol`` sees it (a worker's side of :func:`apply_protocol`).

    Raises:
        DataError: the embeddings the run was planned on are not in the cache.
    """
    key = (protocol or {}).get("embeddings")
    if not key:
        return dataset
    cache = H5EmbeddingCache.for_dataset(cache_dir, dataset, key)
    features = cache.read()
    if features is None:
        raise DataError(f"Embeddings {cache.path} of {dataset.name!r} are missing or unusable; "
                        "run `medfairx embed --suite <suite>` (or the bench command again) to rebuild them.")
    return frozen_dataset(dataset, Embeddings(features, key, cache.path, {
        "name": protocol.get("encoder"), "pretrained": protocol.get("pretrained"), "weights": None,
        "weights_sha256": protocol.get("weights_sha256"), "preprocessing": protocol.get("preprocessing")}))
