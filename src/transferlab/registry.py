"""A small generic registry: names to objects, with aliases and helpful lookup errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from transferlab.errors import TransferlabError, unknown_name

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects (or to factories that build them lazily).

    A factory is called on first lookup, so registering a family of 57 tasks costs
    nothing until one of them is used.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._factories: dict[str, Callable[[], T]] = {}
        self._built: dict[str, T] = {}

    def add(self, name: str, factory: Callable[[], T]) -> None:
        if name in self._factories:
            raise TransferlabError(f"{self.kind} {name!r} is registered twice: rename one of them")
        self._factories[name] = factory

    def register(self, name: str) -> Callable[[Callable[[], T]], Callable[[], T]]:
        """Decorator form of `add`."""

        def decorate(factory: Callable[[], T]) -> Callable[[], T]:
            self.add(name, factory)
            return factory

        return decorate

    def get(self, name: str) -> T:
        if name not in self._factories:
            raise unknown_name(self.kind, name, self._factories)
        if name not in self._built:
            self._built[name] = self._factories[name]()
        return self._built[name]

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._factories))

    def names(self) -> list[str]:
        return sorted(self._factories)
