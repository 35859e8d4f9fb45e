"""Writing and reading the files medfairx produces without following links out of place.

Every file medfairx writes (run store, logs, report pages, CSV, SVG, JSON, caches) goes
through :func:`atomic_write_bytes` (or a wrapper): the bytes go to a new temporary file in
the target's folder, which is then renamed over the target. A rename replaces a symbolic
link planted at the target instead of writing through it, and a reader never sees a
half-written file. Logs that grow line by line use :func:`open_new_text`, which removes
whatever is at the path and creates a fresh file (``O_EXCL | O_NOFOLLOW``).

:func:`inside` tells whether a path (links resolved) stays inside a root folder: readers
of a run store use it so that a link to a file elsewhere is never read and published.
:func:`load_weights_only` is the one way medfairx unpickles a file (saved model states).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK
"""Mode of written files: what a plain ``open(path, "w")`` would give (mkstemp gives 0600)."""


def _temp_beside(path: Path) -> tuple[int, Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, FILE_MODE)
    return fd, Path(tmp)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename.

    A symbolic link at ``path`` is replaced by the new file, never followed.
    """
    path = Path(path)
    fd, tmp = _temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Atomically write ``text`` as UTF-8 (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, *, indent: int | None = 2, sort_keys: bool = True,
                      newline: bool = False) -> None:
    """Atomically write ``obj`` as JSON (``default=str`` for dates and paths)."""
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, default=str) + ("\n" if newline else "")
    atomic_write_text(path, text)


def atomic_write_with(path: str | Path, write: Callable[[Path], Any]) -> None:
    """Atomically produce ``path`` with ``write(tmp_path)`` (a library writer such as ``to_parquet``)."""
    path = Path(path)
    fd, tmp = _temp_beside(path)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_parquet(path: str | Path, frame: Any) -> None:
    """Atomically write a DataFrame as Parquet (no index)."""
    atomic_write_with(path, lambda tmp: frame.to_parquet(tmp, index=False))


def atomic_write_csv(path: str | Path, frame: Any) -> None:
    """Atomically write a DataFrame as CSV (no index)."""
    atomic_write_text(path, frame.to_csv(index=False))


def open_new_text(path: str | Path) -> IO[str]:
    """A fresh file at ``path`` for writing text line by line (a log).

    Whatever is at ``path`` (a file, or a link to one elsewhere) is removed first and the
    new file is created with ``O_EXCL | O_NOFOLLOW``: nothing outside ``path`` is written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.exists():
        path.unlink()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    return os.fdopen(os.open(path, flags, 0o666), "w", encoding="utf-8")


def inside(path: str | Path, root: str | Path) -> bool:
    """True when ``path``, with every link resolved, lies inside ``root`` (also resolved)."""
    try:
        return Path(path).resolve().is_relative_to(Path(root).resolve())
    except (OSError, RuntimeError):  # a link loop
        return False


def _numpy_safe_globals() -> list[Any]:
    """numpy's array, scalar and dtype constructors: they build data, never call other code."""
    import numpy as np

    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]  # the numpy < 2 location of the same names
    dtypes = [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")] if hasattr(np, "dtypes") else []
    return [np.ndarray, np.dtype, _reconstruct, scalar, *dtypes]


def load_weights_only(source: Any) -> Any:
    """``torch.load(source, weights_only=True)``: tensors, numpy arrays and plain containers only.

    The restricted unpickler refuses every other global, so nothing in the file can run
    code (it raises :class:`pickle.UnpicklingError` instead).
    """
    import torch

    with torch.serialization.safe_globals(_numpy_safe_globals()):
        return torch.load(source, map_location="cpu", weights_only=True)


def portable_paths(text: str, base: Path | None = None) -> str:
    """Absolute paths under ``base`` (default: the working directory) or its parent, written
    relative to it, so a published page names no path of the machine that built it."""
    base = (base or Path.cwd()).resolve()
    for prefix, relative in ((f"{base}{os.sep}", ""), (f"{base.parent}{os.sep}", f"..{os.sep}")):
        text = text.replace(json.dumps(prefix)[1:-1], relative).replace(prefix, relative)
    return text
