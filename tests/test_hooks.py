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
    ClaimComparison,
    ClaimSpec,
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


def test_hook_register_claims() -> None:
    claim = ClaimSpec("toy_claim", "toy_method", "beats erm", (ClaimComparison("auc", "overall", "erm", "up"),))
    host = _host_with("register_claims", claim)
    assert host.registry("claims").get("toy_claim").methods == ("toy_method", "erm")


def test_registration_hooks_are_traced(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MEDFAIRX_TRACE_PLUGINS", "1")
    _host_with("register_claims", ClaimSpec("toy_claim", "m", "t", ()))
    err = capsys.readouterr().err
    for hook in ("register_metrics", "register_selection_strategies", "register_reporters", "register_claims"):
        assert f"{hook} [hook]" in err


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
    make_plugin_host(entrypoints=False, extra=(mod,)).pm.hook.run_started(run="r", run_dir=None)
    assert seen == ["r"]


def test_hook_run_finished() -> None:
    seen = []

    @hookimpl
    def run_finished(run, record):  # type: ignore[no-untyped-def]
        seen.append((run, record["status"]))

    mod = types.ModuleType("obs2")
    mod.run_finished = run_finished  # type: ignore[attr-defined]
    make_plugin_host(entrypoints=False, extra=(mod,)).pm.hook.run_finished(run="r", record={"status": "failed"},
                                                                         run_dir=None)
    assert seen == [("r", "failed")]


def test_hook_epoch_finished(tmp_path: Path) -> None:
    """A real sweep calls the three observers in order, with the run folder and per-epoch metrics."""
    from medfairx.config import load_catalogue
    from medfairx.runner.bench import BenchOptions, run_bench

    seen: list[tuple] = []

    @hookimpl
    def run_started(run, run_dir):  # type: ignore[no-untyped-def]
        seen.append(("start", run.run_id, run_dir.name))

    @hookimpl
    def epoch_finished(run, epoch, metrics):  # type: ignore[no-untyped-def]
        seen.append(("epoch", epoch, sorted(k for k in ("val_auc", "val_group_auc", "predictions") if k in metrics)))

    @hookimpl
    def run_finished(run, record, run_dir):  # type: ignore[no-untyped-def]
        seen.append(("finish", record["status"], (run_dir / "run.json").is_file()))

    mod = types.ModuleType("obs3")
    mod.run_started, mod.epoch_finished, mod.run_finished = run_started, epoch_finished, run_finished  # type: ignore[attr-defined]
    cfg = tmp_path / "datasets.yaml"
    cfg.write_text("version: 1\ninclude: [embedded]\nsuites:\n  t:\n    datasets: {synthetic_cls: [group]}\n"
                   "    methods: [erm]\n    seeds: [0]\n    params: test\n    backbones: {classification: tiny_cnn}\n"
                   "    recipe: {epochs: 2, batch_size: 32, max_steps_per_epoch: 1}\n")
    host = make_plugin_host(extra=(mod,))  # erm comes from the installed baselines plugin
    run_bench(load_catalogue(cfg), BenchOptions(suite="t", out=tmp_path / "runs"), host, lambda line: None)
    run_id = seen[0][1]
    assert seen == [("start", run_id, run_id), ("epoch", 1, ["val_auc"]), ("epoch", 2, ["val_auc"]),
                    ("finish", "ok", True)]  # erm trains without groups; predictions stay with the runner


def test_every_hook_has_a_test() -> None:
    tested = {n[len("test_hook_"):] for n in globals() if n.startswith("test_hook_")}
    assert set(HOOKS) <= tested, f"hooks without a test_hook_<name>: {sorted(set(HOOKS) - tested)}"


def test_every_hook_is_documented_with_its_signature() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in HOOKS:
        args = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        assert re.search(rf"`{name}\({re.escape(args)}\)`", readme), f"README lacks `{name}({args})`"
