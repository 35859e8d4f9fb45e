"""Plugin host: a guarded entry-point loader over pluggy, and the registries it fills.

Environment variables:

* ``MEDFAIRX_LOAD_PLUGINS=a,b`` loads only those entry-point plugins (``''``: none);
* ``MEDFAIRX_DISABLE_PLUGINS=a,b`` blocks plugins by entry-point or distribution name;
* ``MEDFAIRX_PREFER_PLUGINS=a,b`` resolves a name registered by several plugins in favour
  of the first of these (entry-point or distribution names) that registered it; without
  a choice such a name is registered by none of them, and every command warns;
* ``MEDFAIRX_STRICT_PLUGINS=1`` turns any load error into an exception;
* ``MEDFAIRX_TRACE_PLUGINS=1`` prints every hook call to stderr.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from medfairx import hookspecs
from medfairx.errors import MedfairxError, PluginLoadError
from medfairx.registry import Registry
from medfairx.specs import SPEC_TYPES, MethodSpec, Origin

ENTRY_POINT_GROUP = "medfairx"
DEFAULT_PLUGINS: tuple[str, ...] = (
    "medfairx.default_plugins.datasets",
    "medfairx.default_plugins.groupings",
    "medfairx.default_plugins.metrics",
    "medfairx.default_plugins.backbones",
    "medfairx.default_plugins.selection",
    "medfairx.default_plugins.reporters",
    "medfairx.default_plugins.executors",
)


@dataclass
class PluginInfo:
    """One loaded (or failed) plugin, as ``medfairx plugins`` shows it."""

    name: str
    module: str
    dist: str | None = None
    version: str | None = None
    builtin: bool = False
    hooks: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    @property
    def origin(self) -> Origin:
        """The :class:`Origin` recorded on everything this plugin registers."""
        return Origin(self.name, self.dist, self.version)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "name": self.name,
            "module": self.module,
            "dist": self.dist,
            "version": self.version,
            "builtin": self.builtin,
            "hooks": self.hooks,
            "registered": self.registered,
            "errors": self.errors,
            "conflicts": self.conflicts,
        }


def _env_list(var: str) -> list[str] | None:
    value = os.environ.get(var)
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _strict() -> bool:
    return os.environ.get("MEDFAIRX_STRICT_PLUGINS", "") not in ("", "0", "false", "no")


class PluginHost:
    """A plugin manager plus one :class:`Registry` per kind of item."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("medfairx")
        self.pm.add_hookspecs(hookspecs)
        self.registries: dict[str, Registry[Any]] = {k: Registry(k) for k in SPEC_TYPES}
        self.plugins: dict[str, PluginInfo] = {}
        self._modules: dict[str, object] = {}
        if os.environ.get("MEDFAIRX_TRACE_PLUGINS"):
            self.pm.trace.root.setwriter(sys.stderr.write)
            self.pm.enable_tracing()

    # -- loading ---------------------------------------------------------------------

    def add_plugin(self, plugin: object, info: PluginInfo) -> None:
        """Register one plugin object (module or instance) and collect its items."""
        if info.name in self.plugins:
            return
        self.plugins[info.name] = info
        try:
            self.pm.register(plugin, name=info.name)
        except Exception as exc:  # noqa: BLE001 - pluggy validation of a third-party plugin
            self._fail(info, f"could not be registered: {exc}")
            return
        self._modules[info.name] = plugin
        info.hooks = sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or [])
        self._check_unknown_hooks(plugin, info)
        self._collect(plugin, info)

    def _check_unknown_hooks(self, plugin: object, info: PluginInfo) -> None:
        """Report hookimpls with no matching hookspec (typos), like ``check_pending``."""
        known = {n for n in dir(hookspecs) if callable(getattr(hookspecs, n, None))}
        for attr in dir(plugin):
            opts = self.pm.parse_hookimpl_opts(plugin, attr)
            name = (opts.get("specname") if opts is not None else None) or attr
            if opts is not None and name not in known:
                self._fail(
                    info,
                    f"implements unknown hook {name!r}. Known hooks: "
                    f"{', '.join(sorted(k for k in known if not k.startswith(('hook', '_'))))}."
                    " Check the spelling of the function name.",
                )

    def _collect(self, plugin: object, info: PluginInfo) -> None:
        for hook_name, kind in hookspecs.REGISTRATION_HOOKS.items():
            if getattr(plugin, hook_name, None) is None or self.pm.parse_hookimpl_opts(plugin, hook_name) is None:
                continue

            def register(item: Any, _kind: str = kind, _hook: str = hook_name) -> None:
                if _kind == "methods" and isinstance(item, type):
                    item = MethodSpec.from_class(item)
                expected = SPEC_TYPES[_kind]
                if not isinstance(item, expected):
                    raise PluginLoadError(
                        f"{_hook} got {type(item).__name__}; expected {expected.__name__}"
                    )
                # a name another plugin also registers is held, never raised: the plugin's
                # other items stay, and resolve_conflicts() decides independently of load order
                self.registries[_kind].add(item, info.origin, hold_conflicts=True)
                info.registered.setdefault(_kind, []).append(item.name)

            try:
                self._own_hook(plugin, hook_name)(register=register)
            except MedfairxError as exc:
                self._fail(info, f"{hook_name}: {exc}")
            except Exception as exc:  # noqa: BLE001 - a plugin's bug must not crash the host
                self._fail(info, f"{hook_name} raised {type(exc).__name__}: {exc}")

    def _own_hook(self, plugin: object, hook_name: str) -> Any:
        """The hook ``hook_name`` restricted to ``plugin``'s implementation.

        Registration hooks are called one plugin at a time (each plugin's items get its
        origin, and one plugin's error leaves the others' items), through pluggy so that
        ``MEDFAIRX_TRACE_PLUGINS=1`` shows these calls too.
        """
        others = [p for p in self.pm.get_plugins() if p is not plugin]
        return self.pm.subset_hook_caller(hook_name, remove_plugins=others)

    def _fail(self, info: PluginInfo, message: str) -> None:
        info.errors.append(message)
        if _strict():
            raise PluginLoadError(f"Plugin {info.name!r} ({info.dist or info.module}) {message}")

    def load_builtins(self) -> None:
        """Register medfairx's own default plugins through the same hooks."""
        for mod_name in DEFAULT_PLUGINS:
            mod = importlib.import_module(mod_name)
            short = "medfairx." + mod_name.rsplit(".", 1)[-1]
            self.add_plugin(mod, PluginInfo(short, mod_name, "medfairx", _version("medfairx"), True))

    def load_entrypoints(self) -> None:
        """Load every ``medfairx`` entry point, each in its own ``try``."""
        only = _env_list("MEDFAIRX_LOAD_PLUGINS")
        blocked = set(_env_list("MEDFAIRX_DISABLE_PLUGINS") or [])
        seen: set[tuple[str, str, str]] = set()
        eps = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP),
                     key=lambda e: (e.dist.name if e.dist else "", e.name, e.value))
        for ep in eps:
            dist = ep.dist.name if ep.dist else None
            key = (dist or "", ep.name, ep.value)
            if key in seen:
                continue  # same dist-info discovered twice (symlinked site-packages)
            seen.add(key)
            if only is not None and ep.name not in only and dist not in only:
                continue
            if ep.name in blocked or (dist and dist in blocked):
                self.pm.set_blocked(ep.name)
                continue
            info = PluginInfo(ep.name, ep.value, dist, ep.dist.version if ep.dist else None)
            try:
                plugin = ep.load()
            except Exception as exc:  # noqa: BLE001 - any import error of a plugin is reported
                self.plugins[ep.name] = info
                tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
                self._fail(
                    info,
                    f"failed to import: {tb}. Reinstall or fix the plugin, or run with "
                    f"MEDFAIRX_DISABLE_PLUGINS={ep.name}.",
                )
                continue
            self.add_plugin(plugin, info)

    def resolve_conflicts(self) -> None:
        """Settle names registered by several plugins, once every plugin is loaded.

        A contender named in ``MEDFAIRX_PREFER_PLUGINS`` wins; otherwise the name is
        registered by none of them (a lookup raises :class:`NameConflictError`), each
        contender lists it in ``conflicts``, and ``MEDFAIRX_STRICT_PLUGINS=1`` makes it an error.

        Raises:
            PluginLoadError: an unresolved conflict in strict mode.
        """
        prefer = _env_list("MEDFAIRX_PREFER_PLUGINS") or []
        by_plugin = {p.name: p for p in self.plugins.values()}
        for kind, reg in self.registries.items():
            for name, origins in reg.conflicts().items():
                message = reg.conflict_message(name)
                chosen = reg.choose(name, prefer)
                for origin in origins:
                    info = by_plugin.get(origin.plugin)
                    if info is None:
                        continue
                    if chosen is None:
                        info.conflicts.append(message)
                    else:
                        verdict = "used" if origin == chosen else "not used"
                        info.conflicts.append(f"{kind} {name!r}: {verdict} (MEDFAIRX_PREFER_PLUGINS chose {chosen})")
                if chosen is None and _strict():
                    raise PluginLoadError(message)

    # -- queries ---------------------------------------------------------------------

    def registry(self, kind: str) -> Registry[Any]:
        """The registry for ``kind`` (``"methods"``, ``"datasets"``, ...)."""
        return self.registries[kind]

    @property
    def conflicts(self) -> list[str]:
        """One message per name that several plugins registered and nobody chose."""
        return [reg.conflict_message(n) for reg in self.registries.values() for n in reg.conflicts()]

    @property
    def errors(self) -> list[tuple[str, str]]:
        """(plugin, message) for every load problem."""
        return [(p.name, e) for p in self.plugins.values() for e in p.errors]

    def modules(self) -> dict[str, object]:
        """Registered plugin objects by name."""
        return dict(self._modules)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def make_plugin_host(*, entrypoints: bool = True, extra: tuple[ModuleType | object, ...] = ()) -> PluginHost:
    """Build a fresh host: built-ins, then entry points, then ``extra`` plugin objects."""
    host = PluginHost()
    host.load_builtins()
    if entrypoints:
        host.load_entrypoints()
    for i, plugin in enumerate(extra):
        name = getattr(plugin, "__name__", f"extra{i}")
        host.add_plugin(plugin, PluginInfo(name, name))
    host.resolve_conflicts()
    return host


_HOST: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide host, built on first use (a failed build is never cached)."""
    global _HOST
    if _HOST is None:
        _HOST = make_plugin_host()
    return _HOST


def set_host(host: PluginHost | None) -> None:
    """Replace the process-wide host (tests use this; ``None`` forces a rebuild)."""
    global _HOST
    _HOST = host
