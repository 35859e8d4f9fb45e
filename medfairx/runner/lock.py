"""One ``medfairx bench`` per run store at a time: an exclusive ``flock`` on ``.bench.lock``.

The kernel releases the lock when its holder exits in any way (including ``kill -9``), so a
lock is never stale; the file keeps the holder's pid only to name it in the message of a
second bench that finds the store busy.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from medfairx.errors import MedfairxError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock, as before
    fcntl = None  # type: ignore[assignment]  # off POSIX there is no fcntl; callers check for None

LOCK_FILE = ".bench.lock"


class StoreBusyError(MedfairxError):
    """Another process is running a bench on the same run store."""


class StoreLock:
    """Context manager holding the exclusive lock of a run store's folder.

    Raises:
        StoreBusyError: on entry, when another live process holds the lock.
    """

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / LOCK_FILE
        self._fd: int | None = None

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock without waiting; record this process's pid in the file."""
        if fcntl is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreBusyError(
                f"Another `medfairx bench` (pid {holder}) is running on {self.path.parent}; wait for it "
                "to finish and run the same command again (its finished runs are reused), or use another --out."
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (the kernel does it too when the process ends)."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
        except OSError:
            pass
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
