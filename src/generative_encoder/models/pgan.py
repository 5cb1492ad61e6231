"""Progressive GAN's networks (Karras, Aila, Laine & Lehtinen, "Progressive Growing of GANs for
Improved Quality, Stability, and Variation", ICLR 2018).

Both networks hold every resolution from the start (s0 = 4, or 7 for 28 px, doubling to the image
size) and run up to their current ``stage`` (0 = s0 x s0), the newest block faded in with weight
``alpha``; ``set_progress(stage, alpha)`` moves them (the trainer does, on a schedule). Stage and
alpha are buffers, so a checkpoint restores them. The generator always returns full-size images,
(N, C, S, S) in [0, 1]: below the last stage its output is upsampled (nearest), and the
discriminator average-pools its input down to the current stage, so the pair works at every point
of training, and so does every solving method.

The paper's pieces: pixel norm after every generator convolution, equalized learning rate (weights
drawn N(0, 1) and scaled at run time by He's constant sqrt(2 / fan_in)), and the minibatch
standard deviation channel before the discriminator's last block.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .layers import check_geometry
from .priors import LatentGenerator
from .registry import network

LEAK = 0.2
MAX_WIDTH_FACTOR = 8  # channels at stage i: width * 2^min(k - i, 3) (width = at the image size)


def pixel_norm(x: Tensor, eps: float = 1e-8) -> Tensor:
    """Each pixel's feature vector scaled to unit mean square: x / sqrt(mean_c x^2 + eps);
    x (N, C, ...) -> same shape."""
    return x * torch.rsqrt(x.square().mean(1, keepdim=True) + eps)


class EqualizedConv2d(nn.Module):
    """Conv2d with equalized learning rate: weight ~ N(0, 1), used as weight x gain / sqrt(fan_in)
    (``effective_weight``), bias 0, padding k // 2."""

    def __init__(self, c_in: int, c_out: int, kernel: int, gain: float = math.sqrt(2)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.scale = gain / math.sqrt(c_in * kernel * kernel)

    @property
    def effective_weight(self) -> Tensor:
        return self.weight * self.scale

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.effective_weight, self.bias, padding=self.weight.shape[-1] // 2)


class EqualizedLinear(nn.Module):
    """Linear layer with equalized learning rate (see :class:`EqualizedConv2d`)."""

    def __init__(self, n_in: int, n_out: int, gain: float = math.sqrt(2)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_out, n_in))
        self.bias = nn.Parameter(torch.zeros(n_out))
        self.scale = gain / math.sqrt(n_in)

    @property
    def effective_weight(self) -> Tensor:
        return self.weight * self.scale

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.effective_weight, self.bias)


class MinibatchStdDev(nn.Module):
    """Appends one channel: the standard deviation of each feature at each pixel over the batch
    (biased, + 1e-8 under the root), averaged over features and pixels; (N, C, H, W) ->
    (N, C + 1, H, W).

    In training mode it is the batch's statistic (and a running average of it is kept, momentum
    0.1, like BatchNorm's); in eval mode the running average is used, so that the discriminator
    scores each image alone when a solving method (Yeh's) runs it on a batch of problems.
    """

    def __init__(self, momentum: float = 0.1):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("running_std", torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        if self.training and len(x) > 1:
            std = torch.sqrt(x.var(0, unbiased=False) + 1e-8).mean()  # ()
            with torch.no_grad():
                self.running_std.lerp_(std.detach().to(self.running_std), self.momentum)
        else:
            std = self.running_std.to(x.dtype)
        return torch.cat([x, std.expand(len(x), 1, *x.shape[2:])], 1)


def _geometry(channels: int, image_size: int, width: int) -> tuple[int, list[int]]:
    """(s0, channels per stage): stages s0, 2 s0, ..., image_size."""
    check_geometry(channels, image_size)
    if width < 1:
        raise ConfigError(f"width must be >= 1, got {width}")
    s0 = 7 if image_size == 28 else 4
    k = int(round(math.log2(image_size / s0)))
    return s0, [width * 2 ** min(k - i, int(math.log2(MAX_WIDTH_FACTOR))) for i in range(k + 1)]


class _Progressive(nn.Module):
    """Stage and fade-in weight, as buffers."""

    n_stages: int

    def _init_progress(self) -> None:
        self.register_buffer("stage", torch.tensor(self.n_stages - 1))
        self.register_buffer("alpha", torch.tensor(1.0))

    def set_progress(self, stage: int, alpha: float) -> None:
        """Run up to ``stage`` (0 .. n_stages - 1), its block faded in with weight alpha in
        [0, 1]."""
        if not 0 <= stage < self.n_stages or not 0 <= alpha <= 1:
            raise ConfigError(
                f"stage must be in 0..{self.n_stages - 1} and alpha in [0, 1], got {stage}, {alpha}"
            )
        self.stage.fill_(stage)
        self.alpha.fill_(alpha)

    @property
    def resolution(self) -> int:
        return self.s0 * 2 ** int(self.stage)


@network("pgan_generator")
class PGANGenerator(LatentGenerator, _Progressive):
    """Progressive GAN generator: z (N, latent_dim) -> image (N, C, S, S) in [0, 1].

    Pixel-normalised z -> equalized linear to (c0, s0, s0) -> conv 3x3; then per stage 2x nearest
    upsampling and two 3x3 convs, every conv followed by LeakyReLU(0.2) and pixel norm; a 1x1
    "toRGB" per stage, then a sigmoid. ``width`` is the channel count at the image size.
    """

    def __init__(
        self,
        latent_dim: int = 64,
        channels: int = 1,
        image_size: int = 28,
        width: int = 16,
        latent_dist: str = "normal",
    ):
        super().__init__()
        self.set_prior(latent_dim, latent_dist)  # InfoGAN's categories are DCGAN's only
        self.s0, widths = _geometry(channels, image_size, width)
        self.channels, self.image_size, self.n_stages = channels, image_size, len(widths)
        self.stem = EqualizedLinear(latent_dim, widths[0] * self.s0**2, gain=math.sqrt(2) / 4)
        self.blocks = nn.ModuleList([nn.ModuleList([EqualizedConv2d(widths[0], widths[0], 3)])])
        for c_in, c_out in zip(widths, widths[1:]):
            self.blocks.append(
                nn.ModuleList([EqualizedConv2d(c_in, c_out, 3), EqualizedConv2d(c_out, c_out, 3)])
            )
        self.to_rgb = nn.ModuleList([EqualizedConv2d(c, channels, 1, gain=1.0) for c in widths])
        self._init_progress()

    def _block(self, i: int, h: Tensor) -> Tensor:
        if i > 0:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
        for conv in self.blocks[i]:
            h = pixel_norm(F.leaky_relu(conv(h), LEAK))
        return h

    def forward(self, z: Tensor) -> Tensor:
        z = pixel_norm(z.flatten(1))
        h = pixel_norm(F.leaky_relu(self.stem(z), LEAK)).view(len(z), -1, self.s0, self.s0)
        stage, alpha = int(self.stage), self.alpha.to(z.dtype)
        for i in range(stage):
            h = self._block(i, h)
        new = self.to_rgb[stage](self._block(stage, h))  # (N, C, r, r)
        if stage > 0 and alpha < 1:  # fade in: blend with the upsampled previous stage
            old = F.interpolate(self.to_rgb[stage - 1](h), scale_factor=2, mode="nearest")
            new = torch.lerp(old, new, alpha)
        x = torch.sigmoid(new)
        if x.shape[-1] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="nearest")
        return x  # (N, C, S, S)


@network("pgan_discriminator")
class PGANDiscriminator(_Progressive):
    """Progressive GAN discriminator (a WGAN-GP critic): image (N, C, S, S) in [0, 1] -> score (N,)
    (higher = more real; the logit Yeh's prior reads).

    The input is average-pooled to the current stage; a 1x1 "fromRGB" per stage, per stage two 3x3
    convs and 2x average pooling, then the minibatch-std channel, a 3x3 conv, and two equalized
    linear layers; LeakyReLU(0.2) throughout, no normalisation.
    """

    def __init__(self, channels: int = 1, image_size: int = 28, width: int = 16):
        super().__init__()
        self.s0, widths = _geometry(channels, image_size, width)
        self.image_size, self.n_stages = image_size, len(widths)
        self.from_rgb = nn.ModuleList([EqualizedConv2d(channels, c, 1) for c in widths])
        self.blocks = nn.ModuleList([nn.Identity()])  # stage 0's block is the head below
        for c_low, c_high in zip(widths, widths[1:]):
            self.blocks.append(
                nn.ModuleList(
                    [EqualizedConv2d(c_high, c_high, 3), EqualizedConv2d(c_high, c_low, 3)]
                )
            )
        self.mbstd = MinibatchStdDev()
        self.head_conv = EqualizedConv2d(widths[0] + 1, widths[0], 3)
        self.head_fc = EqualizedLinear(widths[0] * self.s0**2, widths[0])
        self.head_out = EqualizedLinear(widths[0], 1, gain=1.0)
        self._init_progress()

    def _block(self, i: int, h: Tensor) -> Tensor:
        for conv in self.blocks[i]:
            h = F.leaky_relu(conv(h), LEAK)
        return F.avg_pool2d(h, 2)

    def forward(self, x: Tensor) -> Tensor:
        x = x * 2 - 1  # centred to [-1, 1]
        stage, alpha = int(self.stage), self.alpha.to(x.dtype)
        r = self.s0 * 2**stage
        if x.shape[-1] != r:
            x = F.adaptive_avg_pool2d(x, r)
        h = F.leaky_relu(self.from_rgb[stage](x), LEAK)
        if stage > 0:
            h = self._block(stage, h)
            if alpha < 1:  # fade in: blend with the previous stage's fromRGB of the pooled image
                old = F.leaky_relu(self.from_rgb[stage - 1](F.avg_pool2d(x, 2)), LEAK)
                h = torch.lerp(old, h, alpha)
        for i in range(stage - 1, 0, -1):
            h = self._block(i, h)
        h = F.leaky_relu(self.head_conv(self.mbstd(h)), LEAK)
        h = F.leaky_relu(self.head_fc(h.flatten(1)), LEAK)
        return self.head_out(h).squeeze(1)  # (N,)
