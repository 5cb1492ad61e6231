"""Networks: DCGAN generator and discriminator, the convolutional encoder of the GE journal paper
(its Table 1) and a mirrored decoder whose depth and width can be reduced.

Every network records the keyword arguments that built it in ``self.kwargs`` and its registry name
in ``arch``, so a checkpoint can rebuild it from JSON alone (see :mod:`generative_encoder.checkpoints`).

Images are float tensors in [0, 1] of shape (B, C, H, W) with H = W = ``image_size``.

>>> G = build_network("dcgan_generator", latent_dim=16, channels=1, image_size=28)
>>> G(G.sample_latent(2)).shape
torch.Size([2, 1, 28, 28])
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import ConfigError
from .registry import Registry

NETWORKS = Registry("network")
IMAGE_SIZES = (28, 32, 64, 128)
LATENT_DISTS = ("normal", "uniform")


def build_network(arch: str, **kwargs) -> nn.Module:
    """Build a registered network by name, e.g. ``build_network("conv_encoder", code_dim=64)``."""
    return NETWORKS.build(arch, **kwargs)


def _check_geometry(channels: int, image_size: int) -> None:
    if channels not in (1, 3):
        raise ConfigError(f"channels must be 1 or 3, got {channels}")
    if image_size not in IMAGE_SIZES:
        raise ConfigError(f"image_size must be one of {IMAGE_SIZES}, got {image_size}")


def _base_size(image_size: int) -> int:
    """Spatial size of the smallest feature map: 7 for 28 x 28 (7 * 2 * 2), else 4."""
    return 7 if image_size == 28 else 4


def _n_doublings(image_size: int) -> int:
    return int(round(math.log2(image_size / _base_size(image_size))))


class LatentGenerator(nn.Module):
    """Base of every generator: ``latent_dim`` and ``latent_dist`` set by the subclass, the
    prior's sampler, and ``nz`` (the attribute name deepinv's CSGMGenerator reads)."""

    latent_dim: int
    latent_dist: str

    @property
    def nz(self) -> int:
        return self.latent_dim

    def sample_latent(self, n: int, generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> Tensor:
        """Draw n latents (n, latent_dim) from the training prior, on CPU then moved to ``device``."""
        return sample_latent(n, self.latent_dim, self.latent_dist, generator).to(
            device or next(self.parameters()).device)


@NETWORKS.register("dcgan_generator")
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

    arch = "dcgan_generator"

    def __init__(self, latent_dim: int = 64, channels: int = 1, image_size: int = 28,
                 width: int = 64, latent_dist: str = "normal", refine: int = 0, hidden: int = 0):
        super().__init__()
        _check_geometry(channels, image_size)
        if latent_dim < 1 or width < 1 or refine < 0 or hidden < 0:
            raise ConfigError(f"latent_dim and width must be >= 1, refine and hidden >= 0, got "
                              f"{latent_dim}, {width}, {refine}, {hidden}")
        latent_parts(latent_dist, latent_dim)
        self.kwargs = dict(latent_dim=latent_dim, channels=channels, image_size=image_size,
                           width=width, latent_dist=latent_dist, refine=refine)
        if hidden:  # only when used, so checkpoints written before the option still match
            self.kwargs["hidden"] = hidden
        self.latent_dim, self.latent_dist = latent_dim, latent_dist
        self.channels, self.image_size = channels, image_size
        k, s0 = _n_doublings(image_size), _base_size(image_size)
        c = width * 2 ** (k - 1)
        mlp = [RowLinear(latent_dim, hidden, bias=False), nn.BatchNorm1d(hidden),
               nn.ReLU(True)] if hidden else []
        self.stem = nn.Sequential(*mlp, RowLinear(hidden or latent_dim, c * s0 * s0, bias=False),
                                  nn.Unflatten(1, (c, s0, s0)), nn.BatchNorm2d(c), nn.ReLU(True))
        blocks = _refine_layers(c, refine, nn.BatchNorm2d(c), nn.ReLU(True))
        for _ in range(k - 1):
            blocks += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(c // 2),
                       nn.ReLU(True)]
            c //= 2
            blocks += _refine_layers(c, refine, nn.BatchNorm2d(c), nn.ReLU(True))
        blocks += [nn.ConvTranspose2d(c, channels, 4, 2, 1), nn.Sigmoid()]
        self.blocks = nn.Sequential(*blocks)

    def forward(self, z: Tensor) -> Tensor:
        return self.blocks(self.stem(z.flatten(1)))  # (N, C, S, S)


def _refine_layers(c: int, n: int, norm: nn.Module, act: nn.Module) -> list[nn.Module]:
    """``n`` stride-1 3x3 convolutions at one resolution (c -> c channels), each normalised and
    activated: more capacity per scale at the same image size (``refine`` of the DCGAN nets)."""
    layers: list[nn.Module] = []
    for _ in range(n):
        layers += [nn.Conv2d(c, c, 3, 1, 1, bias=False), copy.deepcopy(norm), copy.deepcopy(act)]
    return layers


def latent_parts(dist: str, latent_dim: int | None = None) -> tuple[str, int]:
    """Split a latent prior's name into (continuous part, number of categories K).

    "normal" and "uniform" have no categorical part (K = 0); "normal+cat10" is InfoGAN's prior
    (Chen et al. 2016): the last K = 10 coordinates are a one-hot category drawn uniformly, the
    others N(0, I) (or U[-1, 1] for "uniform+catK").
    """
    base, _, cat = dist.partition("+cat")
    k = int(cat) if cat.isdigit() else -1 if cat or "+" in dist else 0
    if base not in LATENT_DISTS or k == -1 or 0 < k < 2:
        raise ConfigError(f"latent_dist must be one of {LATENT_DISTS} or e.g. 'normal+cat10' "
                          f"(InfoGAN's one-hot category in the last 10 coordinates), got {dist!r}")
    if latent_dim is not None and k >= latent_dim:
        raise ConfigError(f"latent_dist {dist!r} needs latent_dim > {k}, got {latent_dim}")
    return base, k


def sample_latent(n: int, latent_dim: int, dist: str,
                  generator: torch.Generator | None = None) -> Tensor:
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


class RowLinear(nn.Linear):
    """nn.Linear whose eval-mode output for a row does not depend on the other rows of the batch.

    A matrix product with one output column is computed by different kernels for one row and for
    many, which round differently (seen: 2e-5 apart on a discriminator logit); Adam amplifies that
    over a latent search, so a problem would get another answer alone than in a batch. In eval
    mode each output is an element-wise product summed over the row; training keeps the fast
    matrix product. Same parameters, same checkpoints as nn.Linear.
    """

    def forward(self, x: Tensor) -> Tensor:
        if self.training or x.dim() != 2:
            return super().forward(x)
        # one (1, in) x (in, out) product per row: the same kernel whatever the batch size
        weight = self.weight.t().unsqueeze(0).expand(len(x), -1, -1)           # (N, in, out)
        out = torch.bmm(x.unsqueeze(1), weight).squeeze(1)                      # (N, out)
        return out if self.bias is None else out + self.bias


@NETWORKS.register("dcgan_discriminator")
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

    arch = "dcgan_discriminator"

    def __init__(self, channels: int = 1, image_size: int = 28, width: int = 64,
                 refine: int = 0, hidden: int = 0, mbstd: bool = False,
                 n_categories: int = 0):
        super().__init__()
        _check_geometry(channels, image_size)
        if width < 1 or refine < 0 or hidden < 0:
            raise ConfigError(f"width must be >= 1, refine and hidden >= 0, got {width}, "
                              f"{refine}, {hidden}")
        self.kwargs = dict(channels=channels, image_size=image_size, width=width, refine=refine)
        for key, value in (("hidden", hidden), ("mbstd", mbstd), ("n_categories", n_categories)):
            if value:  # only when used, so checkpoints written before the option still match
                self.kwargs[key] = value
        k, s0 = _n_doublings(image_size), _base_size(image_size)
        layers, c_in, c = [], channels, width
        for i in range(k):
            layers += [nn.Conv2d(c_in, c, 4, 2, 1, bias=i == 0)]
            if i > 0:
                layers += [nn.BatchNorm2d(c)]
            layers += [nn.LeakyReLU(0.2, True)]
            if i < k - 1:
                layers += _refine_layers(c, refine, nn.BatchNorm2d(c), nn.LeakyReLU(0.2, True))
            c_in, c = c, c * 2
        if mbstd:
            from .nets_pgan import MinibatchStdDev  # nets_pgan imports this module

            layers += [MinibatchStdDev()]
        self.convs = nn.Sequential(*layers, nn.Flatten())
        n_features = (c_in + mbstd) * s0 * s0
        self.head = nn.Sequential(RowLinear(n_features, hidden), nn.LeakyReLU(0.2, True),
                                  RowLinear(hidden, 1)) if hidden else RowLinear(n_features, 1)
        if n_categories:
            self.q_head = RowLinear(n_features, n_categories)

    def features(self, x: Tensor) -> Tensor:
        return self.convs(x * 2 - 1)  # (N, F); inputs centred to [-1, 1]

    def forward(self, x: Tensor, categories: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Logit (N,); with ``categories=True`` also the InfoGAN Q head's logits (N, K)."""
        h = self.features(x)
        logit = self.head(h).squeeze(1)
        return (logit, self.q_head(h)) if categories else logit


def default_encoder_depth(image_size: int) -> int:
    """Pooling stages that bring ``image_size`` down to 7 (28 px) or 4 (others): 2, 3, 4, 5."""
    return _n_doublings(image_size)


@NETWORKS.register("conv_encoder")
class ConvEncoder(nn.Module):
    """The GE journal paper's encoder (Table 1): image (N, C, S, S) -> code (N, code_dim).

    ``depth`` blocks of 3x3 conv (padding 1) + ReLU + 2x2 max-pool with width, 2 width, 4 width, ...
    filters, then a fully connected layer to ``code_dim`` outputs. The paper's GE1 at 64 x 64 is
    (depth=4, width=16, code_dim=128).
    """

    arch = "conv_encoder"

    def __init__(self, channels: int = 1, image_size: int = 28, code_dim: int = 128,
                 depth: int | None = None, width: int = 16):
        super().__init__()
        _check_geometry(channels, image_size)
        depth = default_encoder_depth(image_size) if depth is None else depth
        if not 1 <= depth <= int(math.log2(image_size)):
            raise ConfigError(f"depth must be in 1..{int(math.log2(image_size))}, got {depth}")
        if code_dim < 1:
            raise ConfigError(f"code_dim must be >= 1, got {code_dim}")
        self.kwargs = dict(channels=channels, image_size=image_size, code_dim=code_dim,
                           depth=depth, width=width)
        self.code_dim = code_dim
        layers, c_in = [], channels
        for i in range(depth):
            layers += [nn.Conv2d(c_in, width * 2**i, 3, 1, 1), nn.ReLU(True), nn.MaxPool2d(2)]
            c_in = width * 2**i
        self.convs = nn.Sequential(*layers, nn.Flatten())
        self.fc = RowLinear(c_in * (image_size >> depth) ** 2, code_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.convs(x))  # (N, code_dim)


@NETWORKS.register("vae_encoder")
class VAEEncoder(ConvEncoder):
    """A VAE's encoder (Kingma & Welling 2014): :class:`ConvEncoder`'s layers with two heads.

    ``posterior(x)`` gives the Gaussian posterior q(z | x) as (mean, log-variance), each
    (N, code_dim); ``forward(x)`` is the posterior mean, so E(x) is deterministic (what GE and the
    autoencoder baseline need), never a random sample.
    """

    arch = "vae_encoder"

    def __init__(self, channels: int = 1, image_size: int = 28, code_dim: int = 128,
                 depth: int | None = None, width: int = 16):
        super().__init__(channels, image_size, code_dim, depth, width)
        self.logvar = RowLinear(self.fc.in_features, code_dim)

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.convs(x)
        return self.fc(h), self.logvar(h)  # (N, code_dim) x 2

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.convs(x))  # (N, code_dim), the posterior mean


@NETWORKS.register("conv_decoder")
class ConvDecoder(nn.Module):
    """Mirror of :class:`ConvEncoder`: code (N, code_dim) -> image (N, C, S, S) in [0, 1].

    Starts from the encoder's smallest map (S / 2^encoder_depth) and grows it to S in ``depth``
    stages of upsampling + 3x3 conv + ReLU, with ``width`` filters at the last stage (doubling
    towards the start). The GE paper weakens the decoder (smaller depth or width) so that the
    encoder must carry more of the information.
    """

    arch = "conv_decoder"

    def __init__(self, channels: int = 1, image_size: int = 28, code_dim: int = 128,
                 encoder_depth: int | None = None, depth: int | None = None, width: int = 16):
        super().__init__()
        _check_geometry(channels, image_size)
        encoder_depth = default_encoder_depth(image_size) if encoder_depth is None else encoder_depth
        depth = encoder_depth if depth is None else depth
        if depth < 1:
            raise ConfigError(f"decoder depth must be >= 1, got {depth}")
        self.kwargs = dict(channels=channels, image_size=image_size, code_dim=code_dim,
                           encoder_depth=encoder_depth, depth=depth, width=width)
        s0 = image_size >> encoder_depth
        ratio = image_size / s0
        self.sizes = [round(s0 * ratio ** ((j + 1) / depth)) for j in range(depth)]
        c = width * 2 ** (depth - 1)
        self.stem = nn.Sequential(RowLinear(code_dim, c * s0 * s0), nn.ReLU(True),
                                  nn.Unflatten(1, (c, s0, s0)))
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


@NETWORKS.register("cnn_classifier")
class CNNClassifier(nn.Module):
    """A small CNN: image (N, C, S, S) in [0, 1] -> class logits (N, n_classes).

    Two 3x3 conv + ReLU + 2x2 max-pool blocks (width, 2 width filters), then a hidden layer of
    ``hidden`` units. It judges samples and restorations (does a digit keep its class?) and,
    through ``features(x)`` (N, hidden), is the domain feature network for FID.
    """

    arch = "cnn_classifier"

    def __init__(self, channels: int = 1, image_size: int = 28, n_classes: int = 10,
                 width: int = 32, hidden: int = 128):
        super().__init__()
        _check_geometry(channels, image_size)
        self.kwargs = dict(channels=channels, image_size=image_size, n_classes=n_classes,
                           width=width, hidden=hidden)
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 3, 1, 1), nn.ReLU(True), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, 1, 1), nn.ReLU(True), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(0.3),
            nn.Linear(2 * width * (image_size // 4) ** 2, hidden), nn.ReLU(True))
        self.head = nn.Linear(hidden, n_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)  # (N, hidden)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))  # (N, n_classes)


from . import nets_began, nets_pgan  # noqa: E402,F401  (importing registers their networks)
