"""Every hook works through a plugin, is tested here, and is documented in the README."""

from __future__ import annotations

import inspect
import re
import types
from pathlib import Path

import click

from medfairx import hookimpl, hookspecs
from medfairx.plugins import make_plugin_host
from medfairx.specs import (
    BackboneSpec,
    DatasetCard,
    DatasetSpec,
    ExecutorSpec,
    GroupingSpec,
    MethodSpec,
    MetricSpec,
    ReporterSpec,
    SelectionStrategySpec,
)

ROOT = Path(__file__).resolve().parents[1]
HOOKS = sorted(n for n, f in vars(hookspecs).items() if inspect.isfunction(f) and hasattr(f, "medfairx_spec"))


def _host_with(hook_name: str, item: object):  # type: ignore[no-untyped-def]
    @hookimpl
    def impl(register):  # type: ignore[no-untyped-def]
        register(item)

    mod = types.ModuleType(f"plug_{hook_name}")
    setattr(mod, hook_name, impl)
    host = make_plugin_host(entrypoints=False, extra=(mod,))
    assert not [e for e in host.errors if e[0] == mod.__name__], host.errors
    return host


def test_hook_register_datasets() -> None:
    card = DatasetCard("classification", 2, ("sex",), "pid", "CC0", "cite", "https://example.org")
    host = _host_with("register_datasets", DatasetSpec("toy_ds", "json:loads", card))
    assert host.registry("datasets").get("toy_ds").card.license == "CC0"


def test_hook_register_groupings() -> None:
    host = _host_with("register_groupings", GroupingSpec("toy_sex", "json:loads", ("sex",)))
    assert host.registry("groupings").origin("toy_sex").plugin == "plug_register_groupings"


def test_hook_register_methods() -> None:
    host = _host_with("register_methods", MethodSpec("toy_method", "json:loads", summary="s", reference="r"))
    assert host.registry("methods").get("toy_method").summary == "s"


def test_hook_register_metrics() -> None:
    spec = MetricSpec("toy_metric", "json:loads", task="classification", kind="performance", higher_is_better=True)
    assert "toy_metric" in _host_with("register_metrics", spec).registry("metrics")


def test_hook_register_backbones() -> None:
    assert "toy_net" in _host_with("register_backbones", BackboneSpec("toy_net", "json:loads")).registry("backbones")


def test_hook_register_selection_strategies() -> None:
    spec = SelectionStrategySpec("toy_pick", "json:loads")
    assert "toy_pick" in _host_with("register_selection_strategies", spec).registry("selection_strategies")


def test_hook_register_reporters() -> None:
    assert "toy_rep" in _host_with("register_reporters", ReporterSpec("toy_rep", "json:loads")).registry("reporters")


def test_hook_register_executors() -> None:
    assert "toy_exec" in _host_with("register_executors", ExecutorSpec("toy_exec", "json:loads")).registry("executors")


def test_hook_register_commands() -> None:
    group = click.Group("t")

    @hookimpl
    def register_commands(cli):  # type: ignore[no-untyped-def]
        @cli.command("hello")
        def hello() -> None:
            click.echo("hi")

    mod = types.ModuleType("cmdplug")
    mod.register_commands = register_commands  # type: ignore[attr-defined]
    host = make_plugin_host(entrypoints=False, extra=(mod,))
    host.pm.hook.register_commands(cli=group)
    assert "hello" in group.commands


def test_hook_run_started() -> None:
    seen = []

    @hookimpl
    def run_started(run):  # type: ignore[no-untyped-def]
        seen.append(run)

    mod = types.ModuleType("obs")
    mod.run_started = run_started  # type: ignore[attr-defined]
    make_plugin_host(entrypoints=False, extra=(mod,)).pm.hook.run_started(run="r")
    assert seen == ["r"]


def test_hook_run_finished() -> None:
    seen = []

    @hookimpl
    def run_finished(run, record):  # type: ignore[no-untyped-def]
        seen.append((run, record["status"]))

    mod = types.ModuleType("obs2")
    mod.run_finished = run_finished  # type: ignore[attr-defined]
    make_plugin_host(entrypoints=False, extra=(mod,)).pm.hook.run_finished(run="r", record={"status": "failed"})
    assert seen == [("r", "failed")]


def test_every_hook_has_a_test() -> None:
    tested = {n[len("test_hook_"):] for n in globals() if n.startswith("test_hook_")}
    assert set(HOOKS) <= tested, f"hooks without a test_hook_<name>: {sorted(set(HOOKS) - tested)}"


def test_every_hook_is_documented_with_its_signature() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in HOOKS:
        args = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        assert re.search(rf"`{name}\({re.escape(args)}\)`", readme), f"README lacks `{name}({args})`"
