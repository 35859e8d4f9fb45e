"""From an adapter's metadata frame to a :class:`FairDataset`, on the data layer's machinery.

Every file-based adapter (``medfairx.data.adapters.ham10000`` included) runs these steps: options
checked against the adapter's defaults, rows without image (or mask) skipped with a warning or an error, labels from the
catalogue's ``label`` (or the adapter default), an :class:`H5ImageCache` keyed by the
metadata files, image fingerprints and preprocessing, and :func:`assemble` for groupings
and patient-disjoint splits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medfairx.config import DatasetConfig, LabelConfig
from medfairx.data import imaging
from medfairx.data.adapters._tabular import Report, check_images, finish, option_path, present, report_info
from medfairx.data.cache import (
    H5ImageCache,
    cache_key,
    file_fingerprints,
    file_sha256,
    fingerprint_memo,
)
from medfairx.data.cards import CARDS
from medfairx.data.dataset import FairDataset, assemble
from medfairx.data.labels import class_labels
from medfairx.errors import ConfigError, DataError
from medfairx.specs import DatasetCard

COMMON_OPTIONS: dict[str, Any] = {"missing_images": "skip", "workers": 4}
"""Options every file-based adapter accepts (as in the HAM10000 adapter)."""

ItemReader = Callable[[int], tuple[np.ndarray, "np.ndarray | None"]]
"""Decodes row ``i`` into ``(image, mask or None)``."""


def options(cfg: DatasetConfig, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``cfg.options`` over ``defaults`` (plus :data:`COMMON_OPTIONS`); unknown keys are errors.

    The error lists the allowed options in the order of ``defaults`` when it names every
    common option itself (as HAM10000's does), else the common options first.
    """
    allowed = dict(defaults) if COMMON_OPTIONS.keys() <= defaults.keys() else {**COMMON_OPTIONS, **defaults}
    unknown = [k for k in cfg.options if k not in allowed]
    if unknown:
        raise ConfigError(
            f"datasets.{cfg.name}.options: unknown option(s) {unknown}; allowed: {', '.join(allowed)}."
        )
    opts = {**allowed, **cfg.options}
    if opts["missing_images"] not in ("skip", "error"):
        raise ConfigError(
            f"datasets.{cfg.name}.options.missing_images: {opts['missing_images']!r}; allowed values: skip, error."
        )
    return opts


def root_of(cfg: DatasetConfig, layout: str) -> Path:
    """The dataset's existing ``root`` folder, or a :class:`ConfigError` / :class:`DataError`."""
    if cfg.root is None:
        raise ConfigError(f"datasets.{cfg.name}.root is required: the folder holding {layout}.")
    root = Path(cfg.root)
    if not root.is_dir():
        raise DataError(
            f"Dataset {cfg.name!r}: root {root} does not exist. Set MEDFAIRX_DATA or fix datasets.{cfg.name}.root "
            f"(expected: {layout})."
        )
    return root


#: HAM10000's malignant label (mel, bcc, akiec); a binary label equal to it is named ``("benign", "malignant")``
HAM10000_LABEL = LabelConfig(column="dx", positive=["mel", "bcc", "akiec"])


def with_labels(
    frame: pd.DataFrame, label: LabelConfig | None, default: LabelConfig, default_names: Sequence[str], name: str
) -> pd.DataFrame:
    """``frame`` with an int ``label`` column from ``label`` (else ``default``, named ``default_names``).

    The class names are stored in ``frame.attrs["class_names"]``.
    """
    codes, names = class_labels(frame, label or default, name, default=HAM10000_LABEL)
    out: pd.DataFrame = frame.assign(label=codes)
    out.attrs = dict(frame.attrs)
    out.attrs["class_names"] = tuple(default_names) if label is None else names
    return out


def keep_with_files(cfg: DatasetConfig, frame: pd.DataFrame, root: Path, columns: Sequence[str], policy: str) -> pd.DataFrame:
    """Drop rows whose files are absent (``skip``) or raise naming the first one (``error``)."""
    ok = np.ones(len(frame), dtype=bool)
    for col in columns:
        ok &= present(root, frame[col].astype(str))
    if not ok.any():
        raise DataError(
            f"Dataset {cfg.name!r}: none of the {len(frame):,} files named by the metadata exist under {root} "
            f"(e.g. {frame[columns[0]].iloc[0] if len(frame) else '-'}). Check datasets.{cfg.name}.root and the "
            "expected folder layout (`medfairx list datasets`)."
        )
    if not ok.all() and policy == "error":
        sid = frame.index[~ok][0]
        raise DataError(
            f"Dataset {cfg.name!r}: sample {sid!r} has no file {root / str(frame.loc[sid, columns[0]])} "
            f"({int((~ok).sum())} missing in all). Restore the files or set datasets.{cfg.name}.options.missing_images: skip."
        )
    result: pd.DataFrame = frame.loc[ok]
    return result


def image_size(cfg: DatasetConfig, default: tuple[int, int] = (224, 224), what: str = "these images") -> tuple[int, int]:
    """``cfg.image_size`` (or ``default``) as ``(h, w)``; a 3D size is a :class:`ConfigError`."""
    size = cfg.spatial_size(default)
    if len(size) != 2:
        raise ConfigError(f"datasets.{cfg.name}.image_size: {what} are 2D; give an int or [h, w].")
    return (int(size[0]), int(size[1]))


@dataclasses.dataclass(frozen=True)
class Pixels:
    """The files whose pixels are cached, one row each, and the key of their cache.

    Attributes:
        key: the pixel cache key (also hashed into the revision).
        size: spatial size of the cached images (and masks): ``(h, w)``, or ``(d, h, w)``
            for volumes (read by a custom reader).
        image_paths: image file of each row (named in decode errors).
        mask_paths: mask file of each row, or ``None`` (no masks, or a custom reader reads them).
        workers: decoding threads.
    """

    key: str
    size: tuple[int, ...]
    image_paths: Sequence[Path]
    mask_paths: Sequence[Path] | None
    workers: int


def pixels(
    cfg: DatasetConfig,
    cache_dir: Path,
    image_paths: Sequence[Path],
    mask_paths: Sequence[Path] | None,
    size: tuple[int, int],
    workers: int,
    **key_parts: Any,
) -> Pixels:
    """:class:`Pixels` keyed by ``key_parts`` (adapter, metadata hashes, ...) plus the files'
    fingerprints (memoised under ``cache_dir``), the size and the resampling filters."""
    key = cache_key(
        **key_parts,
        images=file_fingerprints(image_paths, memo=fingerprint_memo(cache_dir, cfg.name, "images"), workers=workers),
        masks=file_fingerprints(mask_paths, memo=fingerprint_memo(cache_dir, cfg.name, "masks"), workers=workers)
        if mask_paths else None,
        size=size,
        resize=[imaging.IMAGE_RESAMPLE, imaging.MASK_RESAMPLE],
    )
    return Pixels(key, size, image_paths, mask_paths, workers)


def cache_and_assemble(
    run: Loader,
    meta: pd.DataFrame,
    pixels: Pixels,
    *,
    class_names: Sequence[str],
    info: Mapping[str, Any],
    task: str | None = None,
    revision_label: LabelConfig | None = None,
    read_item: ItemReader | None = None,
    where: Callable[[int], str] | None = None,
    card_changes: Mapping[str, Any] | None = None,
) -> FairDataset:
    """Cache the pixels of the rows of ``meta`` under ``pixels.key`` and assemble the :class:`FairDataset`.

    Args:
        run: the checked inputs of the ``load`` (catalogue entry, card, cache folder).
        meta: metadata frame indexed by ``sample_id``, one row per cached sample.
        pixels: the files of the rows and their cache key.
        task: ``"classification"`` or ``"segmentation"`` (caches masks; default ``run.task``).
        class_names: names of the label values (or of the mask classes).
        info: facts for ``FairDataset.info`` (``cache_file`` is added).
        revision_label: label definition hashed into the revision (default ``cfg.label``).
        read_item: custom decoder ``i -> (image, mask)``; the default decodes
            ``pixels.image_paths[i]`` (RGB) and ``pixels.mask_paths[i]`` (binary mask).
        where: names row ``i`` in decode errors (default: its sample id).
        card_changes: further :class:`DatasetCard` fields to replace.

    Raises:
        DataError: a file cannot be decoded.
    """
    cfg, task = run.cfg, task or run.task
    size, image_paths, mask_paths = pixels.size, pixels.image_paths, pixels.mask_paths

    def build_item(i: int) -> tuple[np.ndarray, np.ndarray | None]:
        path = image_paths[i]
        try:
            if read_item is not None:
                return read_item(i)
            hw = (size[0], size[1])  # the default decoders read 2-D images
            image = imaging.load_rgb(path, hw)
            if mask_paths is None:
                return image, None
            path = mask_paths[i]
            return image, imaging.load_mask(path, hw)
        except (OSError, ValueError) as exc:
            row = where(i) if where is not None else f"sample {meta.index[i]!r}"
            raise DataError(f"Cannot decode {path} ({row}): {exc}. Replace the file.") from None

    cache = H5ImageCache.for_dataset(
        run.cache_dir,
        cfg.name,
        pixels.key,
        sample_ids=list(meta.index.astype(str)),
        image_shape=(run.card.in_channels, *size),
        mask_shape=size if task == "segmentation" else None,
        build_item=build_item,
        workers=pixels.workers,
    )
    label = revision_label if revision_label is not None else cfg.label
    revision = cache_key(pixels=pixels.key, task=task, label=label.model_dump() if label is not None else None)
    card = dataclasses.replace(
        run.card,
        task=task,  # type: ignore[arg-type]  # a plain str here, checked against the adapter's tasks by task_of
        num_classes=len(class_names),
        class_names=tuple(class_names),
        **dict(card_changes or {}),
    )
    return assemble(cfg, card, meta, cache, revision, manifest_dir=run.cache_dir, info={**info, "cache_file": str(cache.path)})


def build(
    run: Loader,
    frame: pd.DataFrame,
    *,
    source_files: Sequence[Path],
    class_names: Sequence[str],
    task: str | None = None,
    default_size: tuple[int, int] = (224, 224),
    mask_column: str | None = None,
    read_item: Callable[[pd.Series, tuple[int, int]], tuple[np.ndarray, np.ndarray | None]] | None = None,
    card_changes: Mapping[str, Any] | None = None,
) -> FairDataset:
    """Skip rows without files, cache the pixels of ``frame`` and assemble the :class:`FairDataset`.

    Args:
        run: the checked inputs of the ``load`` (:func:`begin`).
        frame: ``read_metadata`` output (``image_path`` relative to ``run.root``; ``label``
            for classification; ``frame.attrs["report"]``).
        source_files: metadata files whose bytes key the cache and the revision.
        task: ``"classification"`` or ``"segmentation"`` (default ``run.task``).
        class_names: names of the label values (or of the mask classes).
        mask_column: column of mask paths (segmentation from image files).
        read_item: custom decoder ``(row, size) -> (image, mask)`` (e.g. npz files); the
            default decodes ``image_path`` (RGB) and ``mask_column`` (binary mask).
        card_changes: further :class:`DatasetCard` fields to replace.
    """
    cfg, root, cache_dir, opts = run.cfg, run.root, run.cache_dir, run.opts
    report = dict(frame.attrs.get("report", {}))
    columns = ["image_path"] + ([mask_column] if mask_column else [])
    kept = keep_with_files(cfg, frame, root, columns, str(opts["missing_images"]))
    skipped = len(frame) - len(kept)
    meta = kept.drop(columns=[c for c in columns if c in kept.columns and c != "image_path"])
    size = image_size(cfg, default_size)
    paths = [root / p for p in kept["image_path"].astype(str)]
    mask_paths = [root / p for p in kept[mask_column].astype(str)] if mask_column else None
    px = pixels(
        cfg, cache_dir, paths, mask_paths, size, int(opts["workers"]),
        adapter=cfg.adapter,
        metadata=[file_sha256(p) for p in source_files],
        options={k: v for k, v in sorted(cfg.options.items()) if k != "workers"},
    )
    reader: ItemReader | None = None
    if read_item is not None:
        rows = [kept.iloc[i] for i in range(len(kept))]
        reader = lambda i: read_item(rows[i], size)  # noqa: E731 - a one-line closure over rows and size
    info: dict[str, Any] = {
        **(report_info(report) if report else {"source_rows": len(frame)}),
        "skipped_missing_images": skipped,
        "metadata_file": ", ".join(str(p) for p in source_files),
    }
    return cache_and_assemble(
        run, meta, px, task=task, class_names=class_names, info=info, read_item=reader, card_changes=card_changes
    )


def load_classification(
    cfg: DatasetConfig,
    cache_dir: Path,
    name: str,
    defaults: Mapping[str, Any],
    layout: str,
    read: Callable[..., pd.DataFrame],
    files: Sequence[str],
) -> FairDataset:
    """The ``load`` of a classification-only adapter whose card is ``CARDS[name]``.

    Checks the options against ``defaults``, the task and the root, then reads the frame
    and :func:`build` s the dataset with the frame's ``attrs["class_names"]``.

    Args:
        cfg: the catalogue entry.
        cache_dir: folder of the pixel caches and split manifests.
        name: adapter name (key of ``medfairx.data.cards.CARDS``).
        defaults: the adapter's options and their defaults (all of them keywords of ``read``).
        layout: expected folder layout, named when ``root`` is missing.
        read: the adapter's ``read_metadata`` (or a wrapper that validates further options
            first), called as ``read(root, label=cfg.label, **options)`` after the checks above.
        files: the options naming the metadata files whose bytes key the cache
            (:func:`metadata_files`).
    """
    run = begin(cfg, cache_dir, name, defaults, layout)
    frame = read(run.root, label=cfg.label, **{k: run.opts[k] for k in defaults})
    return build(run, frame, source_files=metadata_files(run.root, run.opts, files), class_names=frame.attrs["class_names"])


@dataclasses.dataclass(frozen=True)
class Loader:
    """The checked inputs of one adapter ``load`` (see :func:`begin`).

    Attributes:
        cfg: the catalogue entry.
        cache_dir: folder of the pixel caches and split manifests.
        card: the adapter's :class:`DatasetCard`.
        opts: ``cfg.options`` over the adapter's defaults (:func:`options`).
        task: the checked task (:func:`task_of`).
        root: the existing dataset folder (:func:`root_of`).
    """

    cfg: DatasetConfig
    cache_dir: Path
    card: DatasetCard
    opts: dict[str, Any]
    task: str
    root: Path


def begin(
    cfg: DatasetConfig,
    cache_dir: Path,
    name: str,
    defaults: Mapping[str, Any],
    layout: str,
    tasks: Sequence[str] = ("classification",),
    check: Callable[[dict[str, Any], str], None] | None = None,
) -> Loader:
    """The first steps of an adapter's ``load``, in this order: the options checked against
    ``defaults`` (:func:`options`), the task against ``tasks`` (the first is the default),
    ``check(opts, task)`` if given (it raises on a bad combination), then the root.

    Args:
        name: adapter name (key of ``medfairx.data.cards.CARDS``).
        layout: expected folder layout, named when ``root`` is missing.
    """
    opts = options(cfg, defaults)
    task = task_of(cfg, tasks, tasks[0])
    if check is not None:
        check(opts, task)
    return Loader(cfg, cache_dir, CARDS[name], opts, task, root_of(cfg, layout))


def metadata_files(root: Path, opts: Mapping[str, Any], keys: Sequence[str]) -> list[Path]:
    """The existing files named by the options ``keys`` (each a path, a list of paths, or empty).

    Paths are resolved with :func:`option_path`; an empty option, or one naming no file (an
    optional file that is absent), adds nothing.
    """
    values = [v for k in keys for v in (opts[k] if isinstance(opts[k], (list, tuple)) else [opts[k]]) if v]
    return [p for p in (option_path(root, v) for v in values) if p.is_file()]


def labelled(
    frame: pd.DataFrame,
    report: Report,
    root: Path,
    *,
    label: LabelConfig | None,
    default: LabelConfig,
    names: Sequence[str],
    check: bool,
    columns: Sequence[str] = ("image_path",),
) -> pd.DataFrame:
    """The last steps of a ``read_metadata``: :func:`with_labels`, then (with ``check``) the
    image check of ``columns`` (:func:`check_images`), then :func:`finish`.

    Args:
        frame: the adapter's frame before labelling.
        report: its :class:`Report` (``report.adapter`` names the dataset in errors).
        root: dataset folder the file columns are relative to.
        label, default, names: as in :func:`with_labels`.
        check: count (and warn about) rows without their files.
        columns: the file columns to check.
    """
    out = with_labels(frame, label, default, names, report.adapter)
    if check:
        check_images(out, root, report, columns=columns, stacklevel=4)
    return finish(out, report)


def task_of(cfg: DatasetConfig, allowed: Sequence[str], default: str) -> str:
    """``cfg.task`` (or ``default``), checked against the tasks the adapter supports."""
    task = cfg.task or default
    if task not in allowed:
        raise ConfigError(
            f"datasets.{cfg.name}.task: adapter {cfg.adapter!r} supports {', '.join(allowed)}, not {task!r}."
        )
    return task
