"""Latent priors: the distributions a generator's latents are drawn from, sampled in one place.

"normal" is N(0, I), "uniform" U[-1, 1]^d; "+catK" (InfoGAN) makes the last K coordinates a
one-hot category drawn uniformly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError

LATENT_DISTS = ("normal", "uniform")


def latent_parts(dist: str, latent_dim: int | None = None) -> tuple[str, int]:
    """Split a latent prior's name into (continuous part, number of categories K).

    "normal" and "uniform" have no categorical part (K = 0); "normal+cat10" is InfoGAN's prior
    (Chen et al. 2016): the last K = 10 coordinates are a one-hot category drawn uniformly, the
    others N(0, I) (or U[-1, 1] for "uniform+catK").
    """
    base, _, cat = dist.partition("+cat")
    k = int(cat) if cat.isascii() and cat.isdigit() else -1 if cat or "+" in dist else 0
    if base not in LATENT_DISTS or k == -1 or 0 < k < 2:
        raise ConfigError(
            f"latent_dist must be one of {LATENT_DISTS} or e.g. 'normal+cat10' "
            f"(InfoGAN's one-hot category in the last 10 coordinates), got {dist!r}"
        )
    if latent_dim is not None and k >= latent_dim:
        raise ConfigError(f"latent_dist {dist!r} needs latent_dim > {k}, got {latent_dim}")
    return base, k


def sample_latent(
    n: int, latent_dim: int, dist: str, generator: torch.Generator | None = None
) -> Tensor:
    """(n, latent_dim) draws on CPU from N(0, I) (``dist="normal"``) or U[-1, 1] (``"uniform"``);
    with "+catK" the last K coordinates are then replaced by a uniformly drawn one-hot category."""
    base, k = latent_parts(dist, latent_dim)
    if base == "normal":
        z = torch.randn(n, latent_dim, generator=generator)
    else:
        z = torch.rand(n, latent_dim, generator=generator) * 2 - 1
    if k:
        z[:, -k:] = F.one_hot(torch.randint(k, (n,), generator=generator), k).to(z)
    return z


class LatentGenerator(nn.Module):
    """Base of every generator: ``latent_dim`` and ``latent_dist`` (set by the subclass through
    ``set_prior``), the prior's sampler, and ``nz`` (the attribute name deepinv's CSGMGenerator
    reads)."""

    latent_dim: int
    latent_dist: str

    def set_prior(self, latent_dim: int, latent_dist: str, categories: bool = False) -> None:
        """Check and set the latent size and prior; ``categories``: "+catK" allowed (DCGAN)."""
        if latent_dim < 1:
            raise ConfigError(f"latent_dim must be >= 1, got {latent_dim}")
        if not categories and latent_dist not in LATENT_DISTS:
            raise ConfigError(f"latent_dist must be one of {LATENT_DISTS}, got {latent_dist!r}")
        latent_parts(latent_dist, latent_dim)
        self.latent_dim, self.latent_dist = latent_dim, latent_dist

    @property
    def nz(self) -> int:
        return self.latent_dim

    def sample_latent(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """n latents (n, latent_dim) from the training prior, drawn on the CPU, on ``device``."""
        return sample_latent(n, self.latent_dim, self.latent_dist, generator).to(
            device or next(self.parameters()).device
        )
