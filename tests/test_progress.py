"""Sweep progress: ETA arithmetic, plain lines for pipes and CI, a live bar on a terminal."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from medfairx.contracts import RunSpec
from medfairx.runner.executors import SweepJob
from medfairx.runner.progress import (
    LiveDisplay,
    PlainDisplay,
    SweepState,
    format_seconds,
    make_display,
)

REPO = Path(__file__).resolve().parents[1]
MEDFAIRX = Path(sys.executable).parent / "medfairx"
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # anything but \t and \n
SUITE = """\
version: 1
include: [embedded]
suites:
  tiny:
    datasets: {synthetic_cls: [group]}
    methods: [erm, groupdro]
    seeds: [0]
    params: test
    backbones: {classification: tiny_cnn}
    recipe: {epochs: 2, batch_size: 32, max_steps_per_epoch: 1}
"""

FAKE = textwrap.dedent(
    '''
    import os, time
    from medfairx.store import RunStore

    def run(spec, catalogue_path, store_root, *, datasets=None, echo=None, progress=None):
        for epoch in (1, 2):
            if echo:
                echo(f"{spec.run_id} epoch {epoch} " + "x" * 3000)  # long lines, both workers at once
            if progress:
                progress(spec.method, epoch, 2)
            time.sleep(0.05)
        rec = {"run_id": spec.run_id, "status": "ok", "duration_s": 1.0 + spec.seed, "epochs_trained": 2,
               "selected_epoch": 2, "error": None}
        RunStore(store_root).write_run(spec.run_id, rec)
        return rec
    '''
)


def test_eta_is_the_mean_finished_duration_times_runs_left_over_workers() -> None:
    state = SweepState()
    assert state.eta() is None
    for kind, data in [("planned", {"reused": 2}), ("sweep", {"total": 7, "workers": 2}),
                       ("run_finished", {"worker": "w1", "status": "ok", "seconds": 10.0}),
                       ("run_finished", {"worker": "w2", "status": "failed", "seconds": 20.0})]:
        state.update(kind, data)
    assert state.eta() == pytest.approx(15.0 * 5 / 2)
    assert state.summary() == "2/7 runs · 1 failed · 2 reused · eta 38s"  # 37.5 s
    assert format_seconds(75) == "1m15s" and format_seconds(3725) == "1h02m"


def test_make_display_is_plain_off_a_terminal_and_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("CI", raising=False)
    assert type(make_display(stream=io.StringIO())) is PlainDisplay
    assert type(make_display(stream=Tty())) is LiveDisplay
    assert make_display(stream=Tty(), quiet=True).quiet
    monkeypatch.setenv("CI", "true")
    assert type(make_display(stream=Tty())) is PlainDisplay


def test_two_workers_write_whole_clean_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medfairx.runner.parallel import ParallelExecutor

    (tmp_path / "medfairx_fake_progress.py").write_text(FAKE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), str(REPO), os.environ.get("PYTHONPATH", "")]))
    runs = [RunSpec(suite="t", method="fake", dataset="toy", seed=s, train_grouping=None, groupings=("g",))
            for s in range(4)]
    out = io.StringIO()
    display = PlainDisplay(out)
    ParallelExecutor(2, ["cpu"], threads_per_worker=1, run_fn="medfairx_fake_progress:run").run(
        SweepJob(None, tmp_path / "runs" / "t", runs, verbose=True), display)
    text = out.getvalue()
    assert not CONTROL.search(text)
    lines = text.splitlines()
    patterns = [r"running 4 runs in 2 worker processes \(w1:cpu, w2:cpu\)", r"  start fake · toy · all groupings · seed \d on w\d:cpu",
                r"    \[w\d:cpu\] fake-toy-all-s\d-\w+ epoch [12] x{3000}", r"\[\d/4\] fake · toy · all groupings · seed \d \(w\d:cpu\)",
                r"      ok in \d\.\ds \(epochs 2, kept 2\)", r"      progress: \d/4 runs · 0 failed · 0 reused · eta \w+"]
    bad = [ln[:80] for ln in lines if not any(re.fullmatch(p, ln) for p in patterns)]
    assert not bad, bad
    assert sum(ln.startswith("      progress: ") for ln in lines) == 4
    assert lines[-1] == "      progress: 4/4 runs · 0 failed · 0 reused · eta 0s"
    assert sorted(display.state.durations) == [1.0, 2.0, 3.0, 4.0]


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("progress") / "datasets.yaml"
    path.write_text(SUITE)
    return path


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["MEDFAIRX_TRACKING"] = "none"
    return env


def test_piped_bench_prints_one_clean_line_per_event_and_quiet_prints_the_summary(catalogue: Path) -> None:
    args = [str(MEDFAIRX), "bench", "--config", str(catalogue), "--suite", "tiny", "--no-report",
            "--out", str(catalogue.parent / "runs")]
    piped = subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=600, check=True)
    assert not CONTROL.search(piped.stdout), repr(piped.stdout)
    lines = piped.stdout.splitlines()
    assert "[1/2] erm · synthetic_cls · all groupings · seed 0" in lines
    assert [ln.split(" · eta ")[0] for ln in lines if "progress:" in ln] == [
        "      progress: 1/2 runs · 0 failed · 0 reused", "      progress: 2/2 runs · 0 failed · 0 reused"]
    quiet = subprocess.run([*args, "--quiet"], capture_output=True, text=True, env=_env(), timeout=600, check=True)
    assert quiet.stdout.splitlines() == ["done in " + quiet.stdout.split("done in ", 1)[1].split(":")[0]
                                         + ": 0 ran, 2 reused, 0 failed, 0 pending"]


def test_terminal_bench_shows_a_live_bar_with_eta(catalogue: Path) -> None:
    args = [str(MEDFAIRX), "bench", "--config", str(catalogue), "--suite", "tiny", "--no-report",
            "--out", str(catalogue.parent / "runs-tty")]
    master, slave = pty.openpty()  # a fresh pty reports 0 rows and columns: the display must cope
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=_env(), close_fds=True)
    os.close(slave)
    out, deadline = b"", time.monotonic() + 600
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    assert proc.wait(timeout=60) == 0
    text = out.decode("utf-8", "replace")
    assert "\r" in text.replace("\r\n", "")  # redrawn in place
    assert re.search(r"1/2 runs · 0 failed · 0 reused · eta \d+s", text)
    assert "w1: erm · synthetic_cls · all groupings · seed 0 · epoch 1/2" in text
    assert "done in " in text


def test_several_sweeps_of_one_bench_add_up() -> None:
    state = SweepState()  # e.g. the suite's runs, then a search's trials, then its tuned runs
    for kind, data in [("sweep", {"total": 2, "workers": 2}),
                       ("run_finished", {"worker": "w1", "status": "ok", "seconds": 4.0}),
                       ("run_finished", {"worker": "w2", "status": "ok", "seconds": 4.0}),
                       ("sweep", {"total": 3, "workers": 2}),
                       ("run_finished", {"worker": "w1", "status": "ok", "seconds": 4.0})]:
        state.update(kind, data)
    assert state.summary() == "3/5 runs · 0 failed · 0 reused · eta 4s"
