"""Degradations as ``deepinv.physics.Physics`` objects, by name, and GE's image-domain lift.

>>> import torch
>>> physics = make_physics("superres", (3, 64, 64), factor=4, seed=0)
>>> y = physics(torch.rand(1, 3, 64, 64))          # (1, 3, 16, 16)
>>> x_dagger = lift(y, physics)                    # (1, 3, 64, 64), bicubic upsampling
"""

from .lift import lift, match, register_lift
from .masks import block_mask, freeform_mask, random_mask
from .noise import QuantizationNoise, SpeckleNoise
from .tasks import (
    TASKS,
    EncoderSensing,
    Quantization,
    check_measurements,
    make_physics,
    measurement_rate,
)

__all__ = [
    "TASKS",
    "EncoderSensing",
    "Quantization",
    "QuantizationNoise",
    "SpeckleNoise",
    "block_mask",
    "check_measurements",
    "freeform_mask",
    "lift",
    "make_physics",
    "match",
    "measurement_rate",
    "random_mask",
    "register_lift",
]
