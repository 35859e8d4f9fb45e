"""The leaderboard in a real browser: headless Chromium renders it, runs its JavaScript.

Needs the Debian package ``chromium`` (``/usr/bin/chromium``); CI installs it. The test
fails (it is never skipped) when the browser is missing.
"""

from __future__ import annotations

import html as html_lib
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medfairx.report.leaderboard import build_leaderboard
from medfairx.report.sample import synthetic_failures, synthetic_results

PWNED = "<script>document.documentElement.setAttribute('data-pwned','1')</script>"
METHODS = {"erm": 0.0, "groupdro": 0.02, f"x{PWNED}": 0.05, "oracle": 0.1}


def chromium() -> str:
    path = os.environ.get("MEDFAIRX_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        pytest.fail(
            "Headless Chromium not found (looked for `chromium` on PATH and /usr/bin/chromium). "
            "Install the Debian package `chromium` (apt-get install -y chromium) or set MEDFAIRX_CHROMIUM."
        )
    return path


def run_chromium(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--enable-logging=stderr", "--v=0", f"--user-data-dir={profile}",
        "--window-size=1280,2000", *extra, url,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, f"chromium exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc


def console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line and re.search(r"Uncaught|Error", line)]


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("browser") / "suite"
    results = synthetic_results(methods=METHODS, seeds=(0, 1), strategies=("overall", "worst_group"))
    failures = synthetic_failures([("groupdro", "ham", "sex", 1, "TrainingError", "NaN loss")])
    build_leaderboard(results, out, suite="browser", failures=failures,
                      methods={f"x{PWNED}": {"summary": PWNED}})
    return out / "index.html"


def test_index_renders_non_blank(board: Path, tmp_path: Path) -> None:
    png = tmp_path / "index.png"
    proc = run_chromium(board.as_uri(), tmp_path / "profile", f"--screenshot={png}")
    assert png.is_file(), proc.stderr[-2000:]
    img = np.asarray(Image.open(png).convert("RGB"))
    assert img.shape[:2] == (2000, 1280)
    packed = img.astype(np.int64) @ np.array([1 << 16, 1 << 8, 1])  # one int per pixel colour
    assert np.unique(packed).size > 50, "screenshot is (nearly) a single colour"
    std = float(img.astype(np.float32).std())
    assert std > 20, f"screenshot looks blank (pixel std {std:.1f})"
    assert not console_errors(proc.stderr), console_errors(proc.stderr)


def test_dom_tables_svg_and_javascript(board: Path, tmp_path: Path) -> None:
    proc = run_chromium(board.as_uri() + "#mfx-selftest", tmp_path / "profile", "--dump-dom")
    dom = proc.stdout
    assert not console_errors(proc.stderr), console_errors(proc.stderr)
    root = re.search(r"<html[^>]*>", dom)
    assert root is not None
    # sortable.js ran to the end without an error
    assert 'data-mfx-js="ok"' in root.group(0), root.group(0)
    # the method named <script>... was rendered as text and never executed
    assert "data-pwned=\"1\"" not in root.group(0)
    assert html_lib.escape(PWNED, quote=False) in dom
    assert dom.count("<table") >= 5 and dom.count("<svg") >= 6
    assert "sort-handle" in dom  # headers were wired for sorting
    # the self-test clicked the first column of the first sortable table twice (descending)
    order = re.search(r'data-mfx-selftest="([^"]*)"', root.group(0))
    assert order is not None, root.group(0)
    names = html_lib.unescape(order.group(1)).split("|")
    assert names == sorted(METHODS, key=str.lower, reverse=True)
    # the strategy selector hid the other strategy's section
    assert re.search(r'<section[^>]*data-strategy="worst_group"[^>]*hidden', dom)
    assert not re.search(r'<section[^>]*data-strategy="overall"[^>]*hidden', dom)


def test_block_page_renders(board: Path, tmp_path: Path) -> None:
    page = board.parent / "ham__sex.html"
    proc = run_chromium(page.as_uri(), tmp_path / "profile", "--dump-dom")
    assert 'data-mfx-js="ok"' in re.search(r"<html[^>]*>", proc.stdout).group(0)
    assert proc.stdout.count("<svg") >= 4 and "Fairness–utility trade-off" in proc.stdout
