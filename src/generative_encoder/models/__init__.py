"""Networks, each an ``nn.Module`` built by name from the registry (what a checkpoint's JSON names):
DCGAN, BEGAN and progressive-GAN generators and discriminators, the GE journal paper's encoder,
its VAE variant and decoder, a small classifier; latent priors and shared layers.
"""

from . import autoencoders, began, classifier, dcgan, denoisers, pgan  # noqa: F401  (registers the networks)
from .priors import LATENT_DISTS, LatentGenerator, latent_parts, sample_latent
from .registry import NETWORKS, build_network

__all__ = [
    "LATENT_DISTS",
    "LatentGenerator",
    "NETWORKS",
    "build_network",
    "latent_parts",
    "sample_latent",
]
