"""Several runs at once on one machine: one worker process per device slot.

``medfairx bench --jobs N --devices 0,1,...|cpu,cpu,...`` starts ``N`` worker processes
(``spawn`` start method, so no CUDA state or locks are inherited) and hands them the planned
runs from a queue, one run at a time. Each worker:

* sees only its GPU (``CUDA_VISIBLE_DEVICES=<id>``, runs use device ``cuda``), or no GPU at
  all for a ``cpu`` slot (``CUDA_VISIBLE_DEVICES=""``, runs use device ``cpu``);
* loads each dataset once and keeps it for its later runs;
* writes its runs to the shared store exactly as the sequential executor does;
* exits when the parent process dies (a killed sweep leaves no orphans writing runs).

The parent only schedules and reports. A worker that dies in the middle of a run (Python
exception outside the run, ``os._exit``, a segmentation fault, the kernel's OOM killer) is
noticed through its process sentinel: the run is recorded as ``failed`` with an error that
says what happened, a fresh worker takes the slot, and the sweep goes on.

Nothing here imports torch: workers import it when their first run trains.
"""

from __future__ import annotations

import inspect
import multiprocessing as mp
import os
import signal
import time
import traceback
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from medfairx.contracts import RunSpec
from medfairx.errors import ConfigError
from medfairx.runner.execute import Echo, SweepResult, _now
from medfairx.runner.executors import (
    RUN_ONE_PLANNED,
    SweepJob,
    describe_run,
    record_lost_run,
    report_record,
)
from medfairx.runner.progress import emit

#: Error type recorded for a run whose worker process died.
WORKER_DIED = "WorkerDied"
#: Seconds a worker may take to finish after being asked to stop, before it is killed.
STOP_GRACE_S = 10.0
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class WorkerSlot:
    """Where one worker runs.

    Attributes:
        index: 0-based slot number (shown as ``w<index+1>``).
        device: the ``--devices`` entry: a GPU id, ``cuda:N``, ``cpu`` or ``auto``.
        run_device: device string every run of this worker uses (``None``: the run's own).
        env: environment variables set in the worker before anything imports torch.
    """

    index: int
    device: str
    run_device: str | None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Short name for progress lines, e.g. ``w2:gpu1`` or ``w1:cpu``."""
        dev = self.device
        return f"w{self.index + 1}:{'gpu' + dev if dev.isdigit() else dev}"


def parse_device(entry: str) -> tuple[str | None, dict[str, str]]:
    """Map one ``--devices`` entry to (run device, environment).

    ``"0"`` or ``"cuda:0"`` → ``("cuda", {"CUDA_VISIBLE_DEVICES": "0"})``; ``"cpu"`` →
    ``("cpu", {"CUDA_VISIBLE_DEVICES": ""})``; ``"auto"`` → ``(None, {})``; ``"cuda"`` →
    ``("cuda", {})``; ``"mps"`` → ``("mps", {})``.

    Raises:
        ConfigError: the entry is none of these.
    """
    name = entry.strip().lower()
    if name.startswith("cuda:"):
        name = name.removeprefix("cuda:")
    if name.isdigit():
        return "cuda", {"CUDA_VISIBLE_DEVICES": str(int(name))}
    if name == "cpu":
        return "cpu", {"CUDA_VISIBLE_DEVICES": ""}
    if name in ("auto", ""):
        return None, {}
    if name in ("cuda", "mps"):
        return name, {}
    raise ConfigError(
        f"--devices entry {entry!r} is not a device; use GPU ids (0,1 or cuda:0,cuda:1), "
        "'cpu', 'cuda', 'mps' or 'auto', e.g. `--jobs 2 --devices 0,1`."
    )


def plan_slots(jobs: int, devices: Sequence[str], threads_per_worker: int | None = None) -> list[WorkerSlot]:
    """One slot per job; ``devices`` are cycled (``--jobs 4 --devices 0,1`` → 0,1,0,1).

    Without ``devices`` every slot uses the runs' own device (``auto``). CPU thread pools are
    capped at ``threads_per_worker`` (default: the machine's cores shared between the
    workers; ``0`` leaves torch's default) unless ``OMP_NUM_THREADS`` is already set.

    Raises:
        ConfigError: ``jobs`` < 1 or a malformed device.
    """
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1 (got {jobs}).")
    entries = list(devices) or ["auto"]
    if threads_per_worker is None:
        threads_per_worker = max(1, (os.cpu_count() or 1) // jobs)
    slots = []
    for i in range(jobs):
        dev = entries[i % len(entries)].strip()
        run_device, env = parse_device(dev)
        env = dict(env)
        if threads_per_worker > 0 and not any(v in os.environ for v in _THREAD_VARS):
            env.update({v: str(threads_per_worker) for v in _THREAD_VARS})
        slots.append(WorkerSlot(i, dev, run_device, env))
    return slots


def describe_exit(exitcode: int | None) -> str:
    """Human words for a dead process's exit code (negative = killed by a signal)."""
    if exitcode is None:
        return "stopped responding"
    if exitcode < 0:
        try:
            sig = signal.Signals(-exitcode)
        except ValueError:
            return f"was killed by signal {-exitcode}"
        hint = {
            signal.SIGSEGV: " (segmentation fault: a crash in native code, e.g. a CUDA or library bug)",
            signal.SIGKILL: " (often the out-of-memory killer: try fewer --jobs or a smaller batch)",
            signal.SIGABRT: " (abort: a native library gave up, e.g. a failed CUDA assertion)",
            signal.SIGBUS: " (bus error: often shared memory exhausted)",
        }.get(sig, "")
        return f"was killed by {sig.name}{hint}"
    return f"exited with code {exitcode} without reporting a result (e.g. os._exit or sys.exit)"


def _ignore_sigint() -> Any:
    """Ignore SIGINT in this process; the previous handler (``None`` off the main thread)."""
    try:
        return signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # signal only works in the main thread
        return None


# --- the worker -----------------------------------------------------------------------


def _exit_with_parent(poll_s: float = 1.0) -> None:
    """Stop this worker when the parent dies (e.g. SIGKILL), so no orphan keeps writing runs."""
    import threading

    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="medfairx-parent-watch", daemon=True).start()


def _worker_main(
    conn: Connection,
    env: dict[str, str],
    run_device: str | None,
    run_fn: str,
    catalogue_path: Path | None,
    store_root: Path,
    verbose: bool,
) -> None:
    """Worker loop: receive a :class:`RunSpec`, run it, send back its record; ``None`` stops."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the workers
    os.environ.update(env)
    _exit_with_parent()
    from medfairx.specs import resolve_target

    fn = resolve_target(run_fn)
    datasets: dict[str, Any] = {}

    def echo(line: str) -> None:
        conn.send(("log", line))

    def progress(stage: str, epoch: int, total: int) -> None:
        conn.send(("progress", (stage, epoch, total)))

    extra = {"progress": progress} if "progress" in inspect.signature(fn).parameters else {}

    while True:
        try:
            spec = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if spec is None:
            return
        if run_device is not None:
            spec = replace(spec, device=run_device)
        try:
            record = fn(spec, catalogue_path, store_root, datasets=datasets, echo=echo if verbose else None, **extra)
            conn.send(("done", record))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which records the run
            conn.send(("error", {"type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()}))
            if isinstance(exc, KeyboardInterrupt):
                return


@dataclass
class _Worker:
    slot: WorkerSlot
    process: Any
    conn: Connection
    runs_done: int = 0
    current: tuple[int, RunSpec, float, str] | None = None  # (position, spec, t0, started iso)


# --- the executor ---------------------------------------------------------------------


class ParallelExecutor:
    """Runs planned runs in ``jobs`` worker processes, one per device slot.

    Args:
        jobs: number of worker processes (runs at once).
        devices: ``--devices`` entries cycled over the slots (GPU ids, ``cpu``, ``auto``).
        threads_per_worker: CPU threads per worker (default: cores / jobs; 0: torch default).
        max_runs_per_worker: restart a worker after this many runs (default: never), a
            safety net against memory that a method does not release.
        run_fn: ``"module:function"`` each worker calls per run, with the signature of
            :func:`~medfairx.runner.executors.run_one_planned` (tests replace it).
        start_method: multiprocessing start method; ``spawn`` (default) is the only one that
            is safe with CUDA.
    """

    def __init__(
        self,
        jobs: int = 2,
        devices: Sequence[str] = (),
        *,
        threads_per_worker: int | None = None,
        max_runs_per_worker: int | None = None,
        run_fn: str = RUN_ONE_PLANNED,
        start_method: str = "spawn",
    ) -> None:
        self.slots = plan_slots(int(jobs), list(devices), threads_per_worker)
        if max_runs_per_worker is not None and int(max_runs_per_worker) < 1:
            raise ConfigError(f"max_runs_per_worker must be at least 1 (got {max_runs_per_worker}).")
        self.max_runs_per_worker = None if max_runs_per_worker is None else int(max_runs_per_worker)
        self.run_fn = run_fn
        self.ctx = mp.get_context(start_method)

    # -- worker management ---------------------------------------------------------------

    def _start(self, slot: WorkerSlot, job: SweepJob) -> _Worker:
        parent_conn, child_conn = self.ctx.Pipe(duplex=True)
        proc = self.ctx.Process(  # type: ignore[attr-defined]  # typeshed's BaseContext lacks Process; every concrete context has it
            target=_worker_main,
            args=(child_conn, slot.env, slot.run_device, self.run_fn, job.catalogue_path, job.store_root, job.verbose),
            name=f"medfairx-{slot.label}",
            daemon=True,
        )
        # spawn copies this process's environment: set the slot's variables for the start
        saved = {k: os.environ.get(k) for k in slot.env}
        os.environ.update(slot.env)
        sigint = _ignore_sigint()  # inherited by the child, so a Ctrl-C during its start-up is ignored too
        try:
            proc.start()
        finally:
            if sigint is not None:
                signal.signal(signal.SIGINT, sigint)
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        child_conn.close()
        return _Worker(slot, proc, parent_conn)

    @staticmethod
    def _stop(worker: _Worker, *, kill: bool = False) -> None:
        if not kill and worker.process.is_alive():
            try:
                worker.conn.send(None)
            except OSError:
                pass
            worker.process.join(STOP_GRACE_S)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
        worker.conn.close()

    # -- the sweep -----------------------------------------------------------------------

    def run(self, job: SweepJob, echo: Echo) -> SweepResult:
        """Run ``job.runs`` across the worker slots; every run ends recorded in the store."""
        result = SweepResult()
        total = len(job.runs)
        if not total:
            return result
        queue: deque[tuple[int, RunSpec]] = deque(enumerate(job.runs, 1))
        n_workers = min(len(self.slots), total)
        echo(f"running {total} runs in {n_workers} worker processes ({', '.join(s.label for s in self.slots[:n_workers])})")
        emit(echo, "sweep", total=total, workers=n_workers)
        workers: list[_Worker | None] = [None] * n_workers
        finished = 0
        try:
            while queue or any(w is not None and w.current is not None for w in workers):
                for k in range(n_workers):
                    w = workers[k]
                    if w is not None and w.current is None and (not queue or self._exhausted(w) or not w.process.is_alive()):
                        self._stop(w)
                        w = workers[k] = None
                    if w is None and queue:
                        w = workers[k] = self._start(self.slots[k], job)
                    if w is not None and w.current is None and queue:
                        pos, spec = queue.popleft()
                        w.current = (pos, spec, time.perf_counter(), _now())
                        w.conn.send(spec)
                        echo(f"  start {describe_run(spec)} on {w.slot.label}")
                        emit(echo, "run_started", worker=w.slot.label, run=describe_run(spec))
                busy = [w for w in workers if w is not None and w.current is not None]
                wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
                for w in busy:
                    rec = self._collect(w, job, echo)
                    if rec is None:
                        continue
                    finished += 1
                    assert w.current is not None, "a busy worker holds its run"
                    pos, spec, _, _ = w.current
                    w.current = None
                    echo(f"[{finished}/{total}] {describe_run(spec)} ({w.slot.label})")
                    report_record(rec, job.store_root, result, echo, worker=w.slot.label)
                    if not w.process.is_alive():
                        self._stop(w, kill=True)
                        workers[workers.index(w)] = None
        finally:
            for w in workers:
                if w is not None:
                    self._stop(w, kill=w.current is not None)
        return result

    def _exhausted(self, worker: _Worker) -> bool:
        return self.max_runs_per_worker is not None and worker.runs_done >= self.max_runs_per_worker

    def _collect(self, w: _Worker, job: SweepJob, echo: Echo) -> dict[str, Any] | None:
        """Read a busy worker's messages; the run's record once it ended, else ``None``."""
        assert w.current is not None
        _, spec, t0, started = w.current
        try:
            while w.conn.poll():
                kind, payload = w.conn.recv()
                if kind == "log":
                    echo(f"    [{w.slot.label}] {payload}")
                    continue
                if kind == "progress":
                    emit(echo, "epoch", worker=w.slot.label, stage=payload[0], epoch=payload[1], total=payload[2])
                    continue
                w.runs_done += 1
                if kind == "done":
                    record: dict[str, Any] = payload
                    return record
                return record_lost_run(
                    spec, job.store_root, error_type=payload["type"], message=payload["message"],
                    traceback=payload["traceback"], started=started, device=w.slot.run_device,
                    duration_s=time.perf_counter() - t0,
                )
        except (EOFError, OSError):
            pass  # the worker died; its sentinel tells for sure below
        if w.process.is_alive():
            return None
        w.process.join()
        log = Path(job.store_root) / spec.run_id / "log.txt"
        message = (
            f"worker {w.slot.label} (device {w.slot.device}) {describe_exit(w.process.exitcode)} while "
            f"running {spec.run_id}. The run was recorded as failed and the sweep went on; see {log} "
            "for its last lines, and rerun `medfairx bench` to retry it."
        )
        return record_lost_run(
            spec, job.store_root, error_type=WORKER_DIED, message=message, started=started,
            device=w.slot.run_device, duration_s=time.perf_counter() - t0,
        )
