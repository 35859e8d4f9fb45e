"""Patient-disjoint, seeded, label-stratified splits and their manifest."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medfairx.errors import ConfigError, DataError
from medfairx.fileio import atomic_write_json

SPLITS: tuple[str, ...] = ("train", "val", "test")
SPLIT_ALGORITHM = "patient-stratified-v1"


@dataclass(frozen=True)
class SplitManifest:
    """Sample ids of each split (sorted), plus how they were made.

    Attributes:
        splits: split name → sorted tuple of sample ids.
        params: seed, ratios and algorithm (recorded, not hashed).
    """

    splits: Mapping[str, tuple[str, ...]]
    params: Mapping[str, Any] = field(default_factory=dict)

    def ids(self, split: str) -> np.ndarray:
        """Sample ids of ``split`` as a string array."""
        if split not in self.splits:
            raise ConfigError(f"Unknown split {split!r}; splits: {', '.join(self.splits)}.")
        return np.asarray(self.splits[split], dtype=str)

    def sizes(self) -> dict[str, int]:
        """Number of samples per split."""
        return {k: len(v) for k, v in self.splits.items()}

    @property
    def hash(self) -> str:
        """sha256 of the canonical JSON of the split ids (what identifies a split)."""
        payload = json.dumps({k: list(v) for k, v in sorted(self.splits.items())}, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"hash", "params", "splits": {name: [ids]}}``."""
        return {"hash": self.hash, "params": dict(self.params), "splits": {k: list(v) for k, v in self.splits.items()}}

    def save(self, path: str | Path) -> Path:
        """Write the manifest as JSON (atomically); return the path."""
        path = Path(path)
        atomic_write_json(path, self.to_dict(), indent=1, sort_keys=False)
        return path

    @classmethod
    def load(cls, path: str | Path) -> SplitManifest:
        """Read a manifest written by :meth:`save` (the stored hash is checked)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            manifest = cls({k: tuple(map(str, v)) for k, v in data["splits"].items()}, data.get("params", {}))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DataError(f"Cannot read split manifest {path}: {exc}. Regenerate it or fix the file.") from None
        if data.get("hash") not in (None, manifest.hash):
            raise DataError(f"Split manifest {path} was edited: its ids do not match its stored hash.")
        return manifest

    def check(self, metadata: pd.DataFrame, patient_col: str = "patient_id") -> list[str]:
        """Problems of this split for ``metadata``: unknown ids, overlaps, patient leaks."""
        problems = []
        seen: dict[str, str] = {}
        for split, ids in self.splits.items():
            for sid in ids:
                if sid in seen:
                    problems.append(f"sample {sid!r} is in both {seen[sid]!r} and {split!r}")
                seen[sid] = split
        unknown = [s for s in seen if s not in metadata.index]
        if unknown:
            problems.append(f"{len(unknown)} split id(s) are not in the metadata, e.g. {unknown[:3]}")
        if patient_col in metadata.columns:
            known = [s for s in seen if s in metadata.index]
            owner = pd.DataFrame({"split": [seen[s] for s in known], "patient": metadata.loc[known, patient_col].to_numpy()})
            leaks = owner.groupby("patient")["split"].nunique()
            leaks = leaks[leaks > 1]
            if len(leaks):
                problems.append(f"{len(leaks)} patient(s) appear in more than one split, e.g. {list(leaks.index[:3])}")
        return problems

    def patient_disjoint(self, metadata: pd.DataFrame, patient_col: str = "patient_id") -> bool:
        """Whether no patient has samples in two splits."""
        return not any("patient" in p for p in self.check(metadata, patient_col))


def _allocate(n: int, ratios: list[float]) -> list[int]:
    """Split ``n`` items by ``ratios`` with largest remainders (sums to ``n``)."""
    raw = np.asarray(ratios) * n
    counts = np.floor(raw).astype(int)
    order = np.argsort(-(raw - counts), kind="stable")
    for i in order[: n - counts.sum()]:
        counts[i] += 1
    result: list[int] = counts.tolist()
    return result


def make_splits(
    metadata: pd.DataFrame,
    ratios: Mapping[str, float],
    seed: int,
    *,
    patient_col: str = "patient_id",
    label_col: str | None = "label",
    stratify: bool = True,
) -> SplitManifest:
    """Assign whole patients to splits, stratified by the patient's (maximum) label.

    Patients are sorted before the seeded shuffle, so the result depends only on the
    metadata content and ``seed``, not on row order.
    """
    names = [s for s in SPLITS if s in ratios] + [s for s in ratios if s not in SPLITS]
    if patient_col not in metadata.columns:
        raise DataError(f"Cannot split: the metadata has no {patient_col!r} column.")
    patients = pd.Series(metadata[patient_col].astype(str).to_numpy(), index=metadata.index)
    use_labels = stratify and label_col is not None and label_col in metadata.columns
    if use_labels:
        strata = pd.Series(metadata[label_col].to_numpy()).groupby(patients.to_numpy()).max()
    else:
        strata = pd.Series(0, index=sorted(set(patients)))
    rng = np.random.default_rng(seed)
    assignment: dict[str, str] = {}
    for _, members in sorted(strata.groupby(strata).groups.items()):
        ids = np.array(sorted(map(str, members)))
        ids = ids[rng.permutation(len(ids))]
        start = 0
        for split, count in zip(names, _allocate(len(ids), [ratios[s] for s in names]), strict=False):
            assignment.update(dict.fromkeys(ids[start : start + count].tolist(), split))
            start += count
    split_of = patients.map(assignment)
    splits = {s: tuple(sorted(map(str, split_of.index[split_of == s]))) for s in names}
    params = {"seed": seed, "ratios": dict(ratios), "algorithm": SPLIT_ALGORITHM, "stratified": bool(use_labels)}
    return SplitManifest(splits, params)
