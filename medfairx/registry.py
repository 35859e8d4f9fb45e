"""``Registry[T]``: named specs with origins, strict collisions and helpful misses."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from typing import Generic, TypeVar

from medfairx.errors import DUPLICATE_NAME, DuplicateNameError, UnknownNameError
from medfairx.specs import Origin, check_name

T = TypeVar("T")


class Registry(Generic[T]):
    """A name → spec mapping that records which plugin registered each item.

    Re-registering an identical spec (same target) is a no-op; a different spec under a
    taken name raises :class:`DuplicateNameError` naming both origins.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._origins: dict[str, Origin] = {}

    def add(self, item: T, origin: Origin) -> None:
        """Register ``item`` (a spec with ``name`` and ``identity()``) from ``origin``."""
        name = check_name(item.name, self.kind.rstrip("s"))  # type: ignore[attr-defined]
        if name in self._items:
            old = self._items[name]
            if old.identity() == item.identity():  # type: ignore[attr-defined]
                return
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

    def get(self, name: str) -> T:
        """Return the item called ``name``; a miss suggests the nearest names."""
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.kind.rstrip("s"), name, self._items) from None

    def origin(self, name: str) -> Origin:
        """Which plugin registered ``name``."""
        self.get(name)
        return self._origins[name]

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

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
