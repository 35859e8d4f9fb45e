"""Bad sweeps are refused before any training, one bench per store, and Ctrl-C stops cleanly.

* an empty catalogue, unknown method / backbone / hyper-parameter names, out-of-range
  numbers (command line and suite) and an absent CUDA device are errors before planning;
* a second ``medfairx bench`` on a store whose lock is held refuses, naming the holder, and
  a lock whose holder was killed with SIGKILL is free again;
* SIGINT to ``medfairx bench`` (sequential and ``--jobs 2``) exits 130 with one summary of
  what was saved and the command that resumes, no traceback, and the finished runs kept.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from medfairx.cli import cli
from medfairx.config import load_catalogue
from medfairx.errors import ConfigError
from tests.test_resume import CATALOGUE, _env

BAD_NAMES = CATALOGUE + """
  misspelt:
    datasets: {tiny_cls: [group]}
    methods: [erm, groupdor]
    params: test
    backbones: {classification: tiny_cnnn}
    method_params: {groupdro: {etaa: 0.1}, erm: {lr: 0.1}}
    device: cpu
"""


@pytest.fixture
def suite_dir(tmp_path: Path) -> Path:
    (tmp_path / "datasets.yaml").write_text(BAD_NAMES)
    return tmp_path


def _bench(tmp: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["bench", "--config", str(tmp / "datasets.yaml"), "--out", str(tmp / "runs"),
                                    "--no-report", *args])


def _trained(tmp: Path) -> list[Path]:
    return list((tmp / "runs").glob("*/*/run.json"))


@pytest.mark.parametrize("text", ["", "   \n\n", "# only a comment\n"])
def test_empty_catalogue_is_an_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "datasets.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="the catalogue is empty"):
        load_catalogue(path)
    res = CliRunner().invoke(cli, ["validate", str(path)])
    assert res.exit_code == 1 and "the catalogue is empty" in res.output and "OK" not in res.output


def test_unknown_names_are_listed_before_any_training(suite_dir: Path) -> None:
    res = _bench(suite_dir, "--suite", "misspelt")
    assert res.exit_code == 2, res.output
    (line,) = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
    assert "method 'groupdor' (did you mean 'groupdro'" in line
    assert "classification backbone 'tiny_cnnn' (did you mean 'tiny_cnn'" in line
    assert "hyper-parameter of groupdro 'etaa' (did you mean 'eta'" in line
    assert "hyper-parameter of erm 'lr' (it takes: recipe)" in line
    assert "loading dataset" not in res.output and not _trained(suite_dir)


@pytest.mark.parametrize("args", [("--jobs", "0"), ("--seeds", "-1"), ("--epochs", "0")])
def test_out_of_range_numbers_are_refused(suite_dir: Path, args: tuple[str, ...]) -> None:
    res = _bench(suite_dir, "--suite", "tiny", *args)
    assert res.exit_code == 2 and f"Invalid value for '{args[0]}'" in res.output, res.output
    assert not _trained(suite_dir)


@pytest.mark.parametrize("entry, message", [("seeds: [-1]", "greater than or equal to 0"),
                                            ("seeds: []", "at least 1 item"),
                                            ("recipe: {epochs: 0}", "epochs must be >= 1 (got 0)"),
                                            ("recipe: {batch_size: 0, lr: 0}", "batch_size must be >= 1")])
def test_out_of_range_suite_values_are_refused(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "datasets.yaml"
    path.write_text(CATALOGUE + f"  zero:\n    datasets: {{tiny_cls: [group]}}\n    {entry}\n")
    with pytest.raises(ConfigError, match=r"suites\.zero") as err:
        load_catalogue(path)
    assert message in str(err.value)


def test_cuda_without_cuda_is_refused_before_planning(suite_dir: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    res = _bench(suite_dir, "--suite", "tiny", "--device", "cuda")
    assert res.exit_code == 2 and "sees no CUDA GPU" in res.output, res.output
    assert "loading dataset" not in res.output and not _trained(suite_dir)


HOLD_LOCK = """
    import sys, time
    from medfairx.runner.lock import StoreLock

    StoreLock(sys.argv[1]).acquire()
    print("locked", flush=True)
    time.sleep(120)
"""


def test_second_bench_on_a_locked_store_refuses(suite_dir: Path) -> None:
    from medfairx.runner.lock import StoreBusyError, StoreLock

    store = suite_dir / "runs" / "tiny"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOLD_LOCK), str(store)], stdout=subprocess.PIPE,
                              text=True, env=_env())
    try:
        assert holder.stdout.readline().strip() == "locked"
        res = _bench(suite_dir, "--suite", "tiny")
        assert res.exit_code == 2, res.output
        assert f"Another `medfairx bench` (pid {holder.pid}) is running on {store}" in res.output
        assert "loading dataset" not in res.output and not _trained(suite_dir)
        holder.kill()  # SIGKILL: the kernel drops the lock, nothing is left stale
        holder.wait()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    with StoreLock(store):
        with pytest.raises(StoreBusyError, match=f"pid {os.getpid()}"):
            StoreLock(store).acquire()
    with StoreLock(store):  # released on exit
        pass


@pytest.mark.slow
@pytest.mark.parametrize("jobs", [("--jobs", "1"), ("--jobs", "2", "--devices", "cpu,cpu")], ids=["sequential", "jobs2"])
def test_ctrl_c_stops_with_a_summary_and_keeps_finished_runs(tmp_path: Path, jobs: tuple[str, ...]) -> None:
    (tmp_path / "datasets.yaml").write_text(CATALOGUE)
    store = tmp_path / "runs" / "tiny"
    args = ["bench", "--config", str(tmp_path / "datasets.yaml"), "--suite", "tiny", "--out", str(tmp_path / "runs"),
            "--no-report", "--seeds", "0", "1", "2", "3", "4", "5", "6", "7", *jobs]
    proc = subprocess.Popen([sys.executable, "-m", "medfairx.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=_env(), cwd=tmp_path, start_new_session=True,
                            # a terminal's Ctrl-C reaches a process whose SIGINT is not ignored; a parent
                            # that ignores it (a test worker, a background shell) would pass that on
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 240
        while not any(json.loads(p.read_text() or "{}").get("status") == "ok" for p in store.glob("*/run.json")):
            assert proc.poll() is None, "bench ended before a run finished:\n" + proc.stdout.read().decode()
            assert time.monotonic() < deadline, "no run finished within 240 s"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
        out = proc.communicate(timeout=60)[0].decode()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out
    kept = [p for p in store.glob("*/run.json") if json.loads(p.read_text())["status"] == "ok"]
    assert 1 <= len(kept) < 8
    assert f"interrupted: {len(kept)} run(s) finished in this sweep and are saved in {store}" in out
    assert f"To resume: medfairx {' '.join(args)}" in out
    assert not [p for p in store.glob("*/run.json") if json.loads(p.read_text())["status"] != "ok"], \
        "an interrupted run must not be recorded as a failure"
