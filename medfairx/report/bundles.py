"""Result bundles: a method's runs packed into one file, to hand in to someone else's board.

``medfairx export STORE --method NAME`` writes a bundle (:func:`export_bundle`);
``medfairx report STORE --include FILE`` reads it back (:func:`read_bundle`) and checks it
against the board (:func:`check_bundle`) before its rows are shown, marked ``submitted``.

A bundle is a zip archive of JSON and Parquet only (nothing in it can run code)::

    bundle.json                       manifest: format version, versions, method, datasets
                                      (revision, split hash, sorted test sample ids),
                                      run ids, sha256 of every other member
    runs/000/run.json                 the run's record, byte for byte as in the store
    runs/000/predictions.parquet
    runs/000/epochs.parquet           when the run wrote one

Reading never extracts anything: the member list is checked first (plain files with the
names above, no links, no folders, no duplicates, bounded sizes), then members are read
into memory, their checksums compared with the manifest, and their contents with the board.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import stat
import zipfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from medfairx.errors import ConfigError, DataError
from medfairx.fileio import atomic_write_bytes, inside
from medfairx.store import (
    EPOCHS,
    PREDICTIONS,
    RUN_JSON,
    StoredRun,
    UnreadableRunError,
    iter_runs,
)

__all__ = [
    "BUNDLE_FORMAT", "BUNDLE_VERSION", "Bundle", "BundleError", "BundleRun", "check_bundle", "export_bundle",
    "read_bundle", "ids_in_test_split",
]

BUNDLE_FORMAT = "medfairx-bundle"
BUNDLE_VERSION = 1
MANIFEST = "bundle.json"
MEMBER = re.compile(r"runs/(\d{3,6})/(run\.json|predictions\.parquet|epochs\.parquet)")
MAX_MEMBER_BYTES = 1 << 30
MAX_TOTAL_BYTES = 4 << 30
MAX_MEMBERS = 30_000
TEST_SPLIT = "test"
REFUSED = "{bundle}: refused: {reason}. Export it again with `medfairx export` from a store with this board's splits, or leave it out."
NO_RUNS = "No finished run of method {method!r} in {store}; methods there: {methods}. See `medfairx report` on that store."
EXPORT_MISMATCH = "{store}: runs of method {method!r} on dataset {dataset!r} disagree on {what} ({values}); export refused."


class BundleError(DataError):
    """A bundle is malformed, tampered with, or does not fit the board it is included in."""


@dataclass
class BundleRun(StoredRun):
    """A run read from a bundle: its tables live in memory, never on disk."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def predictions(self) -> pd.DataFrame:
        return self.tables[PREDICTIONS]

    def epochs(self) -> pd.DataFrame | None:
        return self.tables.get(EPOCHS)


@dataclass
class Bundle:
    """A bundle read and checked for integrity (:func:`read_bundle`)."""

    name: str
    sha256: str
    manifest: dict[str, Any]
    runs: list[BundleRun]

    @property
    def method(self) -> str:
        return str(self.manifest["method"])

    @property
    def datasets(self) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = self.manifest["datasets"]
        return result


# --- shared helpers ------------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ids_in_test_split(predictions: pd.DataFrame) -> list[str]:
    """The test rows' sample ids, in file order (as strings)."""
    if "split" not in predictions.columns or "sample_id" not in predictions.columns:
        raise BundleError("predictions lack a 'split' or 'sample_id' column")
    return [str(s) for s in predictions.loc[predictions["split"] == TEST_SPLIT, "sample_id"]]


def _duplicates(ids: Sequence[str]) -> list[str]:
    return sorted(i for i, n in Counter(ids).items() if n > 1)


def _some(ids: Iterable[str], n: int = 5) -> str:
    ids = sorted(ids)
    shown = ", ".join(repr(i) for i in ids[:n])
    return shown + (f" and {len(ids) - n} more" if len(ids) > n else "")


def _version_key(version: str) -> tuple[str, ...]:
    """The part of a version that must match: the major number (major.minor before 1.0)."""
    parts = str(version).split(".")
    return tuple(parts[:2]) if parts[0] == "0" else tuple(parts[:1])


# --- export --------------------------------------------------------------------------------


def _run_files(run: StoredRun, root: Path) -> dict[str, bytes]:
    """``run.json``, ``predictions.parquet`` and ``epochs.parquet`` (if any) of a stored run, as bytes."""
    files = {}
    for name in (RUN_JSON, PREDICTIONS, EPOCHS):
        path = run.path / name
        if name == EPOCHS and not (path.exists() or path.is_symlink()):
            continue
        if path.is_symlink() or not inside(path, root):
            raise ConfigError(f"{path}: a link; bundles hold plain files of the store only. Replace it by the file.")
        files[name] = path.read_bytes()
    return files


def _dataset_provenance(runs: list[tuple[StoredRun, pd.DataFrame]], store: Path, method: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dataset in sorted({str(r.record.get("dataset")) for r, _ in runs}):
        mine = [(r, p) for r, p in runs if str(r.record.get("dataset")) == dataset]
        entry: dict[str, Any] = {}
        for key in ("dataset_revision", "split_hash"):
            values = sorted({str(r.record.get(key) or "") for r, _ in mine})
            if len(values) > 1:
                raise ConfigError(EXPORT_MISMATCH.format(store=store, method=method, dataset=dataset, what=key,
                                                         values=", ".join(values)))
            entry[key] = values[0]
        id_sets = {tuple(sorted(ids_in_test_split(p))) for _, p in mine}
        if len(id_sets) > 1:
            raise ConfigError(EXPORT_MISMATCH.format(store=store, method=method, dataset=dataset,
                                                     what="test sample ids", values=f"{len(id_sets)} different sets"))
        ids = list(next(iter(id_sets)))
        if _duplicates(ids):
            raise ConfigError(f"{store}: duplicate test sample ids {_some(_duplicates(ids))} in runs of {method!r}.")
        entry["test_ids"] = ids
        out[dataset] = entry
    return out


def export_bundle(store: Path, method: str, out: Path | None = None) -> Path:
    """Pack the finished runs of ``method`` in the run store ``store`` into one zip bundle.

    Args:
        store: a run store folder (``runs/<suite>``).
        method: the method whose runs are packed.
        out: the bundle file (default: ``<suite>-<method>.zip`` in the current folder).

    Returns:
        The path written.

    Raises:
        ConfigError: no finished run of ``method``, a run's tables are unreadable or links,
            or its runs disagree on a dataset's revision, split hash or test samples.
    """
    from medfairx.plugins import get_host
    from medfairx.version import __version__

    store = Path(store)
    all_runs = list(iter_runs(store))
    runs = [r for r in all_runs if r.ok and str(r.record.get("method")) == method]
    if not runs:
        methods = ", ".join(sorted({str(r.record.get("method")) for r in all_runs if r.ok})) or "none"
        raise ConfigError(NO_RUNS.format(method=method, store=store, methods=methods))
    members: dict[str, bytes] = {}
    loaded = []
    for i, run in enumerate(runs):
        try:
            loaded.append((run, run.predictions()))
        except UnreadableRunError as exc:
            raise ConfigError(str(exc)) from None
        for name, data in _run_files(run, store).items():
            members[f"runs/{i:03d}/{name}"] = data
    host = get_host()
    suite = str(runs[0].record.get("suite") or store.name)
    versions = runs[0].record.get("versions") or runs[0].record.get("method_origin") or {}
    manifest = {
        "format": BUNDLE_FORMAT, "format_version": BUNDLE_VERSION, "medfairx": __version__,
        "plugins": sorted({f"{p.dist}=={p.version}" for p in host.plugins.values() if p.dist}),
        "method": method, "method_origin": versions, "suite": suite,
        "datasets": _dataset_provenance(loaded, store, method),
        "runs": [str(r.record.get("run_id") or r.path.name) for r in runs],
        "members": {name: _sha256(data) for name, data in sorted(members.items())},
    }
    if out is None:
        from medfairx.report.render import slug

        out = Path(f"{slug(suite)}-{slug(method)}.zip")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in [(MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode()), *sorted(members.items())]:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    atomic_write_bytes(out, buf.getvalue())
    return Path(out)


# --- reading: integrity ------------------------------------------------------------------


def _check_members(infos: list[zipfile.ZipInfo]) -> None:
    """Refuse anything but plain files with the bundle's own names, before reading one byte."""
    if len(infos) > MAX_MEMBERS:
        raise BundleError(f"{len(infos)} members, more than the {MAX_MEMBERS} a bundle may hold")
    names = [i.filename for i in infos]
    if _duplicates(names):
        raise BundleError(f"member(s) {_some(_duplicates(names))} appear more than once")
    total = 0
    for info in infos:
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise BundleError(f"member {info.filename!r} is a symbolic link; bundles hold plain files only")
        if info.is_dir() or stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # no type bits: a plain file
            raise BundleError(f"member {info.filename!r} is not a plain file")
        if info.filename != MANIFEST and not MEMBER.fullmatch(info.filename):
            raise BundleError(f"member {info.filename!r} is not a bundle file name (bundle.json, "
                              "runs/<nnn>/run.json|predictions.parquet|epochs.parquet)")
        if info.flag_bits & 0x1:
            raise BundleError(f"member {info.filename!r} is encrypted")
        if info.file_size > MAX_MEMBER_BYTES:
            raise BundleError(f"member {info.filename!r} is {info.file_size} bytes, over the {MAX_MEMBER_BYTES} limit")
        total += info.file_size
    if total > MAX_TOTAL_BYTES:
        raise BundleError(f"members total {total} bytes, over the {MAX_TOTAL_BYTES} limit")
    if MANIFEST not in names:
        raise BundleError(f"no {MANIFEST} (not a medfairx bundle)")


def _check_manifest(manifest: Any) -> dict[str, Any]:
    from medfairx.version import __version__

    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{MANIFEST} does not describe a {BUNDLE_FORMAT}")
    if manifest.get("format_version") != BUNDLE_VERSION:
        raise BundleError(f"bundle format version {manifest.get('format_version')!r}; this medfairx reads "
                          f"version {BUNDLE_VERSION}")
    if _version_key(str(manifest.get("medfairx"))) != _version_key(__version__):
        raise BundleError(f"written by medfairx {manifest.get('medfairx')}, not compatible with this medfairx "
                          f"{__version__} (the major version, or major.minor before 1.0, must match)")
    for key, kind in (("method", str), ("datasets", dict), ("runs", list), ("members", dict)):
        if not isinstance(manifest.get(key), kind) or not manifest.get(key):
            raise BundleError(f"{MANIFEST}: {key!r} missing or not a {kind.__name__}")
    for dataset, entry in manifest["datasets"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("test_ids"), list):
            raise BundleError(f"{MANIFEST}: dataset {dataset!r} lacks its list of test sample ids")
    return manifest


def _read_members(zf: zipfile.ZipFile, manifest: dict[str, Any]) -> dict[str, bytes]:
    listed = dict(manifest["members"])
    present = {i.filename for i in zf.infolist()} - {MANIFEST}
    if present != set(listed):
        extra, missing = present - set(listed), set(listed) - present
        raise BundleError("members and manifest disagree: "
                          + "; ".join(p for p in (f"not listed: {_some(extra)}" if extra else "",
                                                  f"listed but absent: {_some(missing)}" if missing else "") if p))
    data = {}
    for name in sorted(present):
        blob = zf.read(name)
        if _sha256(blob) != listed[name]:
            raise BundleError(f"member {name!r} does not match its sha256 in {MANIFEST} (edited after export)")
        data[name] = blob
    return data


def _parse_runs(name: str, manifest: dict[str, Any], data: Mapping[str, bytes]) -> list[BundleRun]:
    folders = sorted({m.rsplit("/", 1)[0] for m in data})
    runs = []
    for folder in folders:
        files = {m.rsplit("/", 1)[1]: blob for m, blob in data.items() if m.rsplit("/", 1)[0] == folder}
        if RUN_JSON not in files or PREDICTIONS not in files:
            raise BundleError(f"{folder} lacks {RUN_JSON} or {PREDICTIONS}")
        try:
            record = json.loads(files[RUN_JSON].decode("utf-8"))
            tables = {f: pd.read_parquet(io.BytesIO(b)) for f, b in files.items() if f != RUN_JSON}
        except Exception as exc:  # noqa: BLE001 - a damaged member, whatever the parser raises
            raise BundleError(f"{folder}: unreadable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
        if not isinstance(record, dict):
            raise BundleError(f"{folder}/{RUN_JSON} is not a JSON object")
        runs.append(BundleRun(Path(f"{name}!{folder}"), record, None, tables))
    return runs


def read_bundle(path: Path) -> Bundle:
    """Read a bundle into memory and check its integrity (nothing is extracted).

    Raises:
        BundleError: not a zip archive, unsafe or unexpected members, a manifest of another
            format or an incompatible medfairx version, or a member whose checksum differs.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read it ({exc.strerror or exc})") from None
    try:
        zf = zipfile.ZipFile(io.BytesIO(raw))
    except (zipfile.BadZipFile, ValueError):
        raise BundleError("not a zip archive (a bundle is the zip file `medfairx export` writes)") from None
    with zf:
        _check_members(zf.infolist())
        try:
            manifest = _check_manifest(json.loads(zf.read(MANIFEST).decode("utf-8")))
            data = _read_members(zf, manifest)
        except (zipfile.BadZipFile, UnicodeDecodeError, ValueError, EOFError) as exc:
            if isinstance(exc, BundleError):
                raise
            raise BundleError(f"damaged archive ({type(exc).__name__}: {exc})") from None
    return Bundle(path.name, _sha256(raw), manifest, _parse_runs(path.name, manifest, data))


# --- reading: does it fit the board ------------------------------------------------------


def _check_ids(where: str, ids: Sequence[str], expected: set[str]) -> None:
    dups = _duplicates(ids)
    if dups:
        raise BundleError(f"{where}: duplicate test sample id(s) {_some(dups)}")
    missing, extra = expected - set(ids), set(ids) - expected
    if missing or extra:
        parts = [f"missing {_some(missing)}" if missing else "", f"not in the board's test split {_some(extra)}" if extra else ""]
        raise BundleError(f"{where}: test samples differ from the board's: " + "; ".join(p for p in parts if p))


def check_bundle(bundle: Bundle, board: Mapping[str, Mapping[str, Any]], taken_ids: set[str]) -> None:
    """Check that a bundle fits the board it is included in.

    Args:
        bundle: a bundle read by :func:`read_bundle`.
        board: dataset → ``{"dataset_revision", "split_hash", "test_ids"}`` of the board's own runs.
        taken_ids: run ids already on the board (its stores and earlier bundles).

    Raises:
        BundleError: a dataset the board lacks, another revision or split hash, test sample
            ids that differ from the board's (missing, extra, duplicated) in the manifest or in
            any run, a run that is not the bundle's method or dataset, or a run id already taken.
    """
    manifest = bundle.manifest
    for dataset, entry in manifest["datasets"].items():
        if dataset not in board:
            raise BundleError(f"dataset {dataset!r}: the board has no runs on it to check the bundle against")
        for key, label in (("dataset_revision", "dataset revision"), ("split_hash", "split hash")):
            if str(entry.get(key) or "") != str(board[dataset].get(key) or ""):
                raise BundleError(f"dataset {dataset!r}: {label} {entry.get(key)!r} in the bundle, "
                                  f"{board[dataset].get(key)!r} on the board")
        _check_ids(f"dataset {dataset!r} ({MANIFEST})", [str(i) for i in entry["test_ids"]], set(board[dataset]["test_ids"]))
    ids = [str(r.record.get("run_id")) for r in bundle.runs]
    if sorted(ids) != sorted(map(str, manifest["runs"])):
        raise BundleError(f"the run ids in the runs ({_some(ids)}) are not the ones {MANIFEST} lists")
    if _duplicates(ids):
        raise BundleError(f"run id(s) {_some(_duplicates(ids))} appear twice")
    for run in bundle.runs:
        rec, rid = run.record, str(run.record.get("run_id"))
        if str(rec.get("method")) != bundle.method:
            raise BundleError(f"run {rid!r} is of method {rec.get('method')!r}, not the bundle's {bundle.method!r}")
        dataset = str(rec.get("dataset"))
        entry = manifest["datasets"].get(dataset)
        if entry is None:
            raise BundleError(f"run {rid!r} is on dataset {dataset!r}, which {MANIFEST} does not describe")
        for key in ("dataset_revision", "split_hash"):
            if str(rec.get(key) or "") != str(entry.get(key) or ""):
                raise BundleError(f"run {rid!r}: {key} {rec.get(key)!r} differs from {MANIFEST}'s {entry.get(key)!r}")
        _check_ids(f"run {rid!r}", ids_in_test_split(run.predictions()), set(board[dataset]["test_ids"]))
        if rid in taken_ids:
            raise BundleError(f"run id {rid!r} is already on the board; a submitted run must be a run not made here")
