"""Named reconstructors, each called as ``method(y, physics) -> x_hat`` (deepinv's convention).

``METHODS.build(name, model=..., **options)`` makes one; ``METHODS.names()`` lists them.
"""

from .registry import METHODS

__all__ = ["METHODS"]
