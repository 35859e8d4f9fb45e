"""``check_plugin``: run every check on everything a plugin registered.

Plugin-level checks (item ``plugin:<name>``):

* ``check_plugin_loaded``: the host recorded no load error for it;
* ``check_hookimpls_match_hookspecs``: every ``@hookimpl`` names a hookspec and takes
  only arguments the spec offers (a typo such as ``register_methdos`` fails);
* ``check_entrypoint_import_is_light``: importing its module, in a fresh interpreter,
  does not import torch, monai or POT (``ot``);
* ``check_plugin_registers_something``.

Then each registered item gets its kind's checks. Expected failures come from the
``expected_failed_checks`` argument, ``{"<kind>:<name>": {check: reason}}``, merged with
the same mapping in the plugin module's ``MEDFAIRX_EXPECTED_FAILED_CHECKS`` attribute.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from medfairx import hookspecs
from medfairx.errors import ConfigError
from medfairx.testing._run import Check, OnFail, fail, run_checks
from medfairx.testing.report import CheckReport, CheckResult, SkipCheck

if TYPE_CHECKING:
    from medfairx.plugins import PluginHost, PluginInfo

HEAVY_MODULES: tuple[str, ...] = ("torch", "monai", "ot")
EXPECTED_ATTR = "MEDFAIRX_EXPECTED_FAILED_CHECKS"
KINDS_WITH_CHECKS: tuple[str, ...] = ("methods", "datasets", "groupings", "metrics", "reporters")


@dataclass
class PluginSubject:
    """A loaded (or failed) plugin: its host record and module object."""

    info: PluginInfo
    module: object | None
    host: PluginHost

    @property
    def label(self) -> str:
        """How messages name the plugin."""
        dist = f", distribution {self.info.dist} {self.info.version or ''}".rstrip() if self.info.dist else ""
        return f"plugin {self.info.name!r} (module {self.info.module}{dist})"

    def __str__(self) -> str:
        return self.label

    @property
    def module_name(self) -> str:
        """The importable module of the entry point (``pkg.mod`` of ``pkg.mod:obj``)."""
        return self.info.module.partition(":")[0]


def _hookspec_names() -> dict[str, Any]:
    marker = f"{hookspecs.hookspec.project_name}_spec"
    return {n: f for n, f in vars(hookspecs).items() if callable(f) and hasattr(f, marker)}


def check_plugin_loaded(s: PluginSubject) -> None:
    """The host loaded the plugin without recording an error."""
    fail(not s.info.errors, f"{s.label} had load error(s): " + " | ".join(s.info.errors))


def check_hookimpls_match_hookspecs(s: PluginSubject) -> None:
    """Every hookimpl implements a known hookspec with arguments the spec provides."""
    if s.module is None:
        raise SkipCheck("skipped: the plugin module could not be imported")
    specs = _hookspec_names()
    impl_marker = f"{hookspecs.hookimpl.project_name}_impl"
    for attr in dir(s.module):
        fn = getattr(s.module, attr, None)
        if not callable(fn):
            continue
        opts = getattr(fn, impl_marker, None)
        if not isinstance(opts, dict):
            continue
        name = opts.get("specname") or attr
        fail(
            name in specs,
            f"{s.label}: hookimpl {attr!r} matches no hookspec; known hooks: {', '.join(sorted(specs))}. "
            "Check the spelling.",
        )
        spec_args = set(inspect.signature(specs[name]).parameters)
        impl_args = [p for p in inspect.signature(fn).parameters if p != "self"]
        extra = [a for a in impl_args if a not in spec_args]
        fail(not extra, f"{s.label}: hookimpl {attr!r} takes argument(s) {extra} that hook {name!r} does not provide "
                        f"({sorted(spec_args)}).")


def check_entrypoint_import_is_light(s: PluginSubject) -> None:
    """Importing the plugin's module in a fresh interpreter imports none of torch, monai, ot."""
    mod = s.module_name
    try:
        found = importlib.util.find_spec(mod)
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise SkipCheck(f"skipped: module {mod!r} is not importable by name")
    heavy = import_footprint(mod)
    fail(
        not heavy,
        f"{s.label}: importing {mod} imports {heavy}; keep the entry-point module light (register lazy "
        "'pkg.module:Class' targets and import heavy libraries inside functions).",
    )


def import_footprint(module: str, heavy: tuple[str, ...] = HEAVY_MODULES) -> list[str]:
    """Which of ``heavy`` are in ``sys.modules`` after importing ``module`` in a subprocess."""
    code = (
        "import importlib, json, sys\n"
        "importlib.import_module(sys.argv[1])\n"
        "print(json.dumps(sorted(m for m in sys.argv[2:] if m in sys.modules)))\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    proc = subprocess.run(
        [sys.executable, "-c", code, module, *heavy], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise AssertionError(f"importing {module} in a fresh interpreter failed: {tail}")
    return list(json.loads(proc.stdout.strip().splitlines()[-1]))


def check_plugin_registers_something(s: PluginSubject) -> None:
    """The plugin registers at least one item or implements at least one hook."""
    if s.info.errors:
        raise SkipCheck("skipped: the plugin failed to load (see check_plugin_loaded)")
    fail(bool(s.info.registered) or bool(s.info.hooks), f"{s.label} implements no hook and registers nothing.")


PLUGIN_CHECKS: tuple[Check, ...] = (
    Check("check_plugin_loaded", check_plugin_loaded),
    Check("check_hookimpls_match_hookspecs", check_hookimpls_match_hookspecs),
    Check("check_entrypoint_import_is_light", check_entrypoint_import_is_light),
    Check("check_plugin_registers_something", check_plugin_registers_something),
)
"""Plugin-level checks in run order."""


# --- items without a dedicated suite ------------------------------------------------------


@dataclass
class SpecSubject:
    """Any registered spec (backbones, selection strategies)."""

    kind: str
    spec: Any

    @property
    def label(self) -> str:
        """How messages name the item."""
        return f"{self.kind.rstrip('s')} {self.spec.name!r}"


def check_target_resolves(s: SpecSubject) -> None:
    """The spec's (lazy) target imports and is callable."""
    try:
        target = s.spec.load()
    except Exception as exc:
        raise AssertionError(f"{s.label}: target {s.spec.target!r} does not import: {type(exc).__name__}: {exc}") from exc
    fail(callable(target), f"{s.label}: target {s.spec.target!r} is not callable.")


SPEC_CHECKS: tuple[Check, ...] = (Check("check_target_resolves", check_target_resolves),)


def check_claim_is_well_formed(s: SpecSubject) -> None:
    """A claim (plain data, no target) compares its method with others on registered metrics."""
    from medfairx.plugins import get_host

    claim = s.spec
    fail(bool(claim.comparisons), f"{s.label}: has no comparisons; a claim needs at least one.")
    known = set(get_host().registry("metrics").names())
    unknown = sorted({c.metric for c in claim.comparisons} - known)
    fail(not unknown, f"{s.label}: compares unregistered metric(s) {unknown}; see `medfairx list metrics`.")
    fail(all(c.baseline != claim.method for c in claim.comparisons),
         f"{s.label}: compares method {claim.method!r} with itself.")


CLAIM_CHECKS: tuple[Check, ...] = (Check("check_claim_is_well_formed", check_claim_is_well_formed),)


# --- driver -------------------------------------------------------------------------------


def _resolve(name_or_module: str | ModuleType | object, host: PluginHost | None) -> tuple[PluginHost, list[PluginInfo]]:
    from medfairx.plugins import get_host, make_plugin_host

    if not isinstance(name_or_module, str):
        mod_name = getattr(name_or_module, "__name__", None)
        if host is not None:
            for info in host.plugins.values():
                if host.modules().get(info.name) is name_or_module:
                    return host, [info]
        host = make_plugin_host(entrypoints=False, extra=(name_or_module,))
        infos = [i for i in host.plugins.values() if i.name == mod_name]
        return host, infos
    host = host or get_host()
    infos = [i for i in host.plugins.values() if name_or_module in (i.name, i.dist, i.module, i.module.partition(":")[0])]
    if infos:
        return host, infos
    try:
        module = importlib.import_module(name_or_module)
    except ImportError:
        known = sorted({i.name for i in host.plugins.values()} | {i.dist for i in host.plugins.values() if i.dist})
        raise ConfigError(
            f"No plugin called {name_or_module!r}: not an entry-point plugin, distribution or importable module. "
            f"Known plugins: {', '.join(known) or '(none)'}. See `medfairx plugins`."
        ) from None
    return _resolve(module, None)


def _expected_for(subject: PluginSubject, given: dict[str, dict[str, str]] | None) -> dict[str, dict[str, str]]:
    declared = getattr(subject.module, EXPECTED_ATTR, None) if subject.module is not None else None
    merged: dict[str, dict[str, str]] = {}
    for source in (declared or {}, given or {}):
        for key, checks in source.items():
            merged.setdefault(key, {}).update(checks)
    return merged


def item_report(
    kind: str,
    spec: Any,
    *,
    level: str = "api",
    expected_failed_checks: dict[str, str] | None = None,
    catalogue: Any = None,
    plugin: str = "",
) -> CheckReport:
    """Run the checks of ``kind`` on one registered ``spec`` (never raises on failure)."""
    from medfairx.testing import (
        checks_dataset,
        checks_grouping,
        checks_method,
        checks_metric,
        checks_reporter,
    )

    item = f"{kind}:{spec.name}"
    common: dict[str, Any] = dict(item=item, kind=kind, plugin=plugin, expected_failed_checks=expected_failed_checks, on_fail="report")
    try:
        if kind == "methods":
            subject = checks_method.method_subject(spec, level)
            return run_checks(subject, checks_method.method_checks(subject), level=level, **common)
        if kind == "datasets":
            subj = checks_dataset.dataset_subject(spec, catalogue) if catalogue is not None else checks_dataset.dataset_subject(spec)
            return run_checks(subj, checks_dataset.DATASET_CHECKS, level=level, **common)
        if kind == "groupings":
            return run_checks(checks_grouping.grouping_subject(spec), checks_grouping.GROUPING_CHECKS, level=level, **common)
        if kind == "metrics":
            return run_checks(checks_metric.metric_subject(spec), checks_metric.METRIC_CHECKS, level=level, **common)
        if kind == "reporters":
            reporter = checks_reporter.reporter_subject(spec)
            try:
                return run_checks(reporter, checks_reporter.REPORTER_CHECKS, level=level, **common)
            finally:
                reporter.cleanup()
        checks = CLAIM_CHECKS if kind == "claims" else SPEC_CHECKS
        return run_checks(SpecSubject(kind, spec), checks, level=level, **common)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. a lazy target that does not import
        message = f"{item} could not be loaded for checking: {type(exc).__name__}: {exc}"
        return CheckReport([CheckResult(item, "check_loads", "failed", message, 0.0, kind, plugin)])


def check_plugin(
    name_or_module: str | ModuleType | object,
    host: PluginHost | None = None,
    *,
    level: str = "api",
    expected_failed_checks: dict[str, dict[str, str]] | None = None,
    catalogue: Any = None,
    on_fail: OnFail = "report",
) -> CheckReport:
    """Run every conformance check on a plugin and on everything it registered.

    Args:
        name_or_module: an entry-point plugin name, a distribution name (all its entry
            points), a built-in plugin name (``medfairx.metrics``), an importable module
            name, or a module object (loaded into a fresh host without entry points).
        host: the plugin host to read; default the process-wide one.
        level: ``"api"`` (fast) or ``"full"`` (adds slower method checks and 3D).
        expected_failed_checks: ``{"<kind>:<name>": {check: reason}}``.
        catalogue: a catalogue (or its path) used to load dataset adapters' data.
        on_fail: ``"report"`` (default) returns the report; ``"raise"`` raises
            :class:`~medfairx.testing.report.ConformanceError` if a check failed.

    Returns:
        A :class:`CheckReport` with one row per (item, check).
    """
    host, infos = _resolve(name_or_module, host)
    if not infos:
        raise ConfigError(f"The plugin host has no plugin for {name_or_module!r}; see `medfairx plugins`.")
    report = CheckReport()
    for info in infos:
        report.extend(_check_one_plugin(info, host, level=level, expected=expected_failed_checks, catalogue=catalogue))
    from medfairx.testing._run import SUITE_VERSION

    report.suite_version = SUITE_VERSION
    if on_fail == "raise":
        report.raise_if_failed()
    return report


def check_all_plugins(host: PluginHost | None = None, *, level: str = "api", catalogue: Any = None) -> CheckReport:
    """:func:`check_plugin` on every plugin of ``host`` (default: the process-wide one)."""
    from medfairx.plugins import get_host
    from medfairx.testing._run import SUITE_VERSION

    host = host or get_host()
    report = CheckReport(suite_version=SUITE_VERSION)
    for info in list(host.plugins.values()):
        report.extend(_check_one_plugin(info, host, level=level, expected=None, catalogue=catalogue))
    return report


def _check_one_plugin(info: PluginInfo, host: PluginHost, *, level: str, expected: dict[str, dict[str, str]] | None,
                      catalogue: Any) -> CheckReport:
    subject = PluginSubject(info, host.modules().get(info.name), host)
    merged = _expected_for(subject, expected)
    report = run_checks(
        subject, PLUGIN_CHECKS, item=f"plugin:{info.name}", kind="plugin", plugin=info.name,
        expected_failed_checks=merged.get(f"plugin:{info.name}"), on_fail="report",
    )
    for kind, names in sorted(info.registered.items()):
        reg = host.registry(kind)
        for name in names:
            spec = reg.get(name)
            report.extend(
                item_report(kind, spec, level=level, expected_failed_checks=merged.get(f"{kind}:{name}"),
                            catalogue=catalogue, plugin=info.name)
            )
    return report
