"""DCGAN generator and discriminator (Radford et al. 2016), 28, 32, 64 or 128 px, 1 or 3 channels.

Images are float tensors in [0, 1] of shape (B, C, H, W) with H = W = ``image_size``.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..errors import ConfigError
from .layers import RowLinear, base_size, check_geometry, n_doublings, refine_layers
from .pgan import MinibatchStdDev
from .priors import LatentGenerator
from .registry import network


@network("dcgan_generator", omit_defaults=("hidden",))
class DCGANGenerator(LatentGenerator):
    """DCGAN generator: z (N, latent_dim) -> image (N, C, S, S) in [0, 1].

    A linear layer makes a (width * 2^(k-1), s0, s0) map (s0 = 7 for 28 px, else 4), then k
    stride-2 transposed convolutions with BatchNorm + ReLU double it to ``image_size``; a sigmoid
    ends it. ``refine`` > 0 adds that many stride-1 3x3 conv layers at each inner resolution
    (more capacity at the same size; 0 is the plain DCGAN); ``hidden`` > 0 puts a fully connected
    layer of that many units (BatchNorm + ReLU) before the first map, as InfoGAN's MNIST
    generator. ``latent_dist`` ("normal" = N(0, I),
    "uniform" = U[-1, 1], "normal+cat10" = InfoGAN's, see :func:`latent_parts`) is the prior the
    GAN was trained with; latent-search methods draw their starts from it. Also accepts z of shape
    (N, latent_dim, 1, 1), as deepinv's ``CSGMGenerator`` passes it.
    """

    def __init__(
        self,
        latent_dim: int = 64,
        channels: int = 1,
        image_size: int = 28,
        width: int = 64,
        latent_dist: str = "normal",
        refine: int = 0,
        hidden: int = 0,
    ):
        super().__init__()
        check_geometry(channels, image_size)
        if width < 1 or refine < 0 or hidden < 0:
            raise ConfigError(
                f"width must be >= 1, refine and hidden >= 0, got {width}, {refine}, {hidden}"
            )
        self.set_prior(latent_dim, latent_dist, categories=True)
        self.channels, self.image_size = channels, image_size
        k, s0 = n_doublings(image_size), base_size(image_size)
        c = width * 2 ** (k - 1)
        mlp = (
            [RowLinear(latent_dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(True)]
            if hidden
            else []
        )
        self.stem = nn.Sequential(
            *mlp,
            RowLinear(hidden or latent_dim, c * s0 * s0, bias=False),
            nn.Unflatten(1, (c, s0, s0)),
            nn.BatchNorm2d(c),
            nn.ReLU(True),
        )
        blocks = refine_layers(c, refine, nn.BatchNorm2d(c), nn.ReLU(True))
        for _ in range(k - 1):
            blocks += [
                nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(c // 2),
                nn.ReLU(True),
            ]
            c //= 2
            blocks += refine_layers(c, refine, nn.BatchNorm2d(c), nn.ReLU(True))
        blocks += [nn.ConvTranspose2d(c, channels, 4, 2, 1), nn.Sigmoid()]
        self.blocks = nn.Sequential(*blocks)

    def forward(self, z: Tensor) -> Tensor:
        return self.blocks(self.stem(z.flatten(1)))  # (N, C, S, S)


@network("dcgan_discriminator", omit_defaults=("hidden", "mbstd", "n_categories"))
class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator: image (N, C, S, S) in [0, 1] -> logit (N,) (real > 0).

    k stride-2 convolutions with LeakyReLU(0.2) (BatchNorm after the first) down to the
    generator's smallest map, then a linear layer; ``refine`` as in the generator; ``hidden`` > 0
    puts a fully connected layer of that many units (LeakyReLU) before the last one; ``mbstd``
    appends the minibatch standard-deviation channel of the progressive GAN to the last map (D
    sees a batch's diversity, against mode collapse; in eval mode a running average, so each image
    is scored alone). ``n_categories`` = K > 0 adds InfoGAN's Q head: logits of the generator's
    categorical code (the last K latent coordinates) from the same features.
    ``features(x)`` returns the flattened last map.
    """

    def __init__(
        self,
        channels: int = 1,
        image_size: int = 28,
        width: int = 64,
        refine: int = 0,
        hidden: int = 0,
        mbstd: bool = False,
        n_categories: int = 0,
    ):
        super().__init__()
        check_geometry(channels, image_size)
        if width < 1 or refine < 0 or hidden < 0 or n_categories < 0:
            raise ConfigError(
                f"width must be >= 1, refine, hidden and n_categories >= 0, got {width}, "
                f"{refine}, {hidden}, {n_categories}"
            )
        k, s0 = n_doublings(image_size), base_size(image_size)
        layers, c_in, c = [], channels, width
        for i in range(k):
            layers += [nn.Conv2d(c_in, c, 4, 2, 1, bias=i == 0)]
            if i > 0:
                layers += [nn.BatchNorm2d(c)]
            layers += [nn.LeakyReLU(0.2, True)]
            if i < k - 1:
                layers += refine_layers(c, refine, nn.BatchNorm2d(c), nn.LeakyReLU(0.2, True))
            c_in, c = c, c * 2
        if mbstd:
            layers += [MinibatchStdDev()]
        self.convs = nn.Sequential(*layers, nn.Flatten())
        n_features = (c_in + mbstd) * s0 * s0
        self.head = (
            nn.Sequential(
                RowLinear(n_features, hidden), nn.LeakyReLU(0.2, True), RowLinear(hidden, 1)
            )
            if hidden
            else RowLinear(n_features, 1)
        )
        if n_categories:
            self.q_head = RowLinear(n_features, n_categories)

    def features(self, x: Tensor) -> Tensor:
        return self.convs(x * 2 - 1)  # (N, F); inputs centred to [-1, 1]

    def forward(self, x: Tensor, categories: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Logit (N,); with ``categories=True`` also the InfoGAN Q head's logits (N, K)."""
        h = self.features(x)
        logit = self.head(h).squeeze(1)
        return (logit, self.q_head(h)) if categories else logit
