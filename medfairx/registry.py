"""``Registry[T]``: named specs with origins, strict collisions and helpful misses."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from typing import Generic, TypeVar

from medfairx.errors import (
    DUPLICATE_NAME,
    NAME_CONFLICT,
    DuplicateNameError,
    NameConflictError,
    UnknownNameError,
)
from medfairx.specs import Origin, check_name

T = TypeVar("T")


class Registry(Generic[T]):
    """A name → spec mapping that records which plugin registered each item.

    Re-registering an identical spec (same target) is a no-op; a different spec under a
    taken name raises :class:`DuplicateNameError` naming both origins, or, with
    ``hold_conflicts=True`` (how plugins register), takes the name out of the registry
    until :meth:`choose` picks one of the contenders: a conflict never depends on the
    order in which plugins were loaded.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._origins: dict[str, Origin] = {}
        self._conflicts: dict[str, list[tuple[T, Origin]]] = {}

    def add(self, item: T, origin: Origin, *, hold_conflicts: bool = False) -> bool:
        """Register ``item`` (a spec with ``name`` and ``identity()``) from ``origin``.

        Returns:
            ``False`` when the name is held as a conflict (``hold_conflicts=True``).
        """
        name = check_name(item.name, self.kind.rstrip("s"))  # type: ignore[attr-defined]  # T is unbounded; every spec has name
        held = self._conflicts.get(name)
        if held is not None:
            if all(o != origin or i.identity() != item.identity() for i, o in held):  # type: ignore[attr-defined]  # and identity()
                held.append((item, origin))
            return False
        if name in self._items:
            old = self._items[name]
            if old.identity() == item.identity():  # type: ignore[attr-defined]  # as above
                return True
            if hold_conflicts:
                self._conflicts[name] = [(old, self._origins.pop(name)), (item, origin)]
                del self._items[name]
                return False
            raise DuplicateNameError(
                DUPLICATE_NAME.format(
                    kind=self.kind.rstrip("s"),
                    name=name,
                    first=self._origins[name],
                    second=origin,
                    second_plugin=origin.plugin,
                )
            )
        self._items[name] = item
        self._origins[name] = origin
        return True

    def get(self, name: str) -> T:
        """Return the item called ``name``; a miss suggests the nearest names.

        Raises:
            NameConflictError: several plugins registered ``name`` and none was chosen.
            UnknownNameError: nothing is registered under ``name``.
        """
        try:
            return self._items[name]
        except KeyError:
            if name in self._conflicts:
                raise NameConflictError(self.conflict_message(name)) from None
            raise UnknownNameError(self.kind.rstrip("s"), name, self._items) from None

    def conflicts(self) -> dict[str, list[Origin]]:
        """Unresolved names → the origins of every plugin that registered them."""
        return {n: [o for _, o in held] for n, held in sorted(self._conflicts.items())}

    def conflict_message(self, name: str) -> str:
        """One line naming the conflicting plugins of ``name`` and how to choose."""
        origins = sorted(self.conflicts()[name], key=lambda o: (o.dist or "", o.plugin))
        return NAME_CONFLICT.format(
            kind=self.kind.rstrip("s").capitalize(),
            name=name,
            origins=" and ".join(str(o) for o in origins),
            first_plugin=origins[0].plugin,
        )

    def choose(self, name: str, wanted: list[str]) -> Origin | None:
        """Resolve the conflict on ``name`` for the first plugin of ``wanted`` among the contenders.

        ``wanted`` holds entry-point or distribution names, in the user's order of preference.
        Returns the chosen origin, or ``None`` (the name stays held) if none is wanted.
        """
        for want in wanted:
            for item, origin in self._conflicts.get(name, []):
                if want in (origin.plugin, origin.dist):
                    del self._conflicts[name]
                    self._items[name], self._origins[name] = item, origin
                    return origin
        return None

    def origin(self, name: str) -> Origin:
        """Which plugin registered ``name``."""
        self.get(name)
        return self._origins[name]

    def in_order(self) -> list[str]:
        """Names in the order they were registered (the built-in plugins load first)."""
        return list(self._items)

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted names matching an fnmatch ``pattern``."""
        return sorted(n for n in self._items if fnmatch.fnmatchcase(n, pattern))

    def items(self, pattern: str = "*") -> list[T]:
        """Items whose names match ``pattern``, sorted by name."""
        return [self._items[n] for n in self.names(pattern)]

    def remove(self, name: str) -> None:
        """Drop ``name`` (used when a plugin is unloaded)."""
        self._items.pop(name, None)
        self._origins.pop(name, None)
        self._conflicts.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
