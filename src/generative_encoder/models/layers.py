"""Layers and geometry shared by the architectures."""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor, nn

from ..errors import ConfigError

IMAGE_SIZES = (28, 32, 64, 128)


def check_geometry(channels: int, image_size: int) -> None:
    if channels not in (1, 3):
        raise ConfigError(f"channels must be 1 or 3, got {channels}")
    if image_size not in IMAGE_SIZES:
        raise ConfigError(f"image_size must be one of {IMAGE_SIZES}, got {image_size}")


def base_size(image_size: int) -> int:
    """Spatial size of the smallest feature map: 7 for 28 x 28 (7 * 2 * 2), else 4."""
    return 7 if image_size == 28 else 4


def n_doublings(image_size: int) -> int:
    return int(round(math.log2(image_size / base_size(image_size))))


def refine_layers(c: int, n: int, norm: nn.Module, act: nn.Module) -> list[nn.Module]:
    """``n`` stride-1 3x3 convolutions at one resolution (c -> c channels), each normalised and
    activated: more capacity per scale at the same image size (``refine`` of the DCGAN nets)."""
    layers: list[nn.Module] = []
    for _ in range(n):
        layers += [nn.Conv2d(c, c, 3, 1, 1, bias=False), copy.deepcopy(norm), copy.deepcopy(act)]
    return layers


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
        weight = self.weight.t().unsqueeze(0).expand(len(x), -1, -1)  # (N, in, out)
        out = torch.bmm(x.unsqueeze(1), weight).squeeze(1)  # (N, out)
        return out if self.bias is None else out + self.bias
