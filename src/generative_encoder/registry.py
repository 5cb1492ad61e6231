"""A small name-to-builder registry, shared by datasets, networks, degradations and methods.

The CLI and the benchmark look everything up by name here, so an unknown name fails the same way
everywhere: with the list of known names.

>>> DATASETS = Registry("dataset")
>>> @DATASETS.register("toy")
... def build_toy(n=3):
...     return list(range(n))
>>> DATASETS.build("toy", n=2)
[0, 1]
"""

from __future__ import annotations

from typing import Any, Callable

from .errors import ConfigError


class Registry:
    """Maps names to builder callables; ``kind`` names the things it holds in error messages."""

    def __init__(self, kind: str):
        self.kind = kind
        self._builders: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorator(builder: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._builders:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._builders[name] = builder
            return builder

        return decorator

    def get(self, name: str) -> Callable[..., Any]:
        try:
            return self._builders[name]
        except KeyError:
            known = ", ".join(sorted(self._builders)) or "(none)"
            raise ConfigError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def build(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        return self.get(name)(*args, **kwargs)

    def names(self) -> list[str]:
        return sorted(self._builders)

    def __contains__(self, name: object) -> bool:
        return name in self._builders
