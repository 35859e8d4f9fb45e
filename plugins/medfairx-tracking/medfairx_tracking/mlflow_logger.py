"""MLflow logger: one MLflow run per medfairx run, in a local SQLite store unless told otherwise.

The tracking URI is ``$MLFLOW_TRACKING_URI`` when set (a server, ``databricks``, another
database), else ``sqlite:///<run store>/mlflow.db`` with artefacts in
``<run store>.mlflow-artifacts/`` beside the store (not inside it: the copies of ``run.json``
would otherwise be read as runs of the store); no server is needed. The experiment is
``$MLFLOW_EXPERIMENT_NAME`` or ``medfairx/<suite>``. Worker processes that share a store
create its database one at a time (a lock file in the store). The trials and tuned runs of a
hyper-parameter search (``runs/<suite>/search/trials|tuned``) are logged in their suite's
database, in the experiment ``medfairx/<suite>/search/<trials|tuned>`` (a new SQLite database
costs seconds of schema migrations; one per suite is enough).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from medfairx_tracking.base import (
    Logger,
    epoch_scalars,
    final_test_scalars,
    flat_params,
)

#: MLflow's limit on a parameter value's length.
MAX_PARAM = 6000
_QUIET = ("mlflow.store.db.utils", "mlflow.tracking.fluent", "alembic", "alembic.runtime.migration")


def default_uri(store: Path) -> str:
    """The embedded default: a SQLite file in the run store."""
    return f"sqlite:///{store.resolve() / 'mlflow.db'}"


def artifact_root(store: Path) -> Path:
    """Where the default store keeps artefacts: ``<store>.mlflow-artifacts`` beside the run store."""
    store = store.resolve()
    return store.parent / f"{store.name}.mlflow-artifacts"


def tracking_store(run_dir: Path) -> tuple[Path, str]:
    """The run store whose database logs the run in ``run_dir``, and the sub-store's path in it
    (``""``, or ``search/trials`` / ``search/tuned`` for a search's runs, logged in the suite's)."""
    from medfairx.store import SEARCH_DIR, SEARCH_STORES

    store = Path(run_dir).parent
    if store.name in SEARCH_STORES and store.parent.name == SEARCH_DIR:
        return store.parent.parent, f"{SEARCH_DIR}/{store.name}"
    return store, ""


@contextmanager
def store_lock(store: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<store>/.mlflow.lock`` (POSIX; elsewhere no lock).

    Two workers creating the SQLite tables at once would corrupt the database.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    store.mkdir(parents=True, exist_ok=True)
    with open(store / ".mlflow.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class MlflowLogger(Logger):
    """Params at start, validation metrics per epoch, test metrics and files at the end."""

    name = "mlflow"
    hint = ("Unset MLFLOW_TRACKING_URI to use the local SQLite store under the run store, or start the "
            "server it names; MLFLOW_HTTP_REQUEST_MAX_RETRIES / _TIMEOUT bound the wait for a server.")

    def __init__(self) -> None:
        super().__init__()
        self._clients: dict[str, Any] = {}
        self._open: dict[str, tuple[Any, str, list[int]]] = {}

    def _client(self, store: Path) -> tuple[Any, str, bool]:
        uri = os.environ.get("MLFLOW_TRACKING_URI") or default_uri(store)
        if uri not in self._clients:
            for name in _QUIET:  # table creation and migrations log at INFO on every new store
                logging.getLogger(name).setLevel(logging.WARNING)
            from mlflow.tracking import MlflowClient

            self._clients[uri] = MlflowClient(tracking_uri=uri)
        return self._clients[uri], uri, not os.environ.get("MLFLOW_TRACKING_URI")

    def start(self, run: Any, run_dir: Path) -> None:
        from mlflow.entities import Param

        store, sub = tracking_store(run_dir)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "/".join(p for p in ("medfairx", run.suite, sub) if p)
        with store_lock(store):  # the first use creates (migrates) the database: one process at a time
            client, _, local = self._client(store)
            exp = client.get_experiment_by_name(name)
            if exp is not None:
                exp_id = exp.experiment_id
            else:
                exp_id = client.create_experiment(name, artifact_location=artifact_root(store).as_uri() if local else None)
        tags = {"medfairx.run_id": run.run_id, "medfairx.method": run.method, "medfairx.dataset": run.dataset,
                "medfairx.seed": str(run.seed), "medfairx.train_grouping": run.train_grouping or "none",
                "medfairx.store": sub or "."}
        mlrun = client.create_run(exp_id, run_name=run.run_id, tags=tags)
        params = [Param(k, v[:MAX_PARAM]) for k, v in sorted(flat_params(run).items())]
        for i in range(0, len(params), 100):
            client.log_batch(mlrun.info.run_id, params=params[i:i + 100])
        self._open[run.run_id] = (client, mlrun.info.run_id, [0])

    def epoch(self, run: Any, epoch: int, metrics: dict[str, Any]) -> None:
        if run.run_id not in self._open:
            return
        from mlflow.entities import Metric

        client, mlrun_id, step = self._open[run.run_id]
        step[0] += 1  # one step per epoch over all stages (a stage restarts its epoch count)
        now = int(time.time() * 1000)
        client.log_batch(mlrun_id, metrics=[Metric(k, v, now, step[0]) for k, v in epoch_scalars(metrics).items()])

    def finish(self, run: Any, record: dict[str, Any], run_dir: Path) -> None:
        if run.run_id not in self._open:
            return
        from mlflow.entities import Metric

        from medfairx.store import LOG, PREDICTIONS, RUN_JSON

        client, mlrun_id, step = self._open.pop(run.run_id)
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step[0]) for k, v in final_test_scalars(run, record, run_dir).items()]
        if isinstance(record.get("duration_s"), (int, float)):
            metrics.append(Metric("duration_s", float(record["duration_s"]), now, step[0]))
        for i in range(0, len(metrics), 500):
            client.log_batch(mlrun_id, metrics=metrics[i:i + 500])
        for name in (RUN_JSON, PREDICTIONS, LOG):
            if (run_dir / name).is_file():
                client.log_artifact(mlrun_id, str(run_dir / name))
        client.set_terminated(mlrun_id, status="FINISHED" if record.get("status") == "ok" else "FAILED")

    def abort(self) -> None:
        self._open.clear()
