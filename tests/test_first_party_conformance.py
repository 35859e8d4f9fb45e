"""Every first-party plugin in plugins/ passes the conformance kit (what `medfairx check --all` runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medfairx.plugins import get_host
from medfairx.testing import check_plugin

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = sorted(p.name for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").is_file())


def test_every_first_party_plugin_is_installed() -> None:
    dists = {p.dist for p in get_host().plugins.values()}
    missing = [d for d in FIRST_PARTY if d not in dists]
    assert not missing, f"not installed (run `make install`): {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("dist", FIRST_PARTY)
def test_plugin_passes_the_kit(dist: str) -> None:
    report = check_plugin(dist, level="api")
    failures = [f"{r.check}: {r.message}" for r in report.results if r.status == "failed"]
    assert report.passed, f"{dist} fails the conformance kit:\n" + "\n".join(failures)
