"""End-to-end sweeps through ``python -m medfairx.cli bench`` on a tiny CPU suite.

* kill and resume: SIGKILL a sweep right after its first run finished, rerun it, and check
  that no finished run was redone, every run finished, every stored file is readable and
  no temporary file is left;
* ``--jobs 2 --devices cpu,cpu`` writes the same predictions as a sequential sweep (with one
  CPU thread per process on both sides: more threads change float sums in the last bits).

The killed sweep runs in a subprocess; the other sweeps run in this process through the CLI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.slow

CATALOGUE = """
version: 1
include: [embedded]
datasets:
  tiny_cls:
    adapter: synthetic
    description: "tiny 2D classification for end-to-end tests"
    task: classification
    image_size: 16
    split: {train: 0.6, val: 0.2, test: 0.2, seed: 0}
    options: {seed: 0, n_samples: 240, spatial_dims: 2, channels: 1}
    groupings:
      group: {column: group, description: "binary attribute"}
suites:
  tiny:
    description: "four tiny ERM runs"
    datasets: {tiny_cls: [group]}
    methods: [erm]
    seeds: [0, 1, 2, 3]
    params: test
    backbones: {classification: tiny_cnn}
    recipe: {epochs: 3, batch_size: 32}
    device: cpu
"""
ROOT = Path(__file__).resolve().parents[1]


def _command(tmp: Path, *extra: str, out: str = "runs") -> list[str]:
    return [sys.executable, "-m", "medfairx.cli", "bench", "--config", str(tmp / "datasets.yaml"), "--suite", "tiny",
            "--out", str(tmp / out), "--no-report", *extra]


def _env() -> dict[str, str]:
    # one CPU thread everywhere, so sweeps do the same float operations in the same order
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def _bench(tmp: Path, *extra: str, out: str = "runs") -> str:
    """``medfairx bench`` in this process (torch is imported once for the whole file)."""
    import torch
    from click.testing import CliRunner

    from medfairx.cli import cli

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the subprocesses and workers (see _env)
    try:
        res = CliRunner().invoke(cli, _command(tmp, *extra, out=out)[3:], catch_exceptions=False)
    finally:
        torch.set_num_threads(threads)
    assert res.exit_code == 0, res.output
    return res.output


@pytest.fixture
def suite_dir(tmp_path: Path) -> Path:
    (tmp_path / "datasets.yaml").write_text(CATALOGUE)
    return tmp_path


def _records(store: Path) -> dict[str, dict]:
    out = {}
    for path in store.glob("*/run.json"):
        try:
            out[path.parent.name] = json.loads(path.read_text())
        except ValueError:  # being written: not a finished run yet
            continue
    return out


def test_killed_sweep_resumes_without_redoing_runs(suite_dir: Path) -> None:
    store = suite_dir / "runs" / "tiny"
    proc = subprocess.Popen(_command(suite_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_env(),
                            cwd=suite_dir, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not any(r.get("status") == "ok" for r in _records(store).values()):
            assert proc.poll() is None, "bench ended before a run finished:\n" + proc.stdout.read().decode()
            assert time.monotonic() < deadline, "no run finished within 180 s"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = {rid: (path.read_bytes(), rec) for rid, rec in _records(store).items()
              if rec["status"] == "ok" for path in [store / rid / "run.json"]}
    assert 1 <= len(before) < 4, "the sweep must be killed half-way for this test to mean anything"

    out = _bench(suite_dir)
    assert f"{len(before)} already finished" in out
    after = _records(store)
    assert len(after) == 4 and all(r["status"] == "ok" for r in after.values())
    for rid, (raw, rec) in before.items():
        assert after[rid]["started"] == rec["started"], f"{rid} was redone"
        assert (store / rid / "run.json").read_bytes() == raw
    for path in store.rglob("*"):
        assert not path.name.endswith(".tmp"), f"temporary file left: {path}"
        if path.suffix == ".parquet":
            pq.read_table(path)
        elif path.suffix == ".json":
            json.loads(path.read_text())


def test_two_cpu_workers_match_sequential(suite_dir: Path) -> None:
    seeds = ("--seeds", "0", "--seeds", "1")
    _bench(suite_dir, *seeds, out="seq")
    par = _bench(suite_dir, *seeds, "--jobs", "2", "--devices", "cpu,cpu", "--executor-option",
                 "threads_per_worker=1", out="par")
    assert "2 worker processes" in par
    seq_files = sorted((suite_dir / "seq" / "tiny").glob("*/predictions.parquet"))
    par_files = sorted((suite_dir / "par" / "tiny").glob("*/predictions.parquet"))
    assert [p.parent.name for p in seq_files] == [p.parent.name for p in par_files] and len(seq_files) == 2
    for a, b in zip(seq_files, par_files, strict=False):
        pd.testing.assert_frame_equal(pd.read_parquet(a), pd.read_parquet(b), check_exact=True)
