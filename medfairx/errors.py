"""Exception types. Every error a user can see is a :class:`MedfairxError`.

Messages say what was wrong, where, and what to do; templates are module constants so
tests can match them.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

UNKNOWN_NAME = "Unknown {kind} {name!r}.{suggestion}\nAvailable ({count}): {available}\n{hint}"
DUPLICATE_NAME = (
    "Duplicate {kind} name {name!r}: registered by {first} and again by {second}. "
    "Rename one of them, or uninstall / disable one plugin "
    "(MEDFAIRX_DISABLE_PLUGINS={second_plugin})."
)
NAME_CONFLICT = (
    "{kind} {name!r} is registered by several plugins: {origins}; medfairx uses none of them. "
    "Choose one with MEDFAIRX_PREFER_PLUGINS=<plugin> (e.g. MEDFAIRX_PREFER_PLUGINS={first_plugin}), "
    "or disable the other with MEDFAIRX_DISABLE_PLUGINS=<plugin>."
)
NOT_FITTED = "{name} is not fitted yet: call fit(train, val, ctx) before {method}()."


class MedfairxError(Exception):
    """Base class of every error medfairx shows to a user."""


class ConfigError(MedfairxError, ValueError):
    """A configuration file or argument is invalid."""


class DataError(MedfairxError):
    """A dataset's files are missing, malformed or inconsistent."""


class PluginLoadError(MedfairxError):
    """A plugin failed to import, registered a duplicate, or implements an unknown hook."""


class DuplicateNameError(MedfairxError, ValueError):
    """Two different items were registered under one name."""


class NameConflictError(MedfairxError, KeyError):
    """A name registered by several plugins was looked up before the user chose one."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class NotFittedError(MedfairxError, RuntimeError):
    """A method was asked to predict before it was fitted."""


class TrainingError(MedfairxError, RuntimeError):
    """Training diverged (e.g. NaN loss) or could not proceed."""


class UnknownNameError(MedfairxError, KeyError):
    """A registry lookup missed; the message suggests the nearest names."""

    def __init__(self, kind: str, name: str, available: Iterable[str], hint: str = "") -> None:
        names = sorted(available)
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        suggestion = f" Did you mean: {', '.join(close)}?" if close else ""
        shown = ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
        self.kind, self.name, self.suggestions = kind, name, close
        msg = UNKNOWN_NAME.format(
            kind=kind,
            name=name,
            suggestion=suggestion,
            count=len(names),
            available=shown or "(none)",
            hint=hint or "Items are registered by installed plugins; see `medfairx plugins`.",
        )
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class SearchSpaceError(ConfigError):
    """A method's declared search space names a parameter it does not take, or a range is empty."""
