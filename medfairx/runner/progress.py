"""What ``medfairx bench`` shows while a sweep runs: a live display, or plain lines.

Executors report through their ``echo`` callable: log lines, plus events (:func:`emit`)
that an echo may understand: ``planned`` (runs planned, runs reused from the store),
``sweep`` (runs to do, workers), ``run_started`` / ``epoch`` / ``run_finished`` (per
worker), and ``embedding`` (images encoded of a dataset, from
:func:`medfairx.methods.embedding.embed_dataset`). A plain callable (``print``, a list's
``append``) ignores the events.

* :class:`LiveDisplay` (a terminal, ``CI`` unset): log lines scroll above a tqdm bar of runs
  done, failed and reused with an ETA from the finished runs' durations, and one status
  line per worker (its current run and epoch).
* :class:`PlainDisplay` (a pipe, a file, ``CI`` set): one line per message, no control
  characters; after every finished run one ``progress`` line with the counts and the ETA.
* ``--quiet``: only failures and warnings (and what the command prints at the end).

Every line is written whole by one process (workers send theirs to the parent), so two
workers never share a line.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

#: Words that keep a line in ``--quiet`` mode.
IMPORTANT = ("FAILED", "warning", "Warning", "error", "Error")


def emit(echo: Callable[[str], None] | None, kind: str, **data: Any) -> None:
    """Send event ``kind`` to ``echo`` if it takes events (a display); otherwise do nothing."""
    handler = getattr(echo, "event", None)
    if handler is not None:
        handler(kind, **data)


def format_seconds(seconds: float) -> str:
    """``75`` → ``1m15s``; ``3725`` → ``1h02m``; under a minute ``42s``."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


@dataclass
class SweepState:
    """Counts of a sweep and what each worker is doing."""

    total: int = 0
    reused: int = 0
    done: int = 0
    failed: int = 0
    workers: int = 1
    durations: list[float] = field(default_factory=list)
    current: dict[str, str] = field(default_factory=dict)

    @property
    def finished(self) -> int:
        """Runs of this sweep that ended (ok or failed)."""
        return self.done + self.failed

    def eta(self) -> float | None:
        """Seconds left: mean duration of the finished runs × runs left / workers (``None`` before the first)."""
        if not self.durations:
            return None
        left = max(self.total - self.finished, 0)
        return sum(self.durations) / len(self.durations) * left / max(1, min(self.workers, left or 1))

    def summary(self) -> str:
        """``3/10 runs · 1 failed · 2 reused · eta 1m05s``."""
        eta = self.eta()
        return (f"{self.finished}/{self.total} runs · {self.failed} failed · {self.reused} reused · eta "
                + ("—" if eta is None else format_seconds(eta)))

    def update(self, kind: str, data: dict[str, Any]) -> None:
        """Apply one event."""
        worker = str(data.get("worker", ""))
        if kind == "planned":
            self.reused = int(data.get("reused", 0))
        elif kind == "sweep":  # a bench may run several sweeps (a search's trials, its tuned runs): they add up
            self.total += int(data["total"])
            self.workers = int(data.get("workers", 1))
        elif kind == "run_started":
            self.current[worker] = str(data.get("run", ""))
        elif kind == "epoch":
            run = self.current.get(worker, "").split(" · epoch ")[0]
            self.current[worker] = f"{run} · epoch {data['epoch']}/{data['total']}"
        elif kind == "run_finished":
            self.current.pop(worker, None)
            if data.get("status") == "ok":
                self.done += 1
            else:
                self.failed += 1
            if isinstance(data.get("seconds"), (int, float)):
                self.durations.append(float(data["seconds"]))


class PlainDisplay:
    """Line-based output for pipes, files and CI logs (greppable, no control characters)."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False) -> None:
        self.stream = stream
        self.quiet = quiet
        self.state = SweepState()

    def _write(self, line: str) -> None:
        out = self.stream or sys.stdout
        out.write(line.replace("\r", " ") + "\n")  # one write per line: nothing can split it
        out.flush()

    def __call__(self, line: str) -> None:
        if self.quiet and not any(w in line for w in IMPORTANT):
            return
        self._write(line)

    def event(self, kind: str, **data: Any) -> None:
        """Update the counts; after a finished run, one ``progress`` line (not in quiet mode)."""
        self.state.update(kind, data)
        if kind == "run_finished" and not self.quiet:
            self._write(f"      progress: {self.state.summary()}")

    def close(self) -> None:
        """Nothing to tear down."""

    def __enter__(self) -> PlainDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LiveDisplay(PlainDisplay):
    """A tqdm bar (runs, failed, reused, ETA) and one status line per worker, below the scrolling log."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._bar: Any = None
        self._lines: dict[str, Any] = {}
        self._images: Any = None
        self._t0 = time.perf_counter()

    def _tqdm(self, **kwargs: Any) -> Any:
        import shutil

        from tqdm import tqdm

        # the terminal's size (one that reports 0 columns or rows, as a fresh pty does, gets the fallback)
        size = shutil.get_terminal_size((100, 24))
        return tqdm(file=self.stream or sys.stdout, ncols=size.columns, nrows=size.lines, **kwargs)

    def _write(self, line: str) -> None:
        if self._bar is None and self._images is None:
            super()._write(line)
            return
        from tqdm import tqdm

        tqdm.write(line, file=self.stream or sys.stdout)

    def __call__(self, line: str) -> None:
        self._write(line)

    def event(self, kind: str, **data: Any) -> None:
        """Redraw the bar and the worker lines (or the embedding bar)."""
        if kind == "embedding":
            self._embedding(data)
            return
        self.state.update(kind, data)
        if kind == "sweep" and self._bar is None and self.state.total:
            self._bar = self._tqdm(total=self.state.total, unit="run", position=0,
                                   bar_format="{desc} |{bar}| {elapsed}")
        if self._bar is None:
            return
        self._bar.total = self.state.total
        self._bar.n = self.state.finished
        self._bar.set_description_str(self.state.summary(), refresh=False)
        self._bar.refresh()
        worker = str(data.get("worker", ""))
        if kind in ("run_started", "epoch") and worker:
            if worker not in self._lines:
                self._lines[worker] = self._tqdm(position=len(self._lines) + 1, bar_format="{desc}", leave=False)
            self._lines[worker].set_description_str(f"  {worker}: {self.state.current.get(worker, '')}")
        elif kind == "run_finished" and worker in self._lines:
            self._lines[worker].set_description_str(f"  {worker}: idle")

    def _embedding(self, data: dict[str, Any]) -> None:
        """An images bar with images/second while an encoder embeds a dataset; closed when it is done."""
        if self._images is None:
            self._images = self._tqdm(total=int(data["total"]), unit="img", desc=f"embedding {data['dataset']}",
                                      position=0, leave=True)
        seconds = float(data.get("seconds") or 0.0)
        self._images.n = int(data["done"])
        self._images.set_postfix_str(f"{self._images.n / max(seconds, 1e-9):.1f} images/s", refresh=False)
        self._images.refresh()
        if self._images.n >= self._images.total:
            self._images.close()
            self._images = None

    def close(self) -> None:
        """Remove the worker lines and leave the final bar on screen."""
        if self._images is not None:
            self._images.close()
            self._images = None
        for line in self._lines.values():
            line.close()
        self._lines.clear()
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def make_display(*, quiet: bool = False, stream: TextIO | None = None) -> PlainDisplay:
    """Live display on a terminal (and ``CI`` unset), plain lines otherwise; quiet: failures only."""
    out = stream or sys.stdout
    if quiet:
        return PlainDisplay(stream, quiet=True)
    if getattr(out, "isatty", lambda: False)() and not os.environ.get("CI"):
        return LiveDisplay(stream)
    return PlainDisplay(stream)
