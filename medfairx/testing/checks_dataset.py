"""Conformance checks for dataset adapters.

The card checks need only the spec. The data checks load the dataset (twice, each time
into a fresh cache, to prove the split is deterministic) and are skipped, saying why,
when no catalogue entry or loader is given or the data files are not available.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medfairx.errors import ConfigError, DataError
from medfairx.specs import DatasetSpec
from medfairx.testing._run import Check, OnFail, fail, run_checks
from medfairx.testing.report import CheckReport, SkipCheck

SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")
Loader = Callable[[], Any]


@dataclass
class DatasetSubject:
    """A dataset adapter under test, with an optional way to load its data."""

    spec: DatasetSpec
    loader: Loader | None = None
    no_data_reason: str = "no data to check: pass catalogue= (and name=) or dataset_factory="
    _loaded: list[Any] = field(default_factory=list)

    @property
    def label(self) -> str:
        """How messages name the dataset."""
        return f"dataset {self.spec.name!r}"

    def __str__(self) -> str:
        return self.label

    def load(self, fresh: bool = False) -> Any:
        """The loaded dataset (cached unless ``fresh``); :class:`SkipCheck` without data."""
        if self.loader is None:
            raise SkipCheck(self.no_data_reason)
        if self._loaded and not fresh:
            return self._loaded[0]
        try:
            ds = self.loader()
        except DataError as exc:
            raise SkipCheck(f"data not available: {str(exc).splitlines()[0]}") from exc
        if not self._loaded:
            self._loaded.append(ds)
        return ds


def dataset_subject(
    spec: DatasetSpec | str,
    catalogue: Any = None,
    name: str | None = None,
    dataset_factory: Loader | None = None,
) -> DatasetSubject:
    """Resolve ``spec`` (or a registry name) and how to load its data.

    Data come from ``dataset_factory()`` if given; else from catalogue entry ``name`` (default:
    the catalogue datasets whose ``adapter`` is this spec), loaded through this spec's target.
    """
    if isinstance(spec, str):
        from medfairx.plugins import get_host

        spec = get_host().registry("datasets").get(spec)
    if not isinstance(spec, DatasetSpec):
        raise ConfigError(f"check_dataset needs a DatasetSpec or a registered name; got {spec!r}.")
    if dataset_factory is not None:
        return DatasetSubject(spec, dataset_factory)
    if catalogue is None and name is None:
        return DatasetSubject(spec)
    from medfairx.config import Catalogue, load_catalogue

    cat = catalogue if isinstance(catalogue, Catalogue) else load_catalogue(catalogue)
    if name is None:
        names = sorted(n for n, d in cat.datasets.items() if d.adapter == spec.name)
        if not names:
            return DatasetSubject(spec, None, f"the catalogue has no dataset with adapter {spec.name!r}")
        name = names[0]
    cfg = cat.dataset(name)

    def load() -> Any:
        with tempfile.TemporaryDirectory(prefix="medfairx-check-") as tmp:
            return spec.load()(cfg, cache_dir=Path(tmp))

    return DatasetSubject(spec, load)


# --- card -----------------------------------------------------------------------------


def check_card_complete(s: DatasetSubject) -> None:
    """The card names a licence, a citation, a URL and a revision, and is self-consistent."""
    card = s.spec.card
    empty = [k for k in ("license", "citation", "url", "revision", "patient_id_column") if not str(getattr(card, k) or "").strip()]
    fail(not empty, f"{s.label}: the DatasetCard must give a non-empty {', '.join(empty)}.")
    fail(card.task in ("classification", "segmentation"), f"{s.label}: card.task {card.task!r} is not a known task.")
    fail(card.num_classes >= 2, f"{s.label}: card.num_classes must be >= 2 (segmentation counts background), got {card.num_classes}.")
    fail(card.spatial_dims in (2, 3), f"{s.label}: card.spatial_dims must be 2 or 3, got {card.spatial_dims}.")
    fail(card.in_channels >= 1, f"{s.label}: card.in_channels must be >= 1, got {card.in_channels}.")
    fail(len(card.attributes) > 0, f"{s.label}: card.attributes lists no sensitive attribute.")
    fail(
        not card.class_names or len(card.class_names) == card.num_classes,
        f"{s.label}: card.class_names has {len(card.class_names)} names for num_classes={card.num_classes}.",
    )


# --- data -----------------------------------------------------------------------------


def _split_ids(ds: Any) -> dict[str, list[str]]:
    out = {}
    for split in SPLIT_NAMES:
        try:
            out[split] = [str(i) for i in ds.splits.ids(split)]
        except (KeyError, ConfigError):
            continue
    return out


def check_metadata_index_unique(s: DatasetSubject) -> None:
    """Sample ids (the metadata index) are unique."""
    meta = s.load().metadata
    dup = meta.index[meta.index.duplicated()].unique().tolist()
    fail(not dup, f"{s.label}: metadata index has duplicated sample ids, e.g. {dup[:5]}.")


def check_attributes_present(s: DatasetSubject) -> None:
    """Every attribute of the card, and the patient-id column, is a metadata column."""
    ds = s.load()
    cols = set(map(str, ds.metadata.columns))
    missing = [c for c in (*ds.card.attributes, ds.card.patient_id_column) if c not in cols]
    fail(not missing, f"{s.label}: column(s) {missing} declared by the card are not in the metadata {sorted(cols)}.")


def check_labels_in_range(s: DatasetSubject) -> None:
    """Classification labels are integers in ``range(num_classes)``."""
    ds = s.load()
    if ds.card.task != "classification":
        raise SkipCheck("segmentation label maps are checked by check_task_data_matches_card")
    fail("label" in ds.metadata.columns, f"{s.label}: classification metadata has no 'label' column.")
    labels = ds.metadata["label"]
    bad = sorted(set(labels.dropna().unique().tolist()) - set(range(ds.card.num_classes)))
    fail(not labels.isna().any(), f"{s.label}: {int(labels.isna().sum())} label(s) are missing.")
    fail(not bad, f"{s.label}: labels {bad[:10]} are outside range(num_classes={ds.card.num_classes}).")


def check_splits_patient_disjoint(s: DatasetSubject) -> None:
    """Splits are disjoint in samples and in patients, and every id is in the metadata."""
    ds = s.load()
    ids = _split_ids(ds)
    fail(len(ids) >= 2, f"{s.label}: the split manifest has splits {list(ids)}; expected train, val and test.")
    meta = ds.metadata
    unknown = sorted({i for v in ids.values() for i in v} - set(map(str, meta.index)))
    fail(not unknown, f"{s.label}: split ids not in the metadata, e.g. {unknown[:5]}.")
    pcol = ds.card.patient_id_column
    patients = {k: set(meta.loc[v, pcol].astype(str)) for k, v in ids.items()}
    names = list(ids)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            both = sorted(set(ids[a]) & set(ids[b]))
            fail(not both, f"{s.label}: samples {both[:5]} are in both {a} and {b}.")
            shared = sorted(patients[a] & patients[b])
            fail(not shared, f"{s.label}: patient(s) {shared[:5]} appear in both {a} and {b}; splits must be patient-disjoint.")


def check_splits_deterministic(s: DatasetSubject) -> None:
    """Loading twice (fresh caches) gives the same split ids."""
    first, second = _split_ids(s.load()), _split_ids(s.load(fresh=True))
    diff = [k for k in set(first) | set(second) if first.get(k) != second.get(k)]
    fail(not diff, f"{s.label}: two loads with the same seed gave different {diff} splits; seed the split.")


def check_task_data_matches_card(s: DatasetSubject) -> None:
    """``task_data`` of the smallest split has the shapes and dtypes the card declares."""
    ds = s.load()
    ids = _split_ids(ds)
    fail(bool(ids), f"{s.label}: no split to load.")
    split = min(ids, key=lambda k: len(ids[k]))
    td = ds.task_data(split, None)
    card, where = ds.card, f"{s.label} task_data({split!r})"
    n = len(ids[split])
    img = np.asarray(td.images)
    fail(img.ndim == 2 + card.spatial_dims, f"{where}: images have shape {img.shape}; expected (N, C, *{card.spatial_dims} spatial dims).")
    fail(img.shape[0] == n, f"{where}: {img.shape[0]} images for {n} split ids.")
    fail(img.shape[1] == card.in_channels, f"{where}: images have {img.shape[1]} channels; the card says in_channels={card.in_channels}.")
    fail(img.dtype in (np.uint8, np.float32), f"{where}: images have dtype {img.dtype}; expected uint8 or float32.")
    fail([str(i) for i in td.sample_ids] == ids[split], f"{where}: sample_ids are not the split ids in split order.")
    fail(td.groups is None, f"{where}: groups must be None when no grouping is given.")
    labels = np.asarray(td.labels)
    fail(np.issubdtype(labels.dtype, np.integer), f"{where}: labels have dtype {labels.dtype}; expected integers.")
    expected = (n,) if card.task == "classification" else (n, *img.shape[2:])
    fail(labels.shape == expected, f"{where}: labels have shape {labels.shape}; expected {expected}.")
    bad = sorted(set(np.unique(labels).tolist()) - set(range(card.num_classes)))
    fail(not bad, f"{where}: label values {bad[:10]} outside range(num_classes={card.num_classes}).")


DATASET_CHECKS: tuple[Check, ...] = (
    Check("check_card_complete", check_card_complete),
    Check("check_metadata_index_unique", check_metadata_index_unique),
    Check("check_attributes_present", check_attributes_present),
    Check("check_labels_in_range", check_labels_in_range),
    Check("check_splits_patient_disjoint", check_splits_patient_disjoint),
    Check("check_splits_deterministic", check_splits_deterministic),
    Check("check_task_data_matches_card", check_task_data_matches_card),
)
"""Dataset checks in run order."""


def check_dataset(
    spec: DatasetSpec | str,
    catalogue: Any = None,
    name: str | None = None,
    *,
    dataset_factory: Loader | None = None,
    expected_failed_checks: dict[str, str] | None = None,
    on_fail: OnFail = "raise",
) -> CheckReport:
    """Run the dataset checks on an adapter.

    Args:
        spec: the :class:`DatasetSpec` (or its registered name).
        catalogue: a catalogue or its yaml path; with it the data checks load the dataset.
        name: the catalogue entry to load (default: the first one using this adapter).
        dataset_factory: alternatively, a zero-argument callable returning the dataset.
        expected_failed_checks: ``{check_name: reason}``.
        on_fail: ``"raise"`` or ``"report"``.
    """
    subject = dataset_subject(spec, catalogue, name, dataset_factory)
    return run_checks(
        subject, DATASET_CHECKS, item=subject.spec.name, kind="datasets",
        expected_failed_checks=expected_failed_checks, on_fail=on_fail,
    )
