"""Sweeps on a Slurm cluster through submitit: one array job, one task per planned run.

Every task calls :func:`run_planned_job`, which runs
:func:`~medfairx.runner.executors.run_one_planned` and writes the run into the shared store
(``runs/<suite>/``), so the store stays the only source of truth:

* ``wait=true`` (default): submit, then poll until every job ended; a job that ended without
  recording its run (time limit, node failure, out of memory) gets a ``failed`` record that
  says so.
* ``wait=false``: submit, print the job ids, save ``runs/<suite>/.submitted.json``
  (``run_id → job id``) and return. Running the same ``medfairx bench`` again later skips
  finished runs (the store check), leaves runs whose job is still queued or running alone,
  and resubmits *lost* runs: submitted but neither finished nor active, or with a job id the
  scheduler no longer knows.

``cluster`` picks ``submitit.AutoExecutor(cluster=...)``: ``slurm``, ``local`` (processes on
this machine, what CI uses) or ``debug`` (in this process, always waits).
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
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
from medfairx.store import RunStore, atomic_write_json

#: Options accepted through ``--executor-option`` (plus any ``slurm_*`` submitit option).
SLURM_OPTIONS = (
    "partition", "gpus_per_job", "cpus_per_task", "time", "mem_gb", "array_parallelism",
    "folder", "wait", "cluster", "poll_s",
)
CLUSTERS = ("slurm", "local", "debug")
SUBMITTED = ".submitted.json"
#: Error type recorded for a run whose job ended without recording it.
JOB_LOST = "JobLost"
#: Scheduler states of a job that may still record its run.
ACTIVE_STATES = frozenset({
    "PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "COMPLETING",
    "SUSPENDED", "RESIZING", "READY", "SIGNALING", "STAGE_OUT",
})
#: How often (seconds) a waiting sweep forces a scheduler query for jobs without a result.
FORCE_CHECK_EVERY_S = 60.0


def run_planned_job(
    spec: RunSpec, catalogue_path: Path | None, store_root: Path, run_fn: str = RUN_ONE_PLANNED
) -> dict[str, Any]:
    """What every array task runs: one planned run, always leaving a record in the store.

    Errors outside the run itself (e.g. the dataset cannot be loaded on the node) are
    recorded as a ``failed`` run instead of failing the job.

    Args:
        spec: the run.
        catalogue_path: the sweep's datasets.yaml (``None``: the default catalogue).
        store_root: the suite's run store.
        run_fn: ``"module:function"`` with the signature of
            :func:`~medfairx.runner.executors.run_one_planned` (tests replace it).

    Returns:
        The run's record (``run_id``, ``status``, ``duration_s``, ``error``, ...).
    """
    t0 = time.perf_counter()
    started = _now()
    try:
        from medfairx.specs import resolve_target

        result: dict[str, Any] = resolve_target(run_fn)(spec, catalogue_path, Path(store_root))
        return result
    except Exception as exc:  # noqa: BLE001 - recorded, so the sweep can report it
        return record_lost_run(
            spec, Path(store_root), error_type=type(exc).__name__, message=str(exc),
            traceback=traceback.format_exc(), started=started, duration_s=time.perf_counter() - t0,
        )


def _require_submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise ConfigError(
            "The slurm executor needs the submitit package: `pip install submitit` "
            "(or use --executor local)."
        ) from None
    return submitit


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"--executor-option {name}={value!r} must be true or false.")


def _positive(value: Any, name: str, kind: type = int) -> Any:
    try:
        out = kind(value)
    except (TypeError, ValueError):
        out = None
    if out is None or out <= 0:
        raise ConfigError(f"--executor-option {name}={value!r} must be a positive number.")
    return out


# --- the record of submitted jobs --------------------------------------------------------


@dataclass(frozen=True)
class Submission:
    """One submitted run: ``run_id`` went to ``job_id`` on ``cluster`` (logs in ``folder``)."""

    run_id: str
    job_id: str
    cluster: str
    folder: str
    submitted: str

    def to_dict(self) -> dict[str, str]:
        """JSON form (without the run id, which is the key)."""
        return {"job_id": self.job_id, "cluster": self.cluster, "folder": self.folder, "submitted": self.submitted}


def load_submitted(store_root: Path) -> dict[str, Submission]:
    """``run_id → Submission`` from ``<store>/.submitted.json`` (empty if absent or unreadable)."""
    try:
        data = json.loads((Path(store_root) / SUBMITTED).read_text())
        return {rid: Submission(rid, str(e["job_id"]), e["cluster"], e["folder"], e["submitted"])
                for rid, e in data.get("runs", {}).items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def save_submitted(store_root: Path, submitted: dict[str, Submission]) -> Path:
    """Atomically write ``<store>/.submitted.json``."""
    path = Path(store_root) / SUBMITTED
    atomic_write_json(path, {"runs": {rid: s.to_dict() for rid, s in sorted(submitted.items())}})
    return path


def _local_pid_alive(job_id: str) -> bool:
    """Whether a submitit ``local`` job (its controller's pid) is still running."""
    try:
        pid = int(job_id)
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError, PermissionError, OverflowError):
        return False
    proc = Path(f"/proc/{pid}")
    if proc.exists():
        try:
            if "submitit" not in (proc / "cmdline").read_bytes().decode(errors="replace"):
                return False  # the pid was reused by another program
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            return state not in ("Z", "X")
        except OSError:
            return False
    return True


def job_state(sub: Submission) -> str:
    """The scheduler's state of a submitted job, upper case (``UNKNOWN`` if it is not known).

    ``local`` jobs are ``RUNNING`` while their controller process lives; ``debug`` jobs only
    exist inside the process that submitted them.
    """
    if sub.cluster == "local":
        return "RUNNING" if _local_pid_alive(sub.job_id) else "UNKNOWN"
    if sub.cluster == "slurm":
        submitit = _require_submitit()
        try:
            job = submitit.SlurmJob(folder=sub.folder, job_id=sub.job_id)
            return str(job.watcher.get_state(sub.job_id, mode="force")).upper().split()[0]
        except Exception:  # noqa: BLE001 - no sacct, unknown id: treat as lost
            return "UNKNOWN"
    return "UNKNOWN"


# --- the executor ---------------------------------------------------------------------


@dataclass
class _Tracked:
    spec: RunSpec
    sub: Submission
    job: Any = None  # the submitit Job when submitted by this process


class SlurmExecutor:
    """Submit a sweep as a submitit array job (Slurm, or submitit's local/debug clusters).

    Args:
        jobs: ``--jobs``; the array's parallelism when ``array_parallelism`` is not given.
        partition: Slurm partition.
        gpus_per_job: GPUs per run (``gpus_per_node``).
        cpus_per_task: CPU cores per run.
        time: time limit per run, minutes (default 60).
        mem_gb: memory per run, GB.
        array_parallelism: most runs at once (default: ``jobs`` if > 1, else 256).
        folder: submitit's folder for job pickles and logs (default ``<store>/.submitit``).
        wait: wait for the jobs (default) or return after submitting.
        cluster: ``"slurm"``, ``"local"`` or ``"debug"``.
        poll_s: seconds between state checks while waiting.
        run_fn: ``"module:function"`` every task calls (tests replace it).
        **slurm_options: further submitit options with a ``slurm_`` prefix (e.g.
            ``slurm_account``, ``slurm_qos``), passed through.

    Raises:
        ConfigError: invalid option values, or submitit is not installed.
    """

    def __init__(
        self,
        jobs: int = 1,
        *,
        partition: str | None = None,
        gpus_per_job: int = 0,
        cpus_per_task: int | None = None,
        time: float = 60,
        mem_gb: float | None = None,
        array_parallelism: int | None = None,
        folder: str | Path | None = None,
        wait: bool | str = True,
        cluster: str = "slurm",
        poll_s: float | None = None,
        run_fn: str = RUN_ONE_PLANNED,
        **slurm_options: Any,
    ) -> None:
        _require_submitit()
        if cluster not in CLUSTERS:
            raise ConfigError(f"--executor-option cluster={cluster!r} is not one of {', '.join(CLUSTERS)}.")
        self.cluster = cluster
        self.wait = _bool(wait, "wait")
        if cluster == "debug" and not self.wait:
            raise ConfigError("cluster=debug runs jobs inside this process; it cannot use wait=false.")
        self.folder = Path(folder) if folder else None
        self.run_fn = run_fn
        parallel = array_parallelism if array_parallelism is not None else (jobs if int(jobs) > 1 else 256)
        params: dict[str, Any] = {
            "timeout_min": int(max(1, round(_positive(time, "time", float)))),
            "gpus_per_node": int(gpus_per_job or 0),
            "slurm_array_parallelism": _positive(parallel, "array_parallelism"),
        }
        if partition:
            params["slurm_partition"] = str(partition)
        if cpus_per_task is not None:
            params["cpus_per_task"] = _positive(cpus_per_task, "cpus_per_task")
        if mem_gb is not None:
            params["mem_gb"] = _positive(mem_gb, "mem_gb", float)
        params.update(slurm_options)
        self.parameters = params
        self.poll_s = float(poll_s) if poll_s is not None else (10.0 if cluster == "slurm" else 0.5)

    def _executor(self, folder: Path, suite: str) -> Any:
        submitit = _require_submitit()
        ex = submitit.AutoExecutor(folder=folder, cluster=self.cluster)
        try:
            ex.update_parameters(name=f"medfairx-{suite}", **self.parameters)
        except (NameError, AssertionError, ValueError) as exc:
            raise ConfigError(f"Invalid slurm executor option: {exc}") from None
        return ex

    def run(self, job: SweepJob, echo: Echo) -> SweepResult:
        """Submit (or resume) the sweep; wait for it unless ``wait=false``."""
        result = SweepResult()
        if not job.runs:
            return result
        root = Path(job.store_root).resolve()  # jobs may start in another directory
        folder = (self.folder or root / ".submitit").resolve()
        submitted = load_submitted(root)
        tracked: list[_Tracked] = []
        todo: list[RunSpec] = []
        for spec in job.runs:
            sub = submitted.get(spec.run_id)
            if sub is None:
                todo.append(spec)
                continue
            state = job_state(sub)
            if state in ACTIVE_STATES:
                handle = None
                if sub.cluster == "slurm":  # submitit's watcher batches the sacct queries
                    handle = _require_submitit().SlurmJob(folder=sub.folder, job_id=sub.job_id)
                tracked.append(_Tracked(spec, sub, handle))
            else:
                echo(f"  resubmitting lost run {spec.run_id} (job {sub.job_id}: {state})")
                todo.append(spec)
        if tracked:
            echo(f"{len(tracked)} runs still queued or running from an earlier submission "
                 f"(jobs {_ids(t.sub.job_id for t in tracked)}); not resubmitted")
        if todo:
            ex = self._executor(folder, todo[0].suite)
            n = len(todo)
            jobs = ex.map_array(run_planned_job, todo, [job.catalogue_path] * n, [root] * n, [self.run_fn] * n)
            now = _now()
            for spec, j in zip(todo, jobs, strict=False):
                sub = Submission(spec.run_id, str(j.job_id), self.cluster, str(folder), now)
                submitted[spec.run_id] = sub
                tracked.append(_Tracked(spec, sub, j))
            path = save_submitted(root, submitted)
            echo(f"submitted {len(todo)} runs to {self.cluster} (job ids {_ids(str(j.job_id) for j in jobs)}); "
                 f"logs in {folder}; job ids saved in {path}")
        if not self.wait:
            echo("not waiting (wait=false): run the same `medfairx bench` command again later to "
                 "collect finished runs and resubmit lost ones")
            result.pending = [t.spec.run_id for t in tracked]
            return result
        self._wait(tracked, root, result, echo)
        return result

    def _wait(self, tracked: list[_Tracked], root: Path, result: SweepResult, echo: Echo) -> None:
        store = RunStore(root)
        pending = list(tracked)
        total, finished = len(pending), 0
        last_force = time.monotonic()
        while pending:
            force = time.monotonic() - last_force >= FORCE_CHECK_EVERY_S
            last_force = time.monotonic() if force else last_force
            still = []
            for t in pending:
                if self._active(t, force):
                    still.append(t)
                    continue
                finished += 1
                echo(f"[{finished}/{total}] {describe_run(t.spec)} (job {t.sub.job_id})")
                report_record(self._outcome(t, store, root), root, result, echo)
            pending = still
            if pending:
                time.sleep(self.poll_s)

    @staticmethod
    def _active(t: _Tracked, force: bool) -> bool:
        if t.job is None:
            return job_state(t.sub) in ACTIVE_STATES
        try:
            return not t.job.done(force_check=force)
        except Exception:  # noqa: BLE001 - a scheduler hiccup: look again next time
            return True

    @staticmethod
    def _outcome(t: _Tracked, store: RunStore, root: Path) -> dict[str, Any]:
        """The run's record from the store, or a ``failed`` one when the job did not write it."""
        rec = store.record(t.spec.run_id)
        if rec and rec.get("status") in ("ok", "failed") and str(rec.get("finished", "")) >= t.sub.submitted:
            return rec
        detail, where = "", t.sub.folder
        if t.job is not None:
            where = str(t.job.paths.stderr)
            detail = f" (state {_safe_state(t.job)})"
            if t.job.paths.result_pickle.exists():  # else exception() waits for it to appear
                exc = _safe_exception(t.job)
                if exc is not None:
                    detail += f": {type(exc).__name__}: {_last_line(str(exc))}"
        message = (
            f"job {t.sub.job_id} ({t.sub.cluster}) ended without recording run {t.spec.run_id}"
            f"{detail}. Check its log ({where}); rerun `medfairx bench` to resubmit it."
        )
        return record_lost_run(t.spec, root, error_type=JOB_LOST, message=message, started=t.sub.submitted)


def _safe_state(job: Any) -> str:
    try:
        return str(job.state)
    except Exception:  # noqa: BLE001 - describing a failure must not fail
        return "UNKNOWN"


def _safe_exception(job: Any) -> BaseException | None:
    try:
        result: BaseException | None = job.exception()
        return result
    except Exception as err:  # noqa: BLE001 - describing a failure must not fail
        return err


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


def _ids(ids: Sequence[str] | Any, limit: int = 8) -> str:
    ids = list(ids)
    shown = ", ".join(ids[:limit])
    return shown + (f" ... ({len(ids)} in all)" if len(ids) > limit else "")
