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

import collections.abc
import inspect
import math
import numbers
import os
import types
import typing
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
        """Call the builder of ``name``; unknown, missing or wrongly typed arguments raise
        ConfigError (see :func:`check_arguments`)."""
        builder = self.get(name)
        check_arguments(builder, f"{self.kind} {name!r}", *args, **kwargs)
        return builder(*args, **kwargs)

    def names(self) -> list[str]:
        return sorted(self._builders)

    def __contains__(self, name: object) -> bool:
        return name in self._builders


def check_arguments(builder: Callable[..., Any], label: str, /, *args: Any, **kwargs: Any) -> None:
    """Raise ConfigError, prefixed by ``label``, if ``builder(*args, **kwargs)`` would get an
    unknown or missing argument, a value whose type contradicts the builder's annotation, or a
    number that is NaN or infinite (also inside lists and dicts).

    Only annotations made of the kinds of value that a command line or a JSON file gives are
    enforced: ``int``, ``float``, ``bool``, ``str``, ``os.PathLike``, ``None``, lists, tuples
    and dicts, and unions of them (generics by their origin: ``tuple[int, int]`` takes a list or
    a tuple). An int is a float; a bool is not an int. Other annotations (a module, ``Any``) are
    left to the builder.

    >>> def make(size: int = 64, sigma: float | None = None): ...
    >>> check_arguments(make, "toy", size="abc")
    Traceback (most recent call last):
    ...
    generative_encoder.errors.ConfigError: toy: size must be int, got 'abc'
    """
    signature = inspect.signature(builder)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as e:
        raise ConfigError(f"{label}: {e}") from None
    try:
        hints = typing.get_type_hints(builder.__init__ if inspect.isclass(builder) else builder)
    except (NameError, TypeError, AttributeError):  # an annotation that does not resolve
        return
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    for name, value in bound.arguments.items():
        named = (
            value
            if signature.parameters[name].kind == inspect.Parameter.VAR_KEYWORD
            else {name: value}
        )
        for key, item in named.items():
            if not _finite(item):
                raise ConfigError(f"{label}: {key} must be finite, got {item!r}")
        hint = hints.get(name)
        if signature.parameters[name].kind in variadic or hint is None:
            continue
        if not matches_annotation(value, hint):
            raise ConfigError(f"{label}: {name} must be {annotation_name(hint)}, got {value!r}")


def check_finite_fields(config: Any) -> None:
    """Raise ConfigError if a number field of the dataclass ``config`` is NaN or infinite
    (containers are left to the builders they are handed to, which name their keys)."""
    for name in config.__dataclass_fields__:
        value = getattr(config, name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{name} must be finite, got {value!r}")


def _finite(value: Any) -> bool:
    """No float in ``value`` (a number, or lists, tuples and dicts of them) is NaN or infinite."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return True


def _members(hint: Any) -> tuple:
    """The alternatives of a union annotation (or the annotation itself), generics reduced to
    their origin (``tuple[int, int]`` -> ``tuple``)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return tuple(m for h in typing.get_args(hint) for m in _members(h))
    origin = typing.get_origin(hint)
    if origin in (collections.abc.Sequence, list, tuple):
        return (list, tuple)
    return (origin or hint,)


_VALUE_KINDS = (int, float, bool, str, os.PathLike, type(None), list, tuple, dict)


def matches_annotation(value: Any, hint: Any) -> bool:
    members = _members(hint)
    if not all(m in _VALUE_KINDS for m in members):
        return True  # a module, Any, a callable...: left to the builder
    return any(_is(value, m) for m in members)


def _is(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    return isinstance(value, kind)


def annotation_name(hint: Any) -> str:
    names = dict.fromkeys("None" if m is type(None) else m.__name__ for m in _members(hint))
    return " or ".join(names)
