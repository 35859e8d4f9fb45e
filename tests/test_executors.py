"""Executors: process-per-device local sweeps and submitit (local/debug clusters).

The tests point the workers at a fake run function (written to a temporary module) so
they check scheduling, isolation and resumption without training anything. The real-training
end-to-end checks (a 2-process CPU sweep equals a sequential one; kill and resume) are in
``test_resume.py``.
"""

from __future__ import annotations

import json
import os
import textwrap
import time
from pathlib import Path

import pytest

from medfairx.contracts import RunSpec
from medfairx.errors import ConfigError
from medfairx.runner.executors import LocalExecutor, SweepJob
from medfairx.store import RunStore

FAKE = textwrap.dedent(
    '''
    """Fake run function: behaviour chosen by spec.params["do"]."""
    import os, time
    from pathlib import Path
    import pandas as pd
    from medfairx.store import RunStore

    def run(spec, catalogue_path, store_root, *, datasets=None, echo=None):
        do = spec.params.get("do", "ok")
        if echo:
            echo(f"fake {spec.run_id} says hello")
        if do == "exit":
            os._exit(3)
        if do == "segv":
            import ctypes
            ctypes.string_at(0)
        if do == "raise":
            raise ValueError("dataset not found on this node")
        if do == "sleep":
            Path(store_root).mkdir(parents=True, exist_ok=True)
            (Path(store_root) / "sleeping.pid").write_text(str(os.getpid()))
            time.sleep(float(spec.params.get("s", 1.0)))
        rec = {
            "run_id": spec.run_id, "status": "ok", "duration_s": 0.0, "epochs_trained": 1,
            "selected_epoch": 1, "error": None, "pid": os.getpid(), "device": spec.device,
            "cvd": os.environ.get("CUDA_VISIBLE_DEVICES"), "omp": os.environ.get("OMP_NUM_THREADS"),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() + 1)),
        }
        RunStore(store_root).write_run(spec.run_id, rec, pd.DataFrame({"run_id": [spec.run_id], "score": [0.5]}))
        return rec
    '''
)


@pytest.fixture
def fake_fn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fake run function importable here, in spawned workers and in submitit jobs."""
    mod_dir = tmp_path / "fakemod"
    mod_dir.mkdir()
    (mod_dir / "medfairx_fake_run.py").write_text(FAKE)
    monkeypatch.syspath_prepend(str(mod_dir))
    root = str(Path(__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(mod_dir), root, os.environ.get("PYTHONPATH", "")]))
    return "medfairx_fake_run:run"


def _spec(seed: int, do: str = "ok", **extra: object) -> RunSpec:
    return RunSpec(suite="t", method="fake", dataset="toy", seed=seed, train_grouping=None,
                   groupings=("sex",), params={"do": do, **extra}, device="auto")


def _job(tmp_path: Path, runs: list[RunSpec], verbose: bool = False) -> SweepJob:
    return SweepJob(None, tmp_path / "runs" / "t", runs, verbose=verbose)


# --- slots ------------------------------------------------------------------------------


def test_plan_slots_maps_devices_to_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from medfairx.runner.parallel import plan_slots

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    slots = plan_slots(4, ["0", "cuda:1"], threads_per_worker=2)
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in slots] == ["0", "1", "0", "1"]
    assert {s.run_device for s in slots} == {"cuda"}
    assert slots[0].env["OMP_NUM_THREADS"] == "2"
    cpu = plan_slots(2, ["cpu"], threads_per_worker=0)
    assert [(s.run_device, s.env) for s in cpu] == [("cpu", {"CUDA_VISIBLE_DEVICES": ""})] * 2
    assert plan_slots(1, [], threads_per_worker=0)[0].run_device is None
    with pytest.raises(ConfigError, match="--devices entry 'gpu0'"):
        plan_slots(2, ["gpu0"])
    with pytest.raises(ConfigError, match="--jobs"):
        plan_slots(0, [])


def test_describe_exit_names_the_signal() -> None:
    from medfairx.runner.parallel import describe_exit

    assert "SIGSEGV" in describe_exit(-11) and "segmentation fault" in describe_exit(-11)
    assert "out-of-memory" in describe_exit(-9)
    assert "code 3" in describe_exit(3)


# --- factories --------------------------------------------------------------------------


def test_local_factory_chooses_sequential_or_processes() -> None:
    from medfairx.runner.launch import local_executor
    from medfairx.runner.parallel import ParallelExecutor

    assert isinstance(local_executor(jobs=1, devices=[]), LocalExecutor)
    par = local_executor(jobs=2, devices=["cpu", "cpu"], threads_per_worker=1)
    assert isinstance(par, ParallelExecutor) and len(par.slots) == 2
    assert len(local_executor(jobs=1, devices=["0", "1"]).slots) == 2
    with pytest.raises(ConfigError, match="Unknown --executor-option partition for executor 'local'"):
        local_executor(jobs=2, devices=[], partition="gpu")


def test_slurm_factory_checks_options() -> None:
    pytest.importorskip("submitit")
    from medfairx.runner.launch import slurm_executor
    from medfairx.runner.slurm import SlurmExecutor

    ex = slurm_executor(jobs=4, partition="gpu", gpus_per_job=1, time=30, wait="false", slurm_account="lab")
    assert isinstance(ex, SlurmExecutor) and not ex.wait
    assert ex.parameters["slurm_partition"] == "gpu" and ex.parameters["slurm_array_parallelism"] == 4
    assert ex.parameters["slurm_account"] == "lab" and ex.parameters["timeout_min"] == 30
    with pytest.raises(ConfigError, match="--devices does not apply"):
        slurm_executor(jobs=1, devices=["0"])
    with pytest.raises(ConfigError, match="Unknown --executor-option gpus for executor 'slurm'"):
        slurm_executor(gpus=1)
    with pytest.raises(ConfigError, match="cluster='pbs'"):
        slurm_executor(cluster="pbs")
    with pytest.raises(ConfigError, match="wait=false"):
        slurm_executor(cluster="debug", wait=False)
    with pytest.raises(ConfigError, match="time"):
        slurm_executor(time=-5)


def test_executors_are_registered() -> None:
    from medfairx.default_plugins import executors as plugin

    seen: dict[str, object] = {}
    plugin.register_executors(lambda spec: seen.__setitem__(spec.name, spec))
    assert set(seen) == {"local", "slurm"}
    from medfairx.runner import launch

    assert seen["local"].load() is launch.local_executor
    assert seen["slurm"].load() is launch.slurm_executor


# --- the process-per-device executor ------------------------------------------------------


def test_parallel_isolates_crashing_workers(tmp_path: Path, fake_fn: str) -> None:
    from medfairx.runner.parallel import WORKER_DIED, ParallelExecutor

    runs = [_spec(0), _spec(1, "segv"), _spec(2, "exit"), _spec(3, "raise"), _spec(4)]
    job = _job(tmp_path, runs, verbose=True)
    lines: list[str] = []
    ex = ParallelExecutor(2, ["cpu", "7"], threads_per_worker=1, run_fn=fake_fn)
    res = ex.run(job, lines.append)

    ids = {r.seed: r.run_id for r in runs}
    assert sorted(res.done) == sorted(ids[s] for s in (0, 4))
    assert sorted(res.failed) == sorted(ids[s] for s in (1, 2, 3))
    store = RunStore(job.store_root)
    segv, exited, raised = (store.record(ids[s]) for s in (1, 2, 3))
    assert segv["status"] == "failed" and segv["error"]["type"] == WORKER_DIED
    assert "SIGSEGV" in segv["error"]["message"] and ids[1] in segv["error"]["message"]
    assert exited["error"]["type"] == WORKER_DIED and "code 3" in exited["error"]["message"]
    assert raised["error"]["type"] == "ValueError" and "not found" in raised["error"]["message"]
    assert "Traceback" in raised["error"]["traceback"]
    oks = [store.record(ids[s]) for s in (0, 4)]
    assert all(store.is_finished(r["run_id"]) for r in oks)
    # each slot's environment reached its runs; more than one process did the work
    assert {(r["device"], r["cvd"]) for r in oks} <= {("cpu", ""), ("cuda", "7")}
    assert all(r["omp"] == "1" for r in oks)
    assert os.getpid() not in {r["pid"] for r in oks}
    # progress: one [i/N] line per run, in completion order, and worker logs forwarded
    progress = [ln for ln in lines if ln.startswith("[")]
    assert [ln.split("]")[0] for ln in progress] == [f"[{i}/5" for i in range(1, 6)]
    assert any("says hello" in ln for ln in lines)


def test_parallel_recycles_workers(tmp_path: Path, fake_fn: str) -> None:
    from medfairx.runner.parallel import ParallelExecutor

    runs = [_spec(i) for i in range(3)]
    job = _job(tmp_path, runs)
    res = ParallelExecutor(2, ["cpu"], max_runs_per_worker=1, run_fn=fake_fn).run(job, lambda _l: None)
    assert len(res.done) == 3
    pids = {RunStore(job.store_root).record(r.run_id)["pid"] for r in runs}
    assert len(pids) == 3  # a fresh process for every run


ORPHAN = """
import sys
from pathlib import Path
from medfairx.runner.executors import SweepJob
from medfairx.runner.parallel import ParallelExecutor
from medfairx.contracts import RunSpec
spec = RunSpec(suite="t", method="fake", dataset="toy", seed=0, train_grouping=None, groupings=(),
               params={"do": "sleep", "s": 60.0})
ParallelExecutor(1, ["cpu"], run_fn=sys.argv[2]).run(SweepJob(None, Path(sys.argv[1]), [spec]), print)
"""


def test_workers_exit_when_the_sweep_is_killed(tmp_path: Path, fake_fn: str) -> None:
    import subprocess
    import sys

    store = tmp_path / "runs" / "t"
    proc = subprocess.Popen([sys.executable, "-c", ORPHAN, str(store), fake_fn])
    pid_file = store / "sleeping.pid"
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and pid_file.read_text().strip()):  # written, not just created
            assert proc.poll() is None and time.monotonic() < deadline, "the worker never started its run"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    worker = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker), "the worker outlived the killed sweep"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def test_parallel_with_no_runs_starts_nothing(tmp_path: Path) -> None:
    from medfairx.runner.parallel import ParallelExecutor

    res = ParallelExecutor(2, ["cpu"], run_fn="no_such_module:run").run(_job(tmp_path, []), print)
    assert res.done == res.failed == []


# --- submitit ---------------------------------------------------------------------------


def _wait_finished(store: RunStore, run_ids: list[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(store.record(r) is not None for r in run_ids):
            return
        time.sleep(0.2)
    raise AssertionError(f"runs {run_ids} were not recorded within {timeout}s")


def test_slurm_local_cluster_waits_and_records_lost_jobs(tmp_path: Path, fake_fn: str) -> None:
    pytest.importorskip("submitit")
    from medfairx.runner.slurm import JOB_LOST, SlurmExecutor, load_submitted

    runs = [_spec(0), _spec(1, "exit"), _spec(2, "raise")]
    job = _job(tmp_path, runs)
    lines: list[str] = []
    res = SlurmExecutor(cluster="local", time=5, run_fn=fake_fn, poll_s=0.2).run(job, lines.append)
    assert res.done == [runs[0].run_id]
    assert sorted(res.failed) == sorted([runs[1].run_id, runs[2].run_id])
    store = RunStore(job.store_root)
    lost = store.record(runs[1].run_id)
    assert lost["error"]["type"] == JOB_LOST and "ended without recording" in lost["error"]["message"]
    assert store.record(runs[2].run_id)["error"]["type"] == "ValueError"
    assert set(load_submitted(job.store_root)) == {r.run_id for r in runs}
    assert any(ln.startswith("submitted 3 runs to local") for ln in lines)


def test_slurm_no_wait_then_resume(tmp_path: Path, fake_fn: str) -> None:
    pytest.importorskip("submitit")
    from medfairx.runner.slurm import (
        SUBMITTED,
        SlurmExecutor,
        Submission,
        load_submitted,
        save_submitted,
    )

    slow, quick, lost = _spec(0, "sleep", s=4.0), _spec(1), _spec(2)
    job = _job(tmp_path, [slow, quick])
    store = RunStore(job.store_root)
    ex = SlurmExecutor(cluster="local", time=5, wait=False, run_fn=fake_fn, poll_s=0.2)
    lines: list[str] = []
    res = ex.run(job, lines.append)
    assert res.done == res.failed == []
    saved = json.loads((job.store_root / SUBMITTED).read_text())["runs"]
    assert set(saved) == {slow.run_id, quick.run_id}
    first_ids = {rid: e["job_id"] for rid, e in saved.items()}
    assert any(first_ids[slow.run_id] in ln for ln in lines)
    _wait_finished(store, [quick.run_id])

    # a later bench: quick is finished (filtered out by the store check), slow is still
    # running (left alone), `lost` was submitted under an id that no longer exists
    subs = load_submitted(job.store_root)
    subs[lost.run_id] = Submission(lost.run_id, "999999999", "local", str(job.store_root / ".submitit"), "2000-01-01T00:00:00+00:00")
    save_submitted(job.store_root, subs)
    todo = [r for r in (slow, quick, lost) if not store.is_finished(r.run_id)]
    assert todo == [slow, lost]
    lines.clear()
    res2 = ex.run(_job(tmp_path, todo), lines.append)
    assert res2.done == []
    after = load_submitted(job.store_root)
    assert after[slow.run_id].job_id == first_ids[slow.run_id]  # not resubmitted
    assert after[lost.run_id].job_id != "999999999"  # resubmitted
    assert any("resubmitting lost run" in ln and lost.run_id in ln for ln in lines)
    assert any("still queued or running" in ln for ln in lines)

    # and a waiting bench collects both
    res3 = SlurmExecutor(cluster="local", time=5, run_fn=fake_fn, poll_s=0.2).run(_job(tmp_path, todo), print)
    assert sorted(res3.done) == sorted([slow.run_id, lost.run_id])
    assert all(store.is_finished(r.run_id) for r in (slow, quick, lost))


def test_slurm_debug_cluster_runs_in_process(tmp_path: Path, fake_fn: str) -> None:
    pytest.importorskip("submitit")
    from medfairx.runner.slurm import SlurmExecutor

    runs = [_spec(0), _spec(1, "raise")]
    res = SlurmExecutor(cluster="debug", run_fn=fake_fn).run(_job(tmp_path, runs), print)
    assert res.done == [runs[0].run_id] and res.failed == [runs[1].run_id]
    assert RunStore(tmp_path / "runs" / "t").record(runs[0].run_id)["pid"] == os.getpid()


def test_release_memory_collects_each_runs_cycles_and_freezes_the_survivors() -> None:
    import gc
    import weakref

    from medfairx.runner.execute import _release_memory

    class Node:
        def __init__(self) -> None:
            self.me = self  # a reference cycle: only the collector frees it

    try:
        for _ in range(2):  # the second run's cycle is collected after the first run froze the heap
            node = Node()
            ref = weakref.ref(node)
            del node
            assert ref() is not None
            _release_memory()
            assert ref() is None
            survivor = Node()
            _release_memory()
            assert gc.get_freeze_count() > 0
            assert not any(o is survivor for o in gc.get_objects(generation=2))  # frozen: no longer walked
            del survivor
    finally:
        gc.unfreeze()
