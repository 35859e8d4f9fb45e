"""``FairDataset``: metadata, groupings, splits and images of one catalogue dataset."""

from __future__ import annotations

import dataclasses
import difflib
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from medfairx.config import Catalogue, DatasetConfig, load_catalogue
from medfairx.contracts import TaskData
from medfairx.data.cache import cache_write_error
from medfairx.data.groupings import build_groupings, too_few_groups
from medfairx.data.splits import SplitManifest, make_splits
from medfairx.errors import ConfigError, DataError, UnknownNameError
from medfairx.fileio import portable_paths
from medfairx.plugins import get_host
from medfairx.specs import DatasetCard, GroupingSpec


class ImageSource(Protocol):
    """Where a dataset's pixels come from (an in-memory array or an HDF5 cache)."""

    def read(self, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Images ``(n, C, *spatial)`` uint8 and masks ``(n, *spatial)`` (or ``None``) of ``rows``."""
        ...


@dataclass
class ArraySource:
    """Images (and masks) already in memory."""

    images: np.ndarray
    masks: np.ndarray | None = None

    def read(self, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Rows of the arrays (all rows: the arrays themselves)."""
        if rows is None:
            return self.images, self.masks
        return self.images[rows], None if self.masks is None else self.masks[rows]

    @property
    def image_shape(self) -> tuple[int, ...]:
        """``(C, *spatial)`` of one image."""
        return tuple(int(s) for s in self.images.shape[1:])


class FairDataset:
    """One dataset as methods, runner and reports see it.

    Attributes:
        name: catalogue name.
        card: :class:`DatasetCard` (task, classes, attributes, licence, revision).
        config: its :class:`~medfairx.config.DatasetConfig`.
        metadata: DataFrame indexed by string ``sample_id`` with ``patient_id``, ``label``
            (classification) and attribute columns.
        groupings: catalogue groupings of this dataset, by name.
        splits: the :class:`SplitManifest`.
        revision: hash of the source metadata, files and preprocessing.
        info: adapter facts (rows in the source file, rows skipped, ...).
    """

    def __init__(
        self,
        *,
        name: str,
        card: DatasetCard,
        config: DatasetConfig,
        metadata: pd.DataFrame,
        source: ImageSource,
        splits: SplitManifest,
        revision: str,
        groupings: dict[str, GroupingSpec],
        info: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.card = card
        self.config = config
        self.metadata = metadata
        self.source = source
        self.splits = splits
        self.revision = revision
        self.groupings = groupings
        self.info = dict(info or {})
        self._assigned: dict[str, pd.Series] = {}
        self._positions = pd.Series(np.arange(len(metadata)), index=metadata.index)

    def __repr__(self) -> str:
        return f"FairDataset({self.name!r}, task={self.card.task!r}, n={len(self.metadata)}, revision={self.revision!r})"

    @property
    def image_shape(self) -> tuple[int, ...]:
        """``(C, *spatial)`` of one image (or ``(D,)`` of one feature vector), without decoding any
        when the source declares it (the HDF5 cache, arrays in memory)."""
        shape = getattr(self.source, "image_shape", None)
        if shape is None:
            shape = self.source.read(np.arange(1))[0].shape[1:] if len(self) else (3, 1, 1)
        return tuple(int(s) for s in shape)

    def __len__(self) -> int:
        return len(self.metadata)

    @property
    def task(self) -> str:
        """``"classification"`` or ``"segmentation"``."""
        return self.card.task

    # -- groupings ---------------------------------------------------------------------

    def grouping(self, name: str) -> GroupingSpec:
        """A grouping of this dataset, or a registered generic one whose columns it has."""
        if name in self.groupings:
            return self.groupings[name]
        generic = get_host().registry("groupings")
        if name in generic:
            spec: GroupingSpec = generic.get(name)
            if spec.dataset in (None, self.name) and all(c in self.metadata.columns for c in spec.columns):
                return spec
        raise UnknownNameError(
            "grouping",
            name,
            self.groupings,
            hint=f"Define it under datasets.{self.name}.groupings in the catalogue.",
        )

    def assign(self, grouping: str) -> pd.Series:
        """Group label of every sample (Categorical, NaN outside every group); cached."""
        if grouping not in self._assigned:
            groups = self.grouping(grouping).assign(self.metadata)
            if not isinstance(groups.dtype, pd.CategoricalDtype):
                groups = groups.astype("category")
            self._assigned[grouping] = groups
        return self._assigned[grouping]

    # -- splits ------------------------------------------------------------------------

    def rows(self, split: str) -> np.ndarray:
        """Positions in :attr:`metadata` of the samples of ``split``."""
        result: np.ndarray = self._positions.loc[self.splits.ids(split)].to_numpy()
        return result

    def split_metadata(self, split: str) -> pd.DataFrame:
        """Metadata rows of ``split``, in split order."""
        result: pd.DataFrame = self.metadata.iloc[self.rows(split)]
        return result

    def group_labels(self, split: str, groupings: list[str] | None = None) -> pd.DataFrame:
        """One string column per grouping (default: all of :attr:`groupings`); ``None`` outside groups."""
        ids = self.splits.ids(split)
        cols = {}
        for g in groupings if groupings is not None else list(self.groupings):
            values = self.assign(g).loc[ids].astype(object)
            cols[g] = pd.Series([None if pd.isna(v) else str(v) for v in values], index=ids, dtype=object)
        result: pd.DataFrame = pd.DataFrame(cols, index=pd.Index(ids, name="sample_id"))
        return result

    # -- pixels ------------------------------------------------------------------------

    def images(self, split: str) -> np.ndarray:
        """Images of ``split``: ``(N, C, *spatial)`` uint8."""
        return self.source.read(self.rows(split))[0]

    def masks(self, split: str) -> np.ndarray:
        """Label maps of ``split`` (segmentation only): ``(N, *spatial)``."""
        masks = self.source.read(self.rows(split))[1]
        if masks is None:
            raise DataError(f"Dataset {self.name!r} has no masks (task {self.task!r}).")
        return masks

    def task_data(self, split: str, grouping: str | None = None) -> TaskData:
        """``split`` as a :class:`TaskData` (images in memory; groups coded from ``grouping``,
        ``-1`` for samples outside every group, ``None`` when no grouping is given)."""
        rows = self.rows(split)
        images, masks = self.source.read(rows)
        if self.task == "segmentation":
            if masks is None:
                raise DataError(f"Dataset {self.name!r} is a segmentation dataset without masks.")
            labels = masks.astype(np.int64)
        else:
            labels = self.metadata["label"].to_numpy(dtype=np.int64)[rows]
        groups = None
        names: tuple[str, ...] = ()
        if grouping is not None:
            cat = self.assign(grouping).array
            groups = np.asarray(cat.codes, dtype=np.int64)[rows]
            names = tuple(str(c) for c in cat.categories)
        return TaskData(
            images=images,
            labels=labels,
            groups=groups,
            sample_ids=self.metadata.index.to_numpy(dtype=str)[rows],
            n_groups=max(len(names), 1),
            group_names=names,
        )

    # -- summary -----------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Sizes, prevalences and checks, without reading any pixels (see :func:`describe_dataset`)."""
        meta = self.metadata
        problems = self.splits.check(meta)
        labels = meta["label"] if "label" in meta.columns and self.task == "classification" else None
        positive = (labels == 1) if labels is not None and self.card.num_classes == 2 else None

        def stats(mask: pd.Series) -> dict[str, Any]:
            n = int(mask.sum())
            out: dict[str, Any] = {"n": n}
            if positive is not None:
                out["positives"] = int((positive & mask).sum())
                out["prevalence"] = round(out["positives"] / n, 4) if n else None
            out["splits"] = {s: int(mask.loc[list(ids)].sum()) for s, ids in self.splits.splits.items()}
            return out

        everyone = pd.Series(True, index=meta.index)
        groupings: dict[str, Any] = {}
        for g in self.groupings:
            assigned = self.assign(g)
            groups = {str(c): stats(assigned == c) for c in assigned.cat.categories}
            groupings[g] = {
                "groups": groups,
                "outside": int(assigned.isna().sum()),
                "dropped": dict(assigned.attrs.get("dropped", {})),
            }
            if (few := too_few_groups(g, len(groups))) is not None:
                problems.append(few)
            for label, st in groups.items():
                empty = [s for s, n in st["splits"].items() if n == 0]
                if empty:
                    problems.append(f"grouping {g!r}: group {label!r} has no sample in split(s) {empty}")
        return {
            "name": self.name,
            "adapter": self.config.adapter,
            "task": self.task,
            "num_classes": self.card.num_classes,
            "revision": self.revision,
            "samples": len(meta),
            **{k: v for k, v in self.info.items() if isinstance(v, (int, float, str))},
            "overall": stats(everyone),
            "splits": self.splits.sizes(),
            "split_hash": self.splits.hash,
            "patient_disjoint": self.splits.patient_disjoint(meta),
            "groupings": groupings,
            "problems": problems,
        }


def assemble(
    cfg: DatasetConfig,
    card: DatasetCard,
    metadata: pd.DataFrame,
    source: ImageSource,
    revision: str,
    *,
    manifest_dir: Path | None = None,
    info: dict[str, Any] | None = None,
) -> FairDataset:
    """Build a :class:`FairDataset` from an adapter's parts: check the metadata, build the
    catalogue groupings and the split (saved under ``manifest_dir`` if given)."""
    if metadata.index.has_duplicates:
        dup = metadata.index[metadata.index.duplicated()][:3].tolist()
        raise DataError(f"Dataset {cfg.name!r}: duplicate sample ids {dup}. Sample ids must be unique.")
    need = ["patient_id"] + (["label"] if card.task == "classification" else [])
    missing = [c for c in need if c not in metadata.columns]
    if missing:
        raise DataError(f"Adapter {cfg.adapter!r} produced metadata without column(s) {missing}.")
    metadata = metadata.copy()
    metadata.index = metadata.index.astype(str).rename("sample_id")
    groupings = build_groupings(cfg)
    for gname, spec in groupings.items():
        absent = [c for c in spec.columns if c not in metadata.columns]
        if absent:
            raise ConfigError(
                f"datasets.{cfg.name}.groupings.{gname}: column(s) {absent} are not in the metadata of "
                f"adapter {cfg.adapter!r}. Available columns: {', '.join(map(str, metadata.columns))}."
            )
    if cfg.split.manifest is not None:
        splits = SplitManifest.load(cfg.split.manifest)
        problems = splits.check(metadata)
        if problems:
            raise DataError(f"Split manifest {cfg.split.manifest} does not fit dataset {cfg.name!r}: {'; '.join(problems)}.")
    else:
        kept, held = _holdout(cfg, metadata)
        splits = make_splits(
            kept,
            cfg.split.ratios,
            cfg.split.seed,
            label_col="label" if card.task == "classification" else None,
            stratify=cfg.split.stratify,
        )
        if held is not None:
            splits = SplitManifest({**splits.splits, "holdout": held},
                                   {**splits.params, "holdout": cfg.holdout.model_dump()})  # type: ignore[union-attr]  # held exists only with cfg.holdout
        if manifest_dir is not None:
            path = Path(manifest_dir) / f"{cfg.name}-{revision}-split-{splits.hash[:12]}.json"
            if not path.exists():
                try:
                    splits.save(path)
                except OSError as exc:  # read-only cache folder, full disk
                    raise cache_write_error("split manifest", path, exc) from None
    card = dataclasses.replace(card, revision=revision)
    return FairDataset(
        name=cfg.name,
        card=card,
        config=cfg,
        metadata=metadata,
        source=source,
        splits=splits,
        revision=revision,
        groupings=groupings,
        info=info,
    )


def _holdout(cfg: DatasetConfig, metadata: pd.DataFrame) -> tuple[pd.DataFrame, tuple[str, ...] | None]:
    """The rows train/val/test are drawn from, and the sorted ids held out by ``cfg.holdout``.

    A patient with a held-out row is held out whole, so no held-out patient is trained on.
    """
    rule = cfg.holdout
    if rule is None:
        return metadata, None
    if rule.column not in metadata.columns:
        raise ConfigError(
            f"datasets.{cfg.name}.holdout.column: {rule.column!r} is not in the metadata of adapter "
            f"{cfg.adapter!r}. Available columns: {', '.join(map(str, metadata.columns))}."
        )
    hit = metadata[rule.column].astype(str).eq(rule.value)
    if not hit.any():
        values = ", ".join(sorted(map(str, metadata[rule.column].dropna().unique()))[:20])
        raise ConfigError(
            f"datasets.{cfg.name}.holdout.value: no row has {rule.column} = {rule.value!r}; values: {values}."
        )
    patients = set(metadata.loc[hit, "patient_id"].astype(str))
    held = metadata["patient_id"].astype(str).isin(patients)
    return metadata.loc[~held], tuple(sorted(map(str, metadata.index[held])))


def _catalogue(catalogue: Catalogue | str | Path | None) -> Catalogue:
    return catalogue if isinstance(catalogue, Catalogue) else load_catalogue(catalogue)


def data_card(dataset: FairDataset, load_warnings: Sequence[str] = ()) -> dict[str, Any]:
    """What a data card page shows of a loaded dataset, JSON-ready, with portable paths.

    Returns:
        ``{"card": the adapter's card as a dict plus name, adapter and description from the
        catalogue, "description": dataset.describe() plus the distinct ``warnings`` raised
        while loading}``.
    """
    info = dataset.describe()
    info["warnings"] = list(dict.fromkeys(map(str, load_warnings)))
    card = dataclasses.asdict(dataset.card)
    card.update(name=dataset.name, adapter=dataset.config.adapter, description=dataset.config.description)
    result: dict[str, Any] = json.loads(portable_paths(json.dumps({"card": card, "description": info}, default=str)))
    return result


def load_dataset(catalogue: Catalogue | str | Path | None, name: str, *, cache_dir: str | Path | None = None) -> FairDataset:
    """Load catalogue dataset ``name`` through its registered adapter.

    Args:
        catalogue: a :class:`~medfairx.config.Catalogue`, a yaml path, or ``None`` (default).
        name: the dataset's key in the catalogue.
        cache_dir: where HDF5 caches and split manifests go (default: the catalogue's).
    """
    cat = _catalogue(catalogue)
    cfg = cat.dataset(name)
    spec = get_host().registry("datasets").get(cfg.adapter)
    cache = Path(cache_dir) if cache_dir is not None else cat.cache_path
    dataset = spec.load()(cfg, cache_dir=cache)
    if not isinstance(dataset, FairDataset):
        raise DataError(f"Dataset adapter {cfg.adapter!r} returned {type(dataset).__name__}, not a FairDataset.")
    return dataset


def describe_dataset(catalogue: Catalogue | str | Path | None, name: str, *, cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Facts about a catalogue dataset without decoding images.

    Returns:
        A JSON-ready dict: ``samples``, adapter facts (e.g. ``source_rows``,
        ``skipped_missing_images``), ``overall`` (n, positives, prevalence, per-split n),
        ``splits`` sizes, ``split_hash``, ``patient_disjoint``, ``groupings`` (per group:
        n, positives, prevalence, per-split n; ``outside``; ``dropped``), ``problems`` and
        ``warnings`` (messages of the warnings raised while loading, e.g. skipped rows).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = load_dataset(catalogue, name, cache_dir=cache_dir)
        info = dataset.describe()
    info["warnings"] = list(dict.fromkeys(str(w.message) for w in caught))
    return info


# --- validation ---------------------------------------------------------------------------


def validate_catalogue(path: str | Path | None = None, *, deep: bool = False) -> list[str]:
    """Problems of a catalogue as human-readable lines (empty list: valid).

    Args:
        path: the yaml file (``None``: the default catalogue).
        deep: also load each dataset's metadata and check adapters, grouping columns,
            group sizes and split disjointness (no images are decoded).
    """
    try:
        cat = load_catalogue(path)
    except ConfigError as exc:
        return str(exc).splitlines()
    problems: list[str] = []
    adapters = get_host().registry("datasets")
    for name, cfg in cat.datasets.items():
        if cfg.adapter not in adapters:
            close = difflib.get_close_matches(cfg.adapter, adapters.names(), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            problems.append(
                f"{cat.source_of(name)}: datasets.{name}.adapter: unknown adapter {cfg.adapter!r}.{hint} "
                f"Registered adapters: {', '.join(adapters.names()) or '(none)'}."
            )
    if deep and not problems:
        for name in cat.datasets:
            try:
                info = describe_dataset(cat, name)
            except Exception as exc:  # noqa: BLE001 - report every dataset's problem, not the first
                problems.append(f"datasets.{name}: {type(exc).__name__}: {exc}")
                continue
            problems.extend(f"datasets.{name}: {w}" for w in info["problems"])
    return problems
