"""The plugin host: built-ins, guarded loading, duplicates, typos, env vars."""

from __future__ import annotations

import types

import pytest

from medfairx import hookimpl
from medfairx.errors import PluginLoadError
from medfairx.plugins import make_plugin_host
from medfairx.specs import MetricSpec


def _plugin(name: str, **hooks: object) -> types.ModuleType:
    mod = types.ModuleType(name)
    for k, v in hooks.items():
        setattr(mod, k, v)
    return mod


def _metric_plugin(name: str, metric: str, target: str) -> types.ModuleType:
    @hookimpl
    def register_metrics(register):  # type: ignore[no-untyped-def]
        register(MetricSpec(name=metric, target=target, task="classification", kind="performance", higher_is_better=True))

    return _plugin(name, register_metrics=register_metrics)


def test_builtins_register_through_the_same_hooks() -> None:
    host = make_plugin_host(entrypoints=False)
    builtin = [p for p in host.plugins.values() if p.builtin]
    assert builtin and all(not p.errors for p in builtin), [p.errors for p in builtin]
    assert "synthetic" in host.registry("datasets")
    assert "tiny_cnn" in host.registry("backbones")
    assert host.registry("datasets").origin("synthetic").dist == "medfairx"


def test_duplicate_from_another_plugin_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDFAIRX_STRICT_PLUGINS", raising=False)
    a = _metric_plugin("plug_a", "my_metric", "math:sqrt")
    b = _metric_plugin("plug_b", "my_metric", "math:floor")
    host = make_plugin_host(entrypoints=False, extra=(a, b))
    assert "my_metric" not in host.registry("metrics")  # neither wins by load order
    assert host.conflicts and "plug_a" in host.conflicts[0] and "plug_b" in host.conflicts[0]
    assert "Metric 'my_metric' is registered by several plugins" in host.plugins["plug_b"].conflicts[0]


def test_misspelled_hook_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDFAIRX_STRICT_PLUGINS", raising=False)

    @hookimpl
    def register_methdos(register):  # type: ignore[no-untyped-def]
        pass

    host = make_plugin_host(entrypoints=False, extra=(_plugin("typo", register_methdos=register_methdos),))
    (name, msg), = [e for e in host.errors if e[0] == "typo"]
    assert "unknown hook 'register_methdos'" in msg and "register_methods" in msg


def test_strict_mode_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDFAIRX_STRICT_PLUGINS", "1")

    @hookimpl
    def register_metrics(register):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    with pytest.raises(PluginLoadError, match="boom"):
        make_plugin_host(entrypoints=False, extra=(_plugin("bad", register_metrics=register_metrics),))


def test_wrong_spec_type_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDFAIRX_STRICT_PLUGINS", raising=False)

    @hookimpl
    def register_metrics(register):  # type: ignore[no-untyped-def]
        register("not a spec")

    host = make_plugin_host(entrypoints=False, extra=(_plugin("wrong", register_metrics=register_metrics),))
    assert any("expected MetricSpec" in m for p, m in host.errors if p == "wrong")


def test_observer_hooks_are_called() -> None:
    seen: list[str] = []

    @hookimpl
    def run_started(run):  # type: ignore[no-untyped-def]
        seen.append(f"start:{run}")

    @hookimpl
    def run_finished(run, record):  # type: ignore[no-untyped-def]
        seen.append(f"end:{run}:{record['status']}")

    host = make_plugin_host(entrypoints=False, extra=(_plugin("obs", run_started=run_started, run_finished=run_finished),))
    host.pm.hook.run_started(run="r1", run_dir=None)
    host.pm.hook.run_finished(run="r1", record={"status": "ok"}, run_dir=None)
    assert seen == ["start:r1", "end:r1:ok"]
