"""Fit diagnostics: how well a restoration explains its own measurements, and a flag for those
that do not (the image is not in the generator's range, or the solver did not converge).

Everything here is measurement-side: (y, physics, x_hat), never a clean image.

- ``residual(y, physics, x_hat)`` (B,): ||y - A(x_hat)||^2, summed over the n measurements.
- ``discrepancy_ratio(...)`` (B,): residual / (n * sigma_ref^2). With Gaussian noise of known
  sigma, n * ratio of the true image is chi-square with n degrees of freedom: mean 1, spread
  sqrt(2 / n). Where sigma is 0 or unknown, sigma_ref is ``SIGMA_FLOOR`` = one 8-bit level, the
  precision of measurements stored as image files, so the ratio still compares like with like.
- The flag threshold ``tau`` (a ratio) comes from two measurement-side references:
  the chi-square bound of the noise alone, ``chi2_bound(n)`` (its 99.9 % quantile / n), and the
  ratios that the same method leaves on ``CALIBRATION_SAMPLES`` images that the generator itself
  made, measured by the same physics with fresh noise (``calibrate``): those images are in G's
  range, so their ratios are what a converged solve of an in-range image leaves (model error of
  the method's own objective included: GE does not minimise the residual itself).
  ``tau = max(chi2_bound(n), FLAG_FACTOR * median(calibration ratios))``: a problem is flagged when
  its residual is FLAG_FACTOR times that of a typical in-range image or more. FLAG_FACTOR = 3 was
  fixed before looking at out-of-domain data; the chi-square bound alone (1.16 at n = 784) would
  flag in-range generator samples (GE leaves 1.2 to 1.6 on them), so it is only a floor.

>>> import torch
>>> from generative_encoder.physics import make_physics
>>> physics = make_physics("denoise", (1, 28, 28), sigma=0.1)
>>> x = torch.full((2, 1, 28, 28), 0.5)
>>> ratio = discrepancy_ratio(physics(x), physics, x)     # the noise alone: 1 +- sqrt(2 / 784)
>>> (ratio - 1).abs() < 0.2
tensor([True, True])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from deepinv.physics import Physics
from scipy.stats import chi2
from torch import Tensor

from ..models.priors import sample_latent
from ..physics.noise import n_measurements, noise_sigma, residual
from ..physics.seeds import CALIBRATION_SEED

SIGMA_FLOOR = 1 / 255  # sigma_ref of noise-free measurements: one 8-bit level
CHI2_P = 1e-3  # the chi-square bound's tail probability
FLAG_FACTOR = 3.0  # flagged: FLAG_FACTOR x the residual of a typical in-range image
CALIBRATION_SAMPLES = 16  # generator samples measured and solved to calibrate tau


def sigma_ref(physics: Physics) -> float:
    """The noise level residuals are compared with: sigma when known, else ``SIGMA_FLOOR``."""
    return noise_sigma(physics) or SIGMA_FLOOR


def discrepancy_ratio(y: Tensor, physics: Physics, x_hat: Tensor) -> Tensor:
    """residual / (n * sigma_ref^2) per problem (B,): about 1 when the noise explains the misfit."""
    return residual(y, physics, x_hat) / (n_measurements(y) * sigma_ref(physics) ** 2)


def chi2_bound(n: int, p: float = CHI2_P) -> float:
    """The (1 - p) quantile of chi-square(n) / n: the ratio that noise alone exceeds with
    probability p."""
    return float(chi2.ppf(1 - p, n) / n)


@dataclass
class Calibration:
    """tau: the flag threshold on the ratio; ratios (K,): the calibration samples' ratios;
    chi2: the noise-only bound."""

    tau: float
    ratios: Tensor
    chi2: float


def calibrate(
    solve: Callable[[Tensor, list[int]], Tensor],
    physics: Physics,
    generator: torch.nn.Module,
    n: int = CALIBRATION_SAMPLES,
    seed: int = CALIBRATION_SEED,
    factor: float = FLAG_FACTOR,
    batch_size: int | None = None,
) -> Calibration:
    """tau from ``n`` in-range images: x = G(z), y = physics(x) with noise seeded by ``seed``,
    x_hat = solve(y, seeds) (the method under test, (K, ...) and K start seeds -> (K, C, H, W)),
    called on at most ``batch_size`` of them at a time; sample j's starts are seeded ``seed + j``
    whatever the batch. The same arguments give the same tau. The physics' noise generator is
    reseeded (and left in that state)."""
    rng = torch.Generator().manual_seed(seed)
    z = sample_latent(n, generator.latent_dim, generator.latent_dist, rng)
    with torch.no_grad():
        x = generator(z)
        physics.noise_model.rng_manual_seed(seed)
        y = physics(x)
    step = batch_size or n
    seeds = [seed + j for j in range(n)]
    x_hat = torch.cat(
        [solve(y[i : i + step], seeds[i : i + step]).detach() for i in range(0, n, step)]
    )
    ratios = discrepancy_ratio(y, physics, x_hat)
    bound = chi2_bound(n_measurements(y))
    median = float(ratios.median())
    tau = max(bound, factor * median) if math.isfinite(median) else bound
    return Calibration(tau=tau, ratios=ratios, chi2=bound)


def flag(ratio: Tensor, tau: float) -> Tensor:
    """(B,) bool: True where the ratio exceeds tau, or is not finite."""
    return ~(ratio <= tau)
