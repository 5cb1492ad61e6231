"""The GE journal paper's convolutional encoder (its Table 1), its VAE variant and a mirrored
decoder whose depth and width can be reduced.

Images are float tensors in [0, 1] of shape (B, C, H, W) with H = W = ``image_size``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .layers import RowLinear, check_geometry, n_doublings
from .registry import network


def default_encoder_depth(image_size: int) -> int:
    """Pooling stages that bring ``image_size`` down to 7 (28 px) or 4 (others): 2, 3, 4, 5."""
    return n_doublings(image_size)


@network("conv_encoder")
class ConvEncoder(nn.Module):
    """The GE journal paper's encoder (Table 1): image (N, C, S, S) -> code (N, code_dim).

    ``depth`` blocks of 3x3 conv (padding 1) + ReLU + 2x2 max-pool with width, 2 width, 4 width, ...
    filters, then a fully connected layer to ``code_dim`` outputs. The paper's GE1 at 64 x 64 is
    (depth=4, width=16, code_dim=128).
    """

    def __init__(
        self,
        channels: int = 1,
        image_size: int = 28,
        code_dim: int = 128,
        depth: int | None = None,
        width: int = 16,
    ):
        super().__init__()
        check_geometry(channels, image_size)
        depth = default_encoder_depth(image_size) if depth is None else depth
        if not 1 <= depth <= int(math.log2(image_size)):
            raise ConfigError(f"depth must be in 1..{int(math.log2(image_size))}, got {depth}")
        if code_dim < 1 or width < 1:
            raise ConfigError(f"code_dim and width must be >= 1, got {code_dim}, {width}")
        self.code_dim = code_dim
        layers, c_in = [], channels
        for i in range(depth):
            layers += [nn.Conv2d(c_in, width * 2**i, 3, 1, 1), nn.ReLU(True), nn.MaxPool2d(2)]
            c_in = width * 2**i
        self.convs = nn.Sequential(*layers, nn.Flatten())
        self.fc = RowLinear(c_in * (image_size >> depth) ** 2, code_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.convs(x))  # (N, code_dim)


@network("vae_encoder")
class VAEEncoder(ConvEncoder):
    """A VAE's encoder (Kingma & Welling 2014): :class:`ConvEncoder`'s layers with two heads.

    ``posterior(x)`` gives the Gaussian posterior q(z | x) as (mean, log-variance), each
    (N, code_dim); ``forward(x)`` is the posterior mean, so E(x) is deterministic (what GE and the
    autoencoder baseline need), never a random sample.
    """

    def __init__(
        self,
        channels: int = 1,
        image_size: int = 28,
        code_dim: int = 128,
        depth: int | None = None,
        width: int = 16,
    ):
        super().__init__(channels, image_size, code_dim, depth, width)
        self.logvar = RowLinear(self.fc.in_features, code_dim)

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.convs(x)
        return self.fc(h), self.logvar(h)  # (N, code_dim) x 2

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.convs(x))  # (N, code_dim), the posterior mean


@network("conv_decoder")
class ConvDecoder(nn.Module):
    """Mirror of :class:`ConvEncoder`: code (N, code_dim) -> image (N, C, S, S) in [0, 1].

    Starts from the encoder's smallest map (S / 2^encoder_depth) and grows it to S in ``depth``
    stages of upsampling + 3x3 conv + ReLU, with ``width`` filters at the last stage (doubling
    towards the start). The GE paper weakens the decoder (smaller depth or width) so that the
    encoder must carry more of the information.
    """

    def __init__(
        self,
        channels: int = 1,
        image_size: int = 28,
        code_dim: int = 128,
        encoder_depth: int | None = None,
        depth: int | None = None,
        width: int = 16,
    ):
        super().__init__()
        check_geometry(channels, image_size)
        encoder_depth = (
            default_encoder_depth(image_size) if encoder_depth is None else encoder_depth
        )
        depth = encoder_depth if depth is None else depth
        top = int(math.log2(image_size))
        if not 1 <= encoder_depth <= top:
            raise ConfigError(f"encoder_depth must be in 1..{top}, got {encoder_depth}")
        if not 1 <= depth <= top:
            raise ConfigError(f"decoder depth must be in 1..{top}, got {depth}")
        if code_dim < 1 or width < 1:
            raise ConfigError(f"code_dim and width must be >= 1, got {code_dim}, {width}")
        s0 = image_size >> encoder_depth
        ratio = image_size / s0
        self.sizes = [round(s0 * ratio ** ((j + 1) / depth)) for j in range(depth)]
        c = width * 2 ** (depth - 1)
        self.stem = nn.Sequential(
            RowLinear(code_dim, c * s0 * s0), nn.ReLU(True), nn.Unflatten(1, (c, s0, s0))
        )
        self.convs = nn.ModuleList()
        for j in range(depth):
            c_out = width * 2 ** max(depth - 2 - j, 0)
            self.convs.append(nn.Conv2d(c, c_out, 3, 1, 1))
            c = c_out
        self.out = nn.Conv2d(c, channels, 3, 1, 1)

    def forward(self, code: Tensor) -> Tensor:
        h = self.stem(code)
        for size, conv in zip(self.sizes, self.convs):
            h = F.relu(conv(F.interpolate(h, size=(size, size), mode="nearest")))
        return torch.sigmoid(self.out(h))  # (N, C, S, S)


class AutoEncoder(nn.Module):
    """Encoder + decoder trained together; ``forward(x)`` reconstructs x."""

    def __init__(self, encoder: ConvEncoder, decoder: ConvDecoder):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))


@network("latent_regressor")
class LatentRegressor(nn.Module):
    """Amortized GE's start: code (N, code_dim) -> latent (N, latent_dim), an MLP of ``layers``
    hidden layers of ``hidden`` units (ReLU), trained on pairs (z, E(G(z))) so that
    G(R(E(x))) approximates x without a search. ``channels`` and ``image_size`` record the
    images of its encoder (a model folder checks them like every network's)."""

    def __init__(
        self,
        channels: int = 1,
        image_size: int = 28,
        code_dim: int = 128,
        latent_dim: int = 64,
        hidden: int = 512,
        layers: int = 2,
    ):
        super().__init__()
        check_geometry(channels, image_size)
        if min(code_dim, latent_dim, hidden, layers) < 1:
            raise ConfigError(
                "code_dim, latent_dim, hidden and layers must be >= 1, got "
                f"{code_dim}, {latent_dim}, {hidden}, {layers}"
            )
        sizes = [code_dim] + [hidden] * layers
        blocks: list[nn.Module] = []
        for a, b in zip(sizes, sizes[1:]):
            blocks += [RowLinear(a, b), nn.ReLU(True)]
        self.mlp = nn.Sequential(*blocks, RowLinear(sizes[-1], latent_dim))
        self.code_dim, self.latent_dim = code_dim, latent_dim

    def forward(self, code: Tensor) -> Tensor:
        return self.mlp(code)  # (N, latent_dim)
