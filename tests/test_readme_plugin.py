"""The README's third-party plugin example, installed exactly as written, works end to end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILE_BLOCK = re.compile(r"^`(medfairx-focal/[^`]+)`\n```[a-z]*\n(.*?)^```", re.M | re.S)


def test_readme_plugin_is_discovered_and_conforms(tmp_path: Path) -> None:
    files = FILE_BLOCK.findall((ROOT / "README.md").read_text())
    assert {name for name, _ in files} == {
        "medfairx-focal/pyproject.toml",
        "medfairx-focal/medfairx_focal/__init__.py",
        "medfairx-focal/medfairx_focal/method.py",
    }
    for name, body in files:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    site = tmp_path / "site"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--target", str(site), str(tmp_path / "medfairx-focal")],
        capture_output=True, text=True, timeout=300,
    )
    assert pip.returncode == 0, pip.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDFAIRX_")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "medfairx.cli", *args], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=600)

    listed = cli("list", "methods", "foc*", "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert row["name"] == "focal" and row["plugin"] == "medfairx-focal" and "focal loss" in row["summary"]
    check = cli("check", "focal")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "failed" not in check.stdout.lower().replace("0 failed", "")
