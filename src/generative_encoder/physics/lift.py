"""GE's image-domain lift: how a measurement y and a generated image x are compared in G's space.

GE minimises ||E(match(G(z))) - E(lift(y))||^2 + lambda ||z||^2, where for each physics type

- ``lift(y, physics)`` -> x_dagger (B, C, H, W): the observation brought to G's image size;
- ``match(x, physics)`` -> S(x) (B, C, H, W): the operator applied to G(z) so that it is
  comparable with x_dagger (both sides go through the same pipeline).

Rules (from the GE paper) are looked up along the physics class's MRO, so subclasses inherit them;
a new degradation adds its own with ``register_lift(cls, lift=..., match=...)``.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from deepinv.physics import (
    Blur,
    CompressedSensing,
    Decolorize,
    Denoising,
    Downsampling,
    Inpainting,
    Physics,
)

from ..errors import ConfigError
from .tasks import EncoderSensing, Quantization

Rule = Callable[[torch.Tensor, Physics], torch.Tensor]
_RULES: dict[type, tuple[Rule, Rule]] = {}


def register_lift(cls: type, *, lift: Rule, match: Rule) -> None:
    """Set GE's ``lift`` (of y) and ``match`` (of x) for ``cls`` and its subclasses."""
    _RULES[cls] = (lift, match)


def lift(y: torch.Tensor, physics: Physics) -> torch.Tensor:
    """x_dagger (B, C, H, W): the measurement y brought to G's image space."""
    return _rules(physics)[0](y, physics)


def match(x: torch.Tensor, physics: Physics) -> torch.Tensor:
    """S(x) (B, C, H, W): images x (B, C, H, W) degraded so as to be comparable with ``lift(y)``."""
    return _rules(physics)[1](x, physics)


def _rules(physics: Physics) -> tuple[Rule, Rule]:
    for cls in type(physics).__mro__:
        if cls in _RULES:
            return _RULES[cls]
    known = ", ".join(sorted(cls.__name__ for cls in _RULES))
    raise ConfigError(f"GE has no lift for {type(physics).__name__}; known: {known}")


def _identity(t: torch.Tensor, physics: Physics) -> torch.Tensor:
    return t


def _bicubic_up(y: torch.Tensor, physics: Downsampling) -> torch.Tensor:
    """(B, C, h, w) -> (B, C, h*factor, w*factor) in [0, 1]: the paper's bicubic preconditioner."""
    size = (y.shape[-2] * physics.factor, y.shape[-1] * physics.factor)
    return F.interpolate(y, size=size, mode="bicubic", align_corners=False).clamp(0, 1)


def _gray_to_channels(y: torch.Tensor, physics: Decolorize) -> torch.Tensor:
    """Gray (B, 1, H, W) -> (B, C, H, W), the gray plane repeated in each of the C channels."""
    return y.expand(-1, physics.srf.shape[1], -1, -1)


def _code_is_target(t: torch.Tensor, physics: Physics) -> torch.Tensor:
    raise ConfigError("encoder_cs has no image-domain lift: the code itself is GE's target")


# Blind setting: the paper compares the degraded image with G(z) directly.
register_lift(Denoising, lift=_identity, match=_identity)
# Known blur: S = A puts G(z) through the same blur as the observation. The paper's blind setting
# (S = identity) compares the code of a sharp G(z) with that of a blurred image, which pulls G(z)
# towards blurred digits; with the operator known there is no reason to be blind.
register_lift(Blur, lift=_identity, match=lambda x, physics: physics.A(x))
# y is already zero-filled at the missing pixels; mask (1, 1, H, W) broadcasts over B and C.
register_lift(Inpainting, lift=_identity, match=lambda x, physics: physics.mask * x)
register_lift(
    Downsampling, lift=_bicubic_up, match=lambda x, physics: _bicubic_up(physics.A(x), physics)
)
register_lift(
    CompressedSensing,
    lift=lambda y, physics: physics.A_dagger(y),
    match=lambda x, physics: physics.A_dagger(physics.A(x)),
)
# Colorization: the encoder only knows C-channel images, so the gray observation is replicated to C
# channels, and S makes G(z) the same kind of image: its own gray (the observation's luma
# A(G(z))) replicated. Comparing E(gray) with E(colour G(z)) instead (S = identity) would push G(z)
# towards gray images, which is what the encoder sees on the other side.
register_lift(
    Decolorize,
    lift=_gray_to_channels,
    match=lambda x, physics: _gray_to_channels(physics.A(x), physics),
)
# Quantization (A = identity, as Yeh et al. fit it): compared directly, as denoising. S = the
# quantizer would have zero gradient almost everywhere.
register_lift(Quantization, lift=_identity, match=_identity)
register_lift(EncoderSensing, lift=_code_is_target, match=_code_is_target)
