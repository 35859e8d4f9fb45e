"""The results store: ``runs/<suite>/<run_id>/{run.json, predictions.parquet, ...}``.

Every file is written to a temporary name and renamed into place, and ``run.json`` is
written last, so a run killed at any moment leaves either a finished run or one that the
next ``medfairx bench`` redoes — never a half-written file that is taken for a result.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from medfairx.fileio import atomic_write_bytes, atomic_write_json, atomic_write_parquet, inside

__all__ = [
    "BAD_RUN_JSON", "EPOCHS", "LOG", "OUTSIDE_STORE", "PREDICTIONS", "RUN_JSON", "RunStore", "SEARCH_DIR", "SEARCH_STORES",
    "StoreFileWarning", "in_search_store",
    "atomic_write_bytes", "atomic_write_json", "atomic_write_parquet", "read_run_json",
]

RUN_JSON = "run.json"
PREDICTIONS = "predictions.parquet"
EPOCHS = "epochs.parquet"
LOG = "log.txt"
#: ``runs/<suite>/search/``: a hyper-parameter search's trials and tuned runs, stores of their
#: own (:mod:`medfairx.runner.search`) that a scan of the suite folder does not include
SEARCH_DIR = "search"
SEARCH_STORES = ("trials", "tuned")


def in_search_store(relative: Path) -> bool:
    """Whether a path relative to a store root lies in a search's ``search/trials`` or ``search/tuned``."""
    parts = Path(relative).parts
    return any(a == SEARCH_DIR and b in SEARCH_STORES for a, b in zip(parts, parts[1:]))
BAD_RUN_JSON = "{path}: cannot read run.json ({error}); the run is skipped. Re-run it or delete its folder."
OUTSIDE_STORE = (
    "{path}: a link to a file outside the run store {root}; it is not read. Replace the link by the file "
    "itself, or delete the run folder."
)


class StoreFileWarning(UserWarning):
    """A file of the run store was skipped: unreadable, or a link to somewhere outside the store."""


def read_run_json(path: Path, root: Path) -> dict[str, Any] | None:
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
        warnings.warn(BAD_RUN_JSON.format(path=path, error=exc), StoreFileWarning, stacklevel=2)
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
