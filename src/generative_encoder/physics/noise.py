"""Noise models beside deepinv's (speckle, quantization), and what a measurement's noise
explains: its Gaussian level and the residual ||y - A(x)||^2 a fit leaves."""

from __future__ import annotations

import math
from typing import Any

import torch
from deepinv.physics import GaussianNoise, NoiseModel, Physics
from torch import Tensor

from ..errors import ConfigError


class SpeckleNoise(NoiseModel):
    """Multiplicative noise y = x * (1 + sigma * n), n ~ N(0, 1) per entry; same shape as x."""

    def __init__(self, sigma: float = 0.1, rng: torch.Generator | None = None):
        super().__init__(rng=rng)
        self.register_buffer("sigma", self._float_to_tensor(sigma))

    def forward(self, x: torch.Tensor, seed: int | None = None, **kwargs: Any) -> torch.Tensor:
        self.to(x.device)  # as deepinv's GaussianNoise: keeps the generator on x's device
        return x * (1 + self.sigma * self.randn_like(x, seed=seed))


class QuantizationNoise(NoiseModel):
    """Uniform quantization to ``levels`` values per channel: y = round(x (k - 1)) / (k - 1), with
    x clamped to [0, 1] first; k = ``levels`` >= 2. Deterministic (no random draws).

    ``sigma`` is the standard deviation of the quantization error for an x spread over the bins,
    step / sqrt(12) with step = 1 / (k - 1): the "noise level" that sigma-driven baselines (TV,
    BM3D) read, as for Gaussian noise.
    """

    def __init__(self, levels: int = 5, rng: torch.Generator | None = None):
        super().__init__(rng=rng)
        self.levels = int(levels)
        self.register_buffer("sigma", self._float_to_tensor(1 / ((levels - 1) * math.sqrt(12))))

    def forward(self, x: torch.Tensor, seed: int | None = None, **kwargs: Any) -> torch.Tensor:
        steps = self.levels - 1
        return torch.round(x.clamp(0, 1) * steps) / steps


def gaussian(sigma: float, rng: torch.Generator) -> GaussianNoise:
    """Additive Gaussian noise; a GaussianNoise even for 0, so ``noise_model.sigma`` exists."""
    check_sigma(sigma)
    return GaussianNoise(sigma=sigma, rng=rng)


def check_sigma(sigma: float) -> None:
    if not sigma >= 0:
        raise ConfigError(f"sigma must be >= 0, got {sigma}")
    if not math.isfinite(sigma):
        raise ConfigError(f"sigma must be finite, got {sigma}")


def noise_sigma(physics: Physics) -> float | None:
    """The std of the physics' additive Gaussian noise, or None (speckle, unknown, or 0)."""
    model = getattr(physics, "noise_model", None)
    if not isinstance(model, GaussianNoise):
        return None
    sigma = float(torch.as_tensor(model.sigma).flatten()[0])
    return sigma if sigma > 0 else None


@torch.no_grad()
def residual(y: Tensor, physics: Physics, x_hat: Tensor) -> Tensor:
    """||y - A(x_hat)||^2 per problem (B,); y (B, ...) measurements, x_hat (B, C, H, W)."""
    return (y - physics.A(x_hat)).abs().pow(2).flatten(1).mean(1) * n_measurements(y)


def n_measurements(y: Tensor) -> int:
    """Entries per measurement of a batch y (B, ...)."""
    return y[0].numel()
