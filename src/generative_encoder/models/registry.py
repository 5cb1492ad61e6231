"""The registry of network architectures: a checkpoint's JSON names its network here.

>>> G = build_network("dcgan_generator", latent_dim=16, channels=1, image_size=28)
>>> G(G.sample_latent(2)).shape
torch.Size([2, 1, 28, 28])
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable

from torch import nn

from ..registry import Registry

NETWORKS = Registry("network")


def network(name: str, *, omit_defaults: tuple[str, ...] = ()) -> Callable[[type], type]:
    """Class decorator: register the network class under ``name``, set its ``arch``, and record
    the arguments each instance is built with (defaults filled in) in ``self.kwargs``, what a
    checkpoint's JSON stores to rebuild it. ``omit_defaults``: arguments left out of the record
    while they hold their default, so that the JSON of a network built without them is the same
    as before they existed (and older code can read it)."""

    def decorator(cls: type) -> type:
        init = cls.__init__
        signature = inspect.signature(init)

        @functools.wraps(init)
        def __init__(self, *args, **kwargs):
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            record = {
                key: value
                for key, value in list(bound.arguments.items())[1:]
                if not (key in omit_defaults and value == signature.parameters[key].default)
            }
            init(self, *args, **kwargs)
            self.kwargs = record

        cls.__init__ = __init__
        cls.arch = name
        return NETWORKS.register(name)(cls)

    return decorator


def build_network(arch: str, **kwargs) -> nn.Module:
    """Build a registered network by name, e.g. ``build_network("conv_encoder", code_dim=64)``."""
    return NETWORKS.build(arch, **kwargs)
