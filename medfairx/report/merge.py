"""One board from several run stores and submitted bundles.

:func:`gather` reads every store given to ``medfairx report STORE [STORE ...]``, refuses
to merge stores whose runs of one dataset were made on another dataset revision or split
(:data:`SPLIT_MISMATCH`), takes a run present in two stores once when both copies are
identical and refuses it otherwise (:data:`RUN_CONFLICT`), then reads and checks every
bundle given with ``--include`` (:mod:`medfairx.report.bundles`). A bundle that fails a
check is left out and listed with its reason; the board goes on without it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from medfairx.errors import ConfigError
from medfairx.fileio import inside
from medfairx.report.bundles import (
    REFUSED,
    Bundle,
    BundleError,
    BundleRun,
    check_bundle,
    ids_in_test_split,
    read_bundle,
)
from medfairx.store import EPOCHS, PREDICTIONS, StoredRun, UnreadableRunError, iter_runs

__all__ = ["RUN_CONFLICT", "RUN_HERE", "SPLIT_MISMATCH", "Board", "gather"]

RUN_HERE = "run here"
SPLIT_MISMATCH = (
    "Cannot merge: dataset {dataset!r} has {what} {a} in {store_a} but {b} in {store_b}; results on different "
    "splits are not comparable. Re-run one store with the other's data and split, or report them separately."
)
RUN_CONFLICT = (
    "Cannot merge: run {run_id!r} is in {store_a} and in {store_b} with different {what}. Delete one copy, "
    "or report the stores separately."
)


@dataclass
class Board:
    """The runs of one report: from the stores, then from the accepted bundles."""

    stores: list[Path]
    runs: list[StoredRun] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    """Method name on the board → ``run here`` or ``submitted: <bundle>``."""
    submissions: list[dict[str, Any]] = field(default_factory=list)
    """One row per bundle: bundle, method, runs, status (``submitted`` or the refusal)."""

    @property
    def records(self) -> list[dict[str, Any]]:
        return [r.record for r in self.runs]

    @property
    def store_records(self) -> list[dict[str, Any]]:
        """The records of the stores' own runs (not the submitted ones)."""
        return [r.record for r in self.runs if not isinstance(r, BundleRun)]

    def mark(self, results: pd.DataFrame) -> pd.DataFrame:
        """``results`` with a ``source`` column (``run here`` / ``submitted: <bundle>``)."""
        out: pd.DataFrame = results.copy()
        out["source"] = out["method"].astype(str).map(self.sources).fillna(RUN_HERE) if len(out) else []
        return out

    def provenance(self) -> dict[str, Any]:
        """The stores and bundles behind the board, for ``provenance.json``."""
        out: dict[str, Any] = {"stores": [_shown(s) for s in self.stores]}
        if self.submissions:
            out["submissions"] = [{k: v for k, v in s.items() if k != "refused"} for s in self.submissions]
        return out


def _shown(store: Path) -> str:
    """How a published board names a store: relative to the working folder, else its last two
    path parts (a page never carries a machine's absolute path)."""
    try:
        return Path(store).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return Path(*Path(store).resolve().parts[-2:]).as_posix()


def _digest(path: Path, root: Path) -> str:
    if not (path.exists() or path.is_symlink()):
        return ""
    if not inside(path, root):
        return "outside the store"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fingerprint(run: StoredRun) -> dict[str, Any]:
    root = run.root or run.path
    return {"run.json": run.record, PREDICTIONS: _digest(run.path / PREDICTIONS, root),
            EPOCHS: _digest(run.path / EPOCHS, root)}


def _run_id(run: StoredRun) -> str:
    return str(run.record.get("run_id") or run.path.name)


def _merge_stores(stores: Sequence[Path]) -> list[StoredRun]:
    runs: list[StoredRun] = []
    owner: dict[str, tuple[Path, StoredRun]] = {}
    seen: dict[tuple[str, str], tuple[Path, set[str]]] = {}  # (dataset, key) → first store, its values
    for store in stores:
        mine = list(iter_runs(store))
        for dataset in sorted({str(r.record.get("dataset")) for r in mine}):
            for key, what in (("dataset_revision", "dataset revision"), ("split_hash", "split hash")):
                values = {str(r.record.get(key) or "") for r in mine if str(r.record.get("dataset")) == dataset}
                first = seen.setdefault((dataset, key), (store, values))
                if first[1] != values:
                    raise ConfigError(SPLIT_MISMATCH.format(dataset=dataset, what=what, a=", ".join(sorted(first[1])),
                                                            store_a=first[0], b=", ".join(sorted(values)), store_b=store))
        for run in mine:
            rid = _run_id(run)
            if rid in owner:
                other_store, other = owner[rid]
                a, b = _fingerprint(other), _fingerprint(run)
                differ = [k for k in a if a[k] != b[k]]
                if differ:
                    raise ConfigError(RUN_CONFLICT.format(run_id=rid, store_a=other_store, store_b=store,
                                                          what=" and ".join(differ)))
                continue  # the same run copied into both stores: counted once
            owner[rid] = (store, run)
            runs.append(run)
    return runs


def _board_datasets(runs: Sequence[StoredRun]) -> dict[str, dict[str, Any]]:
    """Dataset → revision, split hash and test sample ids of the board's first readable run on it."""
    out: dict[str, dict[str, Any]] = {}
    for run in runs:
        dataset = str(run.record.get("dataset"))
        if dataset in out or not run.ok:
            continue
        try:
            ids = ids_in_test_split(run.predictions())
        except (UnreadableRunError, BundleError):
            continue
        out[dataset] = {"dataset_revision": run.record.get("dataset_revision"),
                        "split_hash": run.record.get("split_hash"), "test_ids": set(ids)}
    return out


def _board_name(method: str, bundle: Bundle, taken: set[str]) -> str:
    """The method's name on the board: its own, or with the bundle's name when already taken."""
    return method if method not in taken else f"{method} (submitted: {bundle.name})"


def _add_bundle(board: Board, bundle: Bundle, datasets: dict[str, dict[str, Any]]) -> str:
    """Check ``bundle`` against the board and add its runs; return its method's name on the board."""
    check_bundle(bundle, datasets, {_run_id(r) for r in board.runs})
    taken = {str(r.record.get("method")) for r in board.runs}
    name = _board_name(bundle.method, bundle, taken)
    for run in bundle.runs:
        run.record = {**run.record, "method": name}
        board.runs.append(run)
    board.sources[name] = f"submitted: {bundle.name}"
    return name


def gather(stores: Sequence[Path], include: Sequence[Path] = (), *,
           echo: Callable[[str], None] = print) -> Board:
    """The runs of ``stores`` merged, and those of each valid bundle in ``include``.

    Raises:
        ConfigError: two stores disagree on a dataset's revision or split hash, or hold one
            run id with different contents. (A bad bundle never raises: it is listed.)
    """
    stores = [Path(s) for s in stores]
    board = Board(stores, _merge_stores(stores))
    board.sources = {str(r.record.get("method")): RUN_HERE for r in board.runs}
    datasets = _board_datasets(board.runs)
    for path in include:
        path = Path(path)
        try:
            bundle = read_bundle(path)
            name = _add_bundle(board, bundle, datasets)
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with a bundle, the board goes on without it
            why = str(exc) if isinstance(exc, BundleError) else f"unreadable ({type(exc).__name__}: {exc})"
            reason = REFUSED.format(bundle=path.name, reason=why)
            echo(f"warning: {reason}")
            board.submissions.append({"bundle": path.name, "method": "", "runs": 0, "status": reason, "refused": True})
            continue
        board.submissions.append({"bundle": bundle.name, "method": name,
                                  "runs": len(bundle.runs), "status": "submitted", "refused": False,
                                  "sha256": bundle.sha256, "medfairx": str(bundle.manifest.get("medfairx"))})
    return board

