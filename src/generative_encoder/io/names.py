"""Names that become file or folder names (bench task and method names, image and model names).

A name read from a file that others share must not reach outside its folder, nor mean different
things on different systems: :func:`check_file_name` accepts 1 to ``MAX_NAME_LENGTH`` ASCII
letters, digits, ``-``, ``_`` and ``.``, not starting or ending with ``.`` and not a Windows
device name (``CON``, ``NUL``, ``COM1``, ...). :func:`path_inside` is the second line of defence
where such a name is joined to a folder: the joined path, symbolic links followed, must stay in it.

>>> check_file_name("task", "denoise-0.4")
'denoise-0.4'
>>> check_file_name("task", "../photo")
Traceback (most recent call last):
...
generative_encoder.errors.ConfigError: task name must use only letters, digits, '-', '_' and '.' \
(it names files), got '../photo'
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import ConfigError

MAX_NAME_LENGTH = 100
_ALLOWED = re.compile(r"[A-Za-z0-9._-]+")
_WINDOWS_DEVICES = frozenset(
    ["CON", "PRN", "AUX", "NUL"] + [f"{port}{i}" for port in ("COM", "LPT") for i in "123456789"]
)
_SHOWN = 40  # characters of a long name shown in an error


def check_file_name(kind: str, name: object) -> str:
    """``name`` if it is safe as a file name, else :class:`ConfigError` ``"{kind} name must
    ..., got {name!r}"`` (one line: control characters are escaped, long names cut)."""
    if not isinstance(name, str):
        raise ConfigError(f"{kind} name must be a string, got {_shown(name)}")
    if len(name) > MAX_NAME_LENGTH:
        raise ConfigError(
            f"{kind} name must be at most {MAX_NAME_LENGTH} characters, "
            f"got {_shown(name)} ({len(name)} characters)"
        )
    if not _ALLOWED.fullmatch(name):
        raise ConfigError(
            f"{kind} name must use only letters, digits, '-', '_' and '.' (it names files), "
            f"got {_shown(name)}"
        )
    if name.startswith(".") or name.endswith("."):
        raise ConfigError(f"{kind} name must not start or end with '.', got {name!r}")
    if name.split(".")[0].upper() in _WINDOWS_DEVICES:
        raise ConfigError(f"{kind} name must not be a Windows device name, got {name!r}")
    return name


def path_inside(root: str | os.PathLike, *parts: str) -> Path:
    """``root / parts[0] / ...``; :class:`ConfigError` when that path, symbolic links followed,
    is not inside ``root`` (also resolved)."""
    path = Path(root).joinpath(*parts)
    real, base = path.resolve(), Path(root).resolve()
    if real == base or not real.is_relative_to(base):
        raise ConfigError(f"{path} resolves to {real}, outside the output folder {root}")
    return path


def _shown(value: object) -> str:
    """``repr(value)``, cut to about ``_SHOWN`` characters."""
    text = repr(value)
    return text if len(text) <= _SHOWN + 2 else f"{text[:_SHOWN]}..."
