"""Check a local copy of a dataset against what is known of its published release.

The facts live in the dataset card (:class:`~medfairx.specs.PublishedRelease`): files with
their size, row count and sha256/md5, and folders with a file count, the expected names
and, where published, a checksum of the whole ``sha256sum`` listing. :func:`verify_copy`
compares a folder with them and names every missing, extra and changed file;
:func:`write_record` / :func:`read_record` keep the outcome in the cache directory so a
data card can say whether the copy it describes was verified, and when.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from medfairx.errors import DataError
from medfairx.fileio import atomic_write_json
from medfairx.specs import PublishedFile, PublishedFolder, PublishedRelease

#: How many names a problem line lists before it says "and N more".
SHOWN_NAMES = 10
_CHUNK = 1 << 20


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def count_rows(path: Path) -> int:
    """Data rows of a CSV/TSV file (lines after the header; CR, LF and CRLF all end a line)."""
    with open(path, encoding="utf-8", errors="replace", newline=None) as fh:
        return max(sum(1 for line in fh if line.strip()) - 1, 0)


def listing_digest(folder: Path, names: Iterable[str], prefix: str = "") -> str:
    """sha256 of the ``sha256sum`` listing of ``names`` (paths relative to ``folder``).

    The lines are ``"<sha256>  <prefix><name>\\n"`` in bytewise order of ``prefix + name``,
    what ``LC_ALL=C sha256sum $(LC_ALL=C ls) | sha256sum`` prints for a flat folder.
    """
    ordered = sorted((prefix + n for n in names), key=lambda s: s.encode())
    h = hashlib.sha256()
    for shown in ordered:
        h.update(f"{file_digest(folder / shown[len(prefix):])}  {shown}\n".encode())
    return h.hexdigest()


def _shorten(names: list[str]) -> str:
    head = ", ".join(names[:SHOWN_NAMES])
    return head + (f" and {len(names) - SHOWN_NAMES} more" if len(names) > SHOWN_NAMES else "")


def _check_file(root: Path, pub: PublishedFile) -> dict[str, Any]:
    path = root / pub.path
    out: dict[str, Any] = {"path": pub.path, "status": "ok", "differences": []}
    if not path.is_file():
        out["status"] = "missing" if pub.required else "absent"
        return out
    diffs = out["differences"]
    if pub.size is not None and (size := path.stat().st_size) != pub.size:
        diffs.append(f"{size:,} bytes, published {pub.size:,}")
    for algorithm, want in (("sha256", pub.sha256), ("md5", pub.md5)):
        if want and (have := file_digest(path, algorithm)) != want:
            diffs.append(f"{algorithm} {have[:12]}…, published {want[:12]}…")
    if pub.rows is not None and (rows := count_rows(path)) != pub.rows:
        diffs.append(f"{rows:,} data rows, published {pub.rows:,}")
    if diffs:
        out["status"] = "changed"
    return out


def _expected(root: Path, folder: PublishedFolder) -> tuple[dict[str, str] | None, str]:
    """Expected names (→ sha256, ``""`` when unknown) of a folder entry, and where they came from."""
    if not folder.names:
        return None, ""
    source, _, column = folder.names.rpartition(":")
    if source == "package":
        text = resources.files("medfairx.data").joinpath("published").joinpath(column).read_text(encoding="utf-8")
        return {n.strip() + folder.name_suffix: "" for n in text.splitlines() if n.strip()}, f"list {column}"
    path = root / source
    if not path.is_file():
        return None, ""
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t" if path.suffix == ".tsv" else ","))
    if rows and column not in rows[0]:
        raise DataError(f"{path}: no column {column!r} to read the file names from; the dataset card "
                        f"expects it (columns: {sorted(rows[0])}). Is this the documented file?")
    return ({r[column] + folder.name_suffix: r.get(folder.sha256_column, "") if folder.sha256_column else ""
             for r in rows}, source)


def _local_files(base: Path, pattern: str) -> set[str]:
    return {p.relative_to(base).as_posix() for p in base.glob(pattern) if p.is_file()}


def _keyed(local: set[str], expected: dict[str, str] | None) -> dict[str, str]:
    """Local files keyed like ``expected`` (name → relative path): a manifest may name files
    without their subfolder."""
    flat = bool(expected) and not any("/" in n for n in expected or ()) and any("/" in n for n in local)
    return {(n.rsplit("/", 1)[-1] if flat else n): n for n in local}


def _check_folder(root: Path, options: list[PublishedFolder]) -> dict[str, Any]:
    base = root / options[0].path
    out: dict[str, Any] = {"path": options[0].path, "status": "ok", "found": 0, "missing": [], "extra": [],
                           "changed": [], "differences": []}
    if not base.is_dir():
        out["status"] = "absent"
        return out
    candidates = []
    for opt in options:
        local = _local_files(base, opt.pattern)
        expected, source = _expected(root, opt)
        keyed = _keyed(local, expected)
        score = (len(keyed.keys() & set(expected)) if expected is not None else 0, -abs(len(local) - opt.count))
        candidates.append((score, opt, local, keyed, expected, source))
    _, opt, local, keyed, expected, source = max(candidates, key=lambda c: c[0])
    out.update(found=len(local), expected=opt.count, label=opt.label, names_from=source)
    if expected is not None:
        out["missing"] = sorted(set(expected) - keyed.keys())
        out["extra"] = sorted(keyed.keys() - set(expected))
    elif len(local) != opt.count:
        out["differences"].append(f"{len(local):,} files match {opt.pattern}, the {opt.label or 'copy'} has {opt.count:,}")
    if expected and opt.sha256_column:
        out["changed"] = sorted(k for k in keyed.keys() & set(expected)
                                if expected[k] and file_digest(base / keyed[k]) != expected[k])
    if opt.listing_sha256 and not any(out[k] for k in ("missing", "extra", "changed", "differences")):
        have = listing_digest(base, local, opt.listing_prefix)
        if have != opt.listing_sha256:
            out["differences"].append(f"the sha256sum listing is {have[:12]}…, published {opt.listing_sha256[:12]}… "
                                      "(some file's content differs; no per-file checksums are known)")
    if out["missing"] or out["extra"] or out["changed"] or out["differences"]:
        out["status"] = "changed"
    return out


def verify_copy(root: str | Path, release: PublishedRelease) -> dict[str, Any]:
    """Compare the dataset folder ``root`` with ``release``.

    Returns:
        ``{"root", "source", "ok", "files": [...], "folders": [...], "problems": [...]}``; each
        problem is one line naming the file (or folder) and what differs. A folder that is
        absent altogether is reported (``status: absent``) but is not a problem: a metadata-only
        copy is a valid copy of the metadata.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"Dataset folder {root} does not exist. Pass the folder that holds the dataset's files "
                        "(--root) or the folder above it (--data-root).")
    files = [_check_file(root, f) for f in release.files]
    grouped: dict[str, list[PublishedFolder]] = {}
    for folder in release.folders:
        grouped.setdefault(folder.path, []).append(folder)
    folders = [_check_folder(root, opts) for opts in grouped.values()]
    problems = []
    for f in files:
        if f["status"] == "missing":
            problems.append(f"{f['path']}: missing")
        elif f["status"] == "changed":
            problems.append(f"{f['path']}: changed ({'; '.join(f['differences'])})")
    for d in folders:
        label = f" (the {d['label']} has {d['expected']:,})" if d.get("label") else ""
        for kind in ("missing", "extra", "changed"):
            if d[kind]:
                named = _shorten([f"{d['path']}/{n}" for n in d[kind]])
                problems.append(f"{len(d[kind]):,} file(s) {kind} in {d['path']}/{label}: {named}")
        problems += [f"{d['path']}/: {text}" for text in d["differences"]]
    return {"root": str(root), "source": release.source, "ok": not problems, "files": files,
            "folders": folders, "problems": problems}


def record_path(cache_dir: str | Path, dataset: str) -> Path:
    """Where the outcome of verifying ``dataset`` is kept."""
    return Path(cache_dir) / "verified" / f"{dataset}.json"


def write_record(cache_dir: str | Path, dataset: str, result: dict[str, Any]) -> Path:
    """Keep the outcome of :func:`verify_copy` (root, ok, date, problem count) for the data card."""
    path = record_path(cache_dir, dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"dataset": dataset, "root": str(Path(result["root"]).resolve()), "ok": result["ok"],
              "source": result["source"], "problems": len(result["problems"]),
              "date": datetime.now(timezone.utc).strftime("%Y-%m-%d")}
    atomic_write_json(path, record, sort_keys=False, newline=True)  # replaces a link, never follows it
    return path


def read_record(cache_dir: str | Path, dataset: str, root: str | Path | None) -> dict[str, Any] | None:
    """The kept outcome for ``dataset`` if it was made for the folder ``root``; else ``None``."""
    path = record_path(cache_dir, dataset)
    try:
        record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if root is None or record.get("root") != str(Path(root).resolve()):
        return None
    return record


def verification_text(record: dict[str, Any] | None, has_facts: bool = True) -> str:
    """The data card's one-line verification status."""
    if not has_facts:
        return "not verifiable (the dataset card records no published checksums or counts)"
    if record is None:
        return "not verified (run `medfairx datasets verify NAME`)"
    if record.get("ok"):
        return f"verified against the published checksums and counts on {record['date']}"
    return f"verification FAILED on {record['date']} ({record.get('problems', '?')} problem(s))"
