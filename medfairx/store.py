"""The run store: ``runs/<suite>/<run_id>/{run.json, predictions.parquet, ...}``, written and read here.

Every file is written to a temporary name and renamed into place, and ``run.json`` is
written last, so a run killed at any moment leaves either a finished run or one that the
next ``medfairx bench`` redoes — never a half-written file that is taken for a result.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from medfairx.errors import DataError
from medfairx.fileio import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_parquet,
    inside,
)

__all__ = [
    "BAD_RUN_JSON", "DATACARDS_DIR", "read_data_cards", "write_data_card", "EPOCHS", "LOG", "OUTSIDE_STORE", "PREDICTIONS",
    "RUN_JSON", "RunStore", "SEARCH_DIR", "SEARCH_STORES",
    "GROUP_PREFIX", "PER_SAMPLE_COLUMNS", "StoreFileWarning", "StoredRun", "UnreadableRunError", "in_search_store", "iter_runs",
    "atomic_write_bytes", "atomic_write_json", "atomic_write_parquet", "read_run_json",
]

RUN_JSON = "run.json"
PREDICTIONS = "predictions.parquet"
EPOCHS = "epochs.parquet"
LOG = "log.txt"
#: ``runs/<suite>/datacards/<dataset>.json``: what each dataset of the sweep looked like when
#: ``medfairx bench`` last loaded it (:func:`medfairx.data.dataset.data_card`); reports read these
DATACARDS_DIR = "datacards"
#: ``runs/<suite>/search/``: a hyper-parameter search's trials and tuned runs, stores of their
#: own (:mod:`medfairx.runner.search`) that a scan of the suite folder does not include
SEARCH_DIR = "search"
SEARCH_STORES = ("trials", "tuned")


def in_search_store(relative: Path) -> bool:
    """Whether a path relative to a store root lies in a search's ``search/trials`` or ``search/tuned``."""
    parts = Path(relative).parts
    return any(a == SEARCH_DIR and b in SEARCH_STORES for a, b in zip(parts, parts[1:], strict=False))
BAD_RUN_JSON = "{path}: cannot read run.json ({error}); the run is skipped. Re-run it or delete its folder."
OUTSIDE_STORE = (
    "{path}: a link to a file outside the run store {root}; it is not read. Replace the link by the file "
    "itself, or delete the run folder."
)


class StoreFileWarning(UserWarning):
    """A file of the run store was skipped: unreadable, or a link to somewhere outside the store."""


BAD_DATA_CARD = (
    "{path}: cannot read this data card ({error}); the report shows the dataset without it. Re-run "
    "`medfairx bench` (finished runs are reused) to record it again."
)


def read_run_json(path: Path, root: Path, *, bad: str = BAD_RUN_JSON) -> dict[str, Any] | None:
    """The record in ``path`` (a ``run.json`` under the store ``root``), or ``None`` with a warning.

    A file that resolves outside ``root`` (a symbolic link to elsewhere) is never read; one
    that is not valid JSON (or not a JSON object) is skipped. A missing file is ``None``
    without a warning.
    """
    if not path.is_symlink() and not path.exists():
        return None
    if not inside(path, root):
        warnings.warn(OUTSIDE_STORE.format(path=path, root=root), StoreFileWarning, stacklevel=2)
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(record, dict):
            raise ValueError(f"a JSON {type(record).__name__}, not an object")
    except (OSError, ValueError) as exc:
        warnings.warn(bad.format(path=path, error=exc), StoreFileWarning, stacklevel=2)
        return None
    return record


class RunStore:
    """A suite's folder of runs."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def run_dir(self, run_id: str) -> Path:
        """Folder of one run."""
        return self.root / run_id

    def record(self, run_id: str) -> dict[str, Any] | None:
        """The run's ``run.json``, or ``None`` if absent or unreadable."""
        return read_run_json(self.run_dir(run_id) / RUN_JSON, self.root)

    def is_finished(self, run_id: str) -> bool:
        """True when the run completed and its predictions are readable."""
        rec = self.record(run_id)
        if not rec or rec.get("status") != "ok":
            return False
        pred = self.run_dir(run_id) / PREDICTIONS
        if not inside(pred, self.root):
            return False
        try:
            import pyarrow.parquet as pq

            pq.read_metadata(pred)
        except Exception:  # noqa: BLE001 - any unreadable file means "not finished"
            return False
        return True

    def clean_temporaries(self) -> int:
        """Remove temporary files left by a killed process; return how many."""
        n = 0
        for tmp in self.root.glob("*/.*.tmp"):
            tmp.unlink(missing_ok=True)
            n += 1
        return n

    def records(self) -> Iterator[dict[str, Any]]:
        """Every readable ``run.json`` in the store."""
        for path in sorted(self.root.glob(f"*/{RUN_JSON}")):
            record = read_run_json(path, self.root)
            if record is not None:
                yield record

    def write_run(
        self,
        run_id: str,
        record: dict[str, Any],
        predictions: pd.DataFrame | None = None,
        epochs: pd.DataFrame | None = None,
    ) -> Path:
        """Write a run's files; ``run.json`` last."""
        d = self.run_dir(run_id)
        if predictions is not None:
            atomic_write_parquet(d / PREDICTIONS, predictions)
        if epochs is not None and len(epochs):
            atomic_write_parquet(d / EPOCHS, epochs)
        atomic_write_json(d / RUN_JSON, record)
        return d


GROUP_PREFIX = "group:"
UNREADABLE_RUN = (
    "{path}: unreadable ({error}); the run is listed as unreadable and left out of the results. "
    "Re-run it (delete its folder, then run `medfairx bench` again)."
)
UNREADABLE_TYPE = "UnreadableRun"
PER_SAMPLE_COLUMNS = ("dice", "iou", "loss", "hd95", "nsd", "boundary_error_share", "slice_dice")  # segmentation


@dataclass
class StoredRun:
    """One run folder: its record and (lazily) its prediction tables."""

    path: Path
    record: dict[str, Any]
    root: Path | None = None

    @property
    def ok(self) -> bool:
        return self.record.get("status") == "ok"

    @property
    def task(self) -> str:
        return str(self.record.get("task") or "classification")

    def predictions(self) -> pd.DataFrame:
        """``predictions.parquet`` (the checkpoint the trainer kept).

        Raises:
            UnreadableRunError: the file is corrupt, missing, or a link out of the store.
        """
        return self._table("predictions.parquet")

    def epochs(self) -> pd.DataFrame | None:
        """``epochs.parquet`` if the run wrote one (errors as :meth:`predictions`)."""
        f = self.path / "epochs.parquet"
        return self._table(f.name) if f.exists() or f.is_symlink() else None

    def unreadable(self) -> str | None:
        """Why this finished run's tables cannot be read (``None``: they can)."""
        try:
            self.predictions()
            self.epochs()
        except UnreadableRunError as exc:
            return str(exc)
        return None

    def _table(self, name: str) -> pd.DataFrame:
        path = self.path / name
        if not inside(path, self.root or self.path):
            raise UnreadableRunError(UNREADABLE_RUN.format(path=path, error="a link to a file outside the run store"))
        try:
            return pd.read_parquet(path)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a damaged file
            error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            raise UnreadableRunError(UNREADABLE_RUN.format(path=path, error=error)) from None

    def groupings(self, frame: pd.DataFrame) -> list[str]:
        """Groupings to score: run.json ``groupings``, else every ``group:<name>`` column."""
        listed = self.record.get("groupings") or []
        if listed:
            return [str(g) for g in listed]
        return [c[len(GROUP_PREFIX):] for c in frame.columns if str(c).startswith(GROUP_PREFIX)]


class UnreadableRunError(DataError):
    """A run's prediction tables cannot be read."""


def iter_runs(runs_dir: Path) -> Iterator[StoredRun]:
    """Every readable ``run.json`` under ``runs_dir`` (sorted by path).

    One that is not valid JSON, or a link to a file outside ``runs_dir``, is skipped with a
    :class:`StoreFileWarning` naming the file.
    """
    root = Path(runs_dir)
    for f in sorted(root.rglob(RUN_JSON)):
        if in_search_store(f.relative_to(root)):  # a search's own stores (scored on their own)
            continue
        record = read_run_json(f, root)
        if record is not None:
            yield StoredRun(f.parent, record, root)


def write_data_card(root: Path, dataset: str, record: dict[str, Any]) -> Path:
    """Store ``record`` (:func:`medfairx.data.dataset.data_card`) as the data card of ``dataset``."""
    path = Path(root) / DATACARDS_DIR / f"{dataset}.json"
    atomic_write_json(path, record, sort_keys=False)  # splits and groups keep their order
    return path


def read_data_cards(roots: Iterable[Path]) -> dict[str, dict[str, Any]]:
    """The data cards recorded in the stores ``roots``, by dataset (a later store wins).

    A card that is unreadable, or a link out of its store, is skipped with a
    :class:`StoreFileWarning`.
    """
    cards: dict[str, dict[str, Any]] = {}
    for root in roots:
        for path in sorted((Path(root) / DATACARDS_DIR).glob("*.json")):
            record = read_run_json(path, Path(root), bad=BAD_DATA_CARD)
            if record is not None and isinstance(record.get("card"), dict):
                cards[path.stem] = record
    return cards
