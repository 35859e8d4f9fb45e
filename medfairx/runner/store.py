"""The results store: ``runs/<suite>/<run_id>/{run.json, predictions.parquet, ...}``.

Every file is written to a temporary name and renamed into place, and ``run.json`` is
written last, so a run killed at any moment leaves either a finished run or one that the
next ``medfairx bench`` redoes — never a half-written file that is taken for a result.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

RUN_JSON = "run.json"
PREDICTIONS = "predictions.parquet"
EPOCHS = "epochs.parquet"
LOG = "log.txt"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())


def atomic_write_parquet(path: Path, frame: pd.DataFrame) -> None:
    """Atomically write ``frame`` as Parquet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunStore:
    """A suite's folder of runs."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def run_dir(self, run_id: str) -> Path:
        """Folder of one run."""
        return self.root / run_id

    def record(self, run_id: str) -> dict[str, Any] | None:
        """The run's ``run.json``, or ``None`` if absent or unreadable."""
        path = self.run_dir(run_id) / RUN_JSON
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def is_finished(self, run_id: str) -> bool:
        """True when the run completed and its predictions are readable."""
        rec = self.record(run_id)
        if not rec or rec.get("status") != "ok":
            return False
        pred = self.run_dir(run_id) / PREDICTIONS
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
            try:
                yield json.loads(path.read_text())
            except (OSError, ValueError):
                continue

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
