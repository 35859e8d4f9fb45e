"""`import medfairx`, `--help`, `list` and `plugins` must not import torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import sys, runpy
sys.argv = {argv!r}
try:
    runpy.run_module("medfairx.cli", run_name="__main__")
except SystemExit as e:
    code = e.code
heavy = sorted(m for m in ("torch", "monai", "ot", "h5py", "matplotlib") if m in sys.modules)
print("HEAVY=" + ",".join(heavy))
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["medfairx", "--help"],
        ["medfairx", "plugins", "--all"],
        ["medfairx", "list", "methods"],
        ["medfairx", "list", "metrics", "auc*"],
        ["medfairx", "list", "datasets", "--json"],
        ["medfairx", "list", "groupings"],
    ],
)
def test_cheap_commands_do_not_import_torch(argv: list[str]) -> None:
    out = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True, check=True)
    heavy = out.stdout.strip().splitlines()[-1]
    assert heavy == "HEAVY=", f"{' '.join(argv)} imported {heavy}\n{out.stderr}"


def test_import_medfairx_is_light() -> None:
    code = "import medfairx, sys; medfairx.list_names('methods'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_list_methods_json_has_summaries() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "medfairx.cli", "list", "methods", "--json"], capture_output=True, text=True, check=True
    )
    rows = json.loads(out.stdout)
    names = {r["name"] for r in rows}
    assert {"erm", "groupdro"} <= names
    assert all(r["summary"] and r["reference"] for r in rows)


def test_unknown_method_suggests(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = subprocess.run(
        [sys.executable, "-m", "medfairx.cli", "bench", "--methods", "ermm", "--out", str(tmp_path), "--no-report"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "unknown items: method 'ermm' (did you mean 'erm'" in out.stderr
