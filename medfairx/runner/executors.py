"""Executors run a list of planned runs. ``local`` runs them one after another in this
process; others (several local processes, Slurm) are registered through the
``register_executors`` hook and chosen with ``medfairx bench --executor``.

An executor only needs the :class:`SweepJob` to rebuild everything in another process:
the catalogue path, the store folder and the run specs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from medfairx.contracts import RunSpec
from medfairx.plugins import PluginHost
from medfairx.runner.execute import Echo, SweepResult, _now, execute_run
from medfairx.runner.progress import emit
from medfairx.store import RunStore


@dataclass
class SweepJob:
    """What every worker needs: where the catalogue and the store are, and what to run."""

    catalogue_path: Path | None
    store_root: Path
    runs: list[RunSpec]
    verbose: bool = False
    options: dict[str, Any] = field(default_factory=dict)


class Executor(Protocol):
    """Runs a sweep; records every run in the store; returns what happened."""

    def run(self, job: SweepJob, echo: Echo) -> SweepResult:
        """Execute ``job.runs`` (finished runs were already filtered out)."""
        ...

#: Lazy target of :func:`run_one_planned`, what process and cluster workers call per run
#: (tests point workers at a fake instead).
RUN_ONE_PLANNED = "medfairx.runner.executors:run_one_planned"


def run_one_planned(spec: RunSpec, catalogue_path: Path | None, store_root: Path, *,
                    datasets: dict[str, Any] | None = None, echo: Echo | None = None,
                    host: PluginHost | None = None, progress: Any = None) -> dict[str, Any]:
    """Execute one planned run, loading its dataset if not given (worker entry point).

    ``progress(stage, epoch, total)`` is called after every epoch, if given.
    """
    from medfairx.config import load_catalogue
    from medfairx.data import load_dataset
    from medfairx.plugins import get_host

    host = host or get_host()
    cache = datasets if datasets is not None else {}
    # the training dataset, then its external test sets (medfairx.runner.external), each as the
    # planning process prepared it: under a frozen protocol, its cached features
    wanted = [(spec.dataset, spec.protocol.get("embeddings"))]
    wanted += [(info["dataset"], info.get("embeddings")) for info in spec.external.values()]
    for name, embeddings in wanted:
        if name in cache:
            continue
        with warnings.catch_warnings():  # the planning process loaded it too and showed its warnings
            warnings.simplefilter("ignore")
            catalogue = load_catalogue(catalogue_path)
            cache[name] = load_dataset(catalogue, name)
            if embeddings:
                from medfairx.runner.protocols import dataset_for_run

                cache[name] = dataset_for_run(cache[name], {**spec.protocol, "embeddings": embeddings},
                                              catalogue.cache_path)
    external = {info["dataset"]: cache[info["dataset"]] for info in spec.external.values()}
    method_spec = host.registry("methods").get(spec.method)
    return execute_run(spec, cache[spec.dataset], method_spec, RunStore(store_root), echo=echo, hook=host.pm.hook,
                       progress=progress, external=external)


def describe_run(spec: RunSpec) -> str:
    """One-line description of a run for progress messages."""
    return f"{spec.method} · {spec.dataset} · {spec.train_grouping or 'all groupings'} · seed {spec.seed}"


def report_record(rec: dict[str, Any], store_root: Path, result: SweepResult, echo: Echo, worker: str = "w1") -> None:
    """Echo one finished run and file it under done or failed (and tell a display, see :func:`emit`)."""
    if rec["status"] == "ok":
        result.done.append(rec["run_id"])
        echo(f"      ok in {rec['duration_s']:.1f}s (epochs {rec.get('epochs_trained')}, kept {rec.get('selected_epoch')})")
    else:
        result.failed.append(rec["run_id"])
        err = rec["error"]
        echo(f"      FAILED: {err['type']}: {err['message']}  (see {store_root / rec['run_id'] / 'log.txt'})")
    emit(echo, "run_finished", worker=worker, status=rec["status"], seconds=rec.get("duration_s"))


def record_lost_run(
    spec: RunSpec,
    store_root: Path,
    *,
    error_type: str,
    message: str,
    traceback: str = "",
    started: str | None = None,
    device: str | None = None,
    duration_s: float = 0.0,
) -> dict[str, Any]:
    """Write a ``failed`` ``run.json`` for a run whose worker could not record it itself.

    Used when a worker process died (signal, ``os._exit``, out of memory) or a job was
    lost; the next ``medfairx bench`` retries the run since it is not finished.

    Returns:
        The record written (what :func:`report_record` expects).
    """
    from medfairx.version import __version__

    now = _now()
    record: dict[str, Any] = {
        **spec.to_dict(),
        "status": "failed",
        "device": device or spec.device,
        "medfairx_version": __version__,
        "started": started or now,
        "finished": now,
        "duration_s": round(float(duration_s), 3),
        "error": {"type": error_type, "message": message, "traceback": traceback},
    }
    RunStore(store_root).write_run(spec.run_id, record)
    return record


class LocalExecutor:
    """Sequential execution in this process (datasets loaded once and shared)."""

    def __init__(self, datasets: dict[str, Any] | None = None, host: PluginHost | None = None) -> None:
        self.datasets = datasets or {}
        self.host = host

    def run(self, job: SweepJob, echo: Echo) -> SweepResult:
        """Run every planned run in order; a failure is recorded and the sweep goes on."""
        result = SweepResult()
        store = RunStore(job.store_root)
        emit(echo, "sweep", total=len(job.runs), workers=1)

        def progress(stage: str, epoch: int, total: int) -> None:
            emit(echo, "epoch", worker="w1", stage=stage, epoch=epoch, total=total)

        for i, spec in enumerate(job.runs, 1):
            if store.is_finished(spec.run_id):  # finished meanwhile by another process
                result.skipped.append(spec.run_id)
                continue
            echo(f"[{i}/{len(job.runs)}] {describe_run(spec)}")
            emit(echo, "run_started", worker="w1", run=describe_run(spec))
            rec = run_one_planned(spec, job.catalogue_path, job.store_root, datasets=self.datasets,
                                  echo=echo if job.verbose else None, host=self.host, progress=progress)
            report_record(rec, job.store_root, result, echo)
        return result
