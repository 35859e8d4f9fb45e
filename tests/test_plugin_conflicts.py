"""Two plugins registering one name: no other item is lost, the outcome does not depend on
load order, every command warns, and the user chooses through an environment variable."""

from __future__ import annotations

import types
from importlib import metadata
from typing import Any

import pytest
from click.testing import CliRunner

from medfairx import MethodSpec, MethodTags, hookimpl
from medfairx import plugins as plugins_mod
from medfairx.errors import NameConflictError, PluginLoadError
from medfairx.plugins import make_plugin_host

IMPOSTOR_ERM = MethodSpec(name="erm", target="medfairx_baselines.groupdro:GroupDRO", tags=MethodTags(),
                          summary="Not the real ERM.")


def _impostor_module() -> types.ModuleType:
    mod = types.ModuleType("impostor_plugin")

    @hookimpl
    def register_methods(register):  # type: ignore[no-untyped-def]
        register(IMPOSTOR_ERM)

    mod.register_methods = register_methods  # type: ignore[attr-defined]
    return mod


class _FakeEntryPoint:
    """What the host reads from an entry point: name, value, dist (name, version), load()."""

    def __init__(self, name: str, dist: str, version: str, module: types.ModuleType) -> None:
        self.name, self.value, self._module = name, module.__name__, module
        self.dist = types.SimpleNamespace(name=dist, version=version)

    def load(self) -> types.ModuleType:
        return self._module


@pytest.fixture
def impostor(monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed plugin ``aaa_impostor`` (sorted, and so loaded, before ``baselines``)."""
    real = metadata.entry_points

    def entry_points(**kw: Any) -> list[Any]:
        eps = list(real(**kw))
        if kw.get("group") == plugins_mod.ENTRY_POINT_GROUP:
            eps.insert(0, _FakeEntryPoint("aaa_impostor", "aaa-impostor", "6.6.6", _impostor_module()))
        return eps

    monkeypatch.setattr(plugins_mod.metadata, "entry_points", entry_points)
    monkeypatch.setenv("MEDFAIRX_LOAD_PLUGINS", "baselines,aaa_impostor")
    for var in ("MEDFAIRX_STRICT_PLUGINS", "MEDFAIRX_PREFER_PLUGINS", "MEDFAIRX_DISABLE_PLUGINS"):
        monkeypatch.delenv(var, raising=False)


def test_conflict_keeps_every_other_method_and_uses_neither(impostor: None) -> None:
    host = make_plugin_host()
    methods = host.registry("methods")
    baselines = set(host.plugins["baselines"].registered["methods"]) - {"erm"}
    assert len(baselines) >= 8 and baselines <= set(methods.names())
    assert "erm" not in methods
    with pytest.raises(NameConflictError) as err:
        methods.get("erm")
    msg = str(err.value)
    assert "medfairx-baselines" in msg and "aaa-impostor" in msg and "MEDFAIRX_PREFER_PLUGINS" in msg
    assert not host.plugins["baselines"].errors  # the first-party plugin is not blamed
    assert host.plugins["baselines"].conflicts and host.plugins["aaa_impostor"].conflicts
    assert host.conflicts == [msg]


def test_conflict_outcome_does_not_depend_on_load_order(impostor: None, monkeypatch: pytest.MonkeyPatch) -> None:
    first = make_plugin_host()
    real = plugins_mod.metadata.entry_points
    monkeypatch.setattr(plugins_mod.metadata, "entry_points", lambda **kw: list(reversed(list(real(**kw)))))
    second = make_plugin_host()
    assert first.registry("methods").names() == second.registry("methods").names()
    assert first.conflicts == second.conflicts


def test_user_chooses_with_prefer_plugins(impostor: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDFAIRX_PREFER_PLUGINS", "medfairx-baselines")
    host = make_plugin_host()
    assert host.registry("methods").get("erm").target == "medfairx_baselines.erm:ERM"
    assert host.registry("methods").origin("erm").dist == "medfairx-baselines"
    assert not host.conflicts
    monkeypatch.setenv("MEDFAIRX_PREFER_PLUGINS", "aaa_impostor")
    assert make_plugin_host().registry("methods").origin("erm").plugin == "aaa_impostor"


def test_strict_mode_refuses_a_conflict(impostor: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDFAIRX_STRICT_PLUGINS", "1")
    with pytest.raises(PluginLoadError, match="aaa-impostor"):
        make_plugin_host()


def test_every_command_warns_and_plugins_lists_it(impostor: None) -> None:
    from medfairx.cli import cli
    from medfairx.plugins import set_host

    set_host(make_plugin_host())
    try:
        res = CliRunner().invoke(cli, ["plugins"])
    finally:
        set_host(None)
    assert res.exit_code == 0, res.output
    warning = [line for line in res.output.splitlines() if line.startswith("warning: Method 'erm'")]
    assert warning and "medfairx-baselines" in warning[0] and "aaa-impostor" in warning[0]
    assert "aaa_impostor  [aaa-impostor 6.6.6]  CONFLICT" in res.output
    assert "conflict: Method 'erm'" in res.output


def test_bench_refuses_the_conflicting_method_before_training(impostor: None) -> None:
    from medfairx.config import load_catalogue
    from medfairx.runner.bench import BenchOptions, prepare

    host = make_plugin_host()
    with pytest.raises(NameConflictError, match="aaa-impostor"):
        prepare(load_catalogue(), BenchOptions(suite="synthetic", methods=["erm"], params="test"), host, lambda _: None)


def test_leaderboard_shows_the_recorded_origin_of_each_method(tmp_path: Any) -> None:
    import re

    from medfairx.cli.report_cmd import method_info
    from medfairx.report.leaderboard import build_leaderboard
    from medfairx.report.sample import synthetic_results

    results = synthetic_results(suite="s", blocks=(("a", "sex"), ("b", "age")), methods={"erm": 0.0, "groupdro": 0.02},
                                seeds=(0,))
    records = [
        {"method": "erm", "versions": {"medfairx": "0.1.0", "plugin": "medfairx-baselines", "plugin_version": "0.1.0"}},
        {"method": "groupdro", "versions": {"medfairx": "0.1.0", "plugin": "medfairx-baselines", "plugin_version": "0.1.0"}},
        {"method": "groupdro", "versions": {"medfairx": "0.1.0", "plugin": "aaa-impostor", "plugin_version": "6.6.6"}},
    ]
    build_leaderboard(results, tmp_path, suite="s", methods=method_info(records))
    page = (tmp_path / "index.html").read_text()
    rows = dict(re.findall(r'<tr><td><a href="method-(\w+)\.html">.*?</td><td>([^<]*)</td></tr>', page))
    assert rows["erm"].strip() == "medfairx-baselines 0.1.0"
    assert "aaa-impostor 6.6.6" in rows["groupdro"] and "medfairx-baselines 0.1.0" in rows["groupdro"]
    assert "several plugins" in rows["groupdro"]
