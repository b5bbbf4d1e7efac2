"""Build components by name: the one place where a job spec's ``name:`` fields map to code.

Modelled on timm's model registry: ``register`` as a decorator, ``get`` with a clear error
that lists the valid names, ``names`` for help texts and validation messages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from nas.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named mapping from spec names to classes or factories.

    Example:
        >>> SPACES = Registry("space")
        >>> @SPACES.register("enas-macro")
        ... class MacroSpace: ...
        >>> SPACES.get("enas-macro") is MacroSpace
        True
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self.names()) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
