"""A third-party plugin, as a user would hit it: packaged with a ``medfairx`` entry point,
pip-installed into a throwaway folder, and discovered in a fresh interpreter.

Three distributions are installed once per module:

* ``medfairx-toyplug`` (entry point ``toyplug``): a numpy-only method, which must be
  discovered with its distribution and version and pass ``check_plugin``;
* ``medfairx-toyplug-broken`` (``toyplug_broken``): raises on import;
* ``medfairx-toyplug-typo`` (``toyplug_typo``): implements ``register_methdos``.

The broken ones must be reported without crashing the host, turned into an error by
``MEDFAIRX_STRICT_PLUGINS=1`` and blocked by ``MEDFAIRX_DISABLE_PLUGINS``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

TOYPLUG = '''
"""A numpy-only medfairx method plugin (the smallest useful one)."""

from __future__ import annotations

import numpy as np

from medfairx import MethodTags, hookimpl
from medfairx.methods.base import Method


class MeanIntensity(Method):
    """Classifies by the distance of the mean image intensity to each class's mean."""

    name = "toyplug_mean"
    summary = "Nearest class mean of the image intensity (numpy)."
    tags = MethodTags(inputs=("images",))  # pixel intensities: not planned on frozen-encoder features

    def __init__(self, temperature: float = 1.0) -> None:
        self.temperature = temperature

    @classmethod
    def test_params(cls):
        return {"temperature": 0.5}

    def fit(self, train, val, ctx):
        x = train.images.reshape(len(train), -1).mean(1) / 255.0
        self.means_ = np.array([x[train.labels == k].mean() for k in range(ctx.num_classes)])
        self.fitted_ = True
        return self

    def predict_scores(self, data, ctx):
        self.check_fitted()
        x = data.images.reshape(len(data), -1).mean(1) / 255.0
        z = -((x[:, None] - self.means_[None]) ** 2) * 1000.0 / self.temperature
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    def state_dict(self):
        return {"means": self.means_.copy()}

    def load_state_dict(self, state, ctx):
        self.means_ = np.asarray(state["means"])
        self.fitted_ = True
        return self


@hookimpl
def register_methods(register):
    register(MeanIntensity)
'''

BROKEN = '''
raise ImportError("toyplug_broken needs a library that is not installed")
'''

TYPO = '''
from medfairx import hookimpl


@hookimpl
def register_methdos(register):
    pass
'''

PYPROJECT = """
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "{version}"
dependencies = ["medfairx"]

[project.entry-points.medfairx]
{ep} = "{module}"

[tool.setuptools]
py-modules = ["{module}"]
"""

PACKAGES: tuple[tuple[str, str, str, str, str], ...] = (
    ("medfairx-toyplug", "0.3.1", "toyplug", "medfairx_toyplug", TOYPLUG),
    ("medfairx-toyplug-broken", "0.0.1", "toyplug_broken", "medfairx_toyplug_broken", BROKEN),
    ("medfairx-toyplug-typo", "0.0.2", "toyplug_typo", "medfairx_toyplug_typo", TYPO),
)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three plugin distributions pip-installed into one --target folder."""
    base = tmp_path_factory.mktemp("plugins")
    dirs = []
    for dist, version, ep, module, code in PACKAGES:
        pkg = base / dist
        pkg.mkdir()
        (pkg / "pyproject.toml").write_text(PYPROJECT.format(dist=dist, version=version, ep=ep, module=module))
        (pkg / f"{module}.py").write_text(textwrap.dedent(code))
        dirs.append(str(pkg))
    target = base / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--target", str(target), *dirs],
        capture_output=True, text=True, check=False, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return target


def _env(site: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDFAIRX_")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env.update(extra)
    return env


def _python(site: Path, code: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=_env(site, **extra),
        timeout=300, check=False, cwd=site.parent,
    )


def _cli(site: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "medfairx.cli", *args], capture_output=True, text=True, env=_env(site, **extra),
        timeout=300, check=False, cwd=site.parent,
    )


HOST_SUMMARY = """
    import json
    from medfairx.plugins import make_plugin_host

    host = make_plugin_host()
    reg = host.registry("methods")
    out = {
        "plugins": {n: p.to_dict() for n, p in host.plugins.items() if not p.builtin},
        "methods": reg.names(),
        "origin": vars(reg.origin("toyplug_mean")) if "toyplug_mean" in reg else None,
    }
    print(json.dumps(out))
"""


def _summary(site: Path, **extra: str) -> dict[str, Any]:
    proc = _python(site, HOST_SUMMARY, **extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_method_is_discovered_through_its_entry_point(site: Path) -> None:
    out = _summary(site)
    assert "toyplug_mean" in out["methods"]
    assert out["origin"] == {"plugin": "toyplug", "dist": "medfairx-toyplug", "version": "0.3.1"}
    info = out["plugins"]["toyplug"]
    assert info["dist"] == "medfairx-toyplug" and info["version"] == "0.3.1"
    assert info["registered"] == {"methods": ["toyplug_mean"]} and not info["errors"]


def test_broken_plugins_are_reported_not_fatal(site: Path) -> None:
    out = _summary(site)
    broken = out["plugins"]["toyplug_broken"]
    assert any("failed to import" in e and "not installed" in e for e in broken["errors"])
    typo = out["plugins"]["toyplug_typo"]
    assert any("register_methdos" in e for e in typo["errors"])
    assert "toyplug_mean" in out["methods"]  # the good plugin still works


def test_strict_mode_turns_plugin_errors_into_an_error(site: Path) -> None:
    proc = _python(site, HOST_SUMMARY, MEDFAIRX_STRICT_PLUGINS="1")
    assert proc.returncode != 0
    assert "PluginLoadError" in proc.stderr and "toyplug_" in proc.stderr
    # strict with only the typo plugin loaded: the misspelled hook is the error
    proc = _python(site, HOST_SUMMARY, MEDFAIRX_STRICT_PLUGINS="1", MEDFAIRX_LOAD_PLUGINS="toyplug_typo")
    assert proc.returncode != 0 and "register_methdos" in proc.stderr


def test_disable_plugins_blocks_them(site: Path) -> None:
    out = _summary(site, MEDFAIRX_DISABLE_PLUGINS="toyplug_broken,medfairx-toyplug-typo")
    assert "toyplug_broken" not in out["plugins"] and "toyplug_typo" not in out["plugins"]
    proc = _python(site, HOST_SUMMARY, MEDFAIRX_STRICT_PLUGINS="1", MEDFAIRX_DISABLE_PLUGINS="toyplug_broken,toyplug_typo")
    assert proc.returncode == 0, proc.stderr


def test_check_plugin_passes_on_the_installed_plugin(site: Path) -> None:
    code = """
        import json
        from medfairx.testing import check_plugin

        report = check_plugin("medfairx-toyplug")  # by distribution name
        print(json.dumps(report.to_dict()))
    """
    proc = _python(site, code, MEDFAIRX_LOAD_PLUGINS="toyplug")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["passed"], [r for r in report["results"] if r["status"] == "failed"]
    items = {r["item"] for r in report["results"]}
    assert items == {"plugin:toyplug", "methods:toyplug_mean"}
    light = [r for r in report["results"] if r["check"] == "check_entrypoint_import_is_light"]
    assert light and light[0]["status"] == "passed"


def test_cli_check_and_list(site: Path) -> None:
    ok = _cli(site, "check", "toyplug", "--format", "json", MEDFAIRX_LOAD_PLUGINS="toyplug")
    assert ok.returncode == 0, ok.stderr + ok.stdout
    assert json.loads(ok.stdout)["passed"] is True
    bad = _cli(site, "check", "toyplug_typo", MEDFAIRX_LOAD_PLUGINS="toyplug_typo")
    assert bad.returncode == 1
    assert "check_hookimpls_match_hookspecs" in bad.stdout and "register_methdos" in bad.stdout
    listed = _cli(site, "list", "methods", "--json", MEDFAIRX_LOAD_PLUGINS="toyplug")
    assert listed.returncode == 0, listed.stderr
    assert "toyplug_mean" in listed.stdout and "medfairx-toyplug" in listed.stdout
