"""Which torch devices this machine has."""

from __future__ import annotations

import torch

from .errors import ConfigError


def check_device(device: str | torch.device) -> None:
    """Raise ConfigError unless ``device`` names a torch device that this machine has."""
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        raise ConfigError(f"device must be cpu, cuda, cuda:N or mps, got {device!r}") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} is not available: torch sees no CUDA GPU")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {device!r} is not available on this machine")
