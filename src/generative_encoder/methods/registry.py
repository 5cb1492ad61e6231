"""The one registry of restoration methods, shared by the CLI, the demo and the benchmark."""

from ..registry import Registry

METHODS = Registry("method")
