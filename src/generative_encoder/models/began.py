"""BEGAN's networks (Berthelot, Schumm & Metz, "BEGAN: Boundary Equilibrium Generative Adversarial
Networks", 2017): a generator and an autoencoder discriminator whose encoder half is GE0.

Every network is 3x3 convolutions with ELU, ``width`` = the paper's n filters. The decoder (and the
generator, which has the decoder's architecture) maps a code through a linear layer to an
(n, s0, s0) map (s0 = 7 for 28 px, else 8) and repeats [conv, ELU, conv, ELU, 2x nearest
upsampling] up to the image size; the encoder mirrors it with stride-2 convolutions whose filters
grow linearly (n, 2n, 3n, ...), then a linear layer to the code (the paper's h).

Images are (B, C, S, S) in [0, 1]. As in the paper, the last layer is linear: no sigmoid, whose
saturation stalls BEGAN (a generator that makes blank images, which a sigmoid decoder reconstructs
with vanishing gradients, never leaves them). The discriminator reconstructs without clamping;
the generator clamps its output to [0, 1] unless called with ``clamp=False`` (training).

>>> from generative_encoder.models import build_network
>>> D = build_network("began_discriminator", channels=1, image_size=32, width=8, code_dim=16)
>>> D.reconstruction_error(torch.rand(2, 1, 32, 32)).shape
torch.Size([2])
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from ..errors import ConfigError
from .layers import RowLinear, check_geometry
from .priors import LatentGenerator
from .registry import network


def began_base_size(image_size: int) -> int:
    """Side of BEGAN's smallest map: 7 for 28 px (7 * 2 * 2), else 8."""
    return 7 if image_size == 28 else 8


def _n_scales(image_size: int) -> int:
    return int(round(math.log2(image_size / began_base_size(image_size))))


def _check(channels: int, image_size: int, width: int, code_dim: int) -> None:
    check_geometry(channels, image_size)
    if width < 1 or code_dim < 1:
        raise ConfigError(f"width and code_dim must be >= 1, got {width}, {code_dim}")


def _conv_pair(c_in: int, c_out: int) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, 3, 1, 1),
        nn.ELU(True),
        nn.Conv2d(c_out, c_out, 3, 1, 1),
        nn.ELU(True),
    ]


@network("began_decoder")
class BEGANDecoder(nn.Module):
    """BEGAN's decoder: code (N, code_dim) -> image (N, C, S, S), linear output (about [0, 1])."""

    def __init__(
        self, channels: int = 1, image_size: int = 28, code_dim: int = 64, width: int = 64
    ):
        super().__init__()
        _check(channels, image_size, width, code_dim)
        self.channels, self.image_size, self.code_dim = channels, image_size, code_dim
        s0 = began_base_size(image_size)
        self.stem = nn.Sequential(
            RowLinear(code_dim, width * s0 * s0), nn.Unflatten(1, (width, s0, s0))
        )
        layers: list[nn.Module] = []
        for i in range(_n_scales(image_size) + 1):
            if i > 0:
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            layers += _conv_pair(width, width)
        layers += [nn.Conv2d(width, channels, 3, 1, 1)]
        self.convs = nn.Sequential(*layers)

    def forward(self, code: Tensor) -> Tensor:
        return self.convs(self.stem(code.flatten(1)))  # (N, C, S, S)


@network("began_encoder")
class BEGANEncoder(nn.Module):
    """BEGAN's encoder, the GE journal's GE0: image (N, C, S, S) in [0, 1] -> code (N, code_dim)."""

    def __init__(
        self, channels: int = 1, image_size: int = 28, code_dim: int = 64, width: int = 64
    ):
        super().__init__()
        _check(channels, image_size, width, code_dim)
        self.code_dim = code_dim
        k, s0 = _n_scales(image_size), began_base_size(image_size)
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, 1, 1), nn.ELU(True)]
        c = width
        for i in range(k + 1):
            layers += _conv_pair(c, width * (i + 1))
            c = width * (i + 1)
            if i < k:  # downsample, filters n (i + 2)
                layers += [nn.Conv2d(c, width * (i + 2), 3, 2, 1), nn.ELU(True)]
                c = width * (i + 2)
        self.convs = nn.Sequential(*layers, nn.Flatten())
        self.fc = RowLinear(c * s0 * s0, code_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.convs(x * 2 - 1))  # (N, code_dim); inputs centred to [-1, 1]


@network("began_discriminator")
class BEGANDiscriminator(nn.Module):
    """BEGAN's discriminator, an autoencoder: ``reconstruct(x) = decoder(encoder(x))``.

    ``reconstruction_error(x)`` (N,) is BEGAN's L(x) = mean |x - reconstruct(x)| per image (the
    loss it minimises on real images). ``forward(x)`` is the realness logit (N,) that Yeh et al.'s
    prior reads: minus the BEGAN *energy*, the L1 reconstruction error summed over the image,
    -C S S L(x). Real-looking images reconstruct well (high logit); the sum (not the mean) puts
    Yeh's bracket -logit = energy on the scale of Yeh's data term, itself a sum over pixels.
    """

    def __init__(
        self, channels: int = 1, image_size: int = 28, code_dim: int = 64, width: int = 64
    ):
        super().__init__()
        self.encoder = BEGANEncoder(channels, image_size, code_dim, width)
        self.decoder = BEGANDecoder(channels, image_size, code_dim, width)

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))  # (N, C, S, S)

    def reconstruction_error(self, x: Tensor) -> Tensor:
        return (x - self.reconstruct(x)).abs().flatten(1).mean(1)  # (N,)

    def forward(self, x: Tensor) -> Tensor:
        return -(x - self.reconstruct(x)).abs().flatten(1).sum(1)  # (N,)


@network("began_generator")
class BEGANGenerator(LatentGenerator):
    """BEGAN's generator: z (N, latent_dim) -> image (N, C, S, S) in [0, 1], the decoder's
    architecture with its own weights, clamped to [0, 1] (``clamp=False``: the raw output, which
    training uses). ``latent_dist`` as in the DCGAN generator (the paper draws z uniformly in
    [-1, 1])."""

    def __init__(
        self,
        latent_dim: int = 64,
        channels: int = 1,
        image_size: int = 28,
        width: int = 64,
        latent_dist: str = "uniform",
    ):
        super().__init__()
        self.set_prior(latent_dim, latent_dist)  # InfoGAN's categories are DCGAN's only
        self.body = BEGANDecoder(channels, image_size, latent_dim, width)
        self.channels, self.image_size = channels, image_size

    def forward(self, z: Tensor, clamp: bool = True) -> Tensor:
        x = self.body(z)  # (N, C, S, S)
        return x.clamp(0, 1) if clamp else x
