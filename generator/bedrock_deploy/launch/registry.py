"""An open registry of named classes (launchers, schedulers), filled by the classes themselves.

A class registers itself with the registry's decorator under its ``name``, as ReFrame's job
launchers do (``register_launcher``,
https://github.com/reframe-hpc/reframe/blob/v4.6.0/reframe/core/launchers/registry.py).
The built-in classes are found, not listed: on first use the registry imports every module of
its package (``bedrock_deploy.launch.launchers``, ``...schedulers``), so adding a module there
is all it takes; nothing else names it. Site-profile validation, the JSON Schema and the
``transports`` diagnostics all ask the registry.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from typing import ClassVar, Generic, Protocol, TypeVar


class Named(Protocol):
    name: ClassVar[str]
    description: ClassVar[str]


T = TypeVar("T", bound=Named)


class UnknownName(KeyError):
    """No class is registered under this name."""

    def __init__(self, what: str, name: str, known: list[str]) -> None:
        super().__init__(name)
        self.what, self.name, self.known = what, name, known

    def __str__(self) -> str:
        return f"no {self.what} {self.name!r} (registered: {', '.join(self.known)})"


class Registry(Generic[T]):
    """Name -> class. ``what`` is the word for error messages ("launcher")."""

    def __init__(self, what: str, package: str) -> None:
        self.what = what
        self.package = package
        self._classes: dict[str, type[T]] = {}
        self._discovered = False

    def register(self, cls: type[T]) -> type[T]:
        """Class decorator: ``@register_launcher`` / ``@register_scheduler``."""
        name = cls.name
        old = self._classes.get(name)
        if old is not None and old.__qualname__ != cls.__qualname__:
            raise ValueError(f"two {self.what}s are named {name!r}: "
                             f"{old.__module__}.{old.__qualname__} and "
                             f"{cls.__module__}.{cls.__qualname__}")
        self._classes[name] = cls
        return cls

    def unregister(self, name: str) -> None:
        """Remove a class (tests that register a throwaway one)."""
        self._classes.pop(name, None)

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        package = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(package.__path__):
            if not module.name.startswith("_"):
                importlib.import_module(f"{self.package}.{module.name}")

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        self._discover()
        return sorted(self._classes)

    def get(self, name: str) -> type[T]:
        self._discover()
        try:
            return self._classes[name]
        except KeyError:
            raise UnknownName(self.what, name, sorted(self._classes)) from None

    def __contains__(self, name: object) -> bool:
        self._discover()
        return name in self._classes

    def __iter__(self) -> Iterator[type[T]]:
        """The classes, sorted by name."""
        return iter([self._classes[n] for n in self.names()])
